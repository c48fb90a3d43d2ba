"""Shared, bounded HTML handling for the source parsers (pure)."""

from __future__ import annotations

import re

from lxml import etree
from lxml import html as lxml_html

#: Bytes of a page that are parsed; the rest is ignored (the fetcher caps bodies too).
MAX_PAGE_BYTES = 8 * 1024 * 1024

BLOCK_TAGS = frozenset(
    (
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    )
)  # fmt: skip
_SKIP_TAGS = frozenset(("script", "style", "noscript", "template", "head", "title"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff\ufffd]")


def to_bytes(markup: bytes | str) -> tuple[bytes, str | None]:
    """Markup as bounded bytes and the encoding to parse it with (None: let libxml2 sniff).

    Text with lone surrogates is re-encoded with replacements: libxml2 would
    otherwise stop reading at the first one.
    """
    if isinstance(markup, str):
        data = markup.encode("utf-8", "replace")[:MAX_PAGE_BYTES]
        return data, "utf-8"
    data = bytes(markup[:MAX_PAGE_BYTES])
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a cut in the middle of a character at the cap is still UTF-8
        if exc.start < len(data) - 4:
            return data, None
    return data, "utf-8"


def parse_html(markup: bytes | str, encoding: str | None = None) -> etree._Element | None:
    """The document's root element, or None when there is nothing to parse."""
    data, sniffed = to_bytes(markup)
    if not data.strip():
        return None
    parser = lxml_html.HTMLParser(
        encoding=encoding or sniffed, remove_comments=True, remove_pis=True, no_network=True
    )
    try:
        root = lxml_html.document_fromstring(data, parser=parser)
    except (etree.ParserError, ValueError, LookupError):
        return None
    return root


def classes(element: etree._Element) -> list[str]:
    """The element's class names."""
    return (element.get("class") or "").split()


def clean(text: str) -> str:
    """Drop control characters (NUL included) and replacement marks."""
    return _CONTROL.sub("", text) if _CONTROL.search(text) else text


def element_text(
    element: etree._Element,
    skip_classes: frozenset[str] = frozenset(),
    limit: int = 100_000,
) -> str:
    """Readable text of an element: ``<br>`` and blocks become line breaks, spaces folded
    within lines, empty lines dropped; subtrees carrying a class in ``skip_classes``
    are left out. Iterative, so any nesting is fine; reading stops after about
    ``limit`` characters of markup text."""
    pieces: list[str] = []
    size = 0
    walker = etree.iterwalk(element, events=("start", "end"))
    for event, node in walker:
        if size > limit:
            break
        size += len(node.text or "") + len(node.tail or "") + 1
        tag = node.tag if isinstance(node.tag, str) else None
        if event == "start":
            if tag is None:
                continue
            if tag in _SKIP_TAGS or (skip_classes and skip_classes.intersection(classes(node))):
                walker.skip_subtree()  # its "end" event still comes and adds the tail
                continue
            if tag == "br" or tag in BLOCK_TAGS:
                pieces.append("\n")
            if tag == "img" and node.get("alt"):
                pieces.append(node.get("alt", ""))
            if node.text:
                pieces.append(node.text)
        else:
            if tag in BLOCK_TAGS:
                pieces.append("\n")
            if node is not element and node.tail:
                pieces.append(node.tail)
    return fold("".join(pieces))


def fold(text: str) -> str:
    """One line per paragraph, runs of Unicode whitespace as one space, no empty lines."""
    text = clean(text)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)
