"""Surges on synthetic hourly counts: bursts fire once, trends and new rules never."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.surges import MINIMUM, hour_of, surge_check, surge_due

H = timedelta(hours=1)
NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def flat(level: int, hours: int = 8 * 24, end: datetime = NOW) -> dict[datetime, int]:
    """``level`` matches every hour for ``hours`` hours before ``end``."""
    return {end - (i + 1) * H: level for i in range(hours)}


def run_polls(
    counts_at, start: datetime, end: datetime, every: timedelta = timedelta(minutes=5)
) -> list[datetime]:
    """Poll like the worker does; returns the times an alert was sent (bounded loop)."""
    sent: list[datetime] = []
    last: datetime | None = None
    t = start
    for _ in range(2000):
        if t > end:
            break
        verdict = surge_due(counts_at(t), t, last)
        if verdict.due:
            sent.append(t)
            last = t
        t += every
    return sent


def burst_counts(base: int, bursts: dict[datetime, int]):
    """Counts as seen at time ``t``: a flat history plus bursts spread evenly in their hour."""
    history = flat(base, end=NOW - 2 * H)

    def at(t: datetime) -> dict[datetime, int]:
        counts = dict(history)
        for hour in (NOW - 2 * H, NOW - H):
            counts[hour] = base
        for hour, n in bursts.items():
            if hour > t:
                continue
            seen = n if hour + H <= t else math.floor(n * (t - hour) / H)
            counts[hour] = seen
        h = NOW
        while h <= t:
            counts.setdefault(h, base if h + H <= t else 0)
            h += H
        return counts

    return at


def test_flat_baseline_then_burst_fires_once() -> None:
    at = burst_counts(2, {NOW: 30})
    sent = run_polls(at, NOW, NOW + 6 * H)
    assert len(sent) == 1
    assert NOW <= sent[0] < NOW + H  # while the burst happens, not after it
    verdict = surge_check(at(NOW + 30 * timedelta(minutes=1)), NOW + 30 * timedelta(minutes=1))
    assert verdict.surging and verdict.baseline == pytest.approx(2.0)


def test_surge_lasting_three_hours_gives_one_alert() -> None:
    at = burst_counts(1, {NOW: 25, NOW + H: 30, NOW + 2 * H: 28})
    assert len(run_polls(at, NOW, NOW + 8 * H)) == 1


def test_two_surges_with_a_calm_hour_between_give_two_alerts() -> None:
    at = burst_counts(1, {NOW: 25, NOW + 3 * H: 25})
    sent = run_polls(at, NOW, NOW + 8 * H)
    assert len(sent) == 2
    assert sent[1] >= NOW + 3 * H


def test_slow_trend_does_not_fire() -> None:
    # from 1 to 12 matches an hour over 8 days, with a day/night swing of ±40 %
    counts: dict[datetime, int] = {}
    hours = 8 * 24
    for i in range(hours + 1):
        hour = NOW - (hours - i) * H
        level = 1 + 11 * i / hours
        swing = 1 + 0.4 * math.sin(2 * math.pi * (hour.hour - 6) / 24)
        counts[hour] = round(level * swing)
    for minutes in range(0, 60 * 6, 15):
        t = NOW + timedelta(minutes=minutes)
        assert not surge_check(counts, t).surging, t


def test_new_rule_without_history_does_not_fire() -> None:
    counts = {NOW: 40}
    verdict = surge_check(counts, NOW + timedelta(minutes=50))
    assert not verdict.surging and verdict.reason == "not enough history"
    # an explicit short history is not enough either
    t = NOW + timedelta(minutes=50)
    assert not surge_check(counts, t, history_start=NOW - 5 * H).surging
    assert not surge_due(counts, NOW + timedelta(minutes=50), None).due


def test_silent_rule_with_history_surges_on_five() -> None:
    """Documented: a week of silence, then five reports in an hour, is a surge."""
    counts = {NOW: MINIMUM}
    t = NOW + timedelta(minutes=59)
    assert surge_check(counts, t, history_start=NOW - 7 * 24 * H).surging
    assert not surge_check({NOW: MINIMUM - 1}, t, history_start=NOW - 7 * 24 * H).surging


def test_last_weeks_surge_does_not_raise_the_baseline() -> None:
    counts = flat(2)
    for i in range(3):  # a surge three days ago
        counts[NOW - (72 + i) * H] = 60
    counts[NOW] = 8
    assert surge_check(counts, NOW + timedelta(minutes=59)).surging


def test_burst_near_the_end_of_an_hour_still_counts_after_it() -> None:
    counts = flat(1)
    counts[NOW - H] = 12  # 09:00 bucket, the burst at its end
    assert surge_check(counts, NOW + timedelta(minutes=5)).surging


@pytest.mark.parametrize("value", [-5, 10**30, "x", None, 3.7])
def test_hostile_counts_never_raise(value: object) -> None:
    counts: dict[datetime, object] = dict(flat(1))
    counts[NOW] = value
    verdict = surge_check(counts, NOW + timedelta(minutes=30))  # type: ignore[arg-type]
    assert verdict.count >= 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=200),
    st.integers(min_value=0, max_value=59),
)
def test_never_surges_below_minimum_and_deterministic(values: list[int], minute: int) -> None:
    counts = {NOW - (i + 1) * H: v for i, v in enumerate(values)}
    now = NOW + timedelta(minutes=minute)
    a = surge_check(counts, now)
    assert a == surge_check(counts, now)
    if a.surging:
        assert a.count >= MINIMUM and a.count >= 3 * a.baseline


def test_hour_of_floors_and_accepts_naive() -> None:
    assert hour_of(datetime(2026, 1, 1, 10, 59, 59)) == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_an_alert_over_a_week_old_does_not_block_a_new_surge() -> None:
    counts = flat(1)
    counts[NOW] = 30
    t = NOW + timedelta(minutes=40)
    assert surge_due(counts, t, NOW - 9 * 24 * H).due
    assert not surge_due(counts, t, NOW + timedelta(minutes=10)).due
