"""Operator reports: counts and times read for /rules and /status."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from monitor.storage.base import StoreBase
from monitor.storage.schema import alerts_table


class ReportsMixin(StoreBase):
    """Read-only summaries of the outbox."""

    def rule_alert_counts(self, since: datetime) -> dict[str, int]:
        """How many alerts each rule produced since ``since`` (for /rules)."""
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            for rules in conn.execute(
                sa.select(alerts_table.c.rules).where(alerts_table.c.created_at >= since)
            ).scalars():
                for rule in json.loads(rules):
                    counts[rule] = counts.get(rule, 0) + 1
        return counts

    def last_alert_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            last: datetime | None = conn.execute(
                sa.select(sa.func.max(alerts_table.c.sent_at))
            ).scalar()
        return last
