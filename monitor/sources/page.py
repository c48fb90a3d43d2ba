"""A page that lists articles but has no feed → the article links on it; pure.

With a ``links:`` CSS selector the selected ``a[href]`` elements (or the
``a[href]`` inside the selected elements) are the articles, on any host.
Without one, links are discovered: a link is kept when

- it is http(s), on the page's own site (the host without ``www.``/``m.``),
  not the page itself nor the home page, not a file (image, PDF, archive …);
- it does not sit in site furniture: ``nav``, ``aside``, ``form``, ARIA
  navigation/complementary/search regions, or elements whose class or id says
  menu, breadcrumb, sidebar, social, share, popular, most read, trending,
  related, widget, tags, pagination, newsletter; ``header``/``footer`` count
  only outside an ``article`` (an article card's own header is content);
- its path is not a tag, category, author, login, search, share, feed or
  pagination page (by path segment);
- and it looks like an article: a date in the path (``/2026/12/07/``,
  ``2026-12-07``, ``20261207``), a numeric id of four or more digits, a long
  slug (three or more separators and 20+ characters), an ``?id=``/``?p=``
  number, or a path two segments deep whose link text is 25+ characters.

A "most read" box rotates between polls; leaving it out keeps old articles
from turning up as new ones. Links come back as ``canonical_url`` values,
each once, in page order, at most ``limit`` (``MAX_LINKS_PER_PAGE``); only
the first ``MAX_ANCHORS`` anchors of a page are looked at.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from itertools import pairwise
from urllib.parse import unquote, urljoin, urlsplit

from lxml import etree

from monitor.articles import canonical_url
from monitor.models import ParsedFeed, RawEntry
from monitor.sources._html import element_text, parse_html

__all__ = [
    "MAX_ANCHORS",
    "MAX_LINKS_PER_PAGE",
    "Link",
    "check_selector",
    "discover_links",
    "links_feed",
]

#: Article links returned per page at most.
MAX_LINKS_PER_PAGE = 100
#: Anchors examined per page at most (a real front page has a few hundred).
MAX_ANCHORS = 5000
#: Ancestors looked at to tell furniture from content.
_MAX_ANCESTORS = 64

_FURNITURE_TAGS = frozenset(("nav", "aside", "form", "dialog", "menu"))
_EDGE_TAGS = frozenset(("header", "footer"))
_FURNITURE_ROLES = frozenset(("navigation", "complementary", "search"))
_EDGE_ROLES = frozenset(("banner", "contentinfo"))
_FURNITURE_WORDS = frozenset(
    (
        "nav", "navbar", "navigation", "menu", "submenu", "megamenu", "breadcrumb",
        "breadcrumbs", "sidebar", "social", "socials", "share", "sharing", "sharebar",
        "popular", "mostread", "mostviewed", "trending", "related", "widget", "widgets",
        "tags", "tagcloud", "pagination", "pager", "newsletter", "cookie", "cookies",
        "subscribe", "login", "footer", "header", "masthead", "ticker",
    )
)  # fmt: skip
_EDGE_WORDS = frozenset(("footer", "header", "masthead"))
_DENY_SEGMENTS = frozenset(
    (
        "tag", "tags", "category", "categories", "cat", "section", "sections", "topic",
        "topics", "rubric", "rubrics", "author", "authors", "writer", "writers", "user",
        "users", "profile", "person", "persons", "login", "logout", "signin", "signup",
        "register", "account", "search", "share", "sharer", "subscribe", "subscription",
        "newsletter", "feed", "feeds", "rss", "page", "archive", "archives", "about",
        "contact", "contacts", "privacy", "terms", "cookies", "advertise", "wp-login.php",
        "wp-admin", "cdn-cgi", "amp", "print", "comments", "live-tv", "weather",
    )
)  # fmt: skip
_FILE_EXT = re.compile(
    r"\.(?:jpe?g|png|gif|webp|svg|ico|pdf|zip|rar|gz|mp3|mp4|m4a|avi|mov|doc|docx|xls|xlsx|ppt|pptx|xml|rss|css|js)$",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"(?:^|/)(?:19|20)\d\d/(?:0?[1-9]|1[0-2])(?:/|$)"
    r"|(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"|(?:^|[/_-])(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:$|[/_.-])"
)
_NUMERIC_ID = re.compile(r"\d{4,}")
_QUERY_ID = re.compile(r"(?:^|&)(?:p|id|article|story|news|nid|aid)=\d+(?:&|$)", re.IGNORECASE)
_PAGINATION_QUERY = re.compile(r"(?:^|&)(?:page|paged|start|offset)=", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_+]")
_WORDS = re.compile(r"[a-z0-9]+")
_HOST_PREFIXES = ("www.", "m.", "amp.", "mobile.")


@dataclass(frozen=True)
class Link:
    """An article link found on a page."""

    url: str  # canonical (``monitor.articles.canonical_url``)
    text: str  # the link's text, one line (may be empty)


def check_selector(selector: str) -> str | None:
    """Why a ``links:`` selector cannot be used, or None when it is fine (for config checks)."""
    from cssselect import GenericTranslator
    from cssselect.parser import SelectorError

    if not selector.strip():
        return "empty CSS selector"
    try:
        GenericTranslator().css_to_xpath(selector)
    except SelectorError as exc:
        return f"invalid CSS selector {selector!r}: {exc}"
    return None


def discover_links(
    markup: bytes | str,
    url: str,
    selector: str | None = None,
    limit: int = MAX_LINKS_PER_PAGE,
    encoding: str | None = None,
) -> list[Link]:
    """The article links of a page at ``url``, canonical, each once, in page order.

    ``encoding`` is the charset the HTTP response declared, if any. A selector
    that is not valid CSS raises ``ValueError`` (``check_selector`` tells it
    earlier).
    """
    limit = max(0, min(limit, MAX_LINKS_PER_PAGE))
    root = parse_html(markup, encoding)
    if root is None or limit == 0:
        return []
    base = _base_url(root, url)
    page = canonical_url(url)
    site = _site(url)
    anchors, explicit = (_selected(root, selector), True) if selector else (_anchors(root), False)
    out: list[Link] = []
    seen = {page}
    index: dict[str, int] = {}
    for anchor in anchors:
        href = (anchor.get("href") or "").strip()
        if not href or href.startswith("#"):
            continue
        try:
            absolute = urljoin(base, href)
            parts = urlsplit(absolute)
            host = (parts.hostname or "").lower()
        except ValueError:
            continue
        if parts.scheme.lower() not in ("http", "https") or not host:
            continue
        link = canonical_url(absolute)
        if link in seen:
            # an image link often comes first: the headline link gives the text
            at = index.get(link)
            if at is not None and not out[at].text:
                out[at] = Link(url=link, text=_text(anchor))
            continue
        text = _text(anchor)
        if not explicit and not _is_article(anchor, parts.path, parts.query, host, site, text):
            continue
        seen.add(link)
        index[link] = len(out)
        out.append(Link(url=link, text=text))
        if len(out) >= limit:
            break
    return out


def links_feed(links: list[Link], title: str | None = None, url: str | None = None) -> ParsedFeed:
    """Discovered links as the parser stage's value: one entry per link, keyed by its URL,
    the link text as title (the article's text comes from fetching it, as ``full_text``)."""
    entries = tuple(
        RawEntry(guid=link.url, link=link.url, title=html.escape(link.text, quote=False))
        for link in links
    )
    return ParsedFeed(title=title, link=url, entries=entries)


def _text(anchor: etree._Element) -> str:
    text = element_text(anchor, limit=2000).replace("\n", " ")
    return (text or (anchor.get("title") or "").strip())[:300]


def _anchors(root: etree._Element) -> list[etree._Element]:
    out = []
    for anchor in root.iter("a"):
        out.append(anchor)
        if len(out) >= MAX_ANCHORS:
            break
    return out


def _selected(root: etree._Element, selector: str) -> list[etree._Element]:
    from lxml.cssselect import CSSSelector, SelectorError

    try:
        match = CSSSelector(selector)
    except SelectorError as exc:
        raise ValueError(f"invalid CSS selector {selector!r}: {exc}") from exc
    out: list[etree._Element] = []
    for element in match(root):
        if not isinstance(element.tag, str):
            continue
        candidates = [element] if element.tag == "a" else list(element.iter("a"))
        for anchor in candidates:
            if anchor.get("href"):
                out.append(anchor)
        if len(out) >= MAX_ANCHORS:
            break
    return out[:MAX_ANCHORS]


def _base_url(root: etree._Element, url: str) -> str:
    for base in root.iter("base"):
        href = (base.get("href") or "").strip()
        if href:
            try:
                return urljoin(url, href)
            except ValueError:
                return url
        break
    return url


def _site(url: str) -> str:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
    return _strip_host(host)


def _strip_host(host: str) -> str:
    host = host.rstrip(".")
    for prefix in _HOST_PREFIXES:
        if host.startswith(prefix) and host.count(".") > 1:
            return host[len(prefix) :]
    return host


def _is_article(
    anchor: etree._Element, path: str, query: str, host: str, site: str, text: str
) -> bool:
    if _strip_host(host) != site:
        return False
    if anchor.get("rel") and "nofollow" in anchor.get("rel", "").split():
        return False
    segments = [unquote(s).lower() for s in path.split("/") if s]
    if not segments:
        return False  # the home page
    if any(s in _DENY_SEGMENTS for s in segments) or _FILE_EXT.search(segments[-1]):
        return False
    if _PAGINATION_QUERY.search(query) and not _QUERY_ID.search(query):
        return False
    if _in_furniture(anchor):
        return False
    last = segments[-1]
    joined = "/".join(segments)
    if _DATE.search(joined) or _QUERY_ID.search(query):
        return True
    if any(_NUMERIC_ID.search(s) for s in segments):
        return True
    if len(_SEPARATORS.findall(last)) >= 3 and len(last) >= 20:
        return True
    return len(segments) >= 2 and len(text) >= 25


def _in_furniture(anchor: etree._Element) -> bool:
    """True when an ancestor of the link is navigation, a sidebar box or the like."""
    edge = False
    in_article = False
    for depth, node in enumerate(anchor.iterancestors()):
        if depth >= _MAX_ANCESTORS:
            break
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in ("body", "html"):
            break
        if tag == "article":
            in_article = True
        role = (node.get("role") or "").lower()
        if tag in _FURNITURE_TAGS or role in _FURNITURE_ROLES:
            return True
        if tag in _EDGE_TAGS or role in _EDGE_ROLES:
            edge = True
        words = _class_words(node)
        if words & _FURNITURE_WORDS:
            if words & _FURNITURE_WORDS - _EDGE_WORDS:
                return True
            edge = True
    return edge and not in_article


def _class_words(node: etree._Element) -> set[str]:
    """Words of the class and id, with compounds joined ("most-read" → also "mostread")."""
    raw = f"{node.get('class') or ''} {node.get('id') or ''}".lower()
    if not raw.strip():
        return set()
    words = set()
    for token in raw.split()[:20]:
        parts = _WORDS.findall(token)
        words.update(parts)
        words.update(a + b for a, b in pairwise(parts))
    return words
