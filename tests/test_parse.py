"""parse_feed: bytes + headers → ParsedFeed; bozo never drops a feed by itself."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.exceptions import ParseError
from monitor.models import FetchResult
from monitor.parse import (
    _PLAIN_ABSOLUTE,
    _PLAIN_SEGMENT,
    _fast_eligible,
    _fast_parse,
    _join,
    _tools,
    parse_bytes,
    parse_feed,
)
from tests.fakes.feedserver import ARABIC_ITEMS, RUSSIAN_ITEMS, Item, rss_feed

AR_TITLE = ARABIC_ITEMS[0].title
RU_TITLE = RUSSIAN_ITEMS[0].title

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="ru-RU">
  <title>Лента</title>
  <link href="https://wire.example/" rel="alternate"/>
  <entry>
    <id>  urn:wire:1  </id>
    <title type="html">Лавров &lt;b&gt;в Астане&lt;/b&gt;</title>
    <link href="/news/1" rel="alternate"/>
    <updated>2026-02-10T12:30:00+03:00</updated>
    <content type="html">&lt;p&gt;Полный текст&lt;/p&gt;</content>
    <author><name>Корреспондент</name></author>
  </entry>
</feed>
""".encode()


def result(content: bytes, headers: dict[str, str] | None = None) -> FetchResult:
    return FetchResult(
        feed_id="f", url="https://wire.example/feed", status=200, content=content,
        headers=headers or {},
    )  # fmt: skip


def test_rss_fields() -> None:
    parsed = parse_feed(result(rss_feed("Wire", ARABIC_ITEMS, language="ar-SY")))
    assert parsed.title == "Wire"
    assert parsed.language == "ar"
    assert parsed.warning is None
    first = parsed.entries[0]
    assert first.title == AR_TITLE
    assert first.guid == "ar-1"
    assert first.link == "https://news.example/ar/1?utm_source=rss"
    assert first.published == datetime(2026, 2, 10, 9, 30, tzinfo=UTC)
    assert "<b>لافروف</b>" in first.summary_html  # HTML kept for the normalizer


def test_atom_fields_dates_and_relative_links() -> None:
    parsed = parse_feed(result(ATOM, {"content-type": "application/atom+xml"}))
    entry = parsed.entries[0]
    assert parsed.language == "ru"
    assert entry.guid == "urn:wire:1"
    assert entry.link == "https://wire.example/news/1"
    assert entry.updated == datetime(2026, 2, 10, 9, 30, tzinfo=UTC)
    assert entry.published is None
    assert "Полный текст" in entry.content_html
    assert entry.title == "Лавров <b>в Астане</b>"
    assert entry.author == "Корреспондент"


@pytest.mark.parametrize(
    ("content_type", "bozo"),
    [
        ("application/rss+xml", False),
        ("text/xml; charset=windows-1256", False),
        ("text/html; charset=utf-8", True),  # wrong header, right text: kept
    ],
)
def test_charset_conflicts_keep_the_text(content_type: str, bozo: bool) -> None:
    body = rss_feed("أخبار", ARABIC_ITEMS, encoding="windows-1256")
    parsed = parse_feed(result(body, {"content-type": content_type}))
    assert parsed.entries[0].title == AR_TITLE
    assert len(parsed.entries) == 2
    assert (parsed.warning is not None) is bozo


def test_koi8r_declared_only_in_the_header() -> None:
    body = rss_feed("Новости", RUSSIAN_ITEMS, encoding="koi8-r", declare=False)
    parsed = parse_feed(result(body, {"content-type": "text/xml; charset=koi8-r"}))
    assert [e.title for e in parsed.entries] == [i.title for i in RUSSIAN_ITEMS]


def test_broken_xml_still_yields_entries() -> None:
    body = rss_feed("Wire", ARABIC_ITEMS + RUSSIAN_ITEMS).replace(
        b"<link>https://news.example/ru/1</link>",
        b"<link>https://news.example/ru/1?a=1&b=2</link>",  # raw "&": not well-formed
    )
    parsed = parse_feed(result(body))
    assert parsed.warning  # the reason is kept
    assert [e.title for e in parsed.entries] == [
        AR_TITLE,
        ARABIC_ITEMS[1].title,
        RU_TITLE,
        RUSSIAN_ITEMS[1].title,
    ]


def test_truncated_feed_with_zero_entries_is_a_feed_not_an_error() -> None:
    body = rss_feed("Wire", ARABIC_ITEMS)
    parsed = parse_feed(result(body[: body.index(b"<item>")]))
    assert parsed.title == "Wire"
    assert parsed.entries == ()


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"", {}, "empty"),
        (b"  \n\t", {}, "empty"),
        (
            b"<!DOCTYPE html><html><head><title>Home</title></head><body><p>Hi</p></body></html>",
            {"content-type": "text/html"},
            "HTML page",
        ),
        (b"<html><body>Moved</body></html>", {}, "HTML page"),
        (b"just some text", {"content-type": "text/plain"}, "not an RSS/Atom feed"),
        (b'{"error": "rate limited"}', {"content-type": "application/json"}, "JSON"),
    ],
)
def test_non_feeds_raise_parse_error(body: bytes, headers: dict[str, str], message: str) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse_feed(result(body, headers))
    assert info.value.feed_id == "f"
    assert info.value.url == "https://wire.example/feed"


def test_a_body_that_looks_like_a_path_or_url_is_data(tmp_path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(rss_feed("SECRET-TITLE", [Item("SECRET-ITEM", guid="s")]))
    for body in (str(secret).encode(), secret.as_uri().encode()):
        with pytest.raises(ParseError):
            parse_bytes(body, {})


def test_missing_guid_link_and_date_are_none() -> None:
    body = rss_feed("Wire", [Item("Bare entry", guid=None, link="", pub_date=None)])
    entry = parse_feed(result(body)).entries[0]
    assert (entry.guid, entry.link, entry.published, entry.updated) == (None, None, None, None)
    linked = rss_feed("Wire", [Item("Linked", guid=None, link="https://a.example/1")])
    entry = parse_feed(result(linked)).entries[0]
    assert (entry.guid, entry.link) == (None, "https://a.example/1")


def test_plain_text_title_keeps_angle_brackets_as_text() -> None:
    body = rss_feed("Wire", [Item("Why 3 < 5 & 7 > 2 matters", guid="x")])
    entry = parse_feed(result(body)).entries[0]
    assert entry.title == "Why 3 &lt; 5 &amp; 7 &gt; 2 matters"  # escaped for html_to_text


# -- the fast path gives exactly what feedparser gives -------------------------------------

PIECES = [
    *"abc XYZ\t\n<>&;/\"'=#?.:é",
    *("لافروف", "Лавров", "&amp;", "&lt;b&gt;", "&#169;", "Ã©", "\x93", "\x80", "<b>", "</b>"),
]
TEXT = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
LINKS = st.sampled_from(
    ["https://a.example/1", "/relative/2", "3?x=1&y=2", "HTTPS://A.example:443/4#f", ""]
)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def rss_documents(draw: st.DrawFn) -> bytes:
    items = []
    for _ in range(draw(st.integers(0, 3))):
        parts = []
        if draw(st.booleans()):
            parts.append(f"<title>{_xml(draw(TEXT))}</title>")
        if draw(st.booleans()):
            parts.append(f"<link>{_xml(draw(LINKS))}</link>")
        guid = draw(st.sampled_from(["", "g-1", "https://a.example/g", "/g/rel"]))
        if guid:
            attr = draw(st.sampled_from(["", ' isPermaLink="false"', ' isPermaLink="true"']))
            parts.append(f"<guid{attr}>{guid}</guid>")
        if draw(st.booleans()):
            text = draw(TEXT)
            cdata = draw(st.booleans()) and "]]>" not in text
            parts.append(
                f"<description><![CDATA[{text}]]></description>"
                if cdata
                else f"<description>{_xml(text)}</description>"
            )
        if draw(st.booleans()):
            parts.append(f"<content:encoded>{_xml(draw(TEXT))}</content:encoded>")
        if draw(st.booleans()):
            date = draw(
                st.sampled_from(
                    ["Tue, 10 Feb 2026 09:30:00 GMT", "2026-02-10T09:30:00+03:00", "soon", ""]
                )
            )
            parts.append(f"<pubDate>{date}</pubDate>")
        if draw(st.booleans()):
            parts.append("<dc:creator> Desk </dc:creator>")
        if draw(st.booleans()):
            parts.append('<category>World</category><x:extra xmlns:x="urn:other">1</x:extra>')
        draw(st.randoms()).shuffle(parts)
        items.append("<item>" + "".join(parts) + "</item>")
    doc = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        f"<title>{_xml(draw(TEXT))}</title><link>{_xml(draw(LINKS))}</link>"
        + draw(
            st.sampled_from(
                [
                    "",
                    '<atom:link href="https://a.example/feed" rel="self" '
                    'type="application/rss+xml"/>',
                    '<atom:link href="https://a.example/home" rel="alternate" type="text/html"/>',
                    '<atom:link href="/home"/>',
                ]
            )
        )
        + "<image><title>Logo</title><url>https://a.example/l.png</url></image>"
        f"<language>{draw(st.sampled_from(['ar', 'ru-RU', 'en-us', '']))}</language>"
        + "".join(items)
        + "</channel></rss>"
    )
    return doc.encode()


@settings(max_examples=int(os.environ.get("MONITOR_FAST_EXAMPLES", "300")), deadline=None)
@given(rss_documents(), st.sampled_from(["application/rss+xml", "application/xml"]))
def test_fast_path_equals_feedparser(doc: bytes, content_type: str) -> None:
    headers = {"content-type": content_type}
    url = "https://wire.example/dir/feed.xml"
    fast = parse_bytes(doc, headers, url=url, fast=True)
    reference = parse_bytes(doc, headers, url=url, fast=False)
    assert fast == reference


def test_fast_path_is_taken_for_plain_rss() -> None:
    body = rss_feed("Wire", ARABIC_ITEMS + RUSSIAN_ITEMS)
    passed = {"content-type": "application/rss+xml", "content-location": "https://w.example/"}
    assert _fast_eligible(body, passed)
    assert _fast_parse(body, "https://w.example/") == parse_bytes(
        body, {"content-type": "application/rss+xml"}, url="https://w.example/", fast=False
    )
    # not eligible: legacy charsets, DOCTYPEs, text/xml without charset
    assert not _fast_eligible(rss_feed("W", ARABIC_ITEMS, encoding="windows-1256"), passed)
    assert not _fast_eligible(body, {"content-type": "text/xml"})
    assert not _fast_eligible(b"<!DOCTYPE rss>" + body, passed)


_URL_CHARS = "aZ09.-/:@?#&;=%[]_~é \t\n\x00\x1c\xa0"
_BASES = st.one_of(
    st.sampled_from(
        [
            "",
            "http://127.0.0.1:8080/f/3.xml",
            "https://news.example",
            "https://news.example/a/b/",
            "https://news.example/a/./../b//c.xml?x=1#y",
            "http://[::1]:80/feed",
            "http://[::1/feed",
            "file:///tmp/feed.xml",
            "feed.xml",
        ]
    ),
    st.builds(
        lambda scheme, rest: f"{scheme}{rest}",
        st.sampled_from(["http://", "https://", "HTTPS://", "ftp://", ""]),
        st.text(alphabet=_URL_CHARS, max_size=25),
    ),
)
_URIS = st.one_of(
    st.from_regex(_PLAIN_ABSOLUTE, fullmatch=True),
    st.from_regex(_PLAIN_SEGMENT, fullmatch=True),
    st.sampled_from([".", "..", "a", "https://x", "//x/y", "?q", "#f", "a:b", "HTTP://X/"]),
    st.text(alphabet=_URL_CHARS, max_size=25),
)


@settings(max_examples=2000, deadline=None)
@given(_BASES, _URIS)
def test_join_fast_paths_are_feedparsers_join(base: str, uri: str) -> None:
    assert _join(base, uri) == _tools().urljoin(base, uri)
