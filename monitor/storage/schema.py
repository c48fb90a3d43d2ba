"""Tables and numbered migrations (lemon24/reader's ``_storage/_schema.py`` style).

A fresh database gets the latest schema at once (``create_all``, stamped with
``SCHEMA_VERSION``); an older one steps through ``MIGRATIONS`` in order, each
step recorded in ``schema_version``. On PostgreSQL an advisory lock makes one
worker migrate while the others wait and then find nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from monitor.exceptions import StorageUnavailable
from monitor.storage.base import StoreBase, UTCDateTime, redact, utcnow

metadata = sa.MetaData()

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
    # the last poll that returned the feed's entries (an unchanged poll leaves it):
    # entries not seen since then have left the feed
    sa.Column("last_success", UTCDateTime),
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
#: recent_titles, rule_alert_counts and prune_alerts select by creation time (migration 2)
alerts_created_index = sa.Index("ix_alerts_created_at", alerts_table.c.created_at)

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


def _v2_alerts_created_index(conn: sa.Connection) -> None:
    alerts_created_index.create(conn, checkfirst=True)


#: Step N brings a database from version N-1 to N. Version 1 is the first
#: released schema (what ``create_all`` made before this table had steps), so a
#: database without any version gets the latest schema in one go instead.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {
    2: _v2_alerts_created_index,
}
SCHEMA_VERSION = max(MIGRATIONS)
_MIGRATION_LOCK = 7355608  # pg_advisory_xact_lock key: one migrating worker at a time


class SchemaMixin(StoreBase):
    """Creating and upgrading the schema."""

    def migrate(self) -> int:
        """Bring the schema to ``SCHEMA_VERSION``; return the version now in place."""
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
                schema_table.create(conn, checkfirst=True)
                current = conn.execute(sa.select(sa.func.max(schema_table.c.version))).scalar()
                if not current:  # fresh: the latest schema at once
                    metadata.create_all(conn)
                    conn.execute(
                        schema_table.insert().values(version=SCHEMA_VERSION, applied_at=utcnow())
                    )
                    return SCHEMA_VERSION
                for step in range(current + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[step](conn)
                    conn.execute(schema_table.insert().values(version=step, applied_at=utcnow()))
                return SCHEMA_VERSION
        except sa.exc.OperationalError as exc:
            raise StorageUnavailable(
                f"cannot open database {redact(self.url)}: {exc.orig}"
            ) from exc

    def schema_version(self) -> int:
        """The version recorded in the database (0 before the first ``migrate``)."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(schema_table.name):
                return 0
            return conn.execute(sa.select(sa.func.max(schema_table.c.version))).scalar() or 0
