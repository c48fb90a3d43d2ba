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
cost half the parse time and the normalizer turns HTML into plain text with a
real HTML parser anyway (scripts and styles dropped there). Entity and DOCTYPE
handling stay feedparser's: it strips external and recursive entities before
expat sees the document, so XXE and billion-laughs documents are inert.
"""

from __future__ import annotations

import calendar
import io
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.exceptions import ParseError
from monitor.models import FetchResult, ParsedFeed, RawEntry

__all__ = ["parse_bytes", "parse_feed"]

#: Headers feedparser reads: charset, base URL, language.
_PASSED_HEADERS = ("content-type", "content-location", "content-language")


def parse_feed(result: FetchResult) -> ParsedFeed:
    """Parse a fetched body; raise ``ParseError`` when no feed can be recovered from it."""
    return parse_bytes(result.content, result.headers, feed_id=result.feed_id, url=result.url)


def parse_bytes(
    content: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    feed_id: str = "",
    url: str = "",
) -> ParsedFeed:
    """The same as ``parse_feed`` for bytes and headers that did not come from a fetch."""
    if not content.strip():
        raise ParseError("the response body is empty", feed_id=feed_id, url=url)
    passed = {k.lower(): v for k, v in (headers or {}).items() if k.lower() in _PASSED_HEADERS}
    # Without a Content-Type feedparser flags every file as bozo; XML rules apply then.
    passed.setdefault("content-type", "application/xml")
    if url and "content-location" not in passed and url.startswith(("http://", "https://")):
        passed["content-location"] = url  # base for relative entry links
    try:
        # A stream, not bytes: given bytes, feedparser first tries them as a file *path*
        # (a body of "/etc/passwd" would be read from disk) and str as a URL.
        d = feedparser.parse(
            io.BytesIO(content),
            response_headers=passed,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except RecursionError as exc:  # absurdly nested markup
        raise ParseError(
            "the document is nested too deeply to parse", feed_id=feed_id, url=url
        ) from exc
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
        published=_date(dict.get(e, "published_parsed")),
        updated=_date(dict.get(e, "updated_parsed")),
        author=_clean(e.get("author")) or None,
    )


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
    primary = value.strip().replace("_", "-").split("-")[0].lower()
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
