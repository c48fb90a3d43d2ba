"""Telegram text primitives: the one home for escaping, caps, isolates, links and times.

Used by the alert renderer, digests, operator alerts and the bot's replies, so
every message follows the same rules:

* Feed text is cleaned and trimmed as *plain text* first and escaped last, so a
  cut can never fall inside a tag or an entity; only ``& < >`` (and ``"`` in an
  ``href``) are escaped, which is all Telegram's HTML parser needs.
* Telegram removes U+2028–U+202E after parsing, so bidi embeddings are useless;
  isolates (FSI/LRI … PDI, U+2066–U+2069) survive and keep an Arabic name from
  reordering an English label or a date next to it.
* Lengths are counted as Telegram counts them: code points after entity
  parsing (not UTF-16 units), at most ``MAX_MESSAGE_LENGTH``; the submitted
  HTML stays under ``MAX_HTML_BYTES`` UTF-8 bytes.
"""

from __future__ import annotations

import html
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "ELLIPSIS",
    "FSI",
    "GRAPHEME_MAX",
    "HREF_MAX",
    "LRI",
    "MAX_CAPTION_LENGTH",
    "MAX_HTML_BYTES",
    "MAX_MESSAGE_LENGTH",
    "PDI",
    "Segment",
    "bold",
    "clean",
    "cut_before",
    "esc",
    "esc_segment",
    "format_time",
    "format_utc",
    "href_attr",
    "isolate",
    "joins_previous",
    "link_text",
    "merge_spans",
    "retry_after_seconds",
    "safe_link",
    "splits_grapheme",
    "truncate",
]

#: Telegram's limit on a message, in code points after entity parsing.
MAX_MESSAGE_LENGTH = 4096
#: Telegram's limit on a photo caption, counted the same way (sendPhoto ``caption``).
MAX_CAPTION_LENGTH = 1024
#: Telegram's limit on the submitted text, in UTF-8 bytes, before parsing.
MAX_HTML_BYTES = 32768
#: Longer links are shown in console text but not linked in Telegram.
HREF_MAX = 2048

ELLIPSIS = "…"
FSI, LRI, PDI = "\u2068", "\u2066", "\u2069"  # first-strong / left-to-right isolate, pop


@dataclass(frozen=True)
class Segment:
    """A run of text; ``bold`` marks a hit."""

    text: str
    bold: bool = False


def esc(text: str) -> str:
    """``text`` escaped for Telegram HTML outside attributes (``& < >``)."""
    return html.escape(text, quote=False)


def href_attr(url: str) -> str:
    """``url`` escaped for a double-quoted ``href`` attribute."""
    return html.escape(url, quote=True)


def bold(text: str) -> str:
    """``text`` escaped and in bold."""
    return f"<b>{esc(text)}</b>"


def esc_segment(segment: Segment, with_bold: bool = True) -> str:
    """One segment as HTML; its bold is dropped when ``with_bold`` is false."""
    if segment.bold and with_bold:
        return bold(segment.text)
    return esc(segment.text)


def isolate(text: str, ltr: bool = False) -> str:
    """``text`` in a bidi isolate: first-strong (FSI) for feed text, LRI for dates and URLs."""
    return f"{LRI if ltr else FSI}{text}{PDI}"


def clean(text: str, spans: Sequence[tuple[int, int]] = ()) -> tuple[str, list[tuple[int, int]]]:
    """Collapse whitespace, drop what Telegram would drop or reject, and move ``spans`` along.

    Control characters and line breaks become one space; ``\\r``, bidi
    embeddings/overrides, isolates, BOMs, unpaired surrogates and the three
    combining marks Telegram deletes are removed (a feed's own unbalanced
    isolate could swallow our layout).
    """
    out: list[str] = []
    pos = [0] * (len(text) + 1)
    last_space = True  # also strips leading whitespace
    for i, ch in enumerate(text):
        pos[i] = len(out)
        code = ord(ch)
        if ch.isspace() or code < 0x20 or 0x7F <= code <= 0x9F:
            if not last_space:
                out.append(" ")
                last_space = True
            continue
        if (
            0x202A <= code <= 0x202E
            or 0x2066 <= code <= 0x2069
            or code in (0xFEFF, 0x0333, 0x033F, 0x030A)  # Telegram drops these three marks
            or 0xD800 <= code <= 0xDFFF
        ):
            continue
        out.append(ch)
        last_space = False
    pos[len(text)] = len(out)
    if out and out[-1] == " ":
        out.pop()
    n = len(out)
    moved = []
    for start, end in spans:
        a, b = min(pos[start], n), min(pos[end], n)
        # a hit never starts or ends on the collapsed space
        while a < b and out[a] == " ":
            a += 1
        while b > a and out[b - 1] == " ":
            b -= 1
        if a < b:
            moved.append((a, b))
    return "".join(out), moved


def joins_previous(ch: str) -> bool:
    """Whether ``ch`` belongs to the grapheme before it (marks, joiners, selectors, skin tones)."""
    code = ord(ch)
    return (
        unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or code in (0x200C, 0x200D)
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
    )


def merge_spans(spans: Sequence[tuple[int, int]], touching: bool = True) -> list[tuple[int, int]]:
    """Sorted spans with overlaps (and, if ``touching``, adjacent spans) joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and (start < merged[-1][1] or (touching and start == merged[-1][1])):
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


#: How far a cut steps back to keep a grapheme whole; a longer one is hostile text
#: (the longest real emoji sequences, skin tones and all, are about 11 code points).
GRAPHEME_MAX = 32
_ZWJ = "\u200d"


def _pictographic(ch: str) -> bool:
    """Roughly Unicode's Extended_Pictographic: what a zero-width joiner glues on."""
    code = ord(ch)
    return (
        code >= 0x1F000
        or 0x2190 <= code <= 0x21FF
        or 0x2300 <= code <= 0x23FF
        or 0x2600 <= code <= 0x27BF
        or 0x2B00 <= code <= 0x2BFF
        or code in (0xA9, 0xAE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D, 0x3297, 0x3299)
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def splits_grapheme(text: str, at: int) -> bool:
    """Whether a cut before ``text[at]`` splits what a reader sees as one character:
    a base and its marks, an emoji joined by ZWJ, or a flag's two regional letters."""
    if at <= 0 or at >= len(text):
        return False
    ch, before = text[at], text[at - 1]
    if joins_previous(ch) or (before == _ZWJ and _pictographic(ch)):
        return True
    if _regional(ch) and _regional(before):
        run, i = 0, at - 1  # flags pair up from the start of the run
        while i >= 0 and run < 4096 and _regional(text[i]):
            run, i = run + 1, i - 1
        return run % 2 == 1
    return False


def cut_before(text: str, limit: int, floor: int = 0) -> int:
    """An index in ``floor..limit`` at a word boundary, else one that starts a grapheme.

    With no grapheme start within ``GRAPHEME_MAX`` (a run of thousands of marks),
    the cut stays at ``limit`` rather than lose the whole run.
    """
    if limit >= len(text):
        return len(text)
    space = text.rfind(" ", floor, limit + 1)
    if space > floor + (limit - floor) * 0.6:
        return space
    cut = limit
    while cut > floor and limit - cut < GRAPHEME_MAX and splits_grapheme(text, cut):
        cut -= 1
    return limit if cut > floor and splits_grapheme(text, cut) else cut


def truncate(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` code points, cut at a word and ended with ``…``."""
    if len(text) <= limit:
        return text
    return text[: cut_before(text, limit - 1)].rstrip() + ELLIPSIS


def safe_link(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) link, with spaces and controls percent-encoded."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    out = []
    for ch in url:
        code = ord(ch)
        if code <= 0x20 or code == 0x7F or ch in '"<>\\^`{|}' or 0x80 <= code <= 0x9F:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        elif 0xD800 <= code <= 0xDFFF or 0x2028 <= code <= 0x202E or 0x2066 <= code <= 0x2069:
            continue
        else:
            out.append(ch)
    return "".join(out)


def link_text(href: str) -> str:
    """A link as shown: host (without ``www.``) and path; the query stays in the href only."""
    parts = urlsplit(href)
    host = parts.netloc.rsplit("@", 1)[-1]
    host = host[4:] if host.lower().startswith("www.") else host
    path = parts.path.rstrip("/")
    return host + path


def format_time(moment: datetime | None, timezone: str) -> str:
    """``2026-11-29 06:22 MSK`` in ``timezone`` (``UTC+03`` when the zone has no letters)."""
    if moment is None:
        return ""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    abbr = local.strftime("%Z")
    if not abbr.isalpha():
        offset = local.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        hours, mins = divmod(abs(minutes), 60)
        abbr = f"UTC{sign}{hours:02d}" + (f":{mins:02d}" if mins else "")
    return f"{local:%Y-%m-%d %H:%M} {abbr}"


def format_utc(moment: datetime | None, never: str = "never") -> str:
    """``2026-11-28 12:00 UTC``, or ``never`` for None (operator-facing times)."""
    if moment is None:
        return never
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def retry_after_seconds(exc: object) -> float:
    """A flood-control answer's ``retry_after`` in seconds.

    python-telegram-bot 22 gives an int or a timedelta (and warns that the int
    will become a timedelta); either reads as seconds here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = getattr(exc, "retry_after", 0)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)
