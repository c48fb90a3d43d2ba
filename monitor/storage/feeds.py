"""Feed state (validators, health) and the shared schedule: several workers,
one database, each due feed leased to one of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from monitor.models import FeedSource, FeedState
from monitor.scheduler import first_poll_offset
from monitor.storage.base import StoreBase, chunks, insert
from monitor.storage.schema import feeds_table

FIRST_POLL_SPREAD = timedelta(seconds=30)  # new feeds' first polls spread over this


@dataclass(frozen=True)
class UnchangedPoll:
    """One poll that found its feed unchanged (a 304, or the same body hash)."""

    feed_id: str
    url: str
    now: datetime
    status: int | None
    next_poll: datetime


class FeedsMixin(StoreBase):
    """Per-feed state and leases."""

    def feed_state(self, feed_id: str) -> FeedState | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(feeds_table).where(feeds_table.c.feed_id == feed_id)
            ).first()
        return feed_state(row) if row else None

    def feed_states(self, feed_ids: Iterable[str] | None = None) -> dict[str, FeedState]:
        """Every feed's state, or only these feeds' (one query per 500): a batch of polls
        reads its states at once instead of one query per feed."""
        query = sa.select(feeds_table)
        with self.engine.connect() as conn:
            if feed_ids is None:
                rows = list(conn.execute(query))
            else:
                rows = []
                for chunk in chunks(list(feed_ids), 500):
                    rows += conn.execute(query.where(feeds_table.c.feed_id.in_(chunk))).all()
        return {row.feed_id: feed_state(row) for row in rows}

    def record_failure(
        self,
        feed_id: str,
        url: str,
        now: datetime,
        error: str,
        status: int | None,
        next_poll: datetime,
    ) -> FeedState:
        """Count one more consecutive error; return the new state."""
        update = (
            feeds_table.update()
            .where(feeds_table.c.feed_id == feed_id)
            .values(
                url=url,
                last_poll=now,
                http_status=status,
                errors=feeds_table.c.errors + 1,
                last_error=error[:500],
                next_poll=next_poll,
                lease_owner=None,
                lease_until=None,
            )
            .returning(*feeds_table.c)
        )
        with self.engine.begin() as conn:
            row = conn.execute(update).first()
            if row is None:  # a feed without its row yet (sync_feeds gives one to the rest)
                ensure_feed(conn, feed_id, url)
                row = conn.execute(update).one()
        return feed_state(row)

    def record_not_modified(
        self, feed_id: str, url: str, now: datetime, status: int | None, next_poll: datetime
    ) -> None:
        """An unchanged feed: errors cleared, the next poll scheduled, the lease released."""
        self.record_unchanged([UnchangedPoll(feed_id, url, now, status, next_poll)])

    def record_unchanged(self, polls: Sequence[UnchangedPoll]) -> None:
        """Record many unchanged polls in one transaction: one ``executemany``.

        Nothing else is written: the feed still holds exactly the entries its
        last changed poll recorded, and ``last_success`` (the time those were
        last seen, which pruning compares with) stays that poll's. So an
        unchanged poll costs one row update, batched, whatever the feed holds.
        A batch lost to a crash leaves those feeds leased with their old
        schedule: they are polled again when the lease runs out.
        """
        if not polls:
            return
        latest = {poll.feed_id: poll for poll in polls}  # one row per feed, the last word
        rows = [
            {
                "b_feed_id": poll.feed_id,
                "b_now": poll.now,
                "b_status": poll.status,
                "b_next_poll": poll.next_poll,
            }
            for poll in latest.values()
        ]
        update = (
            feeds_table.update()
            .where(feeds_table.c.feed_id == sa.bindparam("b_feed_id"))
            .values(
                last_poll=sa.bindparam("b_now"),
                http_status=sa.bindparam("b_status"),
                errors=0,
                last_error=None,
                next_poll=sa.bindparam("b_next_poll"),
                lease_owner=None,
                lease_until=None,
            )
        )
        with self.engine.begin() as conn:
            ensure_feeds(conn, [(poll.feed_id, poll.url) for poll in latest.values()])
            conn.execute(update, rows)

    def sync_feeds(self, feeds: Sequence[FeedSource], now: datetime) -> None:
        """Give each configured feed a row and retire the rest (``next_poll`` NULL).

        A feed new to the database is first due within its spread offset, so a
        thousand new feeds do not all fire in the same second.
        """
        ids = {feed.id for feed in feeds}
        with self.engine.begin() as conn:
            known: dict[str, datetime | None] = {
                feed_id: due
                for feed_id, due in conn.execute(
                    sa.select(feeds_table.c.feed_id, feeds_table.c.next_poll)
                )
            }
            for feed in feeds:
                first = now + first_poll_offset(feed.id, min(feed.interval, FIRST_POLL_SPREAD))
                if feed.id not in known:
                    stmt = insert(conn)(feeds_table).values(
                        feed_id=feed.id, url=feed.url, next_poll=first
                    )
                    conn.execute(stmt.on_conflict_do_nothing(index_elements=["feed_id"]))
                elif known[feed.id] is None:
                    conn.execute(
                        feeds_table.update()
                        .where(feeds_table.c.feed_id == feed.id)
                        .values(next_poll=first, url=feed.url)
                    )
            retired = [feed_id for feed_id, due in known.items() if due and feed_id not in ids]
            for chunk in chunks(retired, 500):
                conn.execute(
                    feeds_table.update()
                    .where(feeds_table.c.feed_id.in_(chunk))
                    .values(next_poll=None)
                )

    def reschedule_feed(self, feed_id: str, when: datetime) -> None:
        """Move a feed's next poll (an interval changed on reload)."""
        with self.engine.begin() as conn:
            conn.execute(
                feeds_table.update().where(feeds_table.c.feed_id == feed_id).values(next_poll=when)
            )

    def claim_due_feeds(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[str]:
        """Lease up to ``limit`` due feeds to ``owner``; no two workers get the same feed.

        On PostgreSQL the candidates are locked with ``FOR UPDATE SKIP LOCKED``,
        so workers claiming at the same moment take different feeds; a lease
        left by a crashed worker expires at ``lease_until``.
        """
        with self.engine.begin() as conn:
            due = (
                sa.select(feeds_table.c.feed_id)
                .where(
                    feeds_table.c.next_poll <= now,
                    sa.or_(feeds_table.c.lease_until.is_(None), feeds_table.c.lease_until < now),
                )
                .order_by(feeds_table.c.next_poll)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            claimed = conn.execute(
                feeds_table.update()
                .where(feeds_table.c.feed_id.in_(due.scalar_subquery()))
                .values(lease_owner=owner, lease_until=now + lease)
                .returning(feeds_table.c.feed_id)
            ).scalars()
            return list(claimed)

    def renew_feed(self, owner: str, feed_id: str, now: datetime, lease: timedelta) -> bool:
        """Extend our lease on a feed whose poll is still running; False once it is not
        ours (the poll finished and released it, or the lease lapsed and was taken)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                feeds_table.update()
                .where(feeds_table.c.feed_id == feed_id, feeds_table.c.lease_owner == owner)
                .values(lease_until=now + lease)
            )
        return bool(result.rowcount)

    def release_feeds(self, owner: str, feed_ids: Iterable[str] | None = None) -> None:
        """Give back leases (shutdown, or a feed that left the configuration)."""
        with self.engine.begin() as conn:
            stmt = feeds_table.update().where(feeds_table.c.lease_owner == owner)
            if feed_ids is not None:
                stmt = stmt.where(feeds_table.c.feed_id.in_(list(feed_ids)))
            conn.execute(stmt.values(lease_owner=None, lease_until=None))


def ensure_feed(conn: sa.Connection, feed_id: str, url: str) -> None:
    """Give a feed its row if it has none (inside the caller's transaction)."""
    stmt = insert(conn)(feeds_table).values(feed_id=feed_id, url=url)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["feed_id"]))


def ensure_feeds(conn: sa.Connection, feeds: Sequence[tuple[str, str]]) -> None:
    """Rows for those of these ``(feed_id, url)`` that have none: one read per 500 feeds,
    and an insert only for the missing (rare: ``sync_feeds`` gives configured feeds rows)."""
    present: set[str] = set()
    for chunk in chunks([feed_id for feed_id, _url in feeds], 500):
        present.update(
            conn.execute(
                sa.select(feeds_table.c.feed_id).where(feeds_table.c.feed_id.in_(chunk))
            ).scalars()
        )
    missing = [{"feed_id": f, "url": u} for f, u in feeds if f not in present]
    if missing:
        stmt = insert(conn)(feeds_table).on_conflict_do_nothing(index_elements=["feed_id"])
        conn.execute(stmt, missing)


def feed_state(row: Any) -> FeedState:
    return FeedState(
        feed_id=row.feed_id,
        etag=row.etag,
        last_modified=row.last_modified,
        content_hash=row.content_hash,
        last_poll=row.last_poll,
        next_poll=row.next_poll,
        http_status=row.http_status,
        entries_seen=row.entries_seen,
        errors=row.errors,
        last_error=row.last_error,
        first_success=row.first_success,
        page_errors=row.page_errors,
    )
