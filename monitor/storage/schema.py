"""Tables and numbered migrations (lemon24/reader's ``_storage/_schema.py`` style).

A fresh database gets the latest schema at once (``create_all``, stamped with
``SCHEMA_VERSION``); an older one steps through ``MIGRATIONS`` in order, each
step recorded in ``schema_version``. On PostgreSQL an advisory lock makes one
worker migrate while the others wait and then find nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR

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
    # linked pages (full_text, page sources) that failed, in all (migration 5)
    sa.Column("page_errors", sa.Integer, nullable=False, server_default="0"),
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
    sa.Column("photo_url", sa.Text),  # migration 3: sent as a photo with ``caption`` ...
    sa.Column("photo_png", sa.LargeBinary),  # ... by URL or as these PNG bytes
    sa.Column("caption", sa.Text),  # Telegram HTML ≤ 1024 characters; ``html`` is the fallback
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

#: Article text kept for ``defaults.keep_text`` (search and backtest). ``at`` is the
#: publication time, or the first-seen time when there is none (or it is later):
#: ``--since``, "newest first" and pruning go by it. The search index holds the
#: matcher's own word keys (``monitor.storage.archive``): on PostgreSQL the
#: ``index_keys`` ``tsvector`` under a GIN index; on SQLite (where ``index_keys``
#: stays empty) one contentless FTS5 table per day of ``at``, ``archive_fts_YYYYMMDD``,
#: created as articles arrive and dropped whole by pruning.
archive_table = sa.Table(
    "archive",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("feed_id", sa.String(200), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False, server_default=""),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("content", sa.Text, nullable=False, server_default=""),
    sa.Column("page", sa.Text),  # the fetched page's text (full_text), when there is one
    sa.Column("link", sa.Text),
    sa.Column("published", UTCDateTime),
    sa.Column("seen_at", UTCDateTime, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("language", sa.String(35)),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("index_keys", sa.LargeBinary().with_variant(TSVECTOR(), "postgresql")),
    sa.Column("indexed", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.UniqueConstraint("feed_id", "key", name="uq_archive_feed_key"),
    sqlite_autoincrement=True,  # an id is never reused, so a stale index entry stays stale
)
sa.Index("ix_archive_at", archive_table.c.at, archive_table.c.id)
sa.Index("ix_archive_keys", archive_table.c.index_keys, postgresql_using="gin").ddl_if(
    dialect="postgresql"
)
#: the few articles too big to index are candidates of every search in their window
sa.Index(
    "ix_archive_unindexed",
    archive_table.c.at,
    sqlite_where=archive_table.c.indexed.is_(False),
    postgresql_where=archive_table.c.indexed.is_(False),
)

# Stories (migration 5): one ``stories`` row per story a channel was alerted to (its
# first alert, the other sources, how far its message shows them) and one
# ``story_reports`` row per report grouped into it (the candidate ``find_story``
# compares). ``story_locks`` holds one row per channel: a poll locks its
# channels' rows (sorted) before deciding, so two workers never both start the
# same story.
stories_table = sa.Table(
    "stories",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("story", sa.Text, nullable=False),  # the first report's story key
    sa.Column("alert_id", sa.BigInteger, nullable=False),  # the first alert's outbox row
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sources", sa.Text, nullable=False, server_default="[]"),  # JSON, newest last
    sa.Column("source_count", sa.Integer, nullable=False, server_default="0"),  # all of them
    sa.Column("shown", sa.Integer, nullable=False, server_default="0"),  # in the message
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),  # open, gone
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_update", UTCDateTime),  # the last edit or reply Telegram accepted
    sa.Column("next_update", UTCDateTime, nullable=False),  # not before (pace, 429, retry)
    sa.Column("last_error", sa.Text),
    sa.UniqueConstraint("channel", "story", name="uq_stories_channel_story"),
)
stories_alert_index = sa.Index("ix_stories_alert", stories_table.c.alert_id)
stories_due_index = sa.Index("ix_stories_due", stories_table.c.channel, stories_table.c.next_update)

story_reports_table = sa.Table(
    "story_reports",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("story", sa.Text, nullable=False),
    sa.Column("article_key", sa.Text, nullable=False),  # ``stories.story_key`` of the article
    sa.Column("published", UTCDateTime, nullable=False),  # first seen when the feed gives none
    sa.Column("candidate", sa.Text, nullable=False),  # ``stories.candidate_to_json``
    sa.UniqueConstraint("channel", "article_key", name="uq_story_reports_channel_article"),
)
story_reports_index = sa.Index(
    "ix_story_reports_recent", story_reports_table.c.channel, story_reports_table.c.published
)

story_locks_table = sa.Table(
    "story_locks",
    metadata,
    sa.Column("channel", sa.String(200), primary_key=True),
)

# Surges (migration 5): matches per rule, hour (of publication) and feed, upserted
# by each poll; ``surges`` remembers when a rule began to be counted and its last alert.
rule_counts_table = sa.Table(
    "rule_counts",
    metadata,
    sa.Column("rule", sa.String(250), primary_key=True),
    sa.Column("hour", UTCDateTime, primary_key=True),
    sa.Column("feed_id", sa.String(200), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, server_default="0"),
)
rule_counts_hour_index = sa.Index("ix_rule_counts_hour", rule_counts_table.c.hour)

surges_table = sa.Table(
    "surges",
    metadata,
    sa.Column("rule", sa.String(250), primary_key=True),
    sa.Column("since", UTCDateTime, nullable=False),  # when counting began for this rule
    sa.Column("last_alert", UTCDateTime),
)

schema_table = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)


def _v2_alerts_created_index(conn: sa.Connection) -> None:
    alerts_created_index.create(conn, checkfirst=True)


def _v3_alert_photos(conn: sa.Connection) -> None:
    """Photo alerts: the image (URL or PNG bytes) and the caption sent with it."""
    existing = {c["name"] for c in sa.inspect(conn).get_columns("alerts")}
    for column in ("photo_url", "photo_png", "caption"):
        if column not in existing:
            kind = alerts_table.c[column].type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE alerts ADD COLUMN {column} {kind}"))


def _v4_archive(conn: sa.Connection) -> None:
    archive_table.create(conn, checkfirst=True)


def _v5_stories_and_surges(conn: sa.Connection) -> None:
    for table in (
        stories_table,
        story_reports_table,
        story_locks_table,
        rule_counts_table,
        surges_table,
    ):
        table.create(conn, checkfirst=True)  # with its indexes


def _v6_feed_page_errors(conn: sa.Connection) -> None:
    if "page_errors" not in {c["name"] for c in sa.inspect(conn).get_columns("feeds")}:
        conn.execute(sa.text("ALTER TABLE feeds ADD COLUMN page_errors INTEGER NOT NULL DEFAULT 0"))


#: Step N brings a database from version N-1 to N. Version 1 is the first
#: released schema (what ``create_all`` made before this table had steps), so a
#: database without any version gets the latest schema in one go instead.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {
    2: _v2_alerts_created_index,
    3: _v3_alert_photos,
    4: _v4_archive,
    5: _v5_stories_and_surges,
    6: _v6_feed_page_errors,
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
