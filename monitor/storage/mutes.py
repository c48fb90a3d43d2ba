"""Mutes set from the bot: a rule or a channel silenced until a time."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from monitor.storage.base import StoreBase
from monitor.storage.schema import mutes_table


class MutesMixin(StoreBase):
    """Mutes keyed "rule:NAME" or "channel:NAME"."""

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
