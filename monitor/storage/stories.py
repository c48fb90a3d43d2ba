"""Stories: which alert a later report of the same event joins, decided in the database.

A poll's alerts arrive as ``StoryClaim``s. Inside the poll's transaction each of
their channels is locked (a row of ``story_locks``, in sorted order, ``FOR
UPDATE`` on PostgreSQL; SQLite's single writer does the same), then each claim
is compared (``stories.find_story``) with the channel's recent reports as the
database holds them — so the decision holds across restarts and across several
workers, and two polls carrying one story cannot both start it.

* a new story: its alert is queued as always, a ``stories`` row remembers it and
  a ``story_reports`` row holds its candidate;
* a later report: no alert; the report joins the story (``story_reports``) and
  its source is appended to the story's ``sources``. The sender then edits the
  first alert or replies to it (``due_story_updates``), paced per message;
* ``stories: off`` (no candidate): the alert is queued unless the channel got a
  near-identical title within the window (``stories.is_same_story``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from monitor.render.stories import StorySource
from monitor.storage.base import StoreBase, insert
from monitor.storage.outbox import queue_row_id
from monitor.storage.schema import (
    alerts_table,
    stories_table,
    story_locks_table,
    story_reports_table,
)
from monitor.stories import (
    MAX_COMPARE,
    StoryCandidate,
    StoryClaim,
    candidate_from_json,
    candidate_to_json,
    find_story,
    is_same_story,
    title_key,
)

log = logging.getLogger(__name__)

MAX_SOURCES_KEPT = 50  # the newest later sources a story row keeps (the count goes on)


@dataclass(frozen=True)
class StoryUpdate:
    """A story whose first alert was sent and whose message does not yet show every source."""

    id: int
    channel: str
    alert_id: int
    message_id: int
    html: str  # the first alert as sent
    text: str
    sources: tuple[StorySource, ...]  # the newest ``MAX_SOURCES_KEPT``, newest last
    source_count: int  # all later sources, including those no longer kept
    shown: int  # how many of them the message (edit) or the replies already show
    attempts: int = 0
    photo: bool = False  # the first alert went as a photo: its text cannot be edited

    @property
    def unshown(self) -> tuple[StorySource, ...]:
        """The sources not yet shown (for a reply), as far as they are kept."""
        missing = max(0, self.source_count - self.shown)
        return self.sources[-missing:] if missing else ()


class StoriesMixin(StoreBase):
    """Story rows: later sources, and the edits or replies that show them."""

    def due_story_updates(
        self, now: datetime, channels: Sequence[str], limit: int = 50
    ) -> list[StoryUpdate]:
        """Stories in ``channels`` with sources to show whose first alert was sent and
        whose next edit or reply may go now."""
        if not channels:
            return []
        query = (
            sa.select(
                stories_table,
                alerts_table.c.message_id,
                alerts_table.c.html,
                alerts_table.c.text,
                alerts_table.c.caption,
            )
            .join(alerts_table, alerts_table.c.id == stories_table.c.alert_id)
            .where(
                stories_table.c.channel.in_(list(channels)),
                *_pending_update(),
                stories_table.c.next_update <= now,
            )
            .order_by(stories_table.c.next_update, stories_table.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            StoryUpdate(
                id=row.id,
                channel=row.channel,
                alert_id=row.alert_id,
                message_id=int(row.message_id),
                html=row.html,
                text=row.text,
                sources=_sources(row.sources),
                source_count=row.source_count,
                shown=row.shown,
                attempts=row.attempts,
                photo=row.caption is not None,
            )
            for row in rows
        ]

    def next_story_update(self, channels: Sequence[str]) -> datetime | None:
        """When the earliest pending edit or reply in ``channels`` may go (None: none)."""
        if not channels:
            return None
        with self.engine.connect() as conn:
            due: datetime | None = conn.execute(
                sa.select(sa.func.min(stories_table.c.next_update))
                .join(alerts_table, alerts_table.c.id == stories_table.c.alert_id)
                .where(stories_table.c.channel.in_(list(channels)), *_pending_update())
            ).scalar()
        return due

    def story_updated(
        self, story_id: int, shown: int, now: datetime, next_update: datetime
    ) -> None:
        """Telegram accepted an edit or reply showing the first ``shown`` later sources."""
        with self.engine.begin() as conn:
            conn.execute(
                stories_table.update()
                .where(stories_table.c.id == story_id)
                .values(
                    shown=sa.case(
                        (stories_table.c.shown < shown, shown), else_=stories_table.c.shown
                    ),
                    last_update=now,
                    next_update=next_update,
                    attempts=0,
                    last_error=None,
                )
            )

    def story_retry(self, story_id: int, error: str, next_update: datetime) -> None:
        """The edit or reply failed for now; try again at ``next_update``."""
        with self.engine.begin() as conn:
            conn.execute(
                stories_table.update()
                .where(stories_table.c.id == story_id)
                .values(
                    attempts=stories_table.c.attempts + 1,
                    last_error=error[:500],
                    next_update=next_update,
                )
            )

    def story_gone(self, story_id: int, error: str) -> None:
        """The first alert's message cannot be edited any more: stop trying (never resend)."""
        with self.engine.begin() as conn:
            conn.execute(
                stories_table.update()
                .where(stories_table.c.id == story_id)
                .values(status="gone", last_error=error[:500])
            )

    def story_sources(self, alert_ids: Iterable[int]) -> dict[int, tuple[StorySource, ...]]:
        """Later sources per first-alert id (for digests: a story listed once with them)."""
        ids = list(alert_ids)
        out: dict[int, tuple[StorySource, ...]] = {}
        if not ids:
            return out
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(
                    sa.select(stories_table.c.alert_id, stories_table.c.sources).where(
                        stories_table.c.alert_id.in_(ids[start : start + 500])
                    )
                )
                for alert_id, sources in rows:
                    found = _sources(sources)
                    if found:
                        out[int(alert_id)] = found
        return out

    def story_of(self, channel: str, key: str) -> str | None:
        """The story id a report (by its story key) was grouped into in ``channel``."""
        with self.engine.connect() as conn:
            story: str | None = conn.execute(
                sa.select(story_reports_table.c.story).where(
                    story_reports_table.c.channel == channel,
                    story_reports_table.c.article_key == key,
                )
            ).scalar()
        return story

    def prune_stories(self, now: datetime, keep: timedelta) -> int:
        """Forget story reports published more than ``keep`` ago, and stories whose first
        alert row is gone (pruned with the outbox)."""
        with self.engine.begin() as conn:
            reports = conn.execute(
                story_reports_table.delete().where(story_reports_table.c.published < now - keep)
            ).rowcount
            stories = conn.execute(
                stories_table.delete().where(
                    stories_table.c.created_at < now - keep,
                    ~sa.exists().where(alerts_table.c.id == stories_table.c.alert_id),
                )
            ).rowcount
        return (reports or 0) + (stories or 0)


def stories_due(now: datetime) -> sa.Select[tuple[str]]:
    """Channels with a story edit or reply that may go now (for channel leases)."""
    return (
        sa.select(stories_table.c.channel)
        .join(alerts_table, alerts_table.c.id == stories_table.c.alert_id)
        .where(*_pending_update(), stories_table.c.next_update <= now)
    )


def _pending_update() -> tuple[sa.ColumnElement[bool], ...]:
    """A story with sources its message does not show yet, whose first alert went out
    with a message id to edit or reply to (one definition for due, next and leases:
    a "next" that counted rows "due" never serves would make the sender spin)."""
    return (
        stories_table.c.status == "open",
        stories_table.c.shown < stories_table.c.source_count,
        alerts_table.c.status == "sent",
        alerts_table.c.message_id.is_not(None),
    )


def queue_claims(
    conn: sa.Connection, claims: Sequence[StoryClaim], inserted: set[str], now: datetime
) -> int:
    """Queue or group the claims of newly inserted entries (inside the poll's
    transaction); returns how many alerts were queued."""
    claims = [c for c in claims if c.alert.article_key in inserted]
    if not claims:
        return 0
    channels = sorted({c.alert.channel for c in claims})
    for channel in channels:  # sorted: two polls lock shared channels in one order
        _lock_channel(conn, channel)
    titles: dict[str, list[str]] = {}
    queued = 0
    for claim in claims:
        channel = claim.alert.channel
        if claim.candidate is None:
            if channel not in titles:
                titles[channel] = _recent_titles(conn, channel, now - claim.window)
            queued += _queue_titled(conn, claim, titles[channel], now)
            continue
        queued += _queue_or_join(conn, claim, claim.candidate, now)
    return queued


def _lock_channel(conn: sa.Connection, channel: str) -> None:
    conn.execute(
        insert(conn)(story_locks_table)
        .values(channel=channel)
        .on_conflict_do_nothing(index_elements=["channel"])
    )
    conn.execute(
        sa.select(story_locks_table.c.channel)
        .where(story_locks_table.c.channel == channel)
        .with_for_update()
    )


def _recent_titles(conn: sa.Connection, channel: str, since: datetime) -> list[str]:
    rows = conn.execute(
        sa.select(alerts_table.c.title).where(
            alerts_table.c.channel == channel, alerts_table.c.created_at >= since
        )
    ).scalars()
    return [title_key(t) for t in rows]


def _queue_titled(conn: sa.Connection, claim: StoryClaim, seen: list[str], now: datetime) -> int:
    """``stories: off``: one alert per article, near-identical titles excepted."""
    key = title_key(claim.alert.title)
    if key and is_same_story(key, seen):
        log.info(
            "channel %s: %r was already alerted from another source",
            claim.alert.channel,
            claim.alert.title[:80],
        )
        return 0
    seen.append(key)
    return 0 if queue_row_id(conn, claim.alert, now) is None else 1


def _recent_candidates(
    conn: sa.Connection, channel: str, published: datetime, window: timedelta
) -> list[StoryCandidate]:
    """The channel's newest ``MAX_COMPARE`` reports published within ``window`` of
    ``published`` (a backfilled article meets the stories of its own days)."""
    rows = conn.execute(
        sa.select(story_reports_table.c.candidate)
        .where(
            story_reports_table.c.channel == channel,
            story_reports_table.c.published >= published - window,
            story_reports_table.c.published <= published + window,
        )
        .order_by(story_reports_table.c.published.desc(), story_reports_table.c.id.desc())
        .limit(MAX_COMPARE)
    ).scalars()
    out = []
    for text in rows:
        try:
            out.append(candidate_from_json(text))
        except ValueError:  # a row written by something else: not comparable, not fatal
            continue
    return out


def _queue_or_join(
    conn: sa.Connection,
    claim: StoryClaim,
    candidate: StoryCandidate,
    now: datetime,
) -> int:
    alert = claim.alert
    recent = _recent_candidates(conn, alert.channel, candidate.published, claim.window)
    # compared by publication times: the window is around the report, not the clock
    story = find_story(candidate, recent, claim.window, candidate.published)
    head = None
    if story is not None:
        head = conn.execute(
            sa.select(stories_table).where(
                stories_table.c.channel == alert.channel, stories_table.c.story == story
            )
        ).first()
    if head is None:  # a new story (or one whose row was pruned): the alert goes out
        alert_id = queue_row_id(conn, alert, now)
        if alert_id is None:  # this very link was alerted here already
            return 0
        story = candidate.key
        conn.execute(
            insert(conn)(stories_table)
            .values(
                channel=alert.channel,
                story=story,
                alert_id=alert_id,
                created_at=now,
                sources="[]",
                next_update=now,
            )
            .on_conflict_do_nothing(index_elements=["channel", "story"])
        )
        _add_report(conn, alert.channel, replace(candidate, story=story))
        return 1
    assert story is not None
    if not _add_report(conn, alert.channel, replace(candidate, story=story)):
        return 0  # this report was grouped before
    sources = [*_sources(head.sources), StorySource(alert.source or alert.feed_id, alert.link)]
    conn.execute(
        stories_table.update()
        .where(stories_table.c.id == head.id)
        .values(
            sources=_sources_json(sources[-MAX_SOURCES_KEPT:]),
            source_count=stories_table.c.source_count + 1,
        )
    )
    log.info(
        "channel %s: %r (%s) joins the story of alert %s",
        alert.channel,
        alert.title[:80],
        alert.source or alert.feed_id,
        head.alert_id,
    )
    return 0


def _add_report(conn: sa.Connection, channel: str, candidate: StoryCandidate) -> bool:
    """Record a report's candidate; False when this report (same key) is already there."""
    row = conn.execute(
        insert(conn)(story_reports_table)
        .values(
            channel=channel,
            story=candidate.story,
            article_key=candidate.key,
            published=candidate.published,
            candidate=candidate_to_json(candidate),
        )
        .on_conflict_do_nothing(index_elements=["channel", "article_key"])
        .returning(story_reports_table.c.id)
    ).first()
    return row is not None


def _sources(text: str | None) -> tuple[StorySource, ...]:
    try:
        data: Any = json.loads(text or "[]")
    except (TypeError, ValueError):
        return ()
    if not isinstance(data, list):
        return ()
    return tuple(
        StorySource(str(item.get("name") or ""), item.get("link") or None)
        for item in data
        if isinstance(item, dict)
    )


def _sources_json(sources: Sequence[StorySource]) -> str:
    return json.dumps([{"name": s.name[:300], "link": s.link} for s in sources], ensure_ascii=False)
