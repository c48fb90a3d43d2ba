"""When each feed is polled next: pure functions of time, no clock inside.

The worker (APScheduler, ``max_instances=1``, ``coalesce=True``) asks
``next_poll_at`` after every poll and ``first_poll_offset`` at start-up.

Rules, in order:

1. A healthy feed is polled every ``interval``. A ``Cache-Control: max-age``
   longer than the interval stretches the wait (the publisher's cache would
   answer the same bytes anyway), but never beyond ``MAX_AGE_CEILING``.
2. After ``errors`` consecutive failures the wait doubles per error,
   starting from the interval: ``interval × 2**errors``, capped at ``cap``
   (default 6 h). A feed is never abandoned: the longest wait is the cap.
3. A ``Retry-After`` (429/503) is honoured when it asks for more than that,
   up to the cap (or the interval, when the interval is longer).
4. ``jitter`` (a fraction the caller draws, e.g. ``random.uniform(0, 0.1)``)
   adds that share of the wait, so feeds that failed together do not retry
   together. It is applied before the cap on back-off waits.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

__all__ = ["MAX_AGE_CEILING", "backoff_delay", "first_poll_offset", "next_poll_at"]

#: A server's max-age never delays a healthy feed by more than this.
MAX_AGE_CEILING = timedelta(hours=1)
_MIN_INTERVAL = timedelta(seconds=1)


def backoff_delay(
    interval: timedelta,
    errors: int,
    *,
    cap: timedelta = timedelta(hours=6),
    jitter: float = 0.0,
) -> timedelta:
    """The wait after ``errors`` consecutive failures (0 → just the interval)."""
    interval = max(interval, _MIN_INTERVAL)
    jitter = min(max(jitter, 0.0), 1.0)
    if errors <= 0:
        return interval * (1.0 + jitter)
    ceiling = max(cap, interval)
    # 2**errors overflows timedelta long before it matters; stop doubling at the ceiling.
    exponent = min(errors, 64)
    if interval.total_seconds() * 2.0**exponent >= ceiling.total_seconds():
        base = ceiling
    else:
        base = interval * (2**exponent)
    return min(ceiling, base * (1.0 + jitter))


def next_poll_at(
    now: datetime,
    interval: timedelta,
    errors: int,
    retry_after: float | None = None,
    max_age: float | None = None,
    *,
    cap: timedelta = timedelta(hours=6),
    jitter: float = 0.0,
) -> datetime:
    """The time of the next poll of one feed; see the module docstring for the rules."""
    delay = backoff_delay(interval, errors, cap=cap, jitter=jitter)
    ceiling = max(cap, interval)
    if errors <= 0 and max_age is not None and max_age > 0:
        stretched = timedelta(seconds=min(max_age, MAX_AGE_CEILING.total_seconds()))
        delay = max(delay, stretched)
    if retry_after is not None and retry_after > 0:
        asked = timedelta(seconds=min(retry_after, ceiling.total_seconds()))
        delay = max(delay, asked)
    return now + delay


def first_poll_offset(feed_id: str, interval: timedelta) -> timedelta:
    """A stable offset in ``[0, interval)`` from the feed id, spreading the first polls."""
    interval = max(interval, _MIN_INTERVAL)
    digest = hashlib.sha256(feed_id.encode("utf-8")).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    micros = int(interval / timedelta(microseconds=1) * fraction)
    return timedelta(microseconds=micros)
