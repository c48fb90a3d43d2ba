"""A fetched article page → its main text, title, lead image and language; pure.

Used by ``full_text`` feeds: the page's text is matched as the field ``page``,
so what must stay out of it matters as much as what must be in it — a watched
name that appears only in a "related stories" link, a reader's comment, a
newsletter box or the footer is not a mention by the article.

- Extractor: trafilatura (``favor_precision``, no comments, with its fallback
  extractors), chosen by measurement on Arabic, Russian and English news pages
  (``bench/extract.py``: sentence precision and recall beside readability-lxml
  and jusText). Tables that lay out the page (they hold paragraphs, blocks or
  other tables) become divs first: given to trafilatura as tables, a
  table-layout site comes out as one run-on line of menu, breadcrumbs and
  text, and with tables excluded its article is lost; data tables are kept.
  A first line that repeats the headline is dropped (the title is returned
  on its own).
- Decoding: a byte-order mark, else the Content-Type charset, else a
  ``<meta charset>`` / ``http-equiv`` / XML declaration in the first
  ``SNIFF_BYTES``, else UTF-8; always with replacement, never an exception.
  Labels follow the WHATWG habits that matter (``iso-8859-1`` means
  windows-1252; a ``<meta>`` claiming UTF-16 means UTF-8).
- Cost: at most ``MAX_BYTES`` of the body are read. libxml2 stops parsing at
  depth 256 and drops everything after (so every lxml-based extractor returns
  nothing for such a page); a linear scan measures the nesting first, and a
  page deeper than ``MAX_DEPTH`` has its deeper tags removed (their text kept)
  before parsing. Should the parser still give up, the page's text is taken
  flat, tags stripped, from the body's paragraphs. trafilatura's time grows
  faster than the tree (24 s for 3 MB of links), so a tree of more than
  ``MAX_ELEMENTS`` first loses its furniture (comments, menus, related lists)
  and, if still too big, is read flat too. At most ``MAX_TEXT`` characters
  are returned.
- Output holds no NUL, C0/C1 controls (other than the paragraph breaks),
  surrogates or Unicode non-characters.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from html import unescape
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html

from monitor.exceptions import MonitorError
from monitor.text import primary_subtag

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_TEXT",
    "PageError",
    "PageText",
    "decode",
    "extract_page",
    "flatten",
    "nesting_depth",
]

#: Bytes of a page that are read; the rest is ignored. A news article is far
#: smaller (typically 50-500 KB with its scripts); this bounds parse time.
MAX_BYTES = 2_000_000
#: Deepest element nesting kept as is. libxml2 abandons a document at 256; real
#: pages stay under 60. Deeper tags are dropped (their text is kept).
MAX_DEPTH = 100
#: Elements trafilatura is given at most: its time grows faster than linearly
#: (about 1 s at 20,000 elements, 24 s at 150,000 on a 2-core machine); a news
#: page has 1,000-5,000. A bigger tree first loses its furniture (comments,
#: menus, related lists); if still too big it is read by the linear flat-text
#: fallback instead.
MAX_ELEMENTS = 20_000
#: Characters of text returned at most (cut at a paragraph): about 15,000 words.
MAX_TEXT = 100_000
#: How far into the body a charset declaration is looked for.
SNIFF_BYTES = 4096
#: Longest image URL accepted (a data: URL or junk would be far longer).
MAX_URL = 2048

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "application/xml", "text/xml"})
_MAGIC = (
    b"%PDF-",
    b"\x89PNG",
    b"GIF87a",
    b"GIF89a",
    b"\xff\xd8\xff",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"BZh",
    b"7z\xbc\xaf",
    b"RIFF",
    b"OggS",
    b"ID3",
    b"\x00\x00\x01\x00",
    b"wOFF",
    b"wOF2",
    b"\xd0\xcf\x11\xe0",  # OLE (old Office documents)
    b"{\\rtf",
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:+-]{1,40})""", re.I)
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,500}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:+-]{1,40})""", re.I
)
_XML_ENCODING = re.compile(
    rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9_.:+-]{1,40})"""
)
# WHATWG: these labels mean a superset that browsers (and sites) actually use.
_LABEL_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-sjis": "shift_jis",
    "x-cp1251": "cp1251",
    "x-cp1256": "cp1256",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
}
_NOT_IN_META = frozenset({"utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be"})

# Everything a reader should never receive: controls (except \t \n), surrogates,
# non-characters (U+FDD0..U+FDEF and the last two code points of every plane).
_NONCHARS = "".join(
    f"{chr(0xFFFE + plane * 0x10000)}{chr(0xFFFF + plane * 0x10000)}" for plane in range(17)
)
_JUNK = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef" + re.escape(_NONCHARS) + "]"
)
_CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));?")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")

_IMAGE_KEYS = (
    "og:image:secure_url",
    "og:image:url",
    "og:image",
    "twitter:image",
    "twitter:image:src",
)
_LANG = re.compile(r"[a-z]{2,3}")


class PageError(MonitorError):
    """An article page that cannot give text; ``reason`` says why ("not html", "no text")."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True)
class PageText:
    """What a page says: its main text (paragraphs split by blank lines, "" when none)."""

    text: str
    title: str
    image: str | None
    language: str | None


def extract_page(body: bytes, url: str, content_type: str | None = None) -> PageText:
    """The article in ``body`` (fetched from ``url``), without the site around it.

    Raises ``PageError("not html")`` for another media type or a binary body and
    ``PageError("no text")`` for an empty one; an HTML page without an article
    gives ``text == ""`` (its title and image may still be useful).
    """
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime and mime not in _HTML_TYPES:
        raise PageError("not html", f"not an HTML page: {mime}")
    capped = body[:MAX_BYTES]
    if not capped or capped.isspace():
        raise PageError("no text", "empty page")
    if _bom_encoding(capped[:4]) is None and _looks_binary(capped.lstrip()[:SNIFF_BYTES]):
        raise PageError("not html", "binary content")
    html = decode(capped, content_type)
    if "<" not in html.lstrip()[:SNIFF_BYTES] and mime not in _HTML_TYPES:
        raise PageError("not html", "no markup")
    html = _sanitize(html)
    if nesting_depth(html, MAX_DEPTH + 1) > MAX_DEPTH:
        html = flatten(html, MAX_DEPTH)
    tree = _parse(html)
    if tree is None:
        return PageText(text=_cap(_flat_text(html)), title="", image=None, language=None)
    metas = _metas(tree)
    title = _title(tree, metas)
    image = _image(metas, url)
    language = _language(tree)
    if _size(tree) > MAX_ELEMENTS:
        _prune_furniture(tree)  # a big page is usually big for its comments and menus
    if _size(tree) > MAX_ELEMENTS:
        text = _flat_text(html)
    else:
        _unwrap_layout_tables(tree)
        text = _main_text(tree, url, title, **_OPTIONS)
    return PageText(text=_cap(text), title=title, image=image, language=language)


#: trafilatura options, chosen with bench/extract.py (which varies them here).
_OPTIONS: dict[str, bool] = {"favor_precision": True, "include_tables": True, "fast": False}


# --- decoding -------------------------------------------------------------------------


def decode(body: bytes, content_type: str | None = None) -> str:
    """``body`` as text: BOM, then the header's charset, then the page's own, else UTF-8."""
    encoding = _bom_encoding(body[:4])
    if encoding is not None:
        return body[len(_bom_of(encoding)) :].decode(encoding, errors="replace")
    declared = None
    if content_type:
        m = _CT_CHARSET.search(content_type)
        declared = _codec(m.group(1)) if m else None
    if declared is None:
        head = body[:SNIFF_BYTES]
        found = _XML_ENCODING.match(head) or _META_CHARSET.search(head)
        if found:
            declared = _codec(found.group(1).decode("ascii", "replace"))
            if declared in _NOT_IN_META:  # the bytes in hand are not UTF-16 if we can read this
                declared = "utf-8"
    return body.decode(declared or "utf-8", errors="replace")


def _bom_encoding(head: bytes) -> str | None:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return None


def _bom_of(encoding: str) -> bytes:
    return next(bom for bom, name in _BOMS if name == encoding)


def _codec(label: str) -> str | None:
    """A Python codec name for a charset label, or None when unknown or not a text codec."""
    label = label.strip().lower()
    label = _LABEL_ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):  # e.g. base64, rot13, zlib
        return None
    return _LABEL_ALIASES.get(info.name, info.name.replace("-", "_"))


def _looks_binary(head: bytes) -> bool:
    if head.lstrip().startswith(_MAGIC) or head.startswith(_MAGIC):
        return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls > len(head) // 20


# --- nesting --------------------------------------------------------------------------

_TAG = re.compile(r"<(?:(!--)|([!?])|(/?)([A-Za-z][A-Za-z0-9:-]*))")
_RAW = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext"}
)
_VOID = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta",
        "param", "source", "track", "wbr", "basefont", "bgsound", "frame", "isindex",
    }
)  # fmt: skip
# An opening tag implicitly closes these when they are the current element.
_IMPLIED = {
    "p": frozenset({"p"}),
    "li": frozenset({"li", "p"}),
    "dt": frozenset({"dt", "dd", "p"}),
    "dd": frozenset({"dt", "dd", "p"}),
    "option": frozenset({"option"}),
    "tr": frozenset({"tr", "td", "th"}),
    "td": frozenset({"td", "th"}),
    "th": frozenset({"td", "th"}),
    "tbody": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th"}),
    "thead": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th"}),
    "tfoot": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th"}),
}
_CLOSES_P = frozenset({"p"})
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _tokens(html: str) -> list[tuple[int, int, str, str]]:
    """Tags of ``html`` as (start, end, kind, name), kind one of open/close/void/other.

    Linear: every search starts where the last one ended. Comments, doctypes and
    raw-text elements (script, style …) are single "other" tokens.
    """
    low = html.translate(_ASCII_LOWER)  # same length, so offsets agree
    out: list[tuple[int, int, str, str]] = []
    pos, size = 0, len(html)
    while pos < size:
        m = _TAG.search(low, pos)
        if m is None:
            break
        start = m.start()
        if m.group(1):  # <!-- … -->
            end = low.find("-->", m.end())
            end = size if end < 0 else end + 3
            out.append((start, end, "other", ""))
        elif m.group(2):  # <!doctype …>, <?xml …?>
            end = low.find(">", m.end())
            end = size if end < 0 else end + 1
            out.append((start, end, "other", ""))
        else:
            name = m.group(4)
            end = low.find(">", m.end())
            end = size if end < 0 else end + 1
            if m.group(3):
                out.append((start, end, "close", name))
            elif name in _RAW:
                close = low.find("</" + name, end)
                close_end = size if close < 0 else low.find(">", close)
                end = size if close_end < 0 else close_end + 1
                out.append((start, end, "other", name))
            elif name in _VOID or low[end - 2 : end] == "/>":
                out.append((start, end, "void", name))
            else:
                out.append((start, end, "open", name))
        pos = end
    return out


class _Stack:
    """Open elements as a parser would keep them, approximately (implied ends included)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bool]] = []  # (name, kept in the output)
        self.counts: dict[str, int] = {}

    def open(self, name: str, kept: bool) -> None:
        implied = _IMPLIED.get(name, _CLOSES_P)
        while self.items and self.items[-1][0] in implied:
            self._pop()
        self.items.append((name, kept))
        self.counts[name] = self.counts.get(name, 0) + 1

    def close(self, name: str) -> bool | None:
        """Close ``name`` and whatever is open inside it; whether it was kept (None: not open)."""
        if not self.counts.get(name):
            return None
        while True:
            popped, kept = self._pop()
            if popped == name:
                return kept

    def _pop(self) -> tuple[str, bool]:
        name, kept = self.items.pop()
        self.counts[name] -= 1
        return name, kept


def nesting_depth(html: str, stop: int | None = None) -> int:
    """The deepest element nesting of ``html`` (stops counting at ``stop``); linear."""
    stack = _Stack()
    deepest = 0
    for _start, _end, kind, name in _tokens(html):
        if kind == "open":
            stack.open(name, True)
            deepest = max(deepest, len(stack.items))
            if stop is not None and deepest >= stop:
                return deepest
        elif kind == "close":
            stack.close(name)
    return deepest


def flatten(html: str, limit: int) -> str:
    """``html`` with every tag nested deeper than ``limit`` removed, its text kept; linear."""
    stack = _Stack()
    parts: list[str] = []
    pos = 0
    for start, end, kind, name in _tokens(html):
        parts.append(html[pos:start])
        pos = end
        if kind == "open":
            kept = len(stack.items) < limit
            stack.open(name, kept)
            if kept:
                parts.append(html[start:end])
        elif kind == "close":
            if stack.close(name) is not False:
                parts.append(html[start:end])
        else:
            parts.append(html[start:end])
    parts.append(html[pos:])
    return "".join(parts)


# --- parsing and extraction -----------------------------------------------------------


def _parse(html: str) -> lxml.html.HtmlElement | None:
    """The document tree, or None when libxml2 gave up on it (a resource limit)."""
    parser = lxml.html.HTMLParser(collect_ids=False, remove_comments=True, remove_pis=True)
    try:
        tree = lxml.etree.fromstring(html, parser)
    except (lxml.etree.ParserError, ValueError):
        # ValueError: an XML encoding declaration in a str; parse without it.
        try:
            tree = lxml.etree.fromstring(re.sub(r"^\s*<\?xml[^>]*>", "", html), parser)
        except (lxml.etree.ParserError, ValueError):
            return None
    if tree is None or any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):
        return None
    return tree


def _sanitize(html: str) -> str:
    """``html`` without junk characters, raw or as character references.

    lxml refuses to build elements holding them, and trafilatura then returns
    nothing for the whole page; a reader never wants them anyway.
    """
    return _CHAR_REF.sub(_junk_ref, _JUNK.sub("", html))


def _junk_ref(m: re.Match[str]) -> str:
    code = int(m.group(1), 16) if m.group(1) else int(m.group(2))
    if code > 0x10FFFF or _JUNK.match(chr(code)):
        return ""
    return m.group(0)


def _clean(text: str) -> str:
    return _JUNK.sub("", text)


def _fold(text: str) -> str:
    return " ".join(_clean(text).split())


def _cap(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    cut = text.rfind("\n\n", 0, MAX_TEXT)
    return text[: cut if cut > 0 else MAX_TEXT].rstrip()


_LAYOUT_MARKERS = ("p", "div", "table", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "article")
_TABLE_PARTS = frozenset({"table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption"})


def _unwrap_layout_tables(tree: lxml.html.HtmlElement) -> None:
    """Turn tables used for page layout into divs, so their article is not dropped as a table.

    A table holding paragraphs, blocks or other tables lays out a page; a data
    table holds cells of text. Each marker looks up to its nearest table only
    (lxml walks the ancestors in C), so this is linear in the elements times a
    depth that the nesting cap bounds.
    """
    layout: set[lxml.html.HtmlElement] = set()
    for marker in tree.iter(*_LAYOUT_MARKERS):
        table = next(marker.iterancestors("table"), None)
        if table is not None:
            layout.add(table)
    if not layout:
        return
    parts = [
        el
        for el in tree.iter(*_TABLE_PARTS)
        if (el if el.tag == "table" else next(el.iterancestors("table"), None)) in layout
    ]
    for el in parts:  # renamed after the walk, so every lookup above saw the original tags
        el.tag = "div"


def _size(tree: lxml.html.HtmlElement) -> int:
    return sum(1 for _ in tree.iter())


_FURNITURE_TAGS = ("nav", "aside", "footer", "form", "noscript", "template", "svg", "select")
# A class or id token that starts with one of these names the site's furniture
# ("comment-list", "Comments_root", "related-news"); "has-comments" does not.
_FURNITURE_TOKEN = re.compile(
    r"(?:^|\s)(?:comment|related|share|sharing|social|cookie|consent|newsletter|subscribe|"
    r"sidebar|widget|menu|breadcrumb|promo|advert|banner|popular|most-read|mostread|footer)",
    re.I,
)


def _prune_furniture(tree: lxml.html.HtmlElement) -> None:
    """Drop navigation, comments, related lists and the like from an oversized tree; linear."""
    doomed = [
        el
        for el in tree.iter()
        if isinstance(el.tag, str)
        and (
            el.tag in _FURNITURE_TAGS
            or _FURNITURE_TOKEN.search(el.get("class") or "")
            or _FURNITURE_TOKEN.search(el.get("id") or "")
        )
    ]
    for el in doomed:
        parent = el.getparent()
        if parent is not None:
            parent.remove(el)  # its tail text goes too: between furniture, it is furniture


def _main_text(
    tree: lxml.html.HtmlElement,
    url: str,
    title: str,
    *,
    favor_precision: bool,
    include_tables: bool,
    fast: bool,
) -> str:
    import trafilatura  # ~0.2 s of imports: paid by the first page only, not at start-up

    raw = trafilatura.extract(
        tree,
        url=url,
        fast=fast,
        favor_precision=favor_precision,
        include_comments=False,
        include_tables=include_tables,
        include_images=False,
        include_links=False,
        deduplicate=False,
        output_format="txt",
    )
    paragraphs = [_SPACES.sub(" ", _clean(line)).strip() for line in (raw or "").splitlines()]
    paragraphs = [p for p in paragraphs if p]
    if paragraphs and title and paragraphs[0].casefold() == title.casefold():
        paragraphs = paragraphs[1:]
    return "\n\n".join(paragraphs)


def _metas(tree: lxml.html.HtmlElement) -> dict[str, str]:
    """The page's ``<meta property|name=… content=…>`` values, the first of each key."""
    found: dict[str, str] = {}
    for el in tree.iter("meta"):
        value = (el.get("content") or "").strip()
        for key in (el.get("property"), el.get("name")):
            if key and value:
                found.setdefault(key.strip().lower(), value)
    return found


def _title(tree: lxml.html.HtmlElement, metas: dict[str, str]) -> str:
    """og:title, else the first <h1>, else <title>: the headline without the site's name."""
    found = metas.get("og:title") or metas.get("twitter:title")
    if not found:
        for tag in ("h1", "title"):
            el = next(tree.iter(tag), None)
            if el is not None and _fold(el.text_content()):
                found = el.text_content()
                break
    return _fold(found or "")[:1000]


def _image(metas: dict[str, str], url: str) -> str | None:
    """The page's lead image as an absolute http(s) URL."""
    for key in _IMAGE_KEYS:
        value = metas.get(key)
        if not value:
            continue
        try:
            absolute = urljoin(url, _clean(value).strip())
            parts = urlsplit(absolute)
        except ValueError:
            continue
        if (
            parts.scheme in ("http", "https")
            and parts.hostname
            and len(absolute) <= MAX_URL
            and not any(c.isspace() for c in absolute)
            and absolute != url  # "https://" or "?" resolve to the page itself
        ):
            return absolute
    return None


def _language(tree: lxml.html.HtmlElement) -> str | None:
    """The primary subtag of ``<html lang>`` ("ar" for "ar-SY"), lower case."""
    root = tree.getroottree().getroot()
    value = root.get("lang") or root.get("xml:lang") or ""  # the HTML parser keeps "xml:" as is
    primary = primary_subtag(value)
    return primary if _LANG.fullmatch(primary) else None


_FLAT_SKIP = frozenset({"nav", "header", "footer", "aside", "form", "noscript", "template", "svg"})
_FLAT_BLOCK = frozenset(
    {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article"}
)
_FLAT_FURNITURE = re.compile(
    r"""\b(?:class|id)\s*=\s*["']?[^"'>]{0,200}?"""
    r"(?:comment|related|share|social|cookie|consent|newsletter|subscribe|sidebar|widget|"
    r"menu|nav|footer|header|breadcrumb|promo|advert|banner|popular|most-read|tags)",
    re.I,
)


def _flat_text(html: str) -> str:
    """Text outside the site's furniture, long lines only, without building a tree.

    The fallback for pages the parser refuses or that are too big to extract
    properly; linear, like the scan it reuses. Furniture is recognised by tag
    (nav, footer, aside …) and by class or id (comments, related, share …).
    """
    stack = _Stack()
    parts: list[str] = []
    pos = 0
    for start, end, kind, name in _tokens(html):
        if not stack.items or stack.items[-1][1]:
            parts.append(html[pos:start])
        pos = end
        if kind == "open":
            inside = not stack.items or stack.items[-1][1]
            furniture = name in _FLAT_SKIP or _FLAT_FURNITURE.search(html, start, end) is not None
            stack.open(name, inside and not furniture)
        elif kind == "close":
            stack.close(name)
        if name in _FLAT_BLOCK:
            parts.append("\n")
    if not stack.items or stack.items[-1][1]:
        parts.append(html[pos:])
    text = "".join(parts)
    lines = (_SPACES.sub(" ", _clean(unescape(line))).strip() for line in text.split("\n"))
    return "\n\n".join(line for line in lines if len(line) >= 80)
