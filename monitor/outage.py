"""Database outages, reported once per state change instead of once per failed call.

Every long-running task of the worker (polls, the sender, the bot's lease
keeper, reloads, digests, pruning) meets the same outage at once, every second
or so. Each catches only ``StorageError`` and tells the shared ``OutageLog``; the
log says "database unavailable" once when the first task fails and "database
is back" once when a task next succeeds, so an hour-long outage is two lines,
not thousands of tracebacks. The tasks themselves keep their schedule and
resume on their own when the database answers again.
"""

from __future__ import annotations

import logging
from datetime import datetime

from monitor.exceptions import StorageError
from monitor.models import utc_now

log = logging.getLogger("monitor.storage")


class OutageLog:
    """Whether the database is down, as the worker's tasks last saw it (loop-only state)."""

    def __init__(self) -> None:
        self.down_since: datetime | None = None
        self.last_error: str | None = None
        self.failures = 0  # calls that failed during the current outage
        self.outages = 0  # outages seen since start

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, exc: StorageError, where: str, now: datetime | None = None) -> None:
        """A task's database call failed: warn if this starts an outage, else stay quiet."""
        self.failures += 1
        self.last_error = f"{where}: {exc}"
        if self.down_since is None:
            self.down_since = now or utc_now()
            self.outages += 1
            log.warning(
                "database unavailable (%s: %s); every task keeps running and retries", where, exc
            )
        else:
            log.debug("database still unavailable (%s: %s)", where, exc)

    def ok(self, now: datetime | None = None) -> None:
        """A task's database call succeeded: end the outage, once."""
        if self.down_since is None:
            return
        seconds = ((now or utc_now()) - self.down_since).total_seconds()
        log.warning(
            "database is back after %.0f s (%d failed calls meanwhile)", seconds, self.failures
        )
        self.down_since = None
        self.failures = 0
