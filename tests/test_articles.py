"""to_articles / canonical_url / html_to_text: table tests from real text plus properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.articles import (
    _CANONICAL_BUT_QUERY,
    _canonical_split,
    canonical_url,
    html_to_text,
    strip_boilerplate,
    to_articles,
)
from monitor.models import FeedSource, ParsedFeed, RawEntry

NOW = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
FEED = FeedSource(id="wire", url="https://wire.example/feed")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "HTTP://WWW.Example.COM:80/a/b?utm_source=rss&id=5&fbclid=abc#comments",
            "http://www.example.com/a/b?id=5",
        ),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x?b=2&a=1", "https://example.com:8443/x?b=2&a=1"),
        ("https://news.example/ar/1?utm_source=rss", "https://news.example/ar/1"),
        ("https://e.example/p?UTM_Medium=x&gclid=1&page=2&yclid=9", "https://e.example/p?page=2"),
        ("https://e.example/p?flag&mc_cid=1", "https://e.example/p?flag"),
        (
            "https://ru.example/новости/1",
            "https://ru.example/%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8/1",
        ),
        ("https://[::1]:443/x", "https://[::1]/x"),
        ("https://[::1]:8080/x", "https://[::1]:8080/x"),
        ("  https://Example.com./x  ", "https://example.com/x"),
        ("mailto:desk@example.com", "mailto:desk@example.com"),
        ("urn:uuid:1234", "urn:uuid:1234"),
        ("/relative/path", "/relative/path"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Hello&nbsp;<b>wo</b>rld &amp; co</p>", "Hello world & co"),
        ("<p>One</p><p>Two<br>Three</p>", "One\nTwo\nThree"),
        ("<script>alert('x')</script><style>p{}</style><p>Kept</p>", "Kept"),
        ("Plain   text\n\n  with   spaces", "Plain text\nwith spaces"),
        ("&lt;b&gt;escaped&lt;/b&gt;", "<b>escaped</b>"),
        ("a < b and c > d", "a < b and c > d"),
        ("<img alt='Map of Syria' src='m.png'> caption", "Map of Syria caption"),
        ("وصل <b>لافروف</b>&nbsp;إلى&#160;أستانا", "وصل لافروف إلى أستانا"),
        ("<ul><li>один</li><li>два</li></ul>", "один\nдва"),
        ("Zero\u200bwidth\ufeff", "Zerowidth"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("Talks resumed on Monday… <a href='x'>Read more »</a>", "Talks resumed on Monday…"),
        (
            "<p>Talks resumed.</p><p>The post <a>Talks resume</a> appeared first on "
            "<a>Wire News</a>.</p>",
            "Talks resumed.",
        ),
        (
            "<p>Talks resumed.</p><p><a>Continue reading <span>Talks resume</span> →</a></p>",
            "Talks resumed.",
        ),
        (
            "<p>وصل وزير الخارجية إلى أستانا.</p><p>انظر ايضاً</p><ul><li>خبر آخر</li></ul>",
            "وصل وزير الخارجية إلى أستانا.",
        ),
        ("<p>بدأت المحادثات.</p><p>اقرأ أيضا: خبر آخر</p>", "بدأت المحادثات."),
        ("Переговоры продолжатся в среду. <a>Читать далее</a>", "Переговоры продолжатся в среду."),
        ("<p>Переговоры.</p><p>Читайте также: Лавров в Астане</p>", "Переговоры."),
        ("Talks resumed [&hellip;]", "Talks resumed"),
        # not tails: the words inside a sentence stay
        ("We read more books than before.", "We read more books than before."),
        ("He said: see also the annex.", "He said: see also the annex."),
        ("Read more", "Read more"),  # never cut a text down to nothing
    ],
)
def test_boilerplate_tails_are_cut(html: str, expected: str) -> None:
    assert strip_boilerplate(html_to_text(html)) == expected


def entry(**kw: object) -> RawEntry:
    base: dict[str, object] = {
        "guid": "g-1",
        "link": "https://news.example/1?utm_source=rss",
        "title": "Lavrov arrives in Astana",
        "summary_html": "<p>The minister arrived on Tuesday.</p>",
        "published": datetime(2026, 2, 10, 9, 30, tzinfo=UTC),
    }
    base.update(kw)
    return RawEntry(**base)  # type: ignore[arg-type]


def one(raw: RawEntry, feed: FeedSource = FEED, parsed: ParsedFeed | None = None):
    parsed = parsed or ParsedFeed(title="Wire", entries=(raw,))
    return to_articles(feed, ParsedFeed(parsed.title, parsed.link, parsed.language, (raw,)), NOW)[0]


def test_article_fields() -> None:
    article = one(entry())
    assert article.key == "g-1"
    assert article.guid == "g-1"
    assert article.feed_id == "wire"
    assert article.link == "https://news.example/1"
    assert article.title == "Lavrov arrives in Astana"
    assert article.summary == "The minister arrived on Tuesday."
    assert article.content == ""
    assert article.published == datetime(2026, 2, 10, 9, 30, tzinfo=UTC)
    assert article.source == "Wire"
    assert article.language == "en"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (entry(guid="urn:1"), "urn:1"),
        (entry(guid=None), "https://news.example/1"),
        (entry(guid=None, link="HTTPS://News.Example:443/1#top"), "https://news.example/1"),
    ],
)
def test_key_prefers_guid_then_canonical_link(raw: RawEntry, key: str) -> None:
    assert one(raw).key == key


def test_key_falls_back_to_a_stable_hash_of_title_and_date() -> None:
    a = one(entry(guid=None, link=None))
    b = one(entry(guid=None, link=None))
    c = one(entry(guid=None, link=None, title="Another title"))
    d = one(entry(guid=None, link=None, published=None))
    e = one(entry(guid=None, link=None, published=None))
    assert a.key == b.key and a.key.startswith("sha256:")
    assert len({a.key, c.key, d.key}) == 3
    assert d.key == e.key  # no date: stable across polls, not tied to "now"


@pytest.mark.parametrize(
    ("published", "updated", "expected"),
    [
        (datetime(2026, 2, 10, 9, 30, tzinfo=UTC), None, datetime(2026, 2, 10, 9, 30, tzinfo=UTC)),
        (None, datetime(2026, 2, 9, 8, 0, tzinfo=UTC), datetime(2026, 2, 9, 8, 0, tzinfo=UTC)),
        (None, None, NOW),  # missing: first seen
        (NOW + timedelta(days=3), None, NOW),  # future: clamped
        (
            datetime(2026, 2, 10, 12, 30, tzinfo=timezone(timedelta(hours=3))),
            None,
            datetime(2026, 2, 10, 9, 30, tzinfo=UTC),
        ),
        (datetime(2026, 2, 10, 9, 30), None, datetime(2026, 2, 10, 9, 30, tzinfo=UTC)),  # naive
    ],
)
def test_dates(published: datetime | None, updated: datetime | None, expected: datetime) -> None:
    article = one(entry(published=published, updated=updated))
    assert article.published == expected
    assert article.published.tzinfo is UTC


def test_language_precedence() -> None:
    raw = entry(title="Лавров прибыл в Астану", summary_html="")
    assert one(raw).language == "ru"  # script
    assert one(raw, parsed=ParsedFeed(title="W", language="uk")).language == "uk"  # feed tag
    configured = FeedSource(id="wire", url="x", language="ar")
    assert one(raw, feed=configured, parsed=ParsedFeed(language="uk")).language == "ar"


def test_source_precedence() -> None:
    named = FeedSource(id="wire", url="x", name="Wire Desk")
    assert one(entry(), feed=named).source == "Wire Desk"
    assert one(entry(), parsed=ParsedFeed(title="Feed Title")).source == "Feed Title"
    assert one(entry(), parsed=ParsedFeed(title=None)).source == "wire"


@pytest.mark.parametrize(
    ("summary", "content", "expected"),
    [
        ("<p>Same text.</p>", "<div>Same   text.</div>", ""),
        ("Full story text here.", "<p>Full story</p>", ""),  # content inside summary
        ("Short lead…", "<p>Short lead and the full story.</p>", "Short lead and the full story."),
        ("", "<p>Only content</p>", "Only content"),
    ],
)
def test_content_is_dropped_when_it_repeats_the_summary(
    summary: str, content: str, expected: str
) -> None:
    assert one(entry(summary_html=summary, content_html=content)).content == expected


def test_title_html_is_text_and_duplicates_collapse() -> None:
    raws = (
        entry(guid="a", title="Lavrov <b>in</b>   Astana"),
        entry(guid="a", title="duplicate guid"),
        entry(guid="b", title="Talks &amp; more"),
    )
    articles = to_articles(FEED, ParsedFeed(title="Wire", entries=raws), NOW)
    assert [a.title for a in articles] == ["Lavrov in Astana", "Talks & more"]


# -- properties ----------------------------------------------------------------------------

URLS = st.builds(
    lambda scheme, host, port, path, query, frag: (
        f"{scheme}://{host}{port}/{path}{'?' + query if query else ''}{'#' + frag if frag else ''}"
    ),
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    st.from_regex(r"[A-Za-z0-9]{1,10}(\.[A-Za-z]{2,5}){1,2}", fullmatch=True),
    st.sampled_from(["", ":80", ":443", ":8080"]),
    st.text(alphabet="abcXYZ/-._~%éж ", max_size=20),
    st.lists(
        st.tuples(
            st.sampled_from(["id", "utm_source", "fbclid", "page", "q", "UTM_term"]),
            st.text(alphabet="abc123é", max_size=5),
        ),
        max_size=4,
    ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
    st.text(alphabet="abc", max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(URLS)
def test_canonical_url_is_idempotent_and_drops_trackers(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once
    assert "#" not in once
    assert "utm_" not in once.lower() and "fbclid" not in once
    assert once.split("://", 1)[0] == once.split("://", 1)[0].lower()


#: Links near the fast path's edges: every character ``urlsplit`` or ``quote`` treats
#: specially, upper case, ports, dots, users, brackets, spaces and controls.
EDGY_URLS = st.one_of(
    st.from_regex(_CANONICAL_BUT_QUERY, fullmatch=True),
    URLS,
    st.builds(
        lambda scheme, rest: f"{scheme}{rest}",
        st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:", "", " https://"]),
        st.text(alphabet="aZ09.-/:@?#&;=%[]_~é \t\n\x00\x1c\x85\xa0", max_size=30),
    ),
)


@settings(max_examples=2000, deadline=None)
@given(EDGY_URLS)
def test_canonical_url_fast_path_is_the_split_path(url: str) -> None:
    assert canonical_url(url) == _canonical_split(url)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_html_to_text_is_folded_plain_text(html: str) -> None:
    text = html_to_text(html)
    assert "  " not in text
    assert text == text.strip()
    assert "\n\n" not in text
    assert html_to_text(text.replace("&", "&amp;").replace("<", "&lt;")) == text


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            RawEntry,
            guid=st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
            link=st.one_of(
                st.none(), st.sampled_from(["https://x.example/1", "http://X.example/1"])
            ),
            title=st.text(max_size=30),
            summary_html=st.text(max_size=60),
            published=st.one_of(
                st.none(),
                st.datetimes(
                    min_value=datetime(1990, 1, 1),
                    max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC),
                ),
            ),
        ),
        max_size=8,
    )
)
def test_to_articles_invariants(raws: list[RawEntry]) -> None:
    articles = to_articles(FEED, ParsedFeed(entries=tuple(raws)), NOW)
    keys = [a.key for a in articles]
    assert len(keys) == len(set(keys))
    assert all(a.published is not None and a.published <= NOW for a in articles)
    assert all(a.published.tzinfo is UTC for a in articles)
    assert all(a.source == "wire" for a in articles)
