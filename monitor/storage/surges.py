"""Surge counters: matches per rule, hour of publication and feed, and the last alert.

Each poll upserts its new entries' matches (``count_matches``, inside the poll's
transaction: an entry counts exactly once, when it is inserted); nothing scans
the archive. ``queue_surge`` records a surge alert with a compare-and-set on
``surges.last_alert``, so of two workers that both see a surge one alerts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from monitor.models import Alert, EntryRow
from monitor.storage.base import Conflict, StoreBase, insert
from monitor.storage.outbox import queue_row
from monitor.storage.schema import rule_counts_table, surges_table
from monitor.surges import hour_of

COUNT_RETENTION = timedelta(days=35)  # hours older than this are neither counted nor kept
_FUTURE = timedelta(hours=1)  # a publication time ahead of the clock counts as now


class SurgesMixin(StoreBase):
    """Hourly match counts per rule, and surge alerts once per surge."""

    def register_rules(self, rules: Iterable[str], now: datetime) -> None:
        """Remember when each rule began to be counted (its surge history starts there)."""
        rows = [{"rule": r[:250], "since": now} for r in dict.fromkeys(rules)]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(
                insert(conn)(surges_table).on_conflict_do_nothing(index_elements=["rule"]), rows
            )

    def hourly_counts(self, rule: str, since: datetime) -> dict[datetime, int]:
        """Matches of ``rule`` per hour (start of the hour, UTC) from ``since`` on."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(rule_counts_table.c.hour, sa.func.sum(rule_counts_table.c.count))
                .where(rule_counts_table.c.rule == rule, rule_counts_table.c.hour >= since)
                .group_by(rule_counts_table.c.hour)
            ).all()
        return {hour: int(total or 0) for hour, total in rows}

    def surge_history(
        self, rule: str, since: datetime
    ) -> tuple[dict[datetime, int], datetime | None, datetime | None]:
        """Hourly counts since ``since``, when counting began (the earlier of the rule's
        registration and its oldest counted hour), and the last surge alert."""
        counts = self.hourly_counts(rule, since)
        with self.engine.connect() as conn:
            state = conn.execute(
                sa.select(surges_table.c.since, surges_table.c.last_alert).where(
                    surges_table.c.rule == rule
                )
            ).first()
            oldest = conn.execute(
                sa.select(sa.func.min(rule_counts_table.c.hour)).where(
                    rule_counts_table.c.rule == rule
                )
            ).scalar()
        starts = [t for t in (oldest, state.since if state else None) if t is not None]
        return counts, min(starts) if starts else None, state.last_alert if state else None

    def top_feeds(self, rule: str, since: datetime, limit: int = 5) -> list[str]:
        """The feeds with the most matches of ``rule`` since ``since``, most first."""
        total = sa.func.sum(rule_counts_table.c.count)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(rule_counts_table.c.feed_id, total)
                .where(rule_counts_table.c.rule == rule, rule_counts_table.c.hour >= since)
                .group_by(rule_counts_table.c.feed_id)
                .order_by(total.desc(), rule_counts_table.c.feed_id)
                .limit(limit)
            ).all()
        return [feed for feed, _ in rows]

    def queue_surge(
        self, rule: str, alerts: Sequence[Alert], now: datetime, last_alert: datetime | None
    ) -> int:
        """Queue a rule's surge alerts unless another worker alerted since ``last_alert``
        was read (compare-and-set); returns how many were queued."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(conn)(surges_table)
                    .values(rule=rule[:250], since=now)
                    .on_conflict_do_nothing(index_elements=["rule"])
                )
                condition = (
                    surges_table.c.last_alert.is_(None)
                    if last_alert is None
                    else surges_table.c.last_alert == last_alert
                )
                changed = conn.execute(
                    surges_table.update()
                    .where(surges_table.c.rule == rule[:250], condition)
                    .values(last_alert=now)
                ).rowcount
                if changed != 1:
                    raise Conflict
                return sum(queue_row(conn, alert, now) for alert in alerts)
        except Conflict:
            return 0

    def prune_counts(self, now: datetime, keep: timedelta = COUNT_RETENTION) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                rule_counts_table.delete().where(rule_counts_table.c.hour < now - keep)
            )
        return result.rowcount or 0


def count_hour(published: datetime | None, now: datetime) -> datetime | None:
    """The counter hour an entry published then counts in (first seen when there is
    none, now when ahead of the clock); None when older than ``COUNT_RETENTION``."""
    moment = published or now
    if moment > now + _FUTURE:
        moment = now
    return hour_of(moment) if moment >= now - COUNT_RETENTION else None


def count_matches(
    conn: sa.Connection,
    feed_id: str,
    articles: Sequence[EntryRow],
    matched: Mapping[str, Sequence[str]],
    inserted: set[str],
    now: datetime,
) -> None:
    """Add the matches of newly inserted entries to their rules' hourly counters
    (by publication time, first seen when there is none; inside the poll's transaction)."""
    counts: Counter[tuple[str, datetime]] = Counter()
    for article in articles:
        if article.key not in inserted or not matched.get(article.key):
            continue
        hour = count_hour(article.published, now)
        if hour is None:
            continue
        for rule in dict.fromkeys(matched[article.key]):
            counts[(rule[:250], hour)] += 1
    if not counts:
        return
    rows = [
        {"rule": rule, "hour": hour, "feed_id": feed_id[:200], "count": n}
        for (rule, hour), n in sorted(counts.items())
    ]
    stmt = insert(conn)(rule_counts_table)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["rule", "hour", "feed_id"],
            set_={"count": rule_counts_table.c.count + stmt.excluded.count},
        ),
        rows,
    )
