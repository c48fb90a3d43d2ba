"""Turn fetched bytes into a ``ParsedFeed`` with feedparser; pure, no I/O.

feedparser is given the body as a stream and the response headers, never a
URL or bare bytes, so it cannot open a connection or a local file on its own
(given bytes, feedparser first tries them as a file name). The fetcher owns
the network. Its ``bozo`` flag alone never drops a feed: a wrong charset
declaration with good text, or broken XML from which entries were recovered,
still yields entries, with the reason kept in ``ParsedFeed.warning``.
Only a body with nothing feed-like in it (an HTML page, an empty 200, plain
garbage) raises ``ParseError``.

feedparser's HTML sanitiser and relative-URI rewriting are switched off: they
cost half the parse time and ``articles.py`` turns HTML into plain text with a
real HTML parser anyway (scripts and styles dropped there). Entity and DOCTYPE
handling stay feedparser's: it strips external and recursive entities before
expat sees the document, so XXE and billion-laughs documents are inert.

Fast path: a plain, well-formed UTF-8 RSS 2.0 document (the usual news wire)
is read with lxml (no DTD, no entities, no network) and mapped with
feedparser's own helpers, ~5× faster than feedparser (sanitiser off). Anything the fast
path does not reproduce exactly (other encodings, DOCTYPEs, Atom/RDF, unknown
elements feedparser would interpret, duplicates) goes to feedparser. Tests
check that both paths return the same ``ParsedFeed`` on every corpus document
and on generated documents. ``FAST_PATH = False`` switches it off.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import functools
import io
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from lxml import etree

from monitor.exceptions import ParseError
from monitor.models import FetchResult, ParsedFeed, RawEntry
from monitor.sanitize import clean_fields, scrub_char_refs
from monitor.text import primary_subtag

log = logging.getLogger(__name__)

__all__ = ["parse_bytes", "parse_feed"]

#: Headers feedparser reads: charset, base URL, language.
_PASSED_HEADERS = ("content-type", "content-location", "content-language")


#: Set to False to always use feedparser (the reference); tests compare both paths.
FAST_PATH = True


def parse_feed(result: FetchResult) -> ParsedFeed:
    """Parse a fetched body; raise ``ParseError`` when no feed can be recovered from it."""
    return parse_bytes(result.content, result.headers, feed_id=result.feed_id, url=result.url)


def parse_bytes(
    content: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    feed_id: str = "",
    url: str = "",
    fast: bool | None = None,
) -> ParsedFeed:
    """The same as ``parse_feed`` for bytes and headers that did not come from a fetch."""
    if not content.strip():
        raise ParseError("the response body is empty", feed_id=feed_id, url=url)
    passed = {k.lower(): v for k, v in (headers or {}).items() if k.lower() in _PASSED_HEADERS}
    # Without a Content-Type feedparser flags every file as bozo; XML rules apply then.
    passed.setdefault("content-type", "application/xml")
    if url and "content-location" not in passed and url.startswith(("http://", "https://")):
        passed["content-location"] = url  # base for relative entry links
    # Character references to surrogates or NUL would make feedparser raise or reach the keys.
    content = scrub_char_refs(content)
    if (FAST_PATH if fast is None else fast) and _fast_eligible(content, passed):
        try:
            return _cleaned(_fast_parse(content, passed.get("content-location", "")))
        except _Fallback:
            pass
        except Exception:  # an lxml surprise: feedparser gets its chance
            log.debug("fast path failed on %s; using feedparser", feed_id or url, exc_info=True)
    try:
        return _cleaned(_feedparser_parse(content, passed, feed_id, url))
    except ParseError:
        raise
    except RecursionError as exc:  # absurdly nested markup
        raise ParseError(
            "the document is nested too deeply to parse", feed_id=feed_id, url=url
        ) from exc
    except Exception as exc:  # one hostile document must not stop a poll
        raise ParseError(
            f"the feed parser failed: {type(exc).__name__}: {_one_line(exc)}",
            feed_id=feed_id,
            url=url,
        ) from exc


def _cleaned(feed: ParsedFeed) -> ParsedFeed:
    """Every text field and key of a parsed feed without characters no later stage can store."""
    entries = tuple(clean_fields(e) for e in feed.entries)
    return clean_fields(dataclasses.replace(feed, entries=entries))


def _feedparser_parse(
    content: bytes, passed: Mapping[str, str], feed_id: str, url: str
) -> ParsedFeed:
    """The reference path: feedparser, for every document the fast path does not take."""
    # A stream, not bytes: given bytes, feedparser first tries them as a file *path*
    # (a body of "/etc/passwd" would be read from disk) and str as a URL.
    import feedparser  # imported on first use: a run whose feeds are all unchanged never is

    d = feedparser.parse(
        io.BytesIO(content),
        response_headers=passed,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    entries = tuple(_entry(e) for e in d.get("entries", ()))
    version = d.get("version") or ""
    bozo = d.get("bozo_exception") if d.get("bozo") else None
    if not version and not entries:
        reason = f" ({_one_line(bozo)})" if bozo else ""
        kind = _content_kind(passed.get("content-type", ""), content)
        raise ParseError(
            f"not an RSS/Atom feed: {kind}{reason}; check the feed URL",
            feed_id=feed_id,
            url=url,
        )
    feed = d.get("feed", {})
    return ParsedFeed(
        title=_clean(feed.get("title")) or None,
        link=feed.get("link") or None,
        language=_language_tag(feed.get("language")),
        entries=entries,
        warning=_one_line(bozo) if bozo else None,
    )


def _entry(e: Mapping[str, Any]) -> RawEntry:
    title = e.get("title") or ""
    detail = e.get("title_detail") or {}
    if detail.get("type") == "text/plain":
        title = _escape_plain(title)  # keep "<" in a plain-text title as text for the HTML step
    summary = e.get("summary") or ""
    content = ""
    for part in e.get("content") or ():
        value = part.get("value") or ""
        if len(value) > len(content):
            content = value
    guid = e.get("id") or e.get("guid") or None
    link = e.get("link") or None
    if not link:
        for candidate in e.get("links") or ():
            if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
                link = candidate["href"]
                break
    return RawEntry(
        guid=guid.strip() if isinstance(guid, str) and guid.strip() else None,
        link=link.strip() if isinstance(link, str) and link.strip() else None,
        title=title,
        summary_html=summary,
        content_html=content,
        published=_date(dict.get(cast(dict, e), "published_parsed")),
        updated=_date(dict.get(cast(dict, e), "updated_parsed")),
        author=_clean(e.get("author")) or None,
        image=pick_image(
            [(m.get("url"), m.get("type"), m.get("medium")) for m in _dicts(e, "media_content")],
            [(m.get("url"), None, "image") for m in _dicts(e, "media_thumbnail")],
            [(m.get("href"), m.get("type"), None) for m in _dicts(e, "enclosures")],
        ),
    )


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")
MAX_IMAGE_URL = 2048


def pick_image(
    *groups: list[tuple[Any, Any, Any]],
) -> str | None:
    """The entry's image URL: the first image of media:content, then media:thumbnail,
    then an image enclosure; (url, type, medium) triples, absolute http(s) URLs only.

    Both parse paths call this with the same triples, so they agree.
    """
    for group in groups:
        for url, kind, medium in group[:50]:
            if not isinstance(url, str):
                continue
            url = url.strip()
            if not url.lower().startswith(("http://", "https://")) or len(url) > MAX_IMAGE_URL:
                continue
            if any(c.isspace() or ord(c) < 32 for c in url):
                continue
            kind = str(kind or "").lower()
            medium = str(medium or "").lower()
            path = url.split("?", 1)[0].split("#", 1)[0].lower()
            if medium == "image" or kind.startswith("image/"):
                return url
            if not medium and not kind and path.endswith(_IMAGE_SUFFIXES):
                return url
    return None


def _dicts(e: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = e.get(key) or ()
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _date(value: time.struct_time | None) -> datetime | None:
    """feedparser's UTC struct_time as an aware datetime (None when absent or absurd)."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _language_tag(value: Any) -> str | None:
    """ "ru-RU" → "ru"; anything that is not a plausible tag → None."""
    if not isinstance(value, str):
        return None
    primary = primary_subtag(value)
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None


def _escape_plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clean(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _one_line(exc: BaseException | None) -> str:
    text = " ".join(str(exc).split()) if exc is not None else ""
    return (text or type(exc).__name__)[:200]


def _content_kind(content_type: str, content: bytes) -> str:
    head = content[:512].lstrip().lower()
    if "html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html")):
        return "the server sent an HTML page"
    if head.startswith((b"{", b"[")):
        return "the server sent JSON"
    return "no feed elements found"


# -- fast path ---------------------------------------------------------------------------------
# A plain, well-formed UTF-8 RSS 2.0 document (the common case for news wires) is read with
# lxml and mapped with feedparser's own rules for the fields monitor uses (stripping, relative
# links, guid-as-link, the "looks like HTML" title check, the Latin-1 and cp1252 repairs,
# feedparser's date parser). Anything unusual falls back to feedparser. tests/test_corpora.py
# checks that both paths give the same ParsedFeed on every corpus document.

_RSS_ITEM_TEXT = frozenset({"title", "link", "guid", "description", "pubDate"})
_CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
_DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
_MEDIA = "{http://search.yahoo.com/mrss/}"
_ITEM_IGNORED = frozenset(
    {
        "category",
        "comments",
        "enclosure",
        "author",
        _DC_CREATOR,
        _MEDIA + "thumbnail",
        _MEDIA + "content",
        "{http://wellformedweb.org/CommentAPI/}commentRss",
        "{http://purl.org/rss/1.0/modules/slash/}comments",
        _MEDIA + "credit",
        "{http://rssnamespace.org/feedburner/ext/1.0}origLink",
    }
)
_DC_DATE = "{http://purl.org/dc/elements/1.1/}date"
_ATOM_LINK = "{http://www.w3.org/2005/Atom}link"
_CHANNEL_ALLOWED = frozenset(
    {
        "title",
        "link",
        "description",
        "language",
        "copyright",
        "managingEditor",
        "webMaster",
        "pubDate",
        "lastBuildDate",
        "category",
        "generator",
        "docs",
        "ttl",
        "image",
        "cloud",
        "textInput",
        "skipHours",
        "skipDays",
        "rating",
        "item",
        _ATOM_LINK,
        "{http://purl.org/rss/1.0/modules/syndication/}updatePeriod",
        "{http://purl.org/rss/1.0/modules/syndication/}updateFrequency",
    }
)
_FAST_TYPES = frozenset({"application/rss+xml", "application/xml", "text/xml"})
_XML_DECL = re.compile(rb"^<\?xml[^>]*?\?>", re.DOTALL)
_DECL_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_UNSAFE_BYTES = (b"<!DOCTYPE", b"<!ENTITY", b"xml:base", b"xml:lang")
_BOM = b"\xef\xbb\xbf"
_C1_CONTROLS = re.compile("[\x80-\x9f]")


class _Fallback(Exception):
    """The document is outside what the fast path reproduces exactly."""


def _fast_eligible(content: bytes, headers: Mapping[str, str]) -> bool:
    if _load_fast_tools() is None or "content-language" in headers:
        return False
    media, _, params = headers.get("content-type", "application/xml").partition(";")
    if media.strip().lower() not in _FAST_TYPES:
        return False
    charset = re.search(r"charset\s*=\s*\"?([^\s;\"]+)", params, re.IGNORECASE)
    if charset:
        if charset.group(1).lower() not in ("utf-8", "utf8"):
            return False
    elif media.strip().lower() == "text/xml":
        return False  # RFC 3023 makes it us-ascii: feedparser's own rules apply
    content = content.removeprefix(_BOM)
    if not content.startswith((b"<?xml", b"<rss")):
        return False
    decl = _XML_DECL.match(content)
    if decl:
        enc = _DECL_ENCODING.search(decl.group(0))
        if enc and enc.group(1).lower() not in (b"utf-8", b"utf8"):
            return False
    return not any(marker in content for marker in _UNSAFE_BYTES)


def _fast_parse(content: bytes, base: str) -> ParsedFeed:
    """Parse an eligible RSS 2.0 document; raise ``_Fallback`` on anything unusual."""
    content = content.removeprefix(_BOM)
    try:
        content.decode("utf-8")
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        root = etree.fromstring(content, parser)
    except (UnicodeDecodeError, etree.XMLSyntaxError, ValueError) as exc:
        raise _Fallback from exc
    if root.tag != "rss" or root.get("version") != "2.0" or len(root) != 1:
        raise _Fallback
    channel = root[0]
    if channel.tag != "channel" or set(root.attrib) - {"version"}:
        raise _Fallback
    title = language = link = None
    entries = []
    for child in channel:
        tag = child.tag
        if tag not in _CHANNEL_ALLOWED:
            if _foreign(child):
                continue
            raise _Fallback
        if tag == "item":
            entries.append(_fast_item(child, base))
        elif tag == _ATOM_LINK:
            if child.get("rel", "alternate") == "alternate":
                raise _Fallback  # feedparser may take it as the feed's link
        elif tag == "title":
            if title is not None:
                raise _Fallback
            title = _fast_text(child)
        elif tag == "link":
            if link is not None:
                raise _Fallback
            text = _fast_text(child)
            link = _join(base, text) if text else ""
        elif tag == "language":
            if language is not None:
                raise _Fallback
            language = _fast_text(child)
    if content.count(b"<item") != len(entries):
        raise _Fallback  # items outside the channel, or "<item" inside text
    return ParsedFeed(
        title=_clean(title) or None,
        link=link or None,
        language=_language_tag(language),
        entries=tuple(entries),
    )


def _fast_text(el: Any) -> str:
    if len(el) or el.attrib:
        raise _Fallback
    return _fast_repair((el.text or "").strip())


def _fast_repair(value: str) -> str:
    """feedparser's fixes: UTF-8 read as Latin-1, then the cp1252 code points."""
    if value.isascii():  # nothing to fix: ASCII reads the same in both, and has no C1
        return value
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    if _C1_CONTROLS.search(value):  # translate() with a dict is slow: only when needed
        value = value.translate(_tools().cp1252)
    return value


#: A URL that feedparser's join (``_urljoin``: ``urllib.parse.urljoin``) returns as it is,
#: whatever the base: absolute http(s), lower-case scheme, a plain host, and no
#: character ``urlsplit`` treats specially (``;`` params, ``#``, spaces, brackets …).
_PLAIN_ABSOLUTE = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9/%:@!$&'()*+,=~._-]*)?"
    r"(?:\?[A-Za-z0-9/%:@!$&'()*+,;=~._?-]+)?"
)
#: A relative reference of one plain path segment: joined, it replaces the base's last
#: segment, and everything before it depends on the base only (``_join_prefix``).
_PLAIN_SEGMENT = re.compile(r"(?!\.\.?$)[A-Za-z0-9%@!$&'()*+,=~._-]+")
_ENTITY_IN_LINK = re.compile("&([A-Za-z0-9_]+);")


def _join(base: str, uri: str) -> str:
    """feedparser's ``_urljoin(base, uri)``, without its cost for the common cases: an
    absolute plain URL, and one path segment against a base (the base's prefix cached)."""
    prefix = _join_prefix(base)
    if prefix is not None:  # a base urllib can parse
        if _PLAIN_ABSOLUTE.fullmatch(uri):
            return uri
        if _PLAIN_SEGMENT.fullmatch(uri):
            return prefix + uri
    return cast(str, _tools().urljoin(base, uri))


@functools.lru_cache(maxsize=256)
def _join_prefix(base: str) -> str | None:
    """What feedparser's join puts before a plain segment joined to ``base`` (None when
    two probes disagree, as for a base urllib cannot parse: it takes the slow path)."""
    urljoin = _tools().urljoin
    first, second = urljoin(base, "a"), urljoin(base, "b")
    if not first.endswith("a") or first[:-1] + "b" != second:
        return None
    return cast(str, first[:-1])


def _fast_item(item: Any, base: str) -> RawEntry:
    seen: dict[str, Any] = {}
    author = None
    media: dict[str, list[tuple[Any, Any, Any]]] = {"content": [], "thumbnail": [], "enclosure": []}
    for child in item:
        tag = child.tag
        if tag == _MEDIA + "content":
            media["content"].append((child.get("url"), child.get("type"), child.get("medium")))
        elif tag == _MEDIA + "thumbnail":
            media["thumbnail"].append((child.get("url"), None, "image"))
        elif tag == "enclosure":
            media["enclosure"].append((child.get("url"), child.get("type"), None))
        if tag in _RSS_ITEM_TEXT or tag in (_CONTENT_ENCODED, _DC_DATE):
            if tag in seen:
                raise _Fallback
            seen[tag] = child
        elif tag in _ITEM_IGNORED:
            if len(child):
                raise _Fallback
            if tag in ("author", _DC_CREATOR):
                if author is not None:
                    raise _Fallback  # several authors: feedparser's merge rules apply
                author = _clean(_fast_text(child))
        elif not _foreign(child):
            raise _Fallback
    link = guid = None
    title_html = summary = content = ""
    published = updated = None
    guid_is_link = False
    if "guid" in seen:
        el = seen["guid"]
        if len(el) or set(el.attrib) - {"isPermaLink"}:
            raise _Fallback
        guid_is_link = el.get("isPermaLink", "true") == "true"
        guid = _fast_repair((el.text or "").strip())
        if not guid:
            raise _Fallback
        if guid and guid_is_link:
            guid = _fast_repair(_join(base, (el.text or "").strip()))
    if "link" in seen:
        raw = (seen["link"].text or "").strip()
        if not raw or len(seen["link"]) or seen["link"].attrib:
            raise _Fallback
        link = _fast_repair(_join(base, raw))
        if "&" in link:
            link = _ENTITY_IN_LINK.sub(r"&\g<1>", link.replace("&amp;", "&"))
    elif guid_is_link and guid:
        link = guid
    if "title" in seen:
        title = _fast_text(seen["title"])
        title_html = title if _tools().looks_like_html(title) else _escape_plain(title)
    if "description" in seen:
        summary = _fast_text(seen["description"])
    if _CONTENT_ENCODED in seen:
        content = _fast_text(seen[_CONTENT_ENCODED])
    if "pubDate" in seen:
        published = _date(_tools().parse_date(_fast_text(seen["pubDate"])))
    if _DC_DATE in seen:
        updated = _date(_tools().parse_date(_fast_text(seen[_DC_DATE])))
    if content and not summary:
        raise _Fallback  # feedparser derives a summary from content: leave that to it
    return RawEntry(
        guid=guid or None,
        link=link or None,
        title=title_html,
        summary_html=summary,
        content_html=content,
        published=published,
        updated=updated,
        author=author or None,
        image=pick_image(media["content"], media["thumbnail"], media["enclosure"]),
    )


def _foreign(el: Any) -> bool:
    """An empty element in a namespace feedparser does not know: it ignores it, so may we."""
    if len(el) or not isinstance(el.tag, str) or not el.tag.startswith("{"):
        return False
    uri = el.tag[1:].partition("}")[0].lower()
    return uri not in _tools().namespaces and (el.prefix or "") not in _tools().prefixes


@dataclass(frozen=True)
class _FastTools:
    """feedparser internals the fast path reuses, so both paths apply the same rules."""

    urljoin: Any
    looks_like_html: Any
    parse_date: Any
    cp1252: Any
    namespaces: frozenset[str]
    prefixes: frozenset[str]


@functools.cache
def _load_fast_tools() -> _FastTools | None:
    """feedparser's internals, imported on first use (None: this feedparser lacks them)."""
    try:
        from feedparser.datetimes import _parse_date
        from feedparser.html import _cp1252
        from feedparser.mixin import _FeedParserMixin
        from feedparser.urls import _urljoin
    except ImportError:  # a feedparser without these internals: always use feedparser
        return None
    known = _FeedParserMixin.namespaces
    return _FastTools(
        _urljoin,
        _FeedParserMixin.looks_like_html,
        _parse_date,
        _cp1252,
        frozenset(uri.lower() for uri in known),
        frozenset(known.values()),
    )


def _tools() -> _FastTools:
    """feedparser's internals for the fast path; without them every feed takes feedparser."""
    tools = _load_fast_tools()
    if tools is None:
        raise _Fallback
    return tools
