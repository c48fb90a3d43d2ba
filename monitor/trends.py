"""Surge alerts and trend charts: the counters in storage, ``surges.surge_due``, ``render.chart``.

``check_surges`` runs after a poll that counted new matches for rules watched
for surges (``surge: true`` on the rule, or ``surges: true`` on a channel it
notifies). It reads the rule's hourly counts (by publication time, history
included), asks ``surge_due`` — which never fires without a day of history, so a
new deployment does not surge on its first, backfilled polls — and, once per
surge, queues a photo alert (the 48-hour chart, ``surge_caption`` as caption) to
each of those channels. The "once" holds across workers: storage records the
alert with a compare-and-set on the rule's last alert time.

``trend`` serves ``monitor trend`` and the bot's ``/trend``: the same counts
and the same chart, on demand.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from monitor.models import Alert, MuteTarget, Priority
from monitor.render.chart import surge_caption, surge_chart
from monitor.render.telegram_text import esc
from monitor.storage import Store
from monitor.surges import BASELINE_HOURS, HOUR, hour_of, surge_check, surge_due

if TYPE_CHECKING:
    from monitor.pipeline import Ruleset

log = logging.getLogger(__name__)

HISTORY = (BASELINE_HOURS + 2) * HOUR  # what surge_due looks at
TOP_SOURCES_SINCE = timedelta(hours=3)


def surge_channels(ruleset: Ruleset, rule: str, muted: Collection[str] = ()) -> list[str]:
    """The channels a rule's surge alert goes to (none while the rule is muted)."""
    spec = ruleset.rules.get(rule)
    if spec is None or str(MuteTarget.rule(rule)) in muted:
        return []
    return [
        name
        for name in spec.notify
        if name in ruleset.channels
        and (spec.surge or ruleset.channels[name].surges)
        and str(MuteTarget.channel(name)) not in muted
    ]


def check_surges(
    store: Store,
    ruleset: Ruleset,
    rules: Sequence[str],
    now: datetime,
    muted: Collection[str] = (),
) -> int:
    """Queue one surge alert per channel for each of ``rules`` that surges now and was
    not alerted for this surge yet; returns how many alerts were queued."""
    queued = 0
    for rule in rules:
        channels = surge_channels(ruleset, rule, muted)
        if not channels:
            continue
        counts, history_start, last_alert = store.surge_history(rule, now - HISTORY)
        verdict = surge_due(counts, now, last_alert, history_start=history_start or now)
        if not verdict.due:
            continue
        top = store.top_feeds(rule, now - TOP_SOURCES_SINCE)
        png = surge_chart(rule, counts, verdict.baseline, now, top)
        caption = surge_caption(rule, verdict.count, verdict.baseline, now, top)
        text = f"📈 Surge: {rule}\n{verdict.reason}\nTop sources: {', '.join(top) or '-'}"
        story = f"surge:{rule}:{hour_of(now).isoformat()}"
        alerts = [
            Alert(
                article_key=story,
                feed_id="",
                channel=name,
                rules=(rule,),
                html=caption,  # sent as text if Telegram refuses the photo
                text=text,
                title=f"Surge: {rule}",
                priority=Priority.HIGH,  # a chart is never held for a digest line
                story=story,
                photo_png=png,
                caption=caption,
            )
            for name in channels
        ]
        sent = store.queue_surge(rule, alerts, now, last_alert)
        if sent:
            log.warning("rule %s surges: %s", rule, verdict.reason)
        queued += sent
    return queued


@dataclass(frozen=True)
class Trend:
    """A rule's hourly counts over a period, with what a surge check says now."""

    rule: str
    hours: list[tuple[datetime, int]]  # every hour of the period, oldest first
    baseline: float
    count: float  # matches in the sliding last hour
    surging: bool
    top_sources: list[str]

    def table(self) -> str:
        """The hourly counts as text: one line per hour, with a bar."""
        peak = max((n for _, n in self.hours), default=0) or 1
        lines = [f"{'HOUR (UTC)':<16}  {'MATCHES':>7}"]
        for hour, n in self.hours:
            bar = "█" * round(30 * n / peak) if n else ""
            lines.append(f"{hour:%Y-%m-%d %H:00}  {n:>7}  {bar}")
        state = "surging" if self.surging else "not surging"
        lines.append(
            f"total {sum(n for _, n in self.hours)}; last hour {self.count:g}; "
            f"usual {self.baseline:.2f}/h; {state}"
        )
        return "\n".join(lines)

    def caption(self, now: datetime) -> str:
        """A short HTML caption for the chart sent on demand."""
        total = sum(n for _, n in self.hours)
        head = f"📊 <b>{esc(self.rule[:120])}</b>: {total} matches"
        return f"{head}, usual {self.baseline:.1f}/h ({now:%Y-%m-%d %H:00} UTC)"


def trend(store: Store, rule: str, now: datetime, since: timedelta) -> Trend:
    """The rule's hourly counts over ``since`` (at most the counters' retention)."""
    start = hour_of(now - since)
    counts, history_start, _ = store.surge_history(rule, min(start, now - HISTORY))
    verdict = surge_check(counts, now, history_start=history_start or now)
    hours = []
    hour = start
    end = hour_of(now)
    while hour <= end:
        hours.append((hour, counts.get(hour, 0)))
        hour += HOUR
    top = store.top_feeds(rule, start)
    return Trend(rule, hours, verdict.baseline, verdict.count, verdict.surging, top)


def trend_chart(store: Store, rule: str, now: datetime, since: timedelta) -> tuple[Trend, bytes]:
    """``trend`` and its chart as PNG bytes (the last 48 hours, as surge alerts show)."""
    found = trend(store, rule, now, since)
    counts = dict(found.hours)
    return found, surge_chart(rule, counts, found.baseline, now, found.top_sources)
