"""The matcher against tables of real-style text, properties, and its public contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.exceptions import ConfigError
from monitor.match import Matcher, RuleProblem, check_rule, compile_rules
from monitor.models import FIELDS, Article, Rule
from monitor.text import PROCLITICS

DATA = Path(__file__).resolve().parent / "data"
CASES: list[dict] = [
    case
    for path in sorted(DATA.glob("match_cases*.yaml"))
    for case in yaml.safe_load(path.read_text(encoding="utf-8"))
]
RULE_KEYS = {"any", "all", "none", "query", "fuzzy", "feeds", "languages", "fields", "min_hits"}


def make_rule(spec: dict, name: str = "r") -> Rule:
    unknown = set(spec) - RULE_KEYS
    assert not unknown, f"unknown rule keys in table: {unknown}"
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    return Rule(name=name, **values)


#: Filler paragraphs (our own words) for `pad:` cases: a long article whose only
#: hit, if any, is deep inside. None of them holds a word the padded cases look for.
FILLER = {
    "ar": "وتناول التقرير أوضاع الطرق والأسواق في المدن الساحلية، وقال سكان إن "
    "الأسعار ارتفعت خلال الشهر الماضي وإن المدارس عادت إلى العمل بعد العطلة.\n",
    "en": "The report also covered roads and markets in the coastal towns, where "
    "residents said prices rose last month and schools reopened after the break.\n",
    "ru": "В докладе также говорилось о дорогах и рынках прибрежных городов, где "
    "жители жаловались на рост цен, а школы вновь открылись после каникул.\n",
}


def make_article(case: dict) -> Article:
    content = case.get("text", "")
    if "pad" in case:
        content = FILLER[case["pad"]["lang"]] * case["pad"]["times"] + content
    return Article(
        key=case["id"],
        feed_id=case.get("feed", "test-feed"),
        title=case.get("title", ""),
        summary=case.get("summary", ""),
        content=content,
        language=case.get("language"),
    )


def test_table_is_big_and_balanced() -> None:
    """At least a hundred cases, and no fewer must-not-match than must-match."""
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    positive = sum(1 for c in CASES if c["match"])
    negative = len(CASES) - positive
    assert len(CASES) >= 100
    assert negative >= positive, (positive, negative)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict) -> None:
    matcher = compile_rules([make_rule(case["rule"])])
    article = make_article(case)
    matches = matcher.match(article, tuple(case.get("tags", ())))
    assert bool(matches) is case["match"], [m.hits for m in matches]
    for match in matches:
        assert match.rule == "r"
        for hit in match.hits:  # offsets always point at the original text
            assert hit.field in FIELDS
            assert article.field_text(hit.field)[hit.start : hit.end] == hit.text
    if case["match"] and "hits" in case:
        assert [h.text for h in matches[0].hits] == case["hits"]


def test_all_cases_in_one_index_give_the_same_answers() -> None:
    """One compiled index of every table rule answers each case as its own rule does."""
    rules = [make_rule(c["rule"], name=c["id"]) for c in CASES]
    matcher = compile_rules(rules)
    assert matcher.rule_count == len(rules)
    for case in CASES:
        names = {m.rule for m in matcher.match(make_article(case), tuple(case.get("tags", ())))}
        assert (case["id"] in names) is case["match"], case["id"]


# ---------------------------------------------------------------------- contract


def test_matches_come_in_rule_order_with_hits_in_field_order() -> None:
    rules = [
        Rule(name="zeta", any=("ceasefire",)),
        Rule(name="alpha", any=("Astana", "ceasefire")),
        Rule(name="nothing", any=("Tehran",)),
    ]
    article = Article(
        key="k",
        feed_id="f",
        title="Ceasefire talks",
        summary="",
        content="Talks in Astana on the ceasefire.",
    )
    matches = compile_rules(rules).match(article)
    assert [m.rule for m in matches] == ["zeta", "alpha"]
    hits = [(h.term, h.field, h.text, h.start) for h in matches[1].hits]
    assert hits == [
        ("ceasefire", "title", "Ceasefire", 0),
        ("Astana", "content", "Astana", 9),
        ("ceasefire", "content", "ceasefire", 23),
    ]


def test_hit_term_is_the_rule_spelling() -> None:
    rule = Rule(name="r", any=("=Астана", "re:астан\\w"))
    matches = compile_rules([rule]).match(Article(key="k", feed_id="f", title="Астана"))
    assert {h.term for h in matches[0].hits} == {"=Астана", "re:астан\\w"}


def test_query_hits_respect_field_scope() -> None:
    rule = Rule(name="r", query="title:Astana")
    article = Article(key="k", feed_id="f", title="Astana", content="Astana again")
    (match,) = compile_rules([rule]).match(article)
    assert [(h.field, h.text) for h in match.hits] == [("title", "Astana")]


def test_negated_query_terms_are_not_reported() -> None:
    rule = Rule(name="r", query="Astana NOT Geneva")
    (match,) = compile_rules([rule]).match(Article(key="k", feed_id="f", title="Astana"))
    assert [h.term for h in match.hits] == ["Astana"]


def test_shared_terms_compile_once_and_serve_every_rule() -> None:
    rules = [Rule(name=f"r{i}", any=("Astana",), feeds=(f"feed{i % 3}",)) for i in range(9)]
    matches = compile_rules(rules).match(Article(key="k", feed_id="feed1", title="In Astana"))
    assert [m.rule for m in matches] == ["r1", "r4", "r7"]


def test_matcher_is_reusable_and_cache_does_not_change_answers() -> None:
    matcher = compile_rules([Rule(name="r", any=("أستانا",))])
    article = Article(key="k", feed_id="f", title="وأستانا")
    first = matcher.match(article)
    assert matcher.match(article) == first
    assert matcher.match(Article(key="k2", feed_id="f", title="أستاناباد")) == []


def test_empty_article_and_no_rules() -> None:
    assert compile_rules([]).match(Article(key="k", feed_id="f", title="Astana")) == []
    matcher = compile_rules([Rule(name="r", any=("Astana",))])
    assert matcher.match(Article(key="k", feed_id="f", title="")) == []
    assert isinstance(matcher, Matcher)


# ------------------------------------------------------------------- rule checks


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            Rule(name="r", any=("ok", "re:(")),
            RuleProblem(
                "any",
                1,
                "invalid regular expression 're:(': missing ), unterminated subpattern "
                "at position 0",
            ),
        ),
        (Rule(name="r", all=("  ",)), RuleProblem("all", 0, "empty term")),
        (
            Rule(name="r", none=("!!",)),
            RuleProblem("none", 0, "term '!!' has no letters or digits"),
        ),
        (Rule(name="r", any=("=",)), RuleProblem("any", 0, "empty term after '='")),
        (
            Rule(name="r", any=("re:",)),
            RuleProblem("any", 0, "empty regular expression after 're:'"),
        ),
        (Rule(name="r", query="  "), RuleProblem("query", None, "empty query")),
        (
            Rule(name="r", fuzzy=101),
            RuleProblem("fuzzy", None, "fuzzy must be a whole number from 0 to 100"),
        ),
        (
            Rule(name="r", min_hits=0),
            RuleProblem("min_hits", None, "min_hits must be a whole number ≥ 1"),
        ),
        (
            Rule(name="r", fields=("title", "body")),
            RuleProblem("fields", 1, "unknown field 'body' (use title, summary, content, page)"),
        ),
    ],
)
def test_check_rule_reports_located_problems(rule: Rule, expected: RuleProblem) -> None:
    assert check_rule(rule) == [expected]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("(Astana", "invalid query"),
        ("Astana AND", "invalid query"),
        ('"unterminated', "invalid query"),
        ("author:Lavrov", "unknown field 'author'"),
        ("/(/", "invalid regular expression"),
        ("*", "needs at least one letter"),
    ],
)
def test_check_rule_rejects_bad_queries(query: str, fragment: str) -> None:
    problems = check_rule(Rule(name="r", query=query))
    assert len(problems) == 1
    assert problems[0].key == "query"
    assert problems[0].index is None
    assert fragment in problems[0].message


def test_good_rules_have_no_problems() -> None:
    for case in CASES:
        assert check_rule(make_rule(case["rule"])) == [], case["id"]


def test_compile_rules_raises_config_error_naming_the_rule() -> None:
    with pytest.raises(ConfigError) as err:
        compile_rules([Rule(name="good", any=("x",)), Rule(name="bad", any=("re:[",))])
    assert "rule 'bad'" in str(err.value)
    assert "any[0]" in str(err.value)


# ------------------------------------------------------------------- properties

ARABIC_LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
TASHKEEL = "\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652"
# letters that are neither a proclitic nor the start of a suffix we treat as a form
ARABIC_NEUTRAL = "ثجحخدذرزسشصضطظعغقم"
arabic_word = st.text(alphabet=ARABIC_LETTERS, min_size=3, max_size=8).filter(
    lambda w: not w.startswith(("ال", "لل"))
)
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def decorate(word: str, marks: list[int], tatweel: list[bool]) -> str:
    """The word with tashkeel after some letters and tatweel between others."""
    out = []
    for i, ch in enumerate(word):
        out.append(ch)
        if marks[i % len(marks)] >= 0:
            out.append(TASHKEEL[marks[i % len(marks)] % len(TASHKEEL)])
        if i < len(word) - 1 and tatweel[i % len(tatweel)]:
            out.append("\u0640")
    return "".join(out)


@PROPERTY_SETTINGS
@given(
    word=arabic_word,
    prefix=st.sampled_from(("", *PROCLITICS)),
    marks=st.lists(st.integers(min_value=-1, max_value=7), min_size=1, max_size=8),
    tatweel=st.lists(st.booleans(), min_size=1, max_size=8),
)
def test_term_hits_itself_with_proclitics_marks_and_tatweel(word, prefix, marks, tatweel):
    matcher = compile_rules([Rule(name="r", any=(word,))])
    written = decorate(prefix + word, marks, tatweel)
    text = f"قال المصدر {written} اليوم"
    matches = matcher.match(Article(key="k", feed_id="f", title="", content=text))
    assert matches, text
    (hit,) = [h for h in matches[0].hits if h.start > 10]
    assert hit.text == written


@PROPERTY_SETTINGS
@given(
    word=arabic_word,
    before=st.text(alphabet=ARABIC_NEUTRAL, min_size=1, max_size=3),
    after=st.text(alphabet=ARABIC_NEUTRAL, min_size=0, max_size=3),
)
def test_arabic_term_never_hits_inside_a_longer_word(word, before, after):
    matcher = compile_rules([Rule(name="r", any=(word,))])
    for longer in (before + word + after, word + before):
        article = Article(key="k", feed_id="f", title="", content=f"Source: {longer} (today)")
        assert matcher.match(article) == [], longer


@PROPERTY_SETTINGS
@given(
    word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=9),
    before=st.text(alphabet="bcdfghjklmnpqrtvwxz", min_size=1, max_size=3),
    after=st.text(alphabet="bcfghjklmnpqrtvwxz", min_size=1, max_size=3),
)
def test_latin_term_never_hits_inside_a_longer_word(word, before, after):
    matcher = compile_rules([Rule(name="r", any=(word,))])
    for longer in (before + word, before + word + after, word + after + after):
        article = Article(key="k", feed_id="f", title="", content=f"Сообщают: {longer} сегодня")
        assert matcher.match(article) == [], longer


@PROPERTY_SETTINGS
@given(
    word=st.text(alphabet="бвгдзклмнпрстфхцчшщ", min_size=2, max_size=4).map(
        lambda s: s[0] + "а" + s[1:] + "ов"
    ),
    before=st.text(alphabet="бвгджзклмнпрстфхцчшщ", min_size=2, max_size=3),
)
def test_cyrillic_term_never_hits_inside_a_longer_word(word, before):
    matcher = compile_rules([Rule(name="r", any=(word,))])
    for longer in (before + word, before + word + "ский"):
        article = Article(key="k", feed_id="f", title="", content=f"قال المصدر {longer} اليوم")
        assert matcher.match(article) == [], longer


@PROPERTY_SETTINGS
@given(word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10))
def test_latin_term_hits_itself_in_any_case_and_with_possessive(word):
    matcher = compile_rules([Rule(name="r", any=(word,))])
    for form in (word, word.upper(), word.capitalize() + "'s"):
        article = Article(key="k", feed_id="f", title="", content=f"Reports: {form}, again")
        (match,) = matcher.match(article)
        assert match.hits[0].text.casefold() == form.casefold().removesuffix("'s")


# ------------------------------------------------------------- cheap output paths


def _as_json(matches: list) -> str:
    import json
    from dataclasses import asdict

    return json.dumps(
        [
            {
                "rule": m.rule,
                "hits": [asdict(h) for h in m.hits],  # term, text, field, start, end
            }
            for m in matches
        ],
        ensure_ascii=False,
    )


def test_match_json_and_names_agree_with_match_on_every_case() -> None:
    """The cheap paths (``match_json`` for --jsonl, ``match_names``) say exactly what
    ``match`` says, byte for byte, over one index of every table rule."""
    rules = [make_rule(c["rule"], name=c["id"]) for c in CASES]
    matcher = compile_rules(rules)
    for case in CASES:
        article, tags = make_article(case), tuple(case.get("tags", ()))
        matches = matcher.match(article, tags)
        assert matcher.match_json(article, tags) == _as_json(matches), case["id"]
        assert matcher.match_names(article, tags) == [m.rule for m in matches]


@given(st.text(max_size=200), st.sampled_from(["Astana", "وقف إطلاق النار", "Лавров", 'q"\\\n']))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_match_json_is_json_dumps_for_any_text(body: str, term: str) -> None:
    """Any text (quotes, backslashes, control characters, surrogates) serialises as
    ``json.dumps`` would."""
    matcher = compile_rules([Rule(name='r "1"', any=(term, "re:.")), Rule(name="n", none=("x",))])
    article = Article(key="k", feed_id="f", title=body[:20], content=f"{body} {term} {body}")
    assert matcher.match_json(article) == _as_json(matcher.match(article))


# Pieces of text the tokeniser treats specially, joined by spaces or not at all: the
# scan reads text chunk by chunk (between single spaces) and must find exactly the
# tokens and offsets of tx.token_spans over the whole text.
TOKEN_PIECES = st.sampled_from(
    [
        "Astana", "talks", "Lavrov’s", "Lavrov's", "U.S.", "al-Assad", "2024-01-05",
        "#AstanaTalks", "#وقف_إطلاق_النار", "أستانا2024", "وبالمفاوضات", "\u200fإيران\u200f",
        "режима", "ООН,", "(AP)", "—", "https://example.com/astana-talks", "&nbsp;",
        "Lavrov&#8217;s", "co\u00adoperation", "\n", "\t", "\u00a0", "", " ", "x@y.org",
        "é", "\ud800", "\x00", "e\u0301", "٣٠",
    ]
)  # fmt: skip


@given(st.lists(TOKEN_PIECES, max_size=25), st.lists(st.sampled_from(["", " ", "  ", "\n "])))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_chunked_scan_reads_the_tokens_of_the_whole_text(
    pieces: list[str], gaps: list[str]
) -> None:
    import monitor.text as tx
    from monitor.match import _CHUNK_PREPS, _offsets

    text = "".join(p + (gaps[i % len(gaps)] if gaps else " ") for i, p in enumerate(pieces))
    matcher = compile_rules([Rule(name="r", any=("Astana talks", "режим"))])
    clean = tx.clean_for_tokens(text)
    infos = matcher._chunked(clean)
    starts, ends = _offsets(infos)
    assert list(zip(starts, ends, strict=True)) == tx.token_spans(text)
    preps = [p for info in infos for p in _CHUNK_PREPS(info)]
    assert [p[0] for p in preps] == [matcher._prepare(raw)[0] for raw in tx.raw_tokens(text)]
    # and a second read, from the chunk cache, is the same
    assert matcher._chunked(clean) == infos


@given(st.lists(st.sampled_from(["Astana", "talks", "the talks", "Лавров", "إيران", "ايران",
                                 "وقف إطلاق النار", "cease fire", "режим прекращения огня"]),
                min_size=1, max_size=6),
       st.text(max_size=120))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_match_json_of_one_term_rules_is_json_dumps(terms: list[str], noise: str) -> None:
    """Rule sets of one-term rules take match_json's shortcut (each term's hits written
    once): still the same text as json.dumps of match()."""
    rules = [Rule(name=f"r{i} {t}", any=(t,)) for i, t in enumerate(terms)]
    matcher = compile_rules(rules)
    assert matcher._all_plain
    body = (
        f"{noise} Astana talks; the talks in Astana. إيران وايران {noise} "
        "вокруг режима прекращения огня, cease-fire and ceasefire. وقف لإطلاق النار"
    )
    article = Article(key="k", feed_id="f", title=noise[:30] + " Astana", content=body)
    assert matcher.match_json(article) == _as_json(matcher.match(article))
