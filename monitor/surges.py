"""Surges: when a rule's matches in the last hour jump well above its usual rate (pure).

Input is hourly match counts for one rule, keyed by the start of the hour (aware UTC;
any datetime is floored to its hour and summed), counted by publication time with
the archive's history included, plus ``now``. Hours missing from the mapping are
zero, but only after ``history_start`` (when counting began): before it we know
nothing, and a rule with less than ``MIN_HISTORY`` of history never surges — a new
deployment or a new rule has no "usual rate" to compare with.

**The last hour** is a sliding 60 minutes estimated from buckets: the current
(partial) hour plus the share of the previous hour still inside the window
(at 10:15, all of 10:00–10:15 plus three quarters of the 09:00 bucket). A burst
is seen while it happens, and a burst at 09:50 is not forgotten at 10:01.

**The usual rate** (baseline) is the larger of
- the 10 % trimmed mean of the previous ``BASELINE_HOURS`` (7 × 24) hours: every
  hour counts, so a low-volume rule gets a stable rate (the median of one
  hour-of-day over 7 days has only 7 samples, mostly zeros for a quiet rule, and
  flips between 0 and 1); the trim keeps last week's own surges from inflating it;
- the median of the previous 24 hours: a story that builds over days raises this
  with it, so a slow trend is not a surge (the median ignores a burst of a few
  hours, so a surge lasting 3 hours does not hide itself);
- ``BASELINE_FLOOR`` (1 match an hour). With the floor, a rule that was silent
  all week surges on ``MINIMUM`` (5) matches in an hour: intended — five reports
  in an hour about something never mentioned all week is exactly the news a
  surge alert is for. Raise the floor to demand more of quiet rules.

Hour-of-day seasonality is deliberately ignored: agency output varies by a
factor of about two over a day, inside the 3× margin.

**Once per surge** (``surge_due``): an alert is due when the rule surges and
no alert was sent since the rate last fell back: after an alert, some complete
hour after the alert's hour must count below the threshold (re-arm) before
another alert. A surge lasting 3 hours gives one alert.

Cost: one pass over the mapping's keys; only the last ``BASELINE_HOURS + 2``
hours are kept, so the work is bounded by the mapping's size and the memory by
170 buckets.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

FACTOR = 3.0  # the last hour must reach this multiple of the usual rate …
MINIMUM = 5  # … and at least this many matches
BASELINE_HOURS = 7 * 24
RECENT_HOURS = 24  # the median of these follows slow trends
BASELINE_FLOOR = 1.0  # matches/hour; see the module docstring
MIN_HISTORY = timedelta(hours=24)
TRIM = 0.10  # share cut from each end before averaging

HOUR = timedelta(hours=1)


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment`` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class SurgeVerdict:
    """Whether a rule surges now, with the figures that decided it."""

    surging: bool
    count: float  # matches in the sliding last hour
    baseline: float  # usual matches per hour (floored)
    threshold: float  # max(FACTOR × baseline, MINIMUM)
    reason: str
    due: bool = False  # set by ``surge_due``: an alert should be sent now

    @property
    def ratio(self) -> float:
        """How many times the usual rate the last hour is."""
        return self.count / self.baseline if self.baseline > 0 else 0.0


def _trimmed_mean(values: list[int], trim: float) -> float:
    if not values:
        return 0.0
    cut = int(len(values) * trim)
    ordered = sorted(values)
    kept = ordered[cut : len(ordered) - cut] or ordered
    return sum(kept) / len(kept)


def _buckets(counts: Mapping[datetime, int], start: datetime, end: datetime) -> dict[datetime, int]:
    """Counts per hour in ``[start, end)``, hostile values clamped (negative → 0)."""
    out: dict[datetime, int] = {}
    for moment, value in counts.items():
        hour = hour_of(moment)
        if start <= hour < end:
            try:
                n = max(0, int(value))
            except (TypeError, ValueError, OverflowError):
                continue
            out[hour] = out.get(hour, 0) + n
    return out


def surge_check(
    counts: Mapping[datetime, int],
    now: datetime,
    *,
    history_start: datetime | None = None,
    factor: float = FACTOR,
    minimum: int = MINIMUM,
    floor: float = BASELINE_FLOOR,
) -> SurgeVerdict:
    """Decide whether the last hour is a surge (see the module docstring).

    ``history_start`` is when counting began (the archive's oldest article, the
    rule's creation); by default the earliest hour in ``counts``.
    """
    current = hour_of(now)
    previous = current - HOUR
    oldest = current - (BASELINE_HOURS + 1) * HOUR
    buckets = _buckets(counts, oldest, current + HOUR)
    if history_start is None:
        history_start = min(buckets) if buckets else current
    history_start = hour_of(history_start)
    elapsed = (now.astimezone(UTC) - current) / HOUR
    count = buckets.get(current, 0) + buckets.get(previous, 0) * max(0.0, 1.0 - elapsed)

    first = max(oldest, history_start)
    hours = []
    h = first
    while h < previous:
        hours.append(buckets.get(h, 0))
        h += HOUR
    if previous - history_start < MIN_HISTORY:
        threshold = max(factor * floor, float(minimum))
        return SurgeVerdict(False, count, floor, threshold, "not enough history")
    week = _trimmed_mean(hours, TRIM)
    day = float(statistics.median(hours[-RECENT_HOURS:]))
    baseline = max(week, day, floor)
    threshold = max(factor * baseline, float(minimum))
    if count >= threshold:
        reason = f"{count:g} matches in the last hour ≥ {threshold:g} (usual {baseline:.2g}/h)"
        return SurgeVerdict(True, count, baseline, threshold, reason)
    reason = f"{count:g} matches in the last hour < {threshold:g} (usual {baseline:.2g}/h)"
    return SurgeVerdict(False, count, baseline, threshold, reason)


def surge_due(
    counts: Mapping[datetime, int],
    now: datetime,
    last_alert: datetime | None,
    *,
    history_start: datetime | None = None,
    factor: float = FACTOR,
    minimum: int = MINIMUM,
    floor: float = BASELINE_FLOOR,
) -> SurgeVerdict:
    """``surge_check`` plus whether to alert now: once per surge, re-armed when a
    complete hour after the last alert's hour fell below the threshold."""
    verdict = surge_check(
        counts, now, history_start=history_start, factor=factor, minimum=minimum, floor=floor
    )
    if not verdict.surging:
        return verdict
    if last_alert is None or hour_of(last_alert) > hour_of(now):
        return _with_due(verdict, True, "first alert of this surge")
    current = hour_of(now)
    start = hour_of(last_alert) + HOUR
    if current - start > (BASELINE_HOURS + 1) * HOUR:
        return _with_due(verdict, True, "last surge alert is over a week old")
    buckets = _buckets(counts, start, current)
    h = start
    while h < current:
        if buckets.get(h, 0) < verdict.threshold:
            return _with_due(verdict, True, f"rate fell below the threshold at {h:%H:%M}")
        h += HOUR
    return _with_due(verdict, False, "still the same surge as the last alert")


def _with_due(verdict: SurgeVerdict, due: bool, why: str) -> SurgeVerdict:
    return SurgeVerdict(
        verdict.surging,
        verdict.count,
        verdict.baseline,
        verdict.threshold,
        f"{verdict.reason}; {why}",
        due,
    )
