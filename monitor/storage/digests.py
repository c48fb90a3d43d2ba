"""Digests: alerts held back (digest channels, caps, quiet hours) go out together."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from monitor.models import Alert, AlertKind
from monitor.storage.base import Conflict, StoreBase
from monitor.storage.outbox import OutboxAlert, outbox_alert, queue_row
from monitor.storage.schema import alerts_table


class DigestsMixin(StoreBase):
    """Holding alerts and replacing them by digest messages."""

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
        return [outbox_alert(row) for row in rows]

    def last_digest_at(self, channel: str) -> datetime | None:
        with self.engine.connect() as conn:
            last: datetime | None = conn.execute(
                sa.select(sa.func.max(alerts_table.c.created_at)).where(
                    alerts_table.c.channel == channel, alerts_table.c.priority == "digest"
                )
            ).scalar()
        return last

    def queue_digest(
        self, channel: str, parts: Sequence[tuple[str, str]], held: Sequence[int], now: datetime
    ) -> int:
        """Queue a digest's messages and mark the alerts it lists, in one transaction.

        Returns the number of messages queued: 0 when another worker digested
        some of these alerts first (nothing is then changed).
        """
        try:
            with self.engine.begin() as conn:
                _queue_digest(conn, channel, parts, held, now)
        except Conflict:
            return 0
        return len(parts)


def _queue_digest(
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
        raise Conflict
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
            kind=AlertKind.DIGEST,
            story=story,
        )
        queue_row(conn, digest, now)
