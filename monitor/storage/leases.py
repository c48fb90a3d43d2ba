"""Leases that let several workers share one database: a channel is sent to by
one worker at a time (Telegram's per-chat pace holds), and named roles such as
"bot" have one holder. A crashed holder's lease simply expires."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from monitor.storage.base import StoreBase, insert
from monitor.storage.schema import alerts_table, channels_table, leases_table
from monitor.storage.stories import stories_due


class LeasesMixin(StoreBase):
    """Channel leases and named leases."""

    def claim_channels(
        self, owner: str, now: datetime, lease: timedelta, names: Sequence[str]
    ) -> list[str]:
        """Lease the channels that have due alerts (or due story edits and replies): one
        worker sends to a channel at a time, so Telegram's per-chat pace holds across
        workers."""
        with self.engine.begin() as conn:
            for name in names:
                stmt = insert(conn)(channels_table).values(name=name)
                conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            with_due = (
                sa.select(alerts_table.c.channel)
                .where(alerts_table.c.status == "pending", alerts_table.c.next_attempt <= now)
                .union(stories_due(now))
            )
            return list(
                conn.execute(
                    channels_table.update()
                    .where(
                        channels_table.c.name.in_(list(names)),
                        channels_table.c.name.in_(sa.select(with_due.subquery().c.channel)),
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

    def hold_lease(self, name: str, owner: str, now: datetime, duration: timedelta) -> bool:
        """Take or renew a named lease (e.g. "bot"); True while ``owner`` holds it."""
        with self.engine.begin() as conn:
            stmt = insert(conn)(leases_table).values(name=name, owner=owner, until=now + duration)
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
