"""The alert outbox: queueing, sending outcomes (sent, retry, failed), channel
health, what was alerted recently, and pruning of finished rows.

An alert is a row before it is a message; the row's unique ``(channel, story)``
makes "one alert per story and channel" a database guarantee.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from monitor.models import DIGEST_PRIORITY, Alert, AlertKind
from monitor.storage.base import StoreBase, insert
from monitor.storage.schema import alerts_table, channels_table

ALERT_RETENTION = timedelta(days=30)
"""How long finished alert rows are kept by default: long enough for /recent,
/rules counts and near-duplicate title checks, short enough that the table
stays small. Only rows that are done (sent, failed, folded into a digest) go;
pending and held ones are never pruned, whatever their age."""

FINISHED_STATUSES = ("sent", "failed", "digested")


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
    photo_url: str | None = None
    photo_png: bytes | None = None
    caption: str | None = None


class OutboxMixin(StoreBase):
    """Alert rows from queueing to their outcome."""

    def queue_alert(self, alert: Alert, now: datetime) -> bool:
        """Queue one alert outside a poll (operator alerts); False if that story was queued."""
        with self.engine.begin() as conn:
            return bool(queue_row(conn, alert, now))

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
        return [outbox_alert(row) for row in rows]

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            count: int = conn.execute(
                sa.select(sa.func.count()).where(alerts_table.c.status == "pending")
            ).scalar_one()
        return count

    def next_due(self) -> datetime | None:
        """When the earliest pending alert may be tried, or None when the outbox is empty."""
        with self.engine.connect() as conn:
            due: datetime | None = conn.execute(
                sa.select(sa.func.min(alerts_table.c.next_attempt)).where(
                    alerts_table.c.status == "pending"
                )
            ).scalar()
        return due

    def mark_sent(self, alert_id: int, now: datetime, message_id: int | None) -> None:
        """Telegram accepted it; the channel works again."""
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

    def recent_alerts(self, limit: int = 10, rule: str | None = None) -> list[OutboxAlert]:
        """The newest alerts, optionally only those naming ``rule``.

        ``rules`` is a JSON list in a text column, so LIKE only narrows the rows;
        the exact test is done on the decoded list, over at most 20 pages.
        """
        query = sa.select(alerts_table).order_by(alerts_table.c.id.desc())
        if rule is None:
            with self.engine.connect() as conn:
                return [outbox_alert(row) for row in conn.execute(query.limit(limit))]
        needle = json.dumps(rule, ensure_ascii=False)
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(alerts_table.c.rules.like(pattern, escape="\\")).limit(limit * 5)
        found: list[OutboxAlert] = []
        last_id: int | None = None
        with self.engine.connect() as conn:
            for _ in range(20):
                page = query if last_id is None else query.where(alerts_table.c.id < last_id)
                rows = conn.execute(page).all()
                found += [a for a in map(outbox_alert, rows) if rule in a.rules]
                if len(found) >= limit or len(rows) < limit * 5:
                    break
                last_id = rows[-1].id
        return found[:limit]

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

    def prune_alerts(self, now: datetime, keep: timedelta = ALERT_RETENTION) -> int:
        """Delete finished alert rows created more than ``keep`` before ``now``; return how many.

        Pending and held rows stay whatever their age: they are still owed to a
        channel. Once a row is gone its story could be queued again, but only if
        its entry is new again, which the entries table (pruned separately) decides.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                alerts_table.delete().where(
                    alerts_table.c.status.in_(FINISHED_STATUSES),
                    alerts_table.c.created_at < now - keep,
                )
            )
        return result.rowcount or 0


def queue_row(conn: sa.Connection, alert: Alert, now: datetime) -> int:
    """Insert one outbox row unless the channel already has this story; 1 if inserted."""
    stmt = (
        insert(conn)(alerts_table)
        .values(
            channel=alert.channel,
            story=alert.story,
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
            priority=DIGEST_PRIORITY if alert.kind == AlertKind.DIGEST else alert.priority,
            source=alert.source[:300],
            published=alert.published,
            photo_url=alert.photo_url,
            photo_png=alert.photo_png,
            caption=alert.caption,
        )
        .on_conflict_do_nothing(index_elements=["channel", "story"])
        .returning(alerts_table.c.id)
    )
    return len(conn.execute(stmt).all())


def outbox_alert(row: Any) -> OutboxAlert:
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
        photo_url=row.photo_url,
        photo_png=row.photo_png,
        caption=row.caption,
    )


def _empty_health() -> dict[str, Any]:
    return {"pending": 0, "sent": 0, "failed": 0, "last_error": None, "broken_since": None}
