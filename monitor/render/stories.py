"""The "Also:" line naming a story's other sources (pure).

``Also: TASS · SANA +3`` — each name linked to its report, oldest first and
newest last; a name reported several times is listed once (linked to its
latest report). Names that do not fit the room left in the message (4096
code points after parsing, 32768 bytes before) or past ``MAX_NAMES`` are
counted in ``+N`` instead, so an edited alert never breaks Telegram's limits
and keeps its text stable once full (later edits only raise the count).

Used three ways: appended to the first alert when it is edited
(``edited_alert``), alone as a short reply to it (``story_reply``), and on the
story's line in a digest (``also_line`` with a small room).
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.render.telegram_text import (
    FSI,
    HREF_MAX,
    MAX_HTML_BYTES,
    MAX_MESSAGE_LENGTH,
    PDI,
    clean,
    esc,
    href_attr,
    safe_link,
    truncate,
)
from monitor.text import primary_subtag

__all__ = [
    "ALSO_LABELS",
    "MAX_NAMES",
    "AlsoLine",
    "StorySource",
    "also_line",
    "edited_alert",
    "plain_length",
    "story_reply",
]

MAX_NAMES = 8  # names listed before the rest are only counted
NAME_MAX = 40  # a source name is cut to this many code points
ALSO_LABELS = {"en": "Also", "ar": "أيضًا", "ru": "Также"}
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class StorySource:
    """Another outlet that reported the story: its display name and article link."""

    name: str
    link: str | None = None


@dataclass(frozen=True)
class AlsoLine:
    """The line as Telegram HTML and console text, with what Telegram will count."""

    html: str
    text: str
    plain_len: int  # code points after parsing
    shown: int  # distinct names listed


def plain_length(html_text: str) -> int:
    """Code points Telegram counts once it has parsed HTML that we rendered ourselves
    (tags removed, entities read as one character)."""
    return len(html_lib.unescape(_TAG.sub("", html_text)))


def _label(language: str | None) -> str:
    return ALSO_LABELS.get(primary_subtag(language) or "en", ALSO_LABELS["en"])


def _distinct(sources: Sequence[StorySource]) -> list[tuple[str, str | None, int]]:
    """(name, latest link, reports) per distinct name, in order of first report."""
    names: dict[str, str] = {}
    links: dict[str, str | None] = {}
    counts: dict[str, int] = {}
    for source in sources:
        name = truncate(clean(source.name)[0], NAME_MAX) or "?"
        key = name.casefold()
        names.setdefault(key, name)
        links[key] = source.link or links.get(key)
        counts[key] = counts.get(key, 0) + 1
    return [(names[k], links[k], counts[k]) for k in names]


def also_line(
    sources: Sequence[StorySource],
    total: int | None = None,
    language: str | None = "en",
    room: int = MAX_MESSAGE_LENGTH,
    room_bytes: int = MAX_HTML_BYTES,
    max_names: int = MAX_NAMES,
) -> AlsoLine | None:
    """``Also: A · B +N`` within ``room`` code points and ``room_bytes`` bytes of HTML.

    ``total`` counts every later report (``sources`` may hold only the newest of
    them); reports not represented by a listed name make the ``+N``. None when
    there is nothing to say or not even the label fits.
    """
    total = max(total if total is not None else len(sources), len(sources))
    if total <= 0:
        return None
    label = _label(language) + ":"
    names = _distinct(sources)
    html_parts: list[str] = []
    text_parts: list[str] = []
    plain = len(label)
    size = len(esc(label).encode("utf-8"))
    represented = 0
    listed = 0
    for index, (name, link, count) in enumerate(names):
        if listed >= max_names:
            break
        rest = total - represented - count
        suffix = len(f" +{rest}") if rest > 0 else 0
        href = safe_link(link)
        shown_name = f"{FSI}{name}{PDI}"
        piece = esc(shown_name)
        if href and len(href) <= HREF_MAX:
            piece = f'<a href="{href_attr(href)}">{piece}</a>'
        sep = " " if index == 0 else " · "
        add_plain = len(sep) + len(shown_name)
        add_size = len((sep + piece).encode("utf-8"))
        if plain + add_plain + suffix > room or size + add_size + suffix > room_bytes:
            break
        html_parts.append(sep + piece)
        text_parts.append(sep + name)
        plain += add_plain
        size += add_size
        represented += count
        listed += 1
    rest = total - represented
    more = f" +{rest}" if rest > 0 else ""
    if plain + len(more) > room or size + len(more) > room_bytes:
        return None
    html_text = esc(label) + "".join(html_parts) + more
    text = label + "".join(text_parts) + more
    return AlsoLine(html_text, text, plain + len(more), listed)


def edited_alert(
    alert_html: str,
    alert_text: str,
    sources: Sequence[StorySource],
    total: int | None = None,
    language: str | None = "en",
) -> tuple[str, str] | None:
    """The first alert with the "Also:" line under it, within Telegram's limits
    (None when not even ``Also: +N`` fits: the message then stays as it is)."""
    room = MAX_MESSAGE_LENGTH - plain_length(alert_html) - 2
    room_bytes = MAX_HTML_BYTES - len(alert_html.encode("utf-8")) - 2
    line = also_line(sources, total, language, room, room_bytes)
    if line is None:
        return None
    return f"{alert_html}\n\n{line.html}", f"{alert_text}\n\n{line.text}"


def story_reply(
    sources: Sequence[StorySource], total: int | None = None, language: str | None = "en"
) -> tuple[str, str] | None:
    """A short reply to the first alert naming the sources that reported it since."""
    line = also_line(sources, total, language)
    if line is None:
        return None
    return line.html, line.text
