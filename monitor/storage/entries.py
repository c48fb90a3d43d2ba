"""Seen entries: storage is where "new" is decided.

An entry is new exactly when its ``(feed_id, key)`` row is inserted, and the
alerts for it are inserted in the same transaction, so a crash can never
record an entry as seen while losing its alerts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from monitor.models import Alert, EntryRow
from monitor.storage.archive import ArchiveEntry, insert_archive
from monitor.storage.base import StoreBase, UTCDateTime, chunks, insert
from monitor.storage.feeds import ensure_feed
from monitor.storage.outbox import queue_row
from monitor.storage.schema import entries_table, feeds_table
from monitor.storage.stories import queue_claims
from monitor.storage.surges import count_matches
from monitor.stories import StoryClaim


def _bind(name: str, type_: Any = None) -> Any:
    return sa.bindparam(name, type_=type_)


#: A changed poll's feed state, built once: the statement is then taken from
#: SQLAlchemy's compiled cache without building (and hashing) a new one per poll.
_CHANGED_STATE = (
    feeds_table.update()
    .where(feeds_table.c.feed_id == _bind("b_feed_id"))
    .values(
        last_poll=_bind("b_now", UTCDateTime()),
        last_success=_bind("b_now", UTCDateTime()),
        http_status=_bind("b_status"),
        errors=0,
        last_error=None,
        next_poll=_bind("b_next_poll", UTCDateTime()),
        lease_owner=None,
        lease_until=None,
        url=_bind("b_url"),
        etag=_bind("b_etag"),
        last_modified=_bind("b_last_modified"),
        content_hash=_bind("b_content_hash"),
        entries_seen=feeds_table.c.entries_seen + _bind("b_new", sa.Integer()),
        first_success=sa.func.coalesce(feeds_table.c.first_success, _bind("b_now", UTCDateTime())),
        page_errors=feeds_table.c.page_errors + _bind("b_page_errors", sa.Integer()),
    )
)


_INSERT_ENTRIES: dict[str, Any] = {}


def _insert_entries(conn: sa.Connection) -> Any:
    """Insert entries unless known, returning the keys inserted (a set: any order, so
    SQLite needs one statement, not one per row); built once per dialect."""
    stmt = _INSERT_ENTRIES.get(conn.dialect.name)
    if stmt is None:
        stmt = _INSERT_ENTRIES[conn.dialect.name] = (
            insert(conn)(entries_table)
            .on_conflict_do_nothing(index_elements=["feed_id", "key"])
            .returning(entries_table.c.key)
        )
    return stmt


class EntriesMixin(StoreBase):
    """Which entries each feed has shown, the commit of a poll, and retention."""

    def known_keys(self, feed_id: str, keys: Iterable[str]) -> set[str]:
        """Which of these entry keys this feed has already seen."""
        keys = list(keys)
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in chunks(keys, 500):
                found.update(
                    conn.execute(
                        sa.select(entries_table.c.key).where(
                            entries_table.c.feed_id == feed_id, entries_table.c.key.in_(chunk)
                        )
                    ).scalars()
                )
        return found

    def latest_keys(self, feed_id: str, limit: int = 500) -> list[str]:
        """The keys of this feed's most recently inserted entries, newest first
        (a Telegram channel's highest known post id is among them)."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(entries_table.c.key)
                    .where(entries_table.c.feed_id == feed_id)
                    .order_by(entries_table.c.id.desc())
                    .limit(limit)
                ).scalars()
            )

    def commit_poll(
        self,
        *,
        feed_id: str,
        url: str,
        now: datetime,
        articles: Sequence[EntryRow],
        alerts: Sequence[Alert],
        status: int | None,
        etag: str | None,
        last_modified: str | None,
        content_hash: str | None,
        next_poll: datetime,
        archive: Sequence[ArchiveEntry] = (),
        claims: Sequence[StoryClaim] = (),
        matched: Mapping[str, Sequence[str]] | None = None,
        page_errors: int = 0,
    ) -> tuple[set[str], int]:
        """Record a successful poll atomically: new entries, their alerts, feed state.

        ``alerts`` carry their story key (``Alert.story``) and are queued as they
        are; ``claims`` are queued or grouped into a story already alerted
        (``storage.stories.queue_claims``). Only alerts of entries that this call
        actually inserted are queued, so concurrent or repeated polls of the same
        feed never queue an alert twice. ``matched`` (entry key → rules that
        matched it) feeds the surge counters. ``archive`` holds the text of
        articles to keep; only the ones inserted now are archived, in the same
        transaction. ``page_errors`` (linked pages that failed in this poll) is
        added to the feed's count. Returns the keys inserted and the number of
        alerts queued.
        """
        with self.engine.begin() as conn:
            inserted: set[str] = set()
            rows = [
                {
                    "feed_id": feed_id,
                    "key": a.key,
                    "title": a.title[:1000],
                    "link": a.link,
                    "published": a.published,
                    "first_seen": now,
                    "last_seen": now,
                }
                for a in articles
            ]
            if rows:  # one statement, executed for many rows ("insertmanyvalues")
                inserted.update(conn.execute(_insert_entries(conn), rows).scalars())
            seen_again = [a.key for a in articles if a.key not in inserted]
            for chunk in chunks(seen_again, 500):
                conn.execute(
                    entries_table.update()
                    .where(entries_table.c.feed_id == feed_id, entries_table.c.key.in_(chunk))
                    .values(last_seen=now)
                )
            insert_archive(conn, now, [e for e in archive if e.article.key in inserted])
            queued = 0
            for alert in alerts:
                if alert.article_key not in inserted:
                    continue
                queued += queue_row(conn, alert, now)
            queued += queue_claims(conn, claims, inserted, now)
            if matched:
                count_matches(conn, feed_id, articles, matched, inserted, now)
            values = {
                "b_feed_id": feed_id,
                "b_now": now,
                "b_status": status,
                "b_next_poll": next_poll,
                "b_url": url,
                "b_etag": etag,
                "b_last_modified": last_modified,
                "b_content_hash": content_hash,
                "b_new": len(inserted),
                "b_page_errors": page_errors,
            }
            if not conn.execute(_CHANGED_STATE, values).rowcount:  # only a feed never synced
                ensure_feed(conn, feed_id, url)
                conn.execute(_CHANGED_STATE, values)
        return inserted, queued

    def prune_entries(self, now: datetime, keep: timedelta) -> int:
        """Forget entries that left their feed more than ``keep`` ago.

        "Left" means a later successful poll no longer listed them; the entries of
        a feed that is down (or unchanged) are kept however old, or they would
        alert again when it comes back.
        """
        feed_success = (
            sa.select(feeds_table.c.last_success)
            .where(feeds_table.c.feed_id == entries_table.c.feed_id)
            .scalar_subquery()
        )
        with self.engine.begin() as conn:
            result = conn.execute(
                entries_table.delete().where(
                    entries_table.c.last_seen < now - keep,
                    entries_table.c.last_seen < feed_success,
                )
            )
        return result.rowcount or 0
