"""Feed state (validators, health) and the shared schedule: several workers,
one database, each due feed leased to one of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from monitor.models import FeedSource, FeedState
from monitor.scheduler import first_poll_offset
from monitor.storage.base import StoreBase, chunks, insert
from monitor.storage.schema import entries_table, feeds_table

FIRST_POLL_SPREAD = timedelta(seconds=30)  # new feeds' first polls spread over this


class FeedsMixin(StoreBase):
    """Per-feed state and leases."""

    def feed_state(self, feed_id: str) -> FeedState | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(feeds_table).where(feeds_table.c.feed_id == feed_id)
            ).first()
        return feed_state(row) if row else None

    def feed_states(self) -> dict[str, FeedState]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(feeds_table)).all()
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
        with self.engine.begin() as conn:
            ensure_feed(conn, feed_id, url)
            conn.execute(
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
            )
            row = conn.execute(sa.select(feeds_table).where(feeds_table.c.feed_id == feed_id)).one()
        return feed_state(row)

    def record_not_modified(
        self, feed_id: str, url: str, now: datetime, status: int | None, next_poll: datetime
    ) -> None:
        """An unchanged feed still holds every entry it held: they are all seen again."""
        with self.engine.begin() as conn:
            ensure_feed(conn, feed_id, url)
            conn.execute(
                entries_table.update()
                .where(
                    entries_table.c.feed_id == feed_id,
                    entries_table.c.last_seen
                    >= sa.select(feeds_table.c.last_success)
                    .where(feeds_table.c.feed_id == feed_id)
                    .scalar_subquery(),
                )
                .values(last_seen=now)
            )
            conn.execute(
                feeds_table.update()
                .where(feeds_table.c.feed_id == feed_id)
                .values(**success_values(now, status, next_poll))
            )

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


def success_values(now: datetime, status: int | None, next_poll: datetime) -> dict[str, Any]:
    """Feed columns after any successful poll: errors cleared, lease released."""
    return {
        "last_poll": now,
        "last_success": now,
        "http_status": status,
        "errors": 0,
        "last_error": None,
        "next_poll": next_poll,
        "lease_owner": None,
        "lease_until": None,
    }


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
