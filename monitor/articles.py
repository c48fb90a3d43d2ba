"""RawEntry → Article: plain text, canonical link, stable key, aware UTC date; pure.

- Key: the GUID, else the canonical link, else a hash of title + date. It must
  stay the same across polls, or a restart would alert again.
- Text: HTML goes through a real HTML parser (selectolax/lexbor): entities
  decoded, scripts/styles dropped, block elements become line breaks,
  whitespace folded, and boilerplate tails ("Read more", "The post … appeared
  first on …", "انظر أيضاً", "Читайте также") cut.
- Dates: published, else updated; missing → ``now`` (first seen), future →
  clamped to ``now`` so a wrong clock cannot pin an entry to the top.
- Language: the feed's configured language, else the feed's own tag, else the
  entry's text as ``text.guess_language`` reads it (script, then stopwords).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser

from monitor.models import Article, FeedSource, ParsedFeed, RawEntry, utc_now
from monitor.text import guess_language

__all__ = [
    "EntryHead",
    "canonical_url",
    "entry_head",
    "entry_heads",
    "html_to_text",
    "read_entry",
    "strip_boilerplate",
    "to_articles",
]

#: Query parameters that only track the click; dropping them makes links comparable.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "yclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "_ga",
        "_gl",
        "ocid",
        "cmpid",
        "ito",
        "__twitter_impression",
    }
)
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_", "hsa_")
_DEFAULT_PORTS = {"http": 80, "https": 443}

_DROP_TAGS = ["script", "style", "noscript", "template", "iframe", "object", "svg", "head"]
_BLOCK_TAGS = frozenset(
    (
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    )
)  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")

# Markers that end the article proper: whatever follows them is navigation.
_ALSO = (
    r"(?:انظر|اقرأ|إقرأ|اقرا)\s+(?:أيضا|ايضا|أيضاً|ايضاً|أيضًا|ايضًا)"
    r"|(?:Читайте|Смотрите)\s+также"
    r"|See also|Related(?: articles| stories)?\s*:|Also read\s*:|Read also\s*:"
)
_TAIL_WINDOW = 1500
_SET_OFF = r"(?:^|\n|(?<=[.!?…؟])[ \t]*|[ \t]*[\[(«|\-–—][ \t]*)"
_TAILS: list[tuple[tuple[str, ...], re.Pattern[str]]] = [
    # (cheap lower-case substrings, one of which must be present; the pattern)
    # "The post Title appeared first on Site." (WordPress)
    (
        ("appeared first on",),
        re.compile(r"\s*The post\b.{0,400}?\bappeared first on\b.{0,200}$", re.DOTALL | re.I),
    ),
    # a "see also" block starting a line, and everything after it
    (
        ("انظر", "اقرأ", "إقرأ", "اقرا", "читайте", "смотрите", "see also", "related", "read:"),
        re.compile(rf"(?:^|\n)[ \t]*(?:{_ALSO})(?=[\s:：]|$).*$", re.DOTALL | re.IGNORECASE),
    ),
    # a trailing "read more" link: on its own line, after a sentence, or set off by a bracket
    (
        ("read more", "read the full", "full story", "читать", "подробнее", "المزيد"),
        re.compile(
            rf"{_SET_OFF}(?:Read more|Read the full (?:story|article)|Full story"
            r"|Читать (?:далее|дальше|полностью)|Подробнее|اقرأ المزيد|إقرأ المزيد)"
            r"[\s.…›»→\])]*$",
            re.IGNORECASE,
        ),
    ),
    (
        ("continue reading",),
        re.compile(rf"{_SET_OFF}Continue reading\b[^\n]{{0,160}}$", re.IGNORECASE),
    ),
    (
        ("…]", "...]", "…)", "...)"),
        re.compile(r"\s*[\[(](?:…|\.\.\.|more…|more\.\.\.)[\])]\s*$", re.IGNORECASE),
    ),
]
_TAIL_KEYS = tuple(dict.fromkeys(k for keys, _ in _TAILS for k in keys))


#: A link that is canonical but for its query: lower-case http(s) scheme and host name
#: (no port, user or trailing dot), a path that ``quote`` leaves as it is, no fragment.
_CANONICAL_BUT_QUERY = re.compile(
    r"(https?://[a-z0-9-]+(?:\.[a-z0-9-]+)*/[A-Za-z0-9/%:@!$&'()*+,;=~._-]*)(?:\?([^#\s]*))?"
)


def canonical_url(url: str) -> str:
    """A comparable link: lower-case scheme and host, no default port, fragment or trackers."""
    plain = _CANONICAL_BUT_QUERY.fullmatch(url)
    if plain is not None:  # the common case, without urlsplit: the same result
        head, query = plain.groups()
        kept = _kept_query(query or "")
        return f"{head}?{kept}" if kept else head
    return _canonical_split(url)


def _canonical_split(url: str) -> str:
    """``canonical_url`` of any link (``urlsplit``)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~-._")
    return urlunsplit((scheme, netloc, path, _kept_query(parts.query), ""))


def _kept_query(query: str) -> str:
    """The query without trackers: the raw "name=value" segments are filtered, so the rest
    keeps its exact spelling."""
    return "&".join(seg for seg in query.split("&") if seg and not _is_tracking(seg))


def _is_tracking(segment: str) -> bool:
    name = unquote_plus(segment.partition("=")[0]).strip().lower()
    return name in TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)


#: An entry's HTML (title, summary or content) longer than this many characters is cut
#: there before parsing: no news text is that long, and every later stage stays bounded.
MAX_HTML_CHARS = 1024 * 1024
#: Markup nested deeper than this is not given to the HTML parser (lexbor's tree building
#: costs time proportional to the depth per tag: 100k nested <div>s took seconds); its
#: text is taken by a flat, linear tag-stripping pass instead.
MAX_DEPTH = 400
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]{0,40}+)([^<>]*+)>")
_VOID_TAGS = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr")
)  # fmt: skip
_DROP_SET = frozenset(_DROP_TAGS)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML fragment: one line per block, spaces folded.

    Linear in the input: it is cut at ``MAX_HTML_CHARS``, and markup nested deeper
    than ``MAX_DEPTH`` is read by a flat tag-stripping pass."""
    if not html:
        return ""
    html = html[:MAX_HTML_CHARS]
    if "<" not in html and "&" not in html:
        return _fold(html)
    if html.count("<") > MAX_DEPTH and _too_deep(html):
        return _flat_text(html)
    tree = LexborHTMLParser(html)
    tree.strip_tags(_DROP_TAGS)
    root = tree.body or tree.root
    if root is None:
        return ""
    pieces: list[str] = []
    for node in root.traverse(include_text=True):
        tag = node.tag
        if tag == "-text":
            pieces.append(node.text_content or "")
        elif tag in _BLOCK_TAGS:
            pieces.append("\n")
        elif tag == "img":
            alt = (node.attributes.get("alt") or "").strip()
            if alt:
                pieces.append(f" {alt} ")
    return _fold("".join(pieces))


def _too_deep(html: str) -> bool:
    """True when open tags (an over-estimate of the parser's stack) exceed ``MAX_DEPTH``."""
    depth = 0
    for m in _TAG.finditer(html):
        closing, name, rest = m.groups()
        if closing:
            depth = max(0, depth - 1)
        elif name.lower() not in _VOID_TAGS and not rest.endswith("/"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
    return False


def _flat_text(html: str) -> str:
    """Text of absurdly nested markup without building a tree: tags out, blocks as lines."""
    pieces: list[str] = []
    pos = 0
    dropping: str | None = None  # inside <script>, <style> …: text is not content
    for m in _TAG.finditer(html):
        closing, name, _ = m.groups()
        name = name.lower()
        if dropping is None:
            pieces.append(html[pos : m.start()])
        pos = m.end()
        if dropping is not None:
            if closing and name == dropping:
                dropping = None
        elif not closing and name in _DROP_SET:
            dropping = name
        elif not closing and name in _BLOCK_TAGS:  # as the tree walk: a break before a block
            pieces.append("\n")
    if dropping is None:
        pieces.append(html[pos:])
    return _fold(unescape("".join(pieces)))


def _fold(text: str) -> str:
    """One line per paragraph, runs of (Unicode) whitespace as one space."""
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    # str.split() knows every Unicode space (NBSP, thin, ideographic) and runs in C.
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def strip_boilerplate(text: str) -> str:
    """Cut link-bait tails a publisher appends to every entry."""
    # Tails live at the end: only the last lines are searched, so long articles stay cheap.
    # The window starts at a line break, or at a space when the last lines are long, so a
    # text without line breaks is never searched as a whole (the patterns are bounded anyway).
    split = max(0, len(text) - _TAIL_WINDOW)
    if split:
        newline = text.rfind("\n", split - _TAIL_WINDOW, split)
        if newline < 0:
            newline = text.rfind(" ", split - _TAIL_WINDOW, split)
        split = newline + 1 if newline >= 0 else split
    head, tail = text[:split], text[split:]
    lowered = tail.lower()
    if not any(k in lowered for k in _TAIL_KEYS):  # substring tests are much cheaper than regexes
        return text
    for _ in range(3):  # tails can stack: "… Read more\nThe post … appeared first on …"
        before = tail
        lowered = tail.lower()
        for keys, pattern in _TAILS:
            if not any(k in lowered for k in keys):
                continue
            cut = pattern.sub("", tail).rstrip()
            if cut != tail and (cut or head.strip()):  # never cut a text down to nothing
                tail = cut
        if tail == before:
            break
    return (head + tail).rstrip()


_SAMPLE = 600  # characters of the summary and of the content the language guess reads


def _entry_key(entry: RawEntry, link: str | None, title: str, date: datetime | None) -> str:
    if entry.guid:
        return entry.guid
    if link:
        return link
    stamp = date.isoformat() if date else ""
    digest = hashlib.sha256(f"{title}\n{stamp}".encode()).hexdigest()[:32]
    return f"sha256:{digest}"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class EntryHead:
    """An entry read as far as its identity and its row in the entries table (key, title,
    link, date): enough to tell whether it is new. Its text, the costly part, is read by
    ``read_entry`` only for the entries that need it (matched or archived)."""

    key: str
    title: str
    link: str | None
    published: datetime  # else updated; missing or in the future: ``now``
    entry: RawEntry


def entry_head(entry: RawEntry, now: datetime) -> EntryHead:
    """The key, title, canonical link and date of one entry."""
    now = _utc(now) or utc_now()
    title = _fold(html_to_text(entry.title).replace("\n", " "))
    link = canonical_url(entry.link) if entry.link else None
    original = _utc(entry.published) or _utc(entry.updated)
    published = original if original is not None and original <= now else now
    return EntryHead(_entry_key(entry, link, title, original), title, link, published, entry)


def entry_heads(parsed: ParsedFeed, now: datetime) -> list[EntryHead]:
    """Every entry of a parsed feed as an ``EntryHead``, in feed order, one per key."""
    heads: dict[str, EntryHead] = {}
    for entry in parsed.entries:
        head = entry_head(entry, now)
        heads.setdefault(head.key, head)
    return list(heads.values())


def read_entry(feed: FeedSource, parsed: ParsedFeed, head: EntryHead) -> Article:
    """The entry as an Article: ``head`` with its plain text and language."""
    entry, title = head.entry, head.title
    summary = strip_boilerplate(html_to_text(entry.summary_html))
    content = strip_boilerplate(html_to_text(entry.content_html))
    if _repeats(content, summary):
        content = ""
    language = (
        feed.language
        or parsed.language
        or guess_language(f"{title} {summary[:_SAMPLE]} {content[:_SAMPLE]}")
    )
    return Article(
        key=head.key,
        feed_id=feed.id,
        title=title,
        summary=summary,
        content=content,
        link=head.link,
        published=head.published,
        language=language,
        source=feed.name or parsed.title or feed.id,
        guid=entry.guid,
        image=entry.image,
    )


def to_articles(feed: FeedSource, parsed: ParsedFeed, now: datetime) -> list[Article]:
    """Every entry of a parsed feed as an Article, in feed order, one per key."""
    return [read_entry(feed, parsed, head) for head in entry_heads(parsed, now)]


def _repeats(content: str, summary: str) -> bool:
    """True when the content adds nothing to the summary."""
    if not content:
        return True
    a = _squash(content)
    b = _squash(summary)
    return a == b or (bool(b) and a in b)


def _squash(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split()).casefold()
