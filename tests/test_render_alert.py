"""The alert: extractive summary, highlights, Telegram HTML validity and length, golden files.

Validity is proven with ``tests.fakes.telegram_html``, a re-implementation of
Telegram's own HTML parser and clean-up.  Golden files live in ``tests/golden``;
regenerate them with ``MONITOR_UPDATE_GOLDEN=1 pytest tests/test_render_alert.py``.
"""

from __future__ import annotations

import os
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.models import Alert, Article, Channel, Hit, Match
from monitor.render.alert import (
    MAX_HTML_BYTES,
    MAX_MESSAGE_LENGTH,
    Segment,
    render_alert,
    render_sample_alert,
    safe_link,
    summarize,
)
from monitor.sentences import split_sentences
from monitor.text import guess_language
from tests.fakes.telegram_html import message_length, parse_telegram_html

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("MONITOR_UPDATE_GOLDEN") == "1"
WHEN = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


# ---------------------------------------------------------------------------
# helpers


def hits_for(article: Article, term: str, fields=("title", "summary", "content")) -> list[Hit]:
    """Every occurrence of ``term`` in the article, as the matcher would report it."""
    out = []
    for field in fields:
        text = article.field_text(field)
        folded = text.lower()
        assert len(folded) == len(text)
        start = folded.find(term.lower())
        while start >= 0:
            end = start + len(term)
            out.append(Hit(term, text[start:end], field, start, end))
            start = folded.find(term.lower(), end)
    return out


def parsed(alert: Alert) -> tuple[str, list[dict]]:
    """Telegram's view of the alert; fails the test on anything Telegram would refuse."""
    assert len(alert.html.encode("utf-8")) <= MAX_HTML_BYTES
    plain, entities = parse_telegram_html(alert.html)
    assert plain.strip(), "Telegram refuses an empty message"
    assert message_length(plain) <= MAX_MESSAGE_LENGTH
    return plain, entities


def entity_text(plain: str, entity: dict) -> str:
    units = plain.encode("utf-16-le")
    start, length = entity["offset"] * 2, entity["length"] * 2
    return units[start : start + length].decode("utf-16-le")


def bold_texts(alert: Alert) -> list[str]:
    plain, entities = parsed(alert)
    return [entity_text(plain, e) for e in entities if e["type"] == "bold"][1:]  # skip label


def article(**kw) -> Article:
    base = dict(key="k1", feed_id="feed", title="A title", link="https://example.org/a")
    base.update(kw)
    return Article(**base)


# ---------------------------------------------------------------------------
# sentence splitting

SENTENCES = [
    (  # Ukrainian: guessed by its letters, split by the Russian rules ("проф." is no end)
        "uk",
        "Доповідь зробив проф. Коваленко у Києві. Далі виступили інші.",
        ["Доповідь зробив проф. Коваленко у Києві.", "Далі виступили інші."],
    ),
    # (language, text, expected sentences)
    (
        "en",
        "Talks ended. A new round starts in May.",
        ["Talks ended.", "A new round starts in May."],
    ),
    (
        "en",
        "Dr. Rahimi met Mr. Ortega in Geneva. They spoke for an hour.",
        ["Dr. Rahimi met Mr. Ortega in Geneva.", "They spoke for an hour."],
    ),
    (
        "en",
        "U.S. officials and U.N. envoys arrived at 9 a.m. on Tuesday. Nobody spoke.",
        ["U.S. officials and U.N. envoys arrived at 9 a.m. on Tuesday.", "Nobody spoke."],
    ),
    (
        "en",
        'He asked: "Is it over?" Then he left! Really? Yes.',
        ['He asked: "Is it over?"', "Then he left!", "Really?", "Yes."],
    ),
    (
        "en",
        "Growth was 3.5% in Q2. See fig. 4 for details.",
        ["Growth was 3.5% in Q2.", "See fig. 4 for details."],
    ),
    ("en", "J. R. Hart wrote the memo. It leaked.", ["J. R. Hart wrote the memo.", "It leaked."]),
    (
        "en",
        "First line without a stop\nSecond line.",
        ["First line without a stop", "Second line."],
    ),
    ("en", "Wait... what happened? Nothing.", ["Wait... what happened?", "Nothing."]),
    (
        "ru",
        "В. В. Иванов прибыл в Астану. Переговоры начнутся завтра.",
        ["В. В. Иванов прибыл в Астану.", "Переговоры начнутся завтра."],
    ),
    (
        "ru",
        "Стороны договорились, т. е. перемирие продлено. Это важно.",
        ["Стороны договорились, т. е. перемирие продлено.", "Это важно."],
    ),
    (
        "ru",
        "Эксперты, напр. из МГИМО, сомневаются. Встреча пройдёт в 2027 г. в Женеве.",
        ["Эксперты, напр. из МГИМО, сомневаются.", "Встреча пройдёт в 2027 г. в Женеве."],
    ),
    (
        "ru",
        "Обсуждали газ, нефть и т. д. Потом сделали перерыв.",
        ["Обсуждали газ, нефть и т. д.", "Потом сделали перерыв."],
    ),
    (
        "ru",
        "Он ответил: «Нет». Зал замолчал! Что дальше?",
        ["Он ответил: «Нет».", "Зал замолчал!", "Что дальше?"],
    ),
    (
        "ru",
        "«Мы готовы. Ждём ответа», — сказал посол. Ответа пока нет.",
        ["«Мы готовы. Ждём ответа», — сказал посол.", "Ответа пока нет."],
    ),
    (
        "ru",
        'Дело возбуждено по ст. 159 УК. Завод им. В.П. Чкалова выпустил "Су-34. Серия 2".',
        ["Дело возбуждено по ст. 159 УК.", 'Завод им. В.П. Чкалова выпустил "Су-34. Серия 2".'],
    ),
    (
        "ru",
        "Поставлена партия Су-35С. Об этом сообщил завод.",
        ["Поставлена партия Су-35С.", "Об этом сообщил завод."],
    ),
    (
        "ar",
        "انتهت الجولة الأولى. وتبدأ الثانية غدا.",
        ["انتهت الجولة الأولى.", "وتبدأ الثانية غدا."],
    ),
    (
        "ar",
        "هل يصمد الاتفاق؟ يرى المراقبون ذلك! لكن الحذر واجب؛ والوقت قصير.",
        ["هل يصمد الاتفاق؟", "يرى المراقبون ذلك!", "لكن الحذر واجب؛", "والوقت قصير."],
    ),
    (
        "ar",
        "قال د. سامي إن الوفد وصل. وأكد أن المحادثات مستمرة.",
        ["قال د. سامي إن الوفد وصل.", "وأكد أن المحادثات مستمرة."],
    ),
    (
        "ar",
        "وقال.. إن الحل سياسي. وارتفعت النسبة إلى 2.5 بالمئة.",
        ["وقال.. إن الحل سياسي.", "وارتفعت النسبة إلى 2.5 بالمئة."],
    ),
    (
        "ar",
        "عنوان فرعي بلا نقطة\nوقال الوزير إن الاجتماع مثمر.",
        ["عنوان فرعي بلا نقطة", "وقال الوزير إن الاجتماع مثمر."],
    ),
]


@pytest.mark.parametrize(("lang", "text", "expected"), SENTENCES)
def test_split_sentences_table(lang: str, text: str, expected: list[str]) -> None:
    assert [text[a:b] for a, b in split_sentences(text, lang)] == expected


@pytest.mark.parametrize(("lang", "text", "expected"), SENTENCES)
def test_split_sentences_guesses_the_language_from_the_script(lang, text, expected) -> None:
    assert guess_language(text) == lang
    assert [text[a:b] for a, b in split_sentences(text)] == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.sampled_from([None, "en", "ru", "ar", "ar-SY", "xx"]))
def test_split_sentences_spans_cover_every_word_in_order(text: str, lang: str | None) -> None:
    spans = split_sentences(text, lang)
    at = 0
    for start, end in spans:
        assert at <= start < end <= len(text)
        assert not text[at:start].strip()  # nothing but whitespace between sentences
        assert not text[start].isspace() and not text[end - 1].isspace()
        at = end
    assert not text[at:].strip()


# ---------------------------------------------------------------------------
# the alert, piece by piece


def test_rules_title_source_time_summary_and_link_are_all_shown() -> None:
    art = article(
        title="Ceasefire talks resume in Astana",
        summary="Delegations met on Monday. The agenda was long. A truce was discussed.",
        source="Example News",
        published=WHEN,
    )
    matches = [
        Match("astana", tuple(hits_for(art, "Astana"))),
        Match("ceasefire", tuple(hits_for(art, "truce"))),
    ]
    alert = render_alert(art, matches, Channel("syria", "@s", timezone="Europe/Moscow"))
    plain, entities = parsed(alert)
    assert alert.rules == ("astana", "ceasefire")
    assert (alert.channel, alert.article_key, alert.feed_id) == ("syria", "k1", "feed")
    assert "astana" in plain.splitlines()[0] and "ceasefire" in plain.splitlines()[0]
    assert plain.splitlines()[1] == "Ceasefire talks resume in Astana"
    assert "Example News" in plain and "2026-11-28 12:30 MSK" in plain
    assert "Delegations met on Monday. … A truce was discussed." in plain
    assert "The agenda was long" not in plain
    links = [e for e in entities if e["type"] == "text_link"]
    assert links and all(e["url"] == "https://example.org/a" for e in links)
    assert entity_text(plain, links[0]) == "Ceasefire talks resume in Astana"
    assert bold_texts(alert) == ["Astana", "truce"]


def test_rules_are_named_once_in_the_order_given() -> None:
    art = article(summary="Astana again.")
    hit = hits_for(art, "Astana")
    matches = [Match("b-rule", tuple(hit)), Match("a-rule", tuple(hit)), Match("b-rule")]
    assert render_alert(art, matches, Channel("c", "@c")).rules == ("b-rule", "a-rule")


def test_feed_text_is_escaped_everywhere() -> None:
    art = article(
        title='<b>Bold</b> & "quoted" <script>',
        summary="1 < 2 && 3 > 2, <i>not italic</i> &amp; stays literal.",
        source="<Evil & Co>",
        link='https://example.org/?q=<x>&r="y"',
    )
    alert = render_alert(art, [Match("r<1>", ())], Channel("c", "@c"))
    plain, entities = parsed(alert)
    assert '<b>Bold</b> & "quoted" <script>' in plain
    assert "1 < 2 && 3 > 2," in plain and "<i>not italic</i> &amp; stays literal." in plain
    assert "<Evil & Co>" in plain and "r<1>" in plain
    assert {e["type"] for e in entities} == {"bold", "text_link"}  # nothing from the feed


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://example.org/a", "https://example.org/a"),
        ("HTTP://Example.org/a b", "HTTP://Example.org/a%20b"),
        ("  https://example.org/x  ", "https://example.org/x"),
        ("javascript:alert(1)", None),
        ("tg://user?id=1", None),
        ("ftp://example.org/file", None),
        ("/relative/path", None),
        ("https://", None),
        ("", None),
        (None, None),
        ('https://example.org/"><b>', "https://example.org/%22%3E%3Cb%3E"),
    ],
)
def test_only_absolute_http_links_are_linked(link: str | None, expected: str | None) -> None:
    assert safe_link(link) == expected
    alert = render_alert(article(link=link), [Match("r")], Channel("c", "@c"))
    _, entities = parsed(alert)
    urls = {e["url"] for e in entities if e["type"] == "text_link"}
    assert urls == ({expected} if expected else set())
    assert alert.link == expected


def test_title_hits_are_bold_inside_the_link() -> None:
    art = article(title="Astana and Geneva host Astana talks")
    alert = render_alert(art, [Match("a", tuple(hits_for(art, "Astana")))], Channel("c", "@c"))
    assert (
        '<a href="https://example.org/a"><b>Astana</b> and Geneva host <b>Astana</b> talks</a>'
        in alert.html
    )
    assert "*Astana* and Geneva host *Astana* talks" in alert.text


def test_overlapping_and_out_of_range_hits_are_merged_or_ignored() -> None:
    art = article(summary="The ceasefire holds.")
    matches = [
        Match("a", (Hit("ceasefire", "ceasefire", "summary", 4, 13),)),
        Match("b", (Hit("fire", "fire", "summary", 9, 13), Hit("x", "x", "summary", 50, 60))),
        Match("c", (Hit("x", "x", "nofield", 0, 3), Hit("x", "", "summary", 5, 5))),
    ]
    assert bold_texts(render_alert(art, matches, Channel("c", "@c"))) == ["ceasefire"]


def test_no_link_no_date_and_no_title_still_make_a_valid_alert() -> None:
    art = article(title="", link=None, summary="", source="")
    alert = render_alert(art, [Match("r")], Channel("c", "@c", language="ru"))
    plain, entities = parsed(alert)
    assert "(без заголовка)" in plain
    assert "feed" in plain  # the feed id stands in for a missing source name
    assert not [e for e in entities if e["type"] == "text_link"]
    assert alert.link is None


@pytest.mark.parametrize(
    ("language", "labels"),
    [
        ("en", ("Matched:", "Source:")),
        ("ar", ("القواعد:", "المصدر:")),
        ("ru", ("Правила:", "Источник:")),
        ("de", ("Matched:", "Source:")),
    ],
)
def test_fixed_labels_follow_the_channel_language(language: str, labels: tuple[str, str]) -> None:
    alert = render_alert(
        article(published=WHEN), [Match("r")], Channel("c", "@c", language=language)
    )
    plain, _ = parsed(alert)
    for label in labels:
        assert label in plain
        assert label in alert.text


@pytest.mark.parametrize(
    ("timezone", "shown"),
    [
        ("UTC", "2026-11-28 09:30 UTC"),
        ("Asia/Damascus", "2026-11-28 12:30 UTC+03"),
        ("Asia/Kolkata", "2026-11-28 15:00 IST"),
        ("Asia/Kathmandu", "2026-11-28 15:15 UTC+05:45"),
        ("America/New_York", "2026-11-28 04:30 EST"),
        ("Not/A_Zone", "2026-11-28 09:30 UTC"),
    ],
)
def test_publication_time_is_shown_in_the_channel_timezone(timezone: str, shown: str) -> None:
    alert = render_alert(
        article(published=WHEN), [Match("r")], Channel("c", "@c", timezone=timezone)
    )
    assert shown in parsed(alert)[0]
    assert shown in alert.text


def test_right_to_left_text_next_to_labels_is_isolated() -> None:
    art = article(source="وكالة سانا", title="وقف إطلاق النار", summary="نص قصير.", published=WHEN)
    alert = render_alert(art, [Match("هدنة")], Channel("c", "@c"))
    plain, _ = parsed(alert)  # the isolates survive Telegram's clean-up
    lines = plain.splitlines()
    assert lines[0] == "🔔 Matched: \u2068هدنة\u2069"
    assert lines[2] == "📰 Source: \u2068وكالة سانا\u2069 · \u20662026-11-28 09:30 UTC\u2069"
    assert lines[1] == "وقف إطلاق النار"  # a line of its own takes the text's direction
    assert "\u2068" not in alert.text and "\u2066" not in alert.text  # terminals get plain text


def test_feed_bidi_controls_cannot_break_the_layout() -> None:
    art = article(
        title="a\u202eb\u2067c\u2069d\u2066",
        source="\u2069\u2069src\u2068",
        summary="x\ty\x00\u202az w.",
    )
    alert = render_alert(art, [Match("r")], Channel("c", "@c"))
    plain, _ = parsed(alert)
    for line in plain.splitlines():
        depth = 0
        for ch in line:
            depth += ch in "\u2066\u2067\u2068"
            depth -= ch == "\u2069"
            assert depth >= 0
        assert depth == 0
    assert "abcd" in plain and "src" in plain and "x y z w." in plain


def test_unpaired_surrogates_from_a_broken_decoder_are_dropped() -> None:
    art = article(
        title="a\ud83db", summary="c\udc00d.", source="\ud800", link="https://e.org/\udfff"
    )
    alert = render_alert(art, [Match("r\ud800")], Channel("c", "@c"))
    plain, _ = parsed(alert)
    assert "ab" in plain and "cd." in plain
    alert.text.encode("utf-8")  # printable too


# ---------------------------------------------------------------------------
# the summary


def test_summary_is_the_lead_plus_hit_sentences_in_order() -> None:
    art = article(
        summary="Lead sentence here. Filler one. Hit in Astana. Filler. Another Astana hit. End.",
    )
    segs = summarize(art, [Match("a", tuple(hits_for(art, "Astana")))], 600)
    assert "".join(s.text for s in segs) == (
        "Lead sentence here. … Hit in Astana. … Another Astana hit."
    )
    assert [s.text for s in segs if s.bold] == ["Astana", "Astana"]


def test_adjacent_sentences_are_joined_without_an_ellipsis() -> None:
    art = article(summary="Lead. Astana first. Astana second. Filler.")
    segs = summarize(art, [Match("a", tuple(hits_for(art, "Astana")))], 600)
    assert "".join(s.text for s in segs) == "Lead. Astana first. Astana second."


def test_content_repeating_the_summary_is_not_shown_twice() -> None:
    art = article(
        summary="Talks in Astana began.",
        content="Talks in Astana began. Later a truce in Astana was agreed.",
    )
    segs = summarize(art, [Match("a", tuple(hits_for(art, "Astana")))], 600)
    assert (
        "".join(s.text for s in segs)
        == "Talks in Astana began. … Later a truce in Astana was agreed."
    )


def test_a_dateline_and_a_repeated_title_do_not_stand_in_for_the_lead() -> None:
    art = article(
        title="لافروف: التنسيق ضروري في مكافحة الإرهاب",
        summary=(
            "لافروف: التنسيق ضروري في مكافحة الإرهاب\n"
            "موسكو-وكالات\n"
            "قال وزير الخارجية إن التنسيق مع الأطراف كلها ضروري. وأضاف أن الاجتماع المقبل "
            "سيعقد في الربيع. ورحب بنتائج جولة أستانا."
        ),
    )
    segs = summarize(art, [Match("a", tuple(hits_for(art, "أستانا")))], 600)
    assert "".join(s.text for s in segs) == (
        "موسكو-وكالات قال وزير الخارجية إن التنسيق مع الأطراف كلها ضروري."
        " … ورحب بنتائج جولة أستانا."
    )


def test_without_hits_in_the_body_the_lead_alone_is_shown() -> None:
    art = article(title="Astana", summary="First sentence. Second sentence.")
    segs = summarize(art, [Match("a", tuple(hits_for(art, "Astana")))], 600)
    assert segs == [Segment("First sentence.")]


@pytest.mark.parametrize("limit", [0, 1, 10, 24, 30, 45, 80, 120, 600])
def test_summary_never_exceeds_its_length_and_cuts_at_word_boundaries(limit: int) -> None:
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
        "mu",
    ]
    summary = " ".join(words) + ". " + "Then the ceasefire was " + " ".join(words) + "."
    art = article(summary=summary)
    segs = summarize(art, [Match("c", tuple(hits_for(art, "ceasefire")))], limit)
    text = "".join(s.text for s in segs)
    assert len(text) <= limit
    for piece in text.replace("…", " ").split():
        assert piece.strip(".") in [*words, "Then", "the", "ceasefire", "was"]


def test_a_hit_deep_inside_a_long_sentence_is_shown_in_a_window() -> None:
    filler = " ".join(f"Word{i}" for i in range(300))
    art = article(summary=f"Lead. {filler} ceasefire {filler}.")
    segs = summarize(art, [Match("c", tuple(hits_for(art, "ceasefire")))], 120)
    text = "".join(s.text for s in segs)
    assert len(text) <= 120
    assert [s.text for s in segs if s.bold] == ["ceasefire"]
    assert text.startswith("Lead. …Word")
    assert text.endswith("…")


def test_long_titles_and_huge_summaries_stay_within_the_limit() -> None:
    art = article(
        title="Astana " * 2000,
        summary=("Astana & <b> " * 3000) + ".",
        content="x" * 50_000,
        source="S" * 5000,
    )
    matches = [Match(f"rule{i}" * 10, tuple(hits_for(art, "Astana"))) for i in range(100)]
    alert = render_alert(art, matches, Channel("c", "@c", summary_length=10_000))
    plain, _ = parsed(alert)
    assert message_length(plain) <= MAX_MESSAGE_LENGTH


def test_html_stays_under_telegrams_byte_limit_before_parsing() -> None:
    summary = "&<" * 5000
    hits = tuple(Hit("&", "&", "summary", i, i + 1) for i in range(0, len(summary), 3))
    channel = Channel("c", "@c", summary_length=4000)
    alert = render_alert(article(summary=summary), [Match("amp", hits)], channel)
    plain, _ = parsed(alert)  # ≤ 32768 bytes of HTML, ≤ 4096 code points after parsing
    assert "&<&<&<" in plain
    assert len(plain) > 3500  # bold was given up, not the summary
    long_link = "https://example.org/" + "&" * 2000
    plain, _ = parsed(render_alert(article(summary=summary, link=long_link), [Match("a")], channel))
    assert "&<&<&<" in plain  # a shorter summary, still valid
    huge = render_alert(article(summary=summary, link=long_link * 2), [Match("a")], channel)
    plain, entities = parsed(huge)
    assert not [e for e in entities if e["type"] == "text_link"]  # too long to link
    assert huge.link == long_link * 2 and huge.text.endswith(long_link * 2)


# ---------------------------------------------------------------------------
# properties

FEEDISH = st.sampled_from(
    [
        "<",
        ">",
        "&",
        "&amp;",
        "&lt",
        "&#x1F600;",
        "&#0;",
        "<b>",
        "</a>",
        '"',
        "'",
        "\u202e",
        "\u202b",
        "\u2067",
        "\u2069",
        "\u200f",
        "\u200e",
        "\u061c",
        "\ufeff",
        "😀",
        "👍🏽",
        "🇸🇾",
        "👨‍👩‍👧",
        "e\u0301",
        "\r\n",
        "\n",
        "\t",
        "\x00",
        "\x1b",
        " ",
        ". ",
        "؟ ",
        "؛ ",
        "! ",
        "… ",
        "Dr. ",
        "т. е. ",
        "وقف إطلاق النار",
        "Астана",
        "Astana",
        "ceasefire",
        "\U0010fffd",
        "\u0600",
        "\u2028",
    ]
)
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=300),
    st.lists(FEEDISH, max_size=80).map("".join),
    st.tuples(st.lists(FEEDISH, min_size=1, max_size=10).map("".join), st.integers(1, 2000)).map(
        lambda t: (t[0] * t[1])[:10_000]
    ),
)


@st.composite
def alerts(draw):
    art = article(
        title=draw(TEXT),
        summary=draw(TEXT),
        content=draw(st.one_of(st.just(""), TEXT)),
        source=draw(TEXT),
        link=draw(
            st.sampled_from(
                [
                    None,
                    "https://example.org/a?b=1&c=<2>",
                    "javascript:x",
                    "http://e.org/" + "&" * 2030,
                ]
            )
        ),
        published=draw(st.one_of(st.none(), st.just(WHEN))),
        language=draw(st.sampled_from([None, "ar", "ru", "en"])),
    )
    hits = []
    for field in ("title", "summary", "content"):
        length = len(art.field_text(field))
        if not length:
            continue
        for _ in range(draw(st.integers(0, 6))):
            start = draw(st.integers(0, length - 1))
            end = draw(st.integers(start + 1, min(length, start + 40)))
            hits.append(Hit("t", art.field_text(field)[start:end], field, start, end))
    rules = draw(st.lists(TEXT, min_size=1, max_size=4))
    matches = [Match(rule, tuple(hits[i :: len(rules)])) for i, rule in enumerate(rules)]
    channel = Channel(
        "c",
        "@c",
        language=draw(st.sampled_from(["en", "ar", "ru"])),
        timezone=draw(st.sampled_from(["UTC", "Asia/Damascus", "Europe/Moscow"])),
        summary_length=draw(st.sampled_from([0, 50, 600, 3000, 5000])),
    )
    return art, matches, channel


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alerts())
def test_any_feed_text_gives_valid_html_within_the_limit(case) -> None:
    art, matches, channel = case
    alert = render_alert(art, matches, channel)
    plain, entities = parsed(alert)  # valid HTML, ≤ 4096 code points, ≤ 32768 bytes
    assert all(e["type"] in ("bold", "text_link") for e in entities)
    assert plain.startswith("🔔")
    segs = summarize(art, matches, channel.summary_length)
    assert sum(len(s.text) for s in segs) <= channel.summary_length
    assert alert.text.strip()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_bold_text_always_comes_from_a_hit(data) -> None:
    summary = data.draw(TEXT)
    art = article(summary=summary, title="T")
    hits: list[Hit] = []
    at = 0
    for _ in range(data.draw(st.integers(0, 5))):  # separated, so no two merge
        if at + 1 >= len(summary):
            break
        start = data.draw(st.integers(at, len(summary) - 1))
        end = data.draw(st.integers(start + 1, min(len(summary), start + 30)))
        hits.append(Hit("t", summary[start:end], "summary", start, end))
        at = end + 1
    alert = render_alert(art, [Match("r", tuple(hits))], Channel("c", "@c"))
    shown = [squash(h.text) for h in hits]
    sentences = [squash(summary[a:b]).casefold() for a, b in split_sentences(summary)]
    repeated = len(set(sentences)) < len(sentences)  # highlights of repeats are merged
    for bold in bold_texts(alert):
        assert squash(bold) in squash(summary)
        assert repeated or any(squash(bold) in s for s in shown)


def squash(text: str) -> str:
    """Feed text as an alert shows it: controls as spaces, bidi controls gone, spaces collapsed."""
    dropped = {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}
    dropped |= {"\ufeff", "\u0333", "\u033f", "\u030a"}  # the last three: Telegram drops them
    text = "".join(
        " " if ch.isspace() or unicodedata.category(ch) == "Cc" else ch
        for ch in text
        if ch not in dropped
    )
    return " ".join(text.split())


# ---------------------------------------------------------------------------
# sample alert and golden files


@pytest.mark.parametrize("language", ["en", "ar", "ru"])
def test_sample_alert_is_valid_and_highlights_its_term(language: str) -> None:
    alert = render_sample_alert(Channel("c", "@c", language=language))
    plain, _ = parsed(alert)
    assert len(bold_texts(alert)) >= 2  # in the title and in the summary
    assert "example.org" in plain
    assert alert.link and alert.rules


GOLDEN_ARTICLES = {
    "en": (
        Article(
            key="https://example.org/world/2026/11/astana-round",
            feed_id="example-en",
            title="Ceasefire monitors to return as Astana round closes",
            summary=(
                "Negotiators wrapped up two days of meetings in the Kazakh capital on Friday. "
                'Dr. Lena Hart, who chaired the final session, called the mood "cautious". '
                "Both sides agreed that ceasefire monitors would return to the northern "
                "districts within a month. Observers called a ceasefire timetable < 30 days "
                "ambitious & untested.\n"
                "A further round is planned in Astana early next year."
            ),
            link="https://example.org/world/2026/11/astana-round?utm_source=rss&ref=feed",
            published=datetime(2026, 11, 27, 16, 5, tzinfo=UTC),
            language="en",
            source="Example World Desk",
        ),
        [("astana", "Astana"), ("ceasefire", "ceasefire")],
        Channel("news-en", "@news_en", language="en", timezone="Europe/London"),
    ),
    "ar": (
        Article(
            key="https://example.org/ar/news/1234",
            feed_id="example-ar",
            title="جولة جديدة من محادثات أستانا تبحث وقف إطلاق النار",
            summary=(
                "اختتمت الوفود المشاركة اجتماعاتها في العاصمة الكازاخية مساء الجمعة. "
                "وقال رئيس الجلسة إن الأجواء كانت إيجابية رغم الخلافات؛ "
                "وأضاف أن الطرفين اتفقا على تثبيت وقف إطلاق النار في المناطق الشمالية. "
                "هل تصمد التهدئة؟ يرى مراقبون أن المهلة قصيرة.\n"
                "ومن المقرر عقد الجولة المقبلة في أستانا مطلع العام."
            ),
            link="https://example.org/ar/news/1234",
            published=datetime(2026, 11, 27, 16, 5, tzinfo=UTC),
            language="ar",
            source="وكالة المثال",
        ),
        [("astana", "أستانا"), ("ceasefire", "وقف إطلاق النار")],
        Channel("news-ar", "@news_ar", language="ar", timezone="Asia/Damascus"),
    ),
    # The feed's description is its content cut short ("…"): each sentence shows once.
    "ar-truncated": (
        Article(
            key="https://example.org/ar/news/5678",
            feed_id="example-ar",
            title="تمديد الهدنة في الريف الشمالي أسبوعاً إضافياً",
            summary=(
                "أعلنت اللجنة المحلية تمديد الهدنة في قرى الريف الشمالي أسبوعاً إضافياً. "
                "وقال عضو في اللجنة إن الهدنة صمدت رغم خروقات محدودة سجلت ليلة الخميس، "
                "وإن فرق الإغاثة ستواصل…"
            ),
            content=(
                "أعلنت اللجنة المحلية تمديد الهدنة في قرى الريف الشمالي أسبوعاً إضافياً. "
                "وقال عضو في اللجنة إن الهدنة صمدت رغم خروقات محدودة سجلت ليلة الخميس، "
                "وإن فرق الإغاثة ستواصل عملها في المنطقة حتى نهاية الشهر. "
                "ويأمل الأهالي أن تتحول الهدنة إلى اتفاق دائم."
            ),
            link="https://example.org/ar/news/5678",
            published=datetime(2026, 11, 28, 8, 30, tzinfo=UTC),
            language="ar",
            source="وكالة المثال",
        ),
        [("truce", "الهدنة")],
        Channel("news-ar", "@news_ar", language="ar", timezone="Asia/Damascus"),
    ),
    "ru": (
        Article(
            key="https://example.org/ru/2026/11/27/astana",
            feed_id="example-ru",
            title="В Астане завершился очередной раунд переговоров",
            summary=(
                "Делегации провели в столице Казахстана два дня консультаций. "
                "Председатель, проф. А. В. Смирнова, назвала итоги «сдержанными». "
                "Стороны согласились продлить перемирие ещё на месяц, т. е. до конца января. "
                "Наблюдатели считают срок слишком коротким.\n"
                "Следующая встреча в Астане намечена на весну."
            ),
            link="https://example.org/ru/2026/11/27/astana",
            published=datetime(2026, 11, 27, 16, 5, tzinfo=UTC),
            language="ru",
            source="Пример-Новости",
        ),
        [("astana", "Астане"), ("ceasefire", "перемирие")],
        Channel("news-ru", "@news_ru", language="ru", timezone="Europe/Moscow", summary_length=300),
    ),
}


@pytest.mark.parametrize("language", sorted(GOLDEN_ARTICLES))
def test_golden_alerts(language: str) -> None:
    art, rules, channel = GOLDEN_ARTICLES[language]
    matches = [Match(rule, tuple(hits_for(art, term))) for rule, term in rules]
    alert = render_alert(art, matches, channel)
    parsed(alert)
    for suffix, rendered in (("html", alert.html), ("txt", alert.text)):
        path = GOLDEN / f"alert-{language}.{suffix}"
        if UPDATE_GOLDEN:
            path.parent.mkdir(exist_ok=True)
            path.write_text(rendered + "\n", encoding="utf-8")
        assert path.exists(), f"{path.name} missing: run with MONITOR_UPDATE_GOLDEN=1"
        assert rendered + "\n" == path.read_text(encoding="utf-8"), (
            f"{path.name} differs; if the change is intended, rerun with MONITOR_UPDATE_GOLDEN=1"
        )
