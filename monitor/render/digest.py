"""Digests, per-hour caps and quiet hours: pure decisions with ``now`` as an argument.

Storage keeps the held alerts and the time of each channel's last digest.
Two callers ask these functions what to do:

* the sender (``deliver/sender.py``), for each alert as it leaves the outbox:
  ``delivery_decision`` — send it, send it without sound, or hold it for the
  channel's next digest;
* the worker (``flush_digests``, every 30 seconds and at the end of
  ``run --once``): ``digest_due`` — whether a channel's held alerts go out
  now — and ``render_digest`` — the held alerts as one or more messages.

The rules, in the order they are applied (``delivery_decision``):

0. A digest message itself is never held again; in quiet hours it goes silently.
1. ``priority: high`` is never held: not by digest mode, quiet hours or the
   cap.  During quiet hours it goes out *silently*, whatever ``quiet`` says —
   quiet hours decide the sound, a high rule decides the timing.
2. ``mode: digest`` holds everything else.
3. Quiet hours with ``quiet: hold`` hold everything else.
4. ``max_per_hour`` reached: the alert is held (it rolls into the next digest).
5. Quiet hours with ``quiet: silent``: sent without sound.

Digest periods are aligned to multiples of ``every`` counted from a fixed
origin in UTC (``1h`` → the top of each hour, ``1d`` → midnight UTC, ``7d`` →
Monday midnight UTC), so a restart never shifts them.  A boundary that passes during ``quiet: hold``
hours is not lost: the digest goes out as soon as the quiet hours end.

Quiet hours are wall-clock times in the channel's timezone and may wrap
midnight (``23:00-07:00``).  Across a DST change they follow the wall clock:
a quiet period that should end at a time the clock skips ends when the clock
jumps past it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.models import AlertKind, Channel, ChannelMode, Decision, Priority, QuietMode
from monitor.render.alert import LABELS, base_language, rule_names
from monitor.render.stories import StorySource, also_line
from monitor.render.telegram_text import (
    FSI,
    HREF_MAX,
    LRI,
    MAX_HTML_BYTES,
    MAX_MESSAGE_LENGTH,
    PDI,
    clean,
    esc,
    format_time,
    href_attr,
    safe_link,
    truncate,
)

__all__ = [
    "DIGEST_LABELS",
    "GRID_ORIGIN",
    "DigestItem",
    "QuietHours",
    "delivery_decision",
    "digest_due",
    "in_quiet_hours",
    "next_digest_at",
    "parse_quiet_hours",
    "quiet_ends_at",
    "render_digest",
]

SEND, SEND_SILENT, HOLD = Decision.SEND, Decision.SEND_SILENT, Decision.HOLD

#: The grid's origin: a Monday midnight UTC, so weekly digests start on Mondays.
GRID_ORIGIN = datetime(1970, 1, 5, tzinfo=UTC)
_QUIET_FORMAT = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*$")
_QUIET_MESSAGE = "quiet_hours must look like 23:00-07:00"
_DIGEST_TITLE_MAX = 200  # a digest line is a headline, not the article
_DIGEST_SOURCE_MAX = 60
_DIGEST_ALSO_MAX = 160  # a story's other sources on its digest line

#: Fixed digest labels per channel language (the alert's own labels are ``LABELS``).
DIGEST_LABELS: dict[str, dict[str, str]] = {
    "en": {"digest": "Digest"},
    "ar": {"digest": "الموجز"},
    "ru": {"digest": "Дайджест"},
}


# ---------------------------------------------------------------------------
# Quiet hours


@dataclass(frozen=True)
class QuietHours:
    """A daily wall-clock window ``[start, end)``; ``start > end`` wraps midnight."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        """Whether the wall-clock time ``local`` falls inside the window."""
        local = local.replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def parse_quiet_hours(text: str) -> QuietHours:
    """``"23:00-07:00"`` → ``QuietHours``; ``24:00`` is accepted as an end (midnight)."""
    found = _QUIET_FORMAT.match(text) if isinstance(text, str) else None
    if not found:
        raise ValueError(f"{_QUIET_MESSAGE}, not {text!r}")
    sh, sm, eh, em = (int(g) for g in found.groups())
    if eh == 24 and em == 0:
        eh = 0
    if not (0 <= sh <= 23 and 0 <= eh <= 23 and 0 <= sm <= 59 and 0 <= em <= 59):
        raise ValueError(f"{_QUIET_MESSAGE} (hours 00–23, minutes 00–59), not {text!r}")
    start, end = time(sh, sm), time(eh, em)
    if start == end:
        raise ValueError(f"{_QUIET_MESSAGE}: start and end must differ, not {text!r}")
    return QuietHours(start, end)


def in_quiet_hours(channel: Channel, now: datetime) -> bool:
    """Whether ``now`` is inside the channel's quiet hours, read in its timezone."""
    quiet = _quiet(channel)
    if quiet is None:
        return False
    return quiet.contains(_aware(now).astimezone(_zone(channel.timezone)).time())


def quiet_ends_at(channel: Channel, now: datetime) -> datetime:
    """The first instant (aware UTC) after ``now`` outside quiet hours; ``now`` if outside.

    Computed from the end's wall time on the next days, both DST readings of
    it, then narrowed minute by minute with a bisection, so an end inside a DST
    gap resolves to the moment the clock jumps.
    """
    now = _aware(now).astimezone(UTC)
    quiet = _quiet(channel)
    if quiet is None or not in_quiet_hours(channel, now):
        return now
    zone = _zone(channel.timezone)
    local_day = now.astimezone(zone).date()
    candidates = sorted(
        datetime.combine(local_day + timedelta(days=d), quiet.end, zone)
        .replace(fold=f)
        .astimezone(UTC)
        for d in range(3)
        for f in (0, 1)
    )
    hi = next(c for c in candidates if c > now and not in_quiet_hours(channel, c))
    # boundaries are whole minutes: bisect over minutes between now and the candidate
    lo = now.replace(second=0, microsecond=0)
    steps = int((hi - lo) / timedelta(minutes=1))
    low_step, high_step = 0, steps  # quiet at low_step (≤ now), not quiet at high_step
    while high_step - low_step > 1:
        mid = (low_step + high_step) // 2
        if in_quiet_hours(channel, lo + timedelta(minutes=mid)):
            low_step = mid
        else:
            high_step = mid
    return max(now, lo + timedelta(minutes=high_step))


# ---------------------------------------------------------------------------
# Digest timing and delivery decisions


def next_digest_at(last: datetime | None, every: timedelta, now: datetime) -> datetime:
    """The first period boundary after ``last`` (after ``now`` when there is no ``last``).

    The answer may be in the past: a digest missed while the worker was down
    is due at once, and the next one is back on the grid.
    """
    if every <= timedelta(0):
        raise ValueError("every must be a positive duration, like 1h")
    anchor = _aware(last if last is not None else now).astimezone(UTC)
    periods = (anchor - GRID_ORIGIN) // every
    return GRID_ORIGIN + (periods + 1) * every


def delivery_decision(
    channel: Channel,
    priority: Priority,
    now: datetime,
    sent_last_hour: int,
    kind: AlertKind = AlertKind.ARTICLE,
) -> Decision:
    """Send, send silently or hold one alert (of ``kind``) about to go to ``channel``.

    ``sent_last_hour`` counts the instant alerts (any priority) this channel got
    in the hour before ``now``; digests do not count.  See the module docstring
    for the order of the rules.
    """
    quiet = in_quiet_hours(channel, now)
    if kind == AlertKind.DIGEST or priority == Priority.HIGH:
        return SEND_SILENT if quiet else SEND
    if channel.mode == ChannelMode.DIGEST:
        return HOLD
    if quiet and channel.quiet == QuietMode.HOLD:
        return HOLD
    if channel.max_per_hour is not None and sent_last_hour >= channel.max_per_hour:
        return HOLD
    return SEND_SILENT if quiet else SEND


def digest_due(
    channel: Channel, last_digest: datetime | None, now: datetime, has_held: bool
) -> bool:
    """Whether the channel's held alerts should go out as a digest at ``now``.

    Due once a period boundary after ``last_digest`` has passed, there is
    something held, and the channel is not in ``quiet: hold`` hours.  Digest
    channels and instant channels with held overflow follow the same grid.
    ``last_digest`` is when the previous digest went out; when there was none,
    pass when the oldest held alert was queued (the first digest then waits
    for the next boundary) — ``None`` makes held alerts due at once.
    """
    if not has_held:
        return False
    if channel.quiet == QuietMode.HOLD and in_quiet_hours(channel, now):
        return False
    if last_digest is None:
        return True
    return next_digest_at(last_digest, channel.every, now) <= _aware(now)


# ---------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class DigestItem:
    """One held article as a digest line."""

    title: str
    link: str | None
    rules: tuple[str, ...]
    source: str
    published: datetime | None
    also: tuple[StorySource, ...] = ()  # the story's other sources, listed on its line


@dataclass(frozen=True)
class _Line:
    html: str
    console: str
    plain_len: int  # code points Telegram counts once the HTML is parsed


def render_digest(
    items: Sequence[DigestItem],
    channel: Channel,
    period_start: datetime,
    period_end: datetime,
) -> list[tuple[str, str]]:
    """The period's items as ``[(telegram_html, console_text), …]``; ``[]`` when empty.

    Each message is a header (label, period in the channel's timezone, item
    count, ``(i/n)`` when split) and one line per item, in the given order.
    Items are never cut in half: a message ends before the line that would
    break the 4096-code-point or 32768-byte limit.
    """
    if not items:
        return []
    language = base_language(channel.language)
    labels = LABELS.get(language, LABELS["en"])
    digest_labels = DIGEST_LABELS.get(language, DIGEST_LABELS["en"])
    long_period = _aware(period_end) - _aware(period_start) > timedelta(days=1)
    lines = [_item_line(item, labels, channel.timezone, long_period, language) for item in items]
    period = _period_text(period_start, period_end, channel.timezone)
    count = _count_text(len(items), language)

    # pack with room for the widest possible "(i/n)", then write the real one
    widest = _header(digest_labels, period, count, (len(items), len(items)))
    groups: list[list[_Line]] = [[]]
    length, size = widest.plain_len, len(widest.html.encode("utf-8"))
    for line in lines:
        line_size = len(line.html.encode("utf-8")) + 1
        if groups[-1] and (
            length + 1 + line.plain_len > MAX_MESSAGE_LENGTH or size + line_size > MAX_HTML_BYTES
        ):
            groups.append([])
            length, size = widest.plain_len, len(widest.html.encode("utf-8"))
        groups[-1].append(line)
        length += 1 + line.plain_len
        size += line_size

    total = len(groups)
    messages = []
    for number, group in enumerate(groups, 1):
        head = _header(digest_labels, period, count, (number, total) if total > 1 else None)
        messages.append(
            (
                "\n".join([head.html, *(line.html for line in group)]),
                "\n".join([head.console, *(line.console for line in group)]),
            )
        )
    return messages


def _header(labels: dict[str, str], period: str, count: str, part: tuple[int, int] | None) -> _Line:
    tail = f" · {count}"
    if part is not None:
        tail += f" · {LRI}({part[0]}/{part[1]}){PDI}"
    plain = f"🗞 {labels['digest']} · {LRI}{period}{PDI}{tail}"
    text = f"🗞 <b>{esc(labels['digest'])}</b> · {esc(LRI + period + PDI)}{esc(tail)}"
    console = plain.replace(LRI, "").replace(PDI, "")
    return _Line(text, console, len(plain))


def _item_line(
    item: DigestItem, labels: dict[str, str], timezone: str, dated: bool, language: str = "en"
) -> _Line:
    """``• Title · 🔔 rule, rule · 📰 Source · 10:42 · Also: A · B +2``; the title leads,
    so it sets the direction. A story is one line, its other sources listed at the end.

    The time is the publication time in the channel's zone (with the date when
    the digest covers more than a day); its zone is the header's.
    """
    title = truncate(clean(item.title)[0], _DIGEST_TITLE_MAX) or labels["untitled"]
    link = safe_link(item.link)
    href = link if link and len(link) <= HREF_MAX else None
    names = rule_names(item.rules)
    source = truncate(clean(item.source)[0], _DIGEST_SOURCE_MAX)

    meta_plain = ""
    if names:
        meta_plain += " · 🔔 " + ", ".join(f"{FSI}{n}{PDI}" for n in names)
    if source:
        meta_plain += f" · 📰 {FSI}{source}{PDI}"
    if item.published is not None:
        day, clock, _ = format_time(_aware(item.published), timezone).split(" ", 2)
        meta_plain += f" · {LRI}{day[5:] + ' ' if dated else ''}{clock}{PDI}"
    title_html = esc(title)
    if href:
        title_html = f'<a href="{href_attr(href)}">{title_html}</a>'
    text = f"• {title_html}{esc(meta_plain)}"
    plain = f"• {title}{meta_plain}"
    console = plain.replace(FSI, "").replace(LRI, "").replace(PDI, "")
    plain_len = len(plain)
    also = also_line(item.also, None, language, room=_DIGEST_ALSO_MAX, max_names=3)
    if also is not None:
        text += " · " + also.html
        console += " · " + also.text
        plain_len += 3 + also.plain_len
    if link:
        console += f"\n  {link}"
    return _Line(text, console, plain_len)


def _period_text(start: datetime, end: datetime, timezone: str) -> str:
    """``2026-11-29 10:00–11:00 MSK`` (dates and zones repeated only when they differ)."""
    first, last = format_time(_aware(start), timezone), format_time(_aware(end), timezone)
    first_day, first_clock, first_zone = first.split(" ", 2)
    last_day, last_clock, last_zone = last.split(" ", 2)
    if first_zone != last_zone:
        return f"{first} – {last}"
    if first_day != last_day:
        return f"{first_day} {first_clock} – {last_day} {last_clock} {last_zone}"
    return f"{first_day} {first_clock}–{last_clock} {last_zone}"


def _count_text(n: int, language: str) -> str:
    if language == "ru":
        if n % 10 == 1 and n % 100 != 11:
            word = "статья"
        elif 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            word = "статьи"
        else:
            word = "статей"
        return f"{n} {word}"
    if language == "ar":
        return f"عدد المقالات: {n}"  # a label, not a noun phrase: no dual/plural forms needed
    return f"{n} article" if n == 1 else f"{n} articles"


# ---------------------------------------------------------------------------
# Helpers


def _quiet(channel: Channel) -> QuietHours | None:
    if not channel.quiet_hours:
        return None
    return parse_quiet_hours(channel.quiet_hours)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")  # config validation reports a bad zone; never crash here


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
