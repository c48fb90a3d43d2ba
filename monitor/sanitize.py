"""Make text from outside safe once, at the edge, before any other stage sees it.

A feed may hold any character. Three kinds break things further on: surrogates
(lone halves of UTF-16 pairs; Python cannot encode them to UTF-8, so feedparser,
json and every database driver raise), NUL (PostgreSQL refuses it in text) and
the other characters XML 1.0 forbids (C0 controls except tab, line feed and
carriage return; the non-characters U+FFFE, U+FFFF, U+FDD0–U+FDEF and the last
two code points of every plane). They carry no meaning, so they are removed.

Two steps, both linear: ``scrub_char_refs`` drops numeric character references
to such code points from the raw bytes (``&#xD800;``, ``&#0;``) so the parsers
never produce them, and ``clean`` removes any that arrive as literal text.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TypeVar

__all__ = ["clean", "clean_fields", "is_allowed_code_point", "scrub_char_refs"]

_NONCHARACTERS = "".join(
    f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
)
#: Everything ``clean`` removes; a character class, so one linear pass.
BAD_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufdd0-\ufdef" + re.escape(_NONCHARACTERS) + "]"
)
# The same test in two fast passes: ``re`` scans a class of a few BMP ranges quickly but
# a class listing 34 astral code points slowly (about 10x), so the common text (no bad
# BMP character, no astral character at all) is told apart with two cheap searches.
_BAD_BMP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# A numeric character reference with bounded digits (leading zeros are legal in XML).
_CHAR_REF = re.compile(rb"&#(?:[xX]0*([0-9a-fA-F]{1,8})|0*([0-9]{1,10}));")

T = TypeVar("T")


def is_allowed_code_point(cp: int) -> bool:
    """False for the code points ``clean`` removes (and for anything past U+10FFFF)."""
    if cp > 0x10FFFF:
        return False
    return not BAD_CHARS.match(chr(cp))


def clean(text: str) -> str:
    """``text`` without surrogates, NUL, C0 controls (but \\t \\n \\r) and non-characters."""
    if _BAD_BMP.search(text) is None and _ASTRAL.search(text) is None:  # the common case
        return text  # no copy
    return BAD_CHARS.sub("", text)


def _ref(match: re.Match[bytes]) -> bytes:
    hex_digits, dec_digits = match.groups()
    cp = int(hex_digits, 16) if hex_digits is not None else int(dec_digits or b"0")
    return match.group() if is_allowed_code_point(cp) else b""


def scrub_char_refs(content: bytes) -> bytes:
    """Drop numeric character references to removed code points from an ASCII-compatible
    document, so one bad reference costs one character, not the whole feed."""
    if b"&#" not in content:
        return content
    return _CHAR_REF.sub(_ref, content)


def clean_fields(obj: T) -> T:
    """A copy of a frozen dataclass with ``clean`` applied to each ``str`` field."""
    assert dataclasses.is_dataclass(obj) and not isinstance(obj, type)
    changes = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, str):
            cleaned = clean(value)
            if cleaned is not value:
                changes[f.name] = cleaned
    return dataclasses.replace(obj, **changes) if changes else obj  # type: ignore[type-var]
