"""t.me/s preview pages → posts and entries; the ``?before=`` paging decision; channel names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.articles import to_articles
from monitor.models import FeedSource
from monitor.sources.telegram import (
    MAX_POSTS_PER_PAGE,
    MAX_TEXT_CHARS,
    ChannelPage,
    Post,
    before_url,
    channel_name,
    next_before,
    parse_channel_page,
    preview_url,
)

DATA = Path(__file__).parent / "data" / "telegram"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def page(name: str, channel: str = "unknown") -> ChannelPage:
    return parse_channel_page((DATA / name).read_bytes(), channel)


def by_id(parsed: ChannelPage) -> dict[int, Post]:
    return {p.id: p for p in parsed.posts}


# ---- one post → one entry


def test_arabic_channel_posts_in_order_without_service_messages():
    parsed = page("channel_ar.html")
    assert parsed.channel == "sham_brief"
    assert parsed.title == "ملخص الشام الصباحي"
    assert parsed.before == 4101
    # 4102 is "Channel photo updated"; the album's photos 4104 and 4105 are not posts
    assert [p.id for p in parsed.posts] == [4101, 4103, 4106, 4107, 4108, 4109, 4110]


@pytest.mark.parametrize(
    ("name", "post_id", "title", "text"),
    [
        # emoji markup → the character; <br> → newline; links and hashtags → their text
        (
            "channel_ar.html",
            4101,
            "🔴 عاجل: افتتاح جسر جديد فوق نهر بردى",
            "🔴 عاجل: افتتاح جسر جديد فوق نهر بردى\n"
            "أعلنت المحافظة صباح اليوم افتتاح الجسر أمام السيارات بعد ثمانية أشهر من العمل.\n"
            "التفاصيل في الموقع #دمشق",
        ),
        # an album: one entry, its caption the text
        (
            "channel_ar.html",
            4103,
            "صور من سوق الحميدية بعد إعادة ترميم السقف 📸",
            "صور من سوق الحميدية بعد إعادة ترميم السقف 📸\nالتجار يتوقعون موسماً أفضل هذا الشتاء.",
        ),
        # a forward says where it came from; the title is the post's own first line
        (
            "channel_ar.html",
            4106,
            "وزارة الكهرباء: تحسن ساعات التغذية في ريف دمشق اعتباراً من الأسبوع المقبل.",
            "Forwarded from وكالة الأنباء المحلية\n"
            "وزارة الكهرباء: تحسن ساعات التغذية في ريف دمشق اعتباراً من الأسبوع المقبل.",
        ),
        # a photo without caption: no text, a media title
        ("channel_ar.html", 4107, "Photo", ""),
        # a video with a caption: the caption is the text
        ("channel_ar.html", 4108, "أمطار غزيرة في حمص 🌧", "أمطار غزيرة في حمص 🌧"),
        # a link preview: "SITE — TITLE" then the description, after the text
        (
            "channel_ar.html",
            4109,
            "تقرير مفصل عن أسعار الخبز",
            "تقرير مفصل عن أسعار الخبز\nnews-example.sy/ar/economy/bread-prices-report-2026\n"
            "أخبار المثال — ثبات سعر ربطة الخبز حتى نهاية العام\n"
            "قالت الجهات المعنية إن الدعم مستمر\nوإن المخزون يكفي عدة أشهر.",
        ),
        # a reply: the quoted post, the buttons, views and the signature are not text
        (
            "channel_ar.html",
            4110,
            "تحديث: حركة المرور على الجسر طبيعية الآن.",
            "تحديث: حركة المرور على الجسر طبيعية الآن.",
        ),
        (
            "channel_ru.html",
            880,
            "Центробанк сохранил ключевую ставку 🏦",
            "Центробанк сохранил ключевую ставку 🏦\nРешение совпало с ожиданиями аналитиков.\n"
            "#экономика",
        ),
        (
            "channel_ru.html",
            881,
            "Document: budget-2027-draft.pdf",
            "Document: budget-2027-draft.pdf",
        ),
        # custom emoji (<tg-emoji>) → the character
        (
            "channel_ru.html",
            882,
            "⚡ Breaking: ferry service to the island resumes on Monday",
            "⚡ Breaking: ferry service to the island resumes on Monday\n"
            "Operators say the new timetable runs here.\n"
            "Port Example — Winter ferry timetable published\n"
            "Four crossings a day from December to March.",
        ),
        (
            "channel_ru.html",
            883,
            "Poll: Как вы добираетесь на работу?",
            "Poll: Как вы добираетесь на работу?",
        ),
        (
            "channel_ru.html",
            884,
            "Завтра с 10:00 до 14:00 перекрыт Литейный мост.",
            "Forwarded from Городская служба\nЗавтра с 10:00 до 14:00 перекрыт Литейный мост.\n"
            "Объезд — по соседним улицам.",
        ),
    ],
)
def test_post_title_and_text(name, post_id, title, text):
    post = by_id(page(name))[post_id]
    assert post.title == title
    assert post.full_text == text
    for furniture in ("views", "12.4K", "312", "اشترك في النشرة", "رامي", "edited", "0:42"):
        assert furniture not in post.full_text


def test_key_link_time_and_markers():
    posts = by_id(page("channel_ar.html"))
    post = posts[4109]
    assert post.link == "https://t.me/sham_brief/4109"
    assert post.published == datetime(2026, 12, 6, 8, 5, tzinfo=UTC)
    assert post.edited and not posts[4101].edited
    assert posts[4103].media == ("photo", "photo", "photo")
    assert posts[4108].media == ("video",)
    assert posts[4110].author == "رامي"
    assert posts[4106].forwarded_from == "وكالة الأنباء المحلية"
    assert post.link_preview is not None
    assert post.link_preview.url == "https://news-example.sy/ar/economy/bread-prices-report-2026"
    # data-post's spelling of the channel wins over the name we were given
    ru = page("channel_ru.html", channel="vesti_kratko")
    assert ru.channel == "Vesti_Kratko"
    assert ru.posts[0].link == "https://t.me/Vesti_Kratko/880"


def test_entries_normalize_to_the_same_text_and_stable_keys():
    parsed = page("channel_ar.html")
    feed = FeedSource(id="sham", url=preview_url("sham_brief"))
    articles = to_articles(feed, parsed.feed(), NOW)
    assert [a.key for a in articles] == [p.link for p in parsed.posts]
    for article, post in zip(articles, parsed.posts, strict=True):
        assert article.title == post.title
        assert article.summary == post.full_text
        assert article.published == post.published
        assert article.link == post.link
    assert articles[0].language == "ar"
    assert parsed.feed().title == "ملخص الشام الصباحي"


def test_escaped_markup_in_a_post_stays_text():
    escaped = "if a &lt; b &amp;&amp; c &gt; d<br/>&lt;script&gt;x&lt;/script&gt;"
    html = _page("chan_one", [(5, escaped)])
    post = parse_channel_page(html, "chan_one").posts[0]
    assert post.text == "if a < b && c > d\n<script>x</script>"
    article = to_articles(FeedSource(id="c", url="x"), parse_channel_page(html, "c").feed(), NOW)[0]
    assert article.summary == post.text


def test_an_edited_post_keeps_its_key():
    before = (DATA / "channel_ru.html").read_text()
    after = before.replace("Решение совпало с ожиданиями аналитиков.", "Решение объявлено в 13:30.")
    after = after.replace(
        '<a class="tgme_widget_message_date" href="https://t.me/Vesti_Kratko/880">',
        'edited&nbsp;<a class="tgme_widget_message_date" href="https://t.me/Vesti_Kratko/880">',
    )
    old = by_id(parse_channel_page(before, "x"))[880]
    new = by_id(parse_channel_page(after, "x"))[880]
    assert (old.edited, new.edited) == (False, True)
    assert new.entry().guid == old.entry().guid == "https://t.me/Vesti_Kratko/880"
    assert new.published == old.published
    assert "13:30" in new.text


def test_long_first_line_is_cut_for_the_title():
    line = "слово " * 100
    post = parse_channel_page(_page("chan_one", [(1, line)]), "chan_one").posts[0]
    assert len(post.title) <= 201 and post.title.endswith("…")
    assert post.text == line.strip()


# ---- paging with ?before=


@pytest.mark.parametrize(
    ("known", "fetched", "expected"),
    [
        (None, 1, None),  # first poll: the first page is the backfill
        (879, 1, None),  # the page starts right after what we know
        (884, 1, None),  # nothing new at all
        (850, 1, 880),  # posts 851–879 may be missing: fetch the page before 880
        (878, 1, 880),  # one id missing (879): it may exist
        (850, 6, None),  # bounded
    ],
)
def test_next_before(known, fetched, expected):
    assert next_before(page("channel_ru.html"), known, pages_fetched=fetched) == expected


def test_following_before_pages_closes_the_gap():
    first = page("channel_ru.html")
    cursor = next_before(first, 870)
    assert cursor == 880
    assert preview_url(first.channel, cursor) == "https://t.me/s/Vesti_Kratko?before=880"
    second = page("channel_ru_before.html")
    assert max(p.id for p in second.posts) < cursor
    # 875 is still newer than 871: one more page, then stop
    assert next_before(second, 870, pages_fetched=2) == 875
    assert next_before(second, 874, pages_fetched=2) is None
    ids = [p.id for p in second.posts + first.posts]
    assert ids == sorted(set(ids))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://t.me/s/sham_brief", "https://t.me/s/sham_brief?before=4101"),
        ("https://t.me/s/sham_brief?before=9999", "https://t.me/s/sham_brief?before=4101"),
        (
            "https://preview.example.org/tg/sham_brief?lang=ar#top",
            "https://preview.example.org/tg/sham_brief?lang=ar&before=4101",
        ),
    ],
)
def test_before_url(url, expected):
    assert before_url(url, 4101) == expected


def test_next_before_never_loops():
    # a page whose "older" link does not move back stops paging
    stuck = ChannelPage(channel="c", posts=(_post(10),), before=10)
    assert next_before(stuck, 1) == 10
    assert next_before(stuck, 1, pages_fetched=2, fetched_before=10) is None
    assert next_before(stuck, 1, pages_fetched=2, fetched_before=11) == 10
    assert next_before(ChannelPage(channel="c", posts=(_post(10),), before=None), 1) is None
    assert next_before(ChannelPage(channel="c"), 1) is None
    assert next_before(ChannelPage(channel="c", posts=(_post(3),), before=3), 1) == 3
    assert next_before(ChannelPage(channel="c", posts=(_post(2),), before=2), 1) is None


# ---- channel names


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://t.me/s/sham_brief", "sham_brief"),
        ("https://t.me/sham_brief", "sham_brief"),
        ("t.me/sham_brief/4101", "sham_brief"),
        ("http://telegram.me/Vesti_Kratko?before=10", "Vesti_Kratko"),
        ("https://www.t.me/s/Vesti_Kratko/", "Vesti_Kratko"),
        ("HTTPS://T.ME/s/durov", "durov"),
        ("https://t.me/joinchat/AAAAAE1", None),
        ("https://t.me/+AbCdEf123", None),
        ("https://t.me/c/1234567/55", None),
        ("https://t.me/s/", None),
        ("https://t.me/", None),
        ("https://example.org/s/sham_brief", None),
        ("https://t.me.example.org/sham_brief", None),
        ("ftp://t.me/sham_brief", None),
        ("https://t.me/1abc_name", None),
        ("https://t.me/s/ab", None),
        ("https://[::1/x", None),
        ("", None),
        ("\x00\ud800", None),
    ],
)
def test_channel_name(url, name):
    assert channel_name(url) == name


# ---- hostile input


@pytest.mark.parametrize(
    "markup",
    [
        b"",
        "",
        b"\x00\x00\x00",
        "<div class='tgme_widget_message' data-post='chan_one/x'></div>",
        "<div class='tgme_widget_message' data-post='../../etc/5'></div>",
        "<div class='tgme_widget_message' data-post='chan_one/-5'></div>",
        "<div class='tgme_widget_message' data-post='chan_one/99999999999999999999999'></div>",
        b"\xff\xfe<\x00h\x00t\x00m\x00l\x00>",
        "<html><body>" + "<div>" * 100_000 + "x",
        "<!DOCTYPE html [<!ENTITY a 'b'>]><p>&a;</p>",
    ],
)
def test_junk_gives_no_posts_and_no_exception(markup):
    parsed = parse_channel_page(markup, "chan_one")
    assert parsed.posts == ()
    assert parsed.channel == "chan_one"
    assert not parsed.available


def test_a_channel_without_public_preview_is_not_available():
    # t.me answers a private or preview-less channel with its plain landing page
    landing = (
        '<html><head><meta property="og:title" content="Closed Club"></head><body>'
        '<div class="tgme_page"><div class="tgme_page_title"><span dir="auto">Closed Club</span>'
        '</div><div class="tgme_page_extra">1 200 subscribers</div>'
        '<a class="tgme_action_button_new" href="tg://resolve?domain=closed_club">View in Telegram'
        "</a></div></body></html>"
    )
    assert not parse_channel_page(landing, "closed_club").available
    # an existing channel with no posts yet still has its history section
    empty = '<html><body><section class="tgme_channel_history js-message_history"></section>'
    assert parse_channel_page(empty, "new_channel").available
    assert page("channel_ar.html").available


def test_surrogates_and_nul_in_text_are_dropped_not_fatal():
    html = _page("chan_one", [(7, "alpha\x00 \ud800beta<br/>gamma")])
    post = parse_channel_page(html, "chan_one").posts[0]
    assert post.text.replace("?", "") in ("alpha beta\ngamma", "alphabeta\ngamma")
    assert "\x00" not in post.text and "\ud800" not in post.text


def test_deeply_nested_post_text_is_bounded():
    nested = "<span>" * 50_000 + "deep" + "</span>" * 50_000
    html = _page("chan_one", [(1, "top line<br/>" + nested)])
    post = parse_channel_page(html, "chan_one").posts[0]
    assert post.title == "top line"


def test_a_huge_post_text_is_capped():
    html = _page("chan_one", [(1, "first line<br/>" + "word<br/>" * 200_000)])
    post = parse_channel_page(html, "chan_one").posts[0]
    assert post.title == "first line"
    assert len(post.text) <= MAX_TEXT_CHARS
    assert post.text.startswith("first line\nword\nword")


def test_a_huge_page_is_capped():
    posts = [(i, f"post {i}") for i in range(1, MAX_POSTS_PER_PAGE + 50)]
    parsed = parse_channel_page(_page("chan_one", posts), "chan_one")
    assert len(parsed.posts) == MAX_POSTS_PER_PAGE


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_in_a_post_parses(text):
    import html as html_lib

    markup = _page("chan_one", [(3, html_lib.escape(text))])
    parsed = parse_channel_page(markup, "chan_one")
    assert len(parsed.posts) == 1
    post = parsed.posts[0]
    assert "\x00" not in post.full_text
    assert "\n" not in post.title
    assert post.link == "https://t.me/chan_one/3"


# ---- helpers


def _post(post_id: int) -> Post:
    return Post(
        channel="c", id=post_id, link=f"https://t.me/c/{post_id}", published=None, text="", title=""
    )


def _page(channel: str, posts: list[tuple[int, str]]) -> str:
    """A minimal preview page in the real markup's shape."""
    body = "".join(
        f'<div class="tgme_widget_message_wrap js-widget_message_wrap">'
        f'<div class="tgme_widget_message text_not_supported_wrap js-widget_message" '
        f'data-post="{channel}/{post_id}"><div class="tgme_widget_message_bubble">'
        f'<div class="tgme_widget_message_text js-message_text" dir="auto">{text}</div>'
        f'<div class="tgme_widget_message_footer"><span class="tgme_widget_message_meta">'
        f'<a class="tgme_widget_message_date" href="https://t.me/{channel}/{post_id}">'
        f'<time datetime="2026-12-07T10:00:00+00:00" class="time">10:00</time></a></span>'
        f"</div></div></div></div>"
        for post_id, text in posts
    )
    return f'<html><body><section class="tgme_channel_history">{body}</section></body></html>'
