"""State store: feed health, seen entries and the alert outbox (SQLAlchemy Core).

One schema serves SQLite (the default) and PostgreSQL. Storage is where
"new" is decided: an entry is new exactly when its ``(feed_id, key)`` row is
inserted, and the alerts for it are inserted in the same transaction, so a
crash can never record an entry as seen while losing its alerts. The outbox
row's unique ``(channel, story)`` makes "one alert per story and channel" a
database guarantee rather than a hope.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from monitor.exceptions import StorageError
from monitor.models import Alert, Article, FeedSource, FeedState
from monitor.scheduler import first_poll_offset

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


feeds_table = sa.Table(
    "feeds",
    metadata,
    sa.Column("feed_id", sa.String(200), primary_key=True),
    sa.Column("url", sa.Text, nullable=False, server_default=""),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("last_poll", UTCDateTime),
    sa.Column("next_poll", UTCDateTime),
    sa.Column("http_status", sa.Integer),
    sa.Column("entries_seen", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("first_success", UTCDateTime),
    sa.Column("last_success", UTCDateTime),  # entries not seen since then have left the feed
    sa.Column("lease_owner", sa.String(100)),  # the worker polling it now
    sa.Column("lease_until", UTCDateTime),  # a crashed worker's claim ends here
)
sa.Index("ix_feeds_due", feeds_table.c.next_poll)

entries_table = sa.Table(
    "entries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("feed_id", sa.String(200), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False, server_default=""),
    sa.Column("link", sa.Text),
    sa.Column("published", UTCDateTime),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.UniqueConstraint("feed_id", "key", name="uq_entries_feed_key"),
)

alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("story", sa.Text, nullable=False),
    sa.Column("feed_id", sa.String(200), nullable=False),
    sa.Column("article_key", sa.Text, nullable=False),
    sa.Column("rules", sa.Text, nullable=False),  # JSON list of rule names
    sa.Column("title", sa.Text, nullable=False, server_default=""),
    sa.Column("link", sa.Text),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("message_id", sa.BigInteger),
    sa.Column("last_error", sa.Text),
    sa.Column("priority", sa.String(10), nullable=False, server_default="normal"),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("published", UTCDateTime),
    sa.UniqueConstraint("channel", "story", name="uq_alerts_channel_story"),
)
sa.Index("ix_alerts_due", alerts_table.c.status, alerts_table.c.next_attempt)

channels_table = sa.Table(
    "channels",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("broken_since", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("lease_owner", sa.String(100)),  # the worker sending to it now
    sa.Column("lease_until", UTCDateTime),
)

leases_table = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),  # e.g. "bot": one holder at a time
    sa.Column("owner", sa.String(100), nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
)

mutes_table = sa.Table(
    "mutes",
    metadata,
    sa.Column("target", sa.String(250), primary_key=True),  # "rule:NAME" or "channel:NAME"
    sa.Column("until", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(100)),
)

schema_table = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

#: Numbered migration steps; step N brings the schema from N-1 to N.
MIGRATIONS: dict[int, Any] = {
    1: lambda conn: metadata.create_all(
        conn,
        tables=[
            feeds_table,
            entries_table,
            alerts_table,
            channels_table,
            mutes_table,
            leases_table,
        ],
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)
FIRST_POLL_SPREAD = timedelta(seconds=30)  # new feeds' first polls spread over this


@dataclass(frozen=True)
class OutboxAlert:
    """An alert row waiting in (or leaving) the outbox."""

    id: int
    channel: str
    feed_id: str
    article_key: str
    rules: tuple[str, ...]
    title: str
    link: str | None
    html: str
    text: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt: datetime
    sent_at: datetime | None = None
    message_id: int | None = None
    last_error: str | None = None
    priority: str = "normal"
    source: str = ""
    published: datetime | None = None


class _Conflict(Exception):
    """Internal: another worker changed the rows first; the transaction is undone."""


class Store:
    """The one gateway to the database; every method is a short transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = _make_engine(url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StorageError(f"bad DATABASE_URL {_redact(url)!r}: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    # ---- schema
    def migrate(self) -> int:
        """Apply missing migration steps; return the schema version now in place."""
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # one worker migrates; the others wait here, then find nothing to do
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7355608)"))
                schema_table.create(conn, checkfirst=True)
                current = conn.execute(sa.select(sa.func.max(schema_table.c.version))).scalar()
                current = current or 0
                for step in range(current + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[step](conn)
                    conn.execute(schema_table.insert().values(version=step, applied_at=_now()))
                return SCHEMA_VERSION
        except sa.exc.OperationalError as exc:
            raise StorageError(f"cannot open database {_redact(self.url)}: {exc.orig}") from exc

    def ping(self) -> bool:
        """True when the database answers (for /healthz)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True

    # ---- feeds
    def feed_state(self, feed_id: str) -> FeedState | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(feeds_table).where(feeds_table.c.feed_id == feed_id)
            ).first()
        return _feed_state(row) if row else None

    def feed_states(self) -> dict[str, FeedState]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(feeds_table)).all()
        return {row.feed_id: _feed_state(row) for row in rows}

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
            self._ensure_feed(conn, feed_id, url)
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
        return _feed_state(row)

    def record_not_modified(
        self, feed_id: str, url: str, now: datetime, status: int | None, next_poll: datetime
    ) -> None:
        """An unchanged feed still holds every entry it held: they are all seen again."""
        with self.engine.begin() as conn:
            self._ensure_feed(conn, feed_id, url)
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
                .values(**_success(now, status, next_poll))
            )

    def known_keys(self, feed_id: str, keys: Iterable[str]) -> set[str]:
        """Which of these entry keys this feed has already seen."""
        keys = list(keys)
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(keys, 500):
                found.update(
                    conn.execute(
                        sa.select(entries_table.c.key).where(
                            entries_table.c.feed_id == feed_id, entries_table.c.key.in_(chunk)
                        )
                    ).scalars()
                )
        return found

    def commit_poll(
        self,
        *,
        feed_id: str,
        url: str,
        now: datetime,
        articles: Sequence[Article],
        alerts: Sequence[tuple[Alert, str]],
        status: int | None,
        etag: str | None,
        last_modified: str | None,
        content_hash: str | None,
        next_poll: datetime,
    ) -> tuple[set[str], int]:
        """Record a successful poll atomically: new entries, their alerts, feed state.

        ``alerts`` pairs each rendered alert with its story key. Only alerts of
        entries that this call actually inserted are queued, so concurrent or
        repeated polls of the same feed never queue an alert twice. Returns the
        keys inserted and the number of alerts queued.
        """
        with self.engine.begin() as conn:
            self._ensure_feed(conn, feed_id, url)
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
            if rows:  # one cached statement, executed for many rows ("insertmanyvalues")
                stmt = (
                    _insert(conn)(entries_table)
                    .on_conflict_do_nothing(index_elements=["feed_id", "key"])
                    .returning(entries_table.c.key, sort_by_parameter_order=True)
                )
                inserted.update(conn.execute(stmt, rows).scalars())
            seen_again = [a.key for a in articles if a.key not in inserted]
            for chunk in _chunks(seen_again, 500):
                conn.execute(
                    entries_table.update()
                    .where(entries_table.c.feed_id == feed_id, entries_table.c.key.in_(chunk))
                    .values(last_seen=now)
                )
            queued = 0
            for alert, story in alerts:
                if alert.article_key not in inserted:
                    continue
                queued += _queue(conn, alert, story, now)
            conn.execute(
                feeds_table.update()
                .where(feeds_table.c.feed_id == feed_id)
                .values(
                    **_success(now, status, next_poll),
                    url=url,
                    etag=etag,
                    last_modified=last_modified,
                    content_hash=content_hash,
                    entries_seen=feeds_table.c.entries_seen + len(inserted),
                    first_success=sa.func.coalesce(feeds_table.c.first_success, now),
                )
            )
        return inserted, queued

    def queue_alert(self, alert: Alert, story: str, now: datetime) -> bool:
        """Queue one alert outside a poll (operator alerts); False if that story was queued."""
        with self.engine.begin() as conn:
            return bool(_queue(conn, alert, story, now))

    def recent_titles(self, channels: Sequence[str], since: datetime) -> dict[str, list[str]]:
        """Titles alerted per channel since ``since`` (for near-duplicate stories)."""
        out: dict[str, list[str]] = {}
        if not channels:
            return out
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(alerts_table.c.channel, alerts_table.c.title).where(
                    alerts_table.c.channel.in_(list(channels)),
                    alerts_table.c.created_at >= since,
                )
            )
            for channel, title in rows:
                out.setdefault(channel, []).append(title)
        return out

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

    # ---- the shared schedule: several workers, one database
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
                    stmt = _insert(conn)(feeds_table).values(
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
            for chunk in _chunks(retired, 500):
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

    def release_feeds(self, owner: str, feed_ids: Iterable[str] | None = None) -> None:
        """Give back leases (shutdown, or a feed that left the configuration)."""
        with self.engine.begin() as conn:
            stmt = feeds_table.update().where(feeds_table.c.lease_owner == owner)
            if feed_ids is not None:
                stmt = stmt.where(feeds_table.c.feed_id.in_(list(feed_ids)))
            conn.execute(stmt.values(lease_owner=None, lease_until=None))

    def claim_channels(
        self, owner: str, now: datetime, lease: timedelta, names: Sequence[str]
    ) -> list[str]:
        """Lease the channels that have due alerts: one worker sends to a channel at a time,
        so Telegram's per-chat pace holds across workers."""
        with self.engine.begin() as conn:
            for name in names:
                stmt = _insert(conn)(channels_table).values(name=name)
                conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            with_due = (
                sa.select(alerts_table.c.channel)
                .where(alerts_table.c.status == "pending", alerts_table.c.next_attempt <= now)
                .distinct()
            )
            return list(
                conn.execute(
                    channels_table.update()
                    .where(
                        channels_table.c.name.in_(list(names)),
                        channels_table.c.name.in_(with_due.scalar_subquery()),
                        sa.or_(
                            channels_table.c.lease_until.is_(None),
                            channels_table.c.lease_until < now,
                            channels_table.c.lease_owner == owner,
                        ),
                    )
                    .values(lease_owner=owner, lease_until=now + lease)
                    .returning(channels_table.c.name)
                ).scalars()
            )

    def renew_channel(self, owner: str, name: str, now: datetime, lease: timedelta) -> bool:
        """Extend our lease on a channel before each send; False if another worker has it."""
        with self.engine.begin() as conn:
            result = conn.execute(
                channels_table.update()
                .where(channels_table.c.name == name, channels_table.c.lease_owner == owner)
                .values(lease_until=now + lease)
            )
        return bool(result.rowcount)

    def release_channels(self, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                channels_table.update()
                .where(channels_table.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def recent_sends(
        self, channel: str, since: datetime, instant_only: bool = False
    ) -> list[datetime]:
        """When this channel's messages were accepted since ``since`` (seeds the pacer;
        ``instant_only`` leaves digests out, for the hourly cap)."""
        query = (
            sa.select(alerts_table.c.sent_at)
            .where(alerts_table.c.channel == channel, alerts_table.c.sent_at >= since)
            .order_by(alerts_table.c.sent_at)
        )
        if instant_only:
            query = query.where(alerts_table.c.priority != "digest")
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def hold_lease(self, name: str, owner: str, now: datetime, duration: timedelta) -> bool:
        """Take or renew a named lease (e.g. "bot"); True while ``owner`` holds it."""
        with self.engine.begin() as conn:
            stmt = _insert(conn)(leases_table).values(name=name, owner=owner, until=now + duration)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            result = conn.execute(
                leases_table.update()
                .where(
                    leases_table.c.name == name,
                    sa.or_(leases_table.c.owner == owner, leases_table.c.until < now),
                )
                .values(owner=owner, until=now + duration)
            )
        return bool(result.rowcount)

    def drop_lease(self, name: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                leases_table.delete().where(
                    leases_table.c.name == name, leases_table.c.owner == owner
                )
            )

    # ---- mutes
    def set_mute(self, target: str, until: datetime, by: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(mutes_table.delete().where(mutes_table.c.target == target))
            conn.execute(mutes_table.insert().values(target=target, until=until, created_by=by))

    def clear_mute(self, target: str) -> bool:
        with self.engine.begin() as conn:
            return bool(
                conn.execute(mutes_table.delete().where(mutes_table.c.target == target)).rowcount
            )

    def active_mutes(self, now: datetime) -> dict[str, datetime]:
        """Mutes still in force at ``now`` ("rule:NAME" / "channel:NAME" → until)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(mutes_table.c.target, mutes_table.c.until).where(
                    mutes_table.c.until > now
                )
            ).all()
        return {target: until for target, until in rows}

    # ---- reports
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
            return conn.execute(sa.select(sa.func.max(alerts_table.c.sent_at))).scalar()

    # ---- outbox
    def due_alerts(
        self, now: datetime, limit: int = 100, channels: Sequence[str] | None = None
    ) -> list[OutboxAlert]:
        query = (
            sa.select(alerts_table)
            .where(alerts_table.c.status == "pending", alerts_table.c.next_attempt <= now)
            .order_by(alerts_table.c.id)
            .limit(limit)
        )
        if channels is not None:
            query = query.where(alerts_table.c.channel.in_(list(channels)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_outbox(row) for row in rows]

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(alerts_table.c.status == "pending")
            ).scalar_one()

    def next_due(self) -> datetime | None:
        """When the earliest pending alert may be tried, or None when the outbox is empty."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.min(alerts_table.c.next_attempt)).where(
                    alerts_table.c.status == "pending"
                )
            ).scalar()

    def mark_sent(self, alert_id: int, now: datetime, message_id: int | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                alerts_table.update()
                .where(alerts_table.c.id == alert_id)
                .values(
                    status="sent",
                    sent_at=now,
                    message_id=message_id,
                    attempts=alerts_table.c.attempts + 1,
                    last_error=None,
                )
            )
            conn.execute(
                channels_table.update()
                .where(
                    channels_table.c.name
                    == sa.select(alerts_table.c.channel)
                    .where(alerts_table.c.id == alert_id)
                    .scalar_subquery()
                )
                .values(broken_since=None)
            )

    # ---- digests: alerts held back (digest channels, caps, quiet hours) go out together
    def hold_alert(self, alert_id: int) -> None:
        """Keep an alert for the channel's next digest instead of sending it now."""
        with self.engine.begin() as conn:
            conn.execute(
                alerts_table.update()
                .where(alerts_table.c.id == alert_id, alerts_table.c.status == "pending")
                .values(status="held")
            )

    def held_alerts(self, channel: str) -> list[OutboxAlert]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(alerts_table)
                .where(alerts_table.c.channel == channel, alerts_table.c.status == "held")
                .order_by(alerts_table.c.id)
            ).all()
        return [_outbox(row) for row in rows]

    def last_digest_at(self, channel: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.max(alerts_table.c.created_at)).where(
                    alerts_table.c.channel == channel, alerts_table.c.priority == "digest"
                )
            ).scalar()

    def queue_digest(
        self, channel: str, parts: Sequence[tuple[str, str]], held: Sequence[int], now: datetime
    ) -> int:
        """Queue a digest's messages and mark the alerts it lists, in one transaction.

        Returns the number of messages queued: 0 when another worker digested
        some of these alerts first (nothing is then changed).
        """
        try:
            with self.engine.begin() as conn:
                self._queue_digest(conn, channel, parts, held, now)
        except _Conflict:
            return 0
        return len(parts)

    def _queue_digest(
        self,
        conn: sa.Connection,
        channel: str,
        parts: Sequence[tuple[str, str]],
        held: Sequence[int],
        now: datetime,
    ) -> None:
        digested = conn.execute(
            alerts_table.update()
            .where(alerts_table.c.id.in_(list(held)), alerts_table.c.status == "held")
            .values(status="digested")
            .returning(alerts_table.c.id)
        ).all()
        if len(digested) != len(held):
            raise _Conflict
        for number, (html, text) in enumerate(parts, 1):
            story = f"digest:{channel}:{now.isoformat()}:{number}"
            digest = Alert(
                article_key=story,
                feed_id="",
                channel=channel,
                rules=(),
                html=html,
                text=text,
                title=f"digest {number}/{len(parts)}",
                priority="digest",
            )
            _queue(conn, digest, story, now)

    def mark_retry(self, alert_id: int, error: str, next_attempt: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                alerts_table.update()
                .where(alerts_table.c.id == alert_id)
                .values(
                    attempts=alerts_table.c.attempts + 1,
                    last_error=error[:500],
                    next_attempt=next_attempt,
                )
            )

    def mark_failed(self, alert_id: int, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                alerts_table.update()
                .where(alerts_table.c.id == alert_id)
                .values(
                    status="failed",
                    attempts=alerts_table.c.attempts + 1,
                    last_error=error[:500],
                )
            )

    def mark_channel_broken(self, channel: str, now: datetime, error: str) -> bool:
        """Record a permanent channel error; True when the channel was healthy until now."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(channels_table).where(channels_table.c.name == channel)
            ).first()
            if row is None:
                conn.execute(
                    channels_table.insert().values(name=channel, broken_since=now, last_error=error)
                )
                return True
            conn.execute(
                channels_table.update()
                .where(channels_table.c.name == channel)
                .values(broken_since=row.broken_since or now, last_error=error[:500])
            )
            return row.broken_since is None

    def channel_health(self) -> dict[str, dict[str, Any]]:
        """Per channel: pending, sent and failed counts, last error, broken since."""
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            counts = conn.execute(
                sa.select(alerts_table.c.channel, alerts_table.c.status, sa.func.count()).group_by(
                    alerts_table.c.channel, alerts_table.c.status
                )
            ).all()
            for channel, status, count in counts:
                out.setdefault(channel, _empty_health())[status] = count
            for row in conn.execute(sa.select(channels_table)).all():
                health = out.setdefault(row.name, _empty_health())
                health["last_error"] = row.last_error
                health["broken_since"] = row.broken_since
        return out

    def recent_alerts(self, limit: int = 10, rule: str | None = None) -> list[OutboxAlert]:
        """The newest alerts, optionally only those naming ``rule``.

        ``rules`` is a JSON list in a text column, so LIKE only narrows the rows;
        the exact test is done on the decoded list, over at most 20 pages.
        """
        query = sa.select(alerts_table).order_by(alerts_table.c.id.desc())
        if rule is None:
            with self.engine.connect() as conn:
                return [_outbox(row) for row in conn.execute(query.limit(limit))]
        needle = json.dumps(rule, ensure_ascii=False)
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(alerts_table.c.rules.like(pattern, escape="\\")).limit(limit * 5)
        found: list[OutboxAlert] = []
        last_id: int | None = None
        with self.engine.connect() as conn:
            for _ in range(20):
                page = query if last_id is None else query.where(alerts_table.c.id < last_id)
                rows = conn.execute(page).all()
                found += [a for a in map(_outbox, rows) if rule in a.rules]
                if len(found) >= limit or len(rows) < limit * 5:
                    break
                last_id = rows[-1].id
        return found[:limit]

    # ---- helpers
    def _ensure_feed(self, conn: sa.Connection, feed_id: str, url: str) -> None:
        stmt = _insert(conn)(feeds_table).values(feed_id=feed_id, url=url)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["feed_id"]))


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _insert(conn: sa.Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _success(now: datetime, status: int | None, next_poll: datetime) -> dict[str, Any]:
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


def _queue(conn: sa.Connection, alert: Alert, story: str, now: datetime) -> int:
    """Insert one outbox row unless the channel already has this story; 1 if inserted."""
    stmt = (
        _insert(conn)(alerts_table)
        .values(
            channel=alert.channel,
            story=story,
            feed_id=alert.feed_id,
            article_key=alert.article_key,
            rules=json.dumps(list(alert.rules), ensure_ascii=False),
            title=alert.title[:1000],
            link=alert.link,
            html=alert.html,
            text=alert.text,
            status="pending",
            created_at=now,
            next_attempt=now,
            priority=alert.priority,
            source=alert.source[:300],
            published=alert.published,
        )
        .on_conflict_do_nothing(index_elements=["channel", "story"])
        .returning(alerts_table.c.id)
    )
    return len(conn.execute(stmt).all())


def _feed_state(row: Any) -> FeedState:
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
    )


def _outbox(row: Any) -> OutboxAlert:
    return OutboxAlert(
        id=row.id,
        channel=row.channel,
        feed_id=row.feed_id,
        article_key=row.article_key,
        rules=tuple(json.loads(row.rules)),
        title=row.title,
        link=row.link,
        html=row.html,
        text=row.text,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt=row.next_attempt,
        sent_at=row.sent_at,
        message_id=row.message_id,
        last_error=row.last_error,
        priority=row.priority,
        source=row.source,
        published=row.published,
    )


def _empty_health() -> dict[str, Any]:
    return {"pending": 0, "sent": 0, "failed": 0, "last_error": None, "broken_since": None}


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _now() -> datetime:
    return datetime.now(UTC)


def _redact(url: str) -> str:
    """A database URL with its password hidden, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"
