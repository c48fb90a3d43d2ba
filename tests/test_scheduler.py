"""Next-poll and back-off decisions as tables with an explicit ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.scheduler import MAX_AGE_CEILING, backoff_delay, first_poll_offset, next_poll_at

NOW = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("interval", "errors", "retry_after", "max_age", "jitter", "expected"),
    [
        # healthy feeds: the interval
        (5 * M, 0, None, None, 0.0, 5 * M),
        (2 * M, 0, None, None, 0.0, 2 * M),
        (5 * M, 0, None, None, 0.1, 5.5 * M),
        # Cache-Control max-age stretches a healthy poll, up to the ceiling
        (5 * M, 0, None, 600.0, 0.0, 10 * M),
        (5 * M, 0, None, 60.0, 0.0, 5 * M),  # shorter than the interval: ignored
        (5 * M, 0, None, 86400.0, 0.0, MAX_AGE_CEILING),
        (5 * M, 0, None, 0.0, 0.0, 5 * M),  # no-cache
        # consecutive errors double the wait from the interval
        (5 * M, 1, None, None, 0.0, 10 * M),
        (5 * M, 2, None, None, 0.0, 20 * M),
        (5 * M, 3, None, None, 0.0, 40 * M),
        (5 * M, 6, None, None, 0.0, 320 * M),
        (5 * M, 7, None, None, 0.0, 6 * H),  # capped
        (5 * M, 500, None, None, 0.0, 6 * H),  # never abandoned, no overflow
        (5 * M, 3, None, None, 0.5, 60 * M),  # jitter before the cap
        (5 * M, 7, None, None, 0.5, 6 * H),  # jitter cannot pass the cap
        (5 * M, 2, None, 600.0, 0.0, 20 * M),  # max-age does not shorten a back-off
        # Retry-After asks for more: honoured, up to the cap
        (5 * M, 1, 120.0, None, 0.0, 10 * M),  # less than the back-off: back-off wins
        (5 * M, 1, 3600.0, None, 0.0, 1 * H),
        (5 * M, 1, 10**9, None, 0.0, 6 * H),
        (5 * M, 0, 1800.0, None, 0.0, 30 * M),
        # an interval longer than the cap is still the interval
        (12 * H, 3, None, None, 0.0, 12 * H),
        (12 * H, 1, 86400.0, None, 0.0, 12 * H),
    ],
)
def test_next_poll_table(
    interval: timedelta,
    errors: int,
    retry_after: float | None,
    max_age: float | None,
    jitter: float,
    expected: timedelta,
) -> None:
    got = next_poll_at(NOW, interval, errors, retry_after, max_age, jitter=jitter)
    assert got - NOW == expected


def test_custom_cap() -> None:
    assert next_poll_at(NOW, 5 * M, 10, cap=timedelta(minutes=30)) == NOW + 30 * M
    assert backoff_delay(5 * M, 4, cap=timedelta(minutes=30)) == 30 * M


def test_now_is_only_an_argument() -> None:
    later = NOW + timedelta(days=400)
    assert next_poll_at(later, 5 * M, 2) - later == next_poll_at(NOW, 5 * M, 2) - NOW


def test_first_poll_offsets_are_stable_and_spread() -> None:
    interval = 5 * M
    offsets = [first_poll_offset(f"feed-{i}", interval) for i in range(1000)]
    assert offsets == [first_poll_offset(f"feed-{i}", interval) for i in range(1000)]
    assert all(timedelta(0) <= o < interval for o in offsets)
    seconds = {int(o.total_seconds()) for o in offsets}
    assert len(seconds) > 250  # 1000 feeds over 300 s: most seconds used, none crowded
    per_second: dict[int, int] = {}
    for o in offsets:
        per_second[int(o.total_seconds())] = per_second.get(int(o.total_seconds()), 0) + 1
    assert max(per_second.values()) < 15


@settings(max_examples=300, deadline=None)
@given(
    interval=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=2)),
    errors=st.integers(min_value=0, max_value=10_000),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=1e12)),
    max_age=st.one_of(st.none(), st.floats(min_value=0, max_value=1e9)),
    jitter=st.floats(min_value=0, max_value=1),
)
def test_next_poll_is_always_soon_enough_and_after_now(
    interval: timedelta,
    errors: int,
    retry_after: float | None,
    max_age: float | None,
    jitter: float,
) -> None:
    cap = timedelta(hours=6)
    got = next_poll_at(NOW, interval, errors, retry_after, max_age, jitter=jitter)
    assert got > NOW
    # never abandoned: at most the cap (or one interval with its jitter, when longer)
    assert got - NOW <= max(cap, interval * 2, MAX_AGE_CEILING)
    # more errors never means polling sooner
    more = next_poll_at(NOW, interval, errors + 1, retry_after, max_age, jitter=jitter)
    assert more >= got or errors == 0
