"""OPML lists in and out: ``monitor feeds import FILE.opml`` and ``monitor feeds export``.

Import reads the shapes Feedly, Inoreader, Miniflux and FreshRSS export
(folders as outlines holding feed outlines; OPML 1.0 or 2.0; extra namespaced
attributes ignored) and prints YAML ``feeds:`` entries:

- one entry per distinct ``xmlUrl`` (compared as canonical URLs; the first
  outline wins), at any depth up to ``MAX_DEPTH``;
- ``id``: an ASCII slug of the title (Cyrillic and Arabic transliterated,
  other scripts reduced to their ASCII letters), else of the URL's host;
  made unique with ``-2``, ``-3`` … and valid for the configuration's id
  pattern (letters, digits, ``_ . -``, starting with a letter or digit);
- ``name``: the outline's ``title`` (else ``text``);
- ``tags``: the titles of the folders (parent outlines) it sits in, plus the
  OPML 2.0 ``category`` attribute's last path parts;
- outlines with neither ``xmlUrl`` nor children, and non-http(s) URLs, are
  skipped with a note (for stderr).

The XML is parsed by lxml with entities unresolved, no network, no DTD and no
huge-tree mode; malformed OPML raises ``OpmlError`` with a one-line message.

Export writes OPML 2.0: feeds grouped under an outline per first tag, every
tag also in ``category``, so import(export(feeds)) gives back the same URLs,
names and tags (tags holding "," or "/" are split by OPML's category syntax).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

import yaml
from lxml import etree

from monitor.articles import canonical_url
from monitor.exceptions import MonitorError
from monitor.models import FeedSource
from monitor.sources._html import clean

__all__ = [
    "MAX_DEPTH",
    "ImportResult",
    "ImportedFeed",
    "OpmlError",
    "export_opml",
    "feed_id",
    "feeds_yaml",
    "import_opml",
]

#: Bytes of an OPML file read at most.
MAX_OPML_BYTES = 10 * 1024 * 1024
#: Outline nesting followed at most (folders in folders …).
MAX_DEPTH = 16
#: Feeds imported at most.
MAX_FEEDS = 10_000
#: Characters of a derived id before its uniqueness suffix.
ID_MAX = 40

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # as monitor.config checks feed ids
_NON_ID = re.compile(r"[^a-z0-9]+")

_CYRILLIC_LATIN = (
    "a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o",
    "p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "-", "y", "-", "e",
    "yu", "ya", "i", "yi", "ye", "g", "u",
)  # fmt: skip
_CYRILLIC = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґў", _CYRILLIC_LATIN, strict=True))
_ARABIC = {
    "ا": "a", "أ": "a", "إ": "i", "آ": "a", "ء": "", "ؤ": "u", "ئ": "i", "ب": "b",
    "ت": "t", "ث": "th", "ج": "j", "ح": "h", "خ": "kh", "د": "d", "ذ": "dh", "ر": "r",
    "ز": "z", "س": "s", "ش": "sh", "ص": "s", "ض": "d", "ط": "t", "ظ": "z", "ع": "a",
    "غ": "gh", "ف": "f", "ق": "q", "ك": "k", "ل": "l", "م": "m", "ن": "n", "ه": "h",
    "ة": "a", "و": "w", "ي": "y", "ى": "a", "پ": "p", "چ": "ch", "ژ": "zh", "گ": "g",
    "ک": "k", "ی": "y", "٠": "0", "١": "1", "٢": "2", "٣": "3", "٤": "4", "٥": "5",
    "٦": "6", "٧": "7", "٨": "8", "٩": "9",
}  # fmt: skip


class OpmlError(MonitorError, ValueError):
    """The file is not OPML that can be read; the message is one line."""


@dataclass(frozen=True)
class ImportedFeed:
    """One feed found in an OPML file, ready for the configuration."""

    id: str
    url: str
    name: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    """YAML ``feeds:`` text for the configuration, the feeds it holds, and notes for stderr."""

    yaml: str
    feeds: tuple[ImportedFeed, ...]
    notes: tuple[str, ...] = ()


def import_opml(data: bytes, taken_ids: Collection[str] = ()) -> ImportResult:
    """Every distinct feed of an OPML document as YAML ``feeds:`` entries.

    ``taken_ids`` are ids already in the configuration: derived ids avoid them.
    """
    root = _parse(data)
    body = next((c for c in root if _local(c) == "body"), None)
    if body is None:
        raise OpmlError("not an OPML subscription list: it has no <body>")
    taken = {i.lower() for i in taken_ids}
    counters: dict[str, int] = {}
    feeds: list[ImportedFeed] = []
    notes: list[str] = []
    seen: dict[str, str] = {}
    # iterative walk: (outline, folder titles above it, depth)
    stack: list[tuple[etree._Element, tuple[str, ...], int]] = [
        (child, (), 1) for child in reversed(list(body)) if _local(child) == "outline"
    ]
    while stack:
        outline, folders, depth = stack.pop()
        title = _text(outline.get("title")) or _text(outline.get("text"))
        xml_url = _text(outline.get("xmlUrl") or outline.get("xmlurl"))
        children = [c for c in outline if _local(c) == "outline"]
        where = f"line {outline.sourceline}" if outline.sourceline else "outline"
        if not xml_url:
            if not children:
                notes.append(f"{where}: outline {title or '(untitled)'!r} has no xmlUrl: skipped")
            elif depth >= MAX_DEPTH:
                notes.append(f"{where}: folders nested deeper than {MAX_DEPTH}: skipped")
            else:
                inner = (*folders, title) if title else folders
                stack.extend((c, inner, depth + 1) for c in reversed(children))
            continue
        url = _feed_url(xml_url)
        if url is None:
            notes.append(f"{where}: {xml_url[:200]!r} is not an http(s) URL: skipped")
            continue
        key = canonical_url(url)
        if key in seen:
            notes.append(f"{where}: {url} is listed twice (kept as {seen[key]!r})")
            continue
        if len(feeds) >= MAX_FEEDS:
            notes.append(f"more than {MAX_FEEDS} feeds: the rest skipped")
            break
        tags = _unique((*folders, *_categories(outline.get("category"))))
        ident = _unique_id(title or "", url, taken, counters)
        taken.add(ident.lower())
        seen[key] = ident
        feeds.append(ImportedFeed(id=ident, url=url, name=title or None, tags=tags))
    return ImportResult(yaml=feeds_yaml(feeds), feeds=tuple(feeds), notes=tuple(notes))


def feeds_yaml(feeds: Iterable[ImportedFeed]) -> str:
    """``feeds:`` entries as YAML text (``id``, ``url``, ``name``, ``tags``)."""
    items = []
    for feed in feeds:
        item: dict[str, object] = {"id": feed.id, "url": feed.url}
        if feed.name:
            item["name"] = feed.name
        if feed.tags:
            item["tags"] = list(feed.tags)
        items.append(item)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when built with it
    return yaml.dump(
        {"feeds": items},
        Dumper=dumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=1000,
    )


def feed_id(title: str, url: str, taken: Collection[str] = ()) -> str:
    """An id for the configuration from a title (else the URL's host), unique among ``taken``
    (compared case-insensitively)."""
    return _unique_id(title, url, {t.lower() for t in taken}, {})


def _unique_id(title: str, url: str, taken: set[str], counters: dict[str, int]) -> str:
    """``feed_id`` against an already lower-cased ``taken``; ``counters`` remembers the last
    suffix per base so a thousand equal titles cost linear time."""
    base = _slug(title) or _slug(_host(url)) or "feed"
    base = base[:ID_MAX].strip("-") or "feed"
    ident, n = base, counters.get(base, 1)
    if n > 1:
        ident = f"{base}-{n}"
    while ident.lower() in taken:
        n += 1
        ident = f"{base}-{n}"
    counters[base] = n
    assert _ID.match(ident), ident
    return ident


def export_opml(
    feeds: Iterable[FeedSource], title: str = "monitor feeds", now: datetime | None = None
) -> bytes:
    """The feeds as an OPML 2.0 document (UTF-8 bytes)."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = _xml_text(title)
    etree.SubElement(head, "dateCreated").text = format_datetime(
        (now or datetime.now(UTC)).astimezone(UTC), usegmt=True
    )
    body = etree.SubElement(root, "body")
    folders: dict[str, etree._Element] = {}
    for feed in feeds:
        parent = body
        if feed.tags:
            first = _xml_text(feed.tags[0])
            if first not in folders:
                folders[first] = etree.SubElement(body, "outline", text=first, title=first)
            parent = folders[first]
        name = _xml_text(feed.name or feed.id)
        outline = etree.SubElement(parent, "outline")
        outline.set("type", "rss")
        outline.set("text", name)
        outline.set("title", name)
        outline.set("xmlUrl", _xml_text(feed.url))
        if feed.tags:
            outline.set(
                "category", ",".join("/" + _xml_text(t).replace(",", " ") for t in feed.tags)
            )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


# ---- helpers


def _parse(data: bytes) -> etree._Element:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise OpmlError("OPML must be given as bytes")
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(f"OPML file larger than {MAX_OPML_BYTES // (1024 * 1024)} MB")
    if not bytes(data).strip():
        raise OpmlError("the OPML file is empty")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(bytes(data), parser=parser)
    except etree.XMLSyntaxError as exc:
        message = " ".join(str(exc.msg or exc).split())
        raise OpmlError(f"not valid OPML (XML error at line {exc.lineno}): {message}") from exc
    except (ValueError, etree.LxmlError) as exc:
        raise OpmlError(f"not valid OPML: {' '.join(str(exc).split())}") from exc
    if root is None or _local(root) != "opml":
        found = _local(root) if root is not None else "nothing"
        raise OpmlError(f"not an OPML file: the root element is <{found}>, not <opml>")
    return root


def _local(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2].lower()


def _text(value: str | None) -> str:
    return " ".join(clean(value or "").split())[:500]


def _xml_text(value: str) -> str:
    """Text XML can hold: no control characters, no lone surrogates."""
    text = clean(value).encode("utf-8", "replace").decode("utf-8")
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def _feed_url(value: str) -> str | None:
    url = value.strip()
    if url.lower().startswith("feed://"):
        url = "http://" + url[len("feed://") :]
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in url:
        return None
    return url


def _categories(value: str | None) -> tuple[str, ...]:
    """OPML 2.0 ``category="/News/World,/Tech"`` → ("World", "Tech")."""
    if not value:
        return ()
    out = []
    for item in value.split(",")[:20]:
        last = _text(item.strip().rstrip("/").rpartition("/")[2])
        if last:
            out.append(last)
    return tuple(out)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        if value and value not in out:
            out.append(value)
    return tuple(out)


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def _slug(text: str) -> str:
    """ASCII letters and digits of a text, words joined by "-", lower case."""
    out = []
    for ch in text.lower():
        if ch in _CYRILLIC:
            mapped = _CYRILLIC[ch]
            out.append("" if mapped == "-" else mapped)
        elif ch in _ARABIC:
            out.append(_ARABIC[ch])
        elif ch.isascii():
            out.append(ch)
        elif unicodedata.category(ch).startswith("M") or ch == "\u0640":
            continue  # vowel marks and the Arabic tatweel belong to the letter before
        else:
            decomposed = unicodedata.normalize("NFKD", ch)
            ascii_part = decomposed.encode("ascii", "ignore").decode("ascii")
            out.append(ascii_part if ascii_part else " ")
    return _NON_ID.sub("-", "".join(out)).strip("-")
