"""``poll_feed``: the one place that runs the stages in order for one feed.

fetch → parse → articles → (storage: which entries are new) → backfill →
match → render (one alert per channel, carrying its story key) → stories
(drop a story already alerted under another link) → (storage: entries, alerts
and feed state in one transaction).

A feed that fails is recorded and backed off here; nothing a feed does can
stop the others. Rules and channels come from a ``Ruleset`` that the worker
swaps whole when the configuration changes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor import metrics
from monitor.articles import to_articles
from monitor.config import Settings
from monitor.exceptions import FeedError, FetchError
from monitor.fetch import Fetcher
from monitor.match import Matcher, compile_rules
from monitor.models import (
    Alert,
    Article,
    Channel,
    FeedSource,
    FeedState,
    FetchResult,
    Match,
    MuteTarget,
    Priority,
    Rule,
)
from monitor.render.alert import render_alert
from monitor.scheduler import next_poll_at
from monitor.statebatch import UnchangedWriter
from monitor.storage import Store, UnchangedPoll
from monitor.stories import SAME_STORY_WINDOW, is_same_story, title_key

log = logging.getLogger(__name__)

#: A feed that answered 410 Gone is asked again this late (the back-off cap), in case
#: the publisher brings it back; the operator hears of it after ``feed_down_after``.
GONE_RETRY = timedelta(hours=6)

_story_lock = threading.Lock()


@dataclass(frozen=True)
class Ruleset:
    """Compiled rules and the channels they notify; replaced whole on reload."""

    rules: Mapping[str, Rule]
    channels: Mapping[str, Channel]
    matcher: Matcher
    feed_tags: Mapping[str, tuple[str, ...]]
    version: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Ruleset:
        return cls(
            rules={rule.name: rule for rule in settings.rules},
            channels=dict(settings.channels),
            matcher=compile_rules(settings.rules),
            feed_tags={feed.id: feed.tags for feed in settings.feeds},
            version=settings.version,
        )

    def alerts_for(self, article: Article, muted: Collection[str] = ()) -> list[Alert]:
        """One rendered alert per channel that any matching rule notifies.

        ``muted`` holds the targets silenced with /mute as stored ("rule:NAME",
        "channel:NAME"; see ``MuteTarget``).
        """
        matches = self.matcher.match(article, self.feed_tags.get(article.feed_id, ()))
        per_channel: dict[str, list[Match]] = {}
        for match in matches:
            metrics.MATCHES.labels(match.rule).inc()
            if str(MuteTarget.rule(match.rule)) in muted:
                continue
            for channel in self.rules[match.rule].notify:
                if str(MuteTarget.channel(channel)) not in muted:
                    per_channel.setdefault(channel, []).append(match)
        priorities: dict[str, Priority] = {m.rule: self.rules[m.rule].priority for m in matches}
        return [
            render_alert(article, channel_matches, self.channels[name], priorities)
            for name, channel_matches in per_channel.items()
            if name in self.channels
        ]


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of one feed did, for logs, `--once` and tests."""

    feed_id: str
    ok: bool
    next_poll: datetime
    new_entries: int = 0
    alerts: int = 0
    not_modified: bool = False
    error: str | None = None
    errors: int = 0  # consecutive failures after this poll
    previous_errors: int = 0  # consecutive failures before it


def in_backfill(article: Article, backfill: timedelta | None, now: datetime) -> bool:
    """On a feed's first poll, only entries newer than ``backfill`` may alert."""
    if backfill is None:
        return True
    if backfill <= timedelta(0) or article.published is None:
        return False
    return article.published >= now - backfill


async def poll_feed(
    feed: FeedSource,
    *,
    store: Store,
    fetcher: Fetcher,
    ruleset: Callable[[], Ruleset],
    now: datetime,
    muted: Collection[str] = (),
    rng: random.Random | None = None,
    states: Mapping[str, FeedState] | None = None,
    unchanged: UnchangedWriter | None = None,
) -> PollOutcome:
    """Poll one feed and queue alerts for its new entries; never raises for a feed's fault.

    ``states`` are feed states read beforehand for a whole batch of polls (a
    feed missing from it has none yet); without it the poll reads its own.
    ``unchanged`` batches the state writes of unchanged polls; without it an
    unchanged poll writes alone.
    """
    started = time.perf_counter()
    try:
        outcome = await _poll(feed, store, fetcher, ruleset, now, muted, rng, states, unchanged)
    finally:
        metrics.POLL_SECONDS.observe(time.perf_counter() - started)
    label = "error" if not outcome.ok else "not_modified" if outcome.not_modified else "ok"
    metrics.POLLS.labels(label).inc()
    metrics.NEW_ENTRIES.inc(outcome.new_entries)
    if not outcome.ok:
        metrics.FEED_ERRORS.inc()
    return outcome


async def _poll(
    feed: FeedSource,
    store: Store,
    fetcher: Fetcher,
    ruleset: Callable[[], Ruleset],
    now: datetime,
    muted: Collection[str],
    rng: random.Random | None,
    states: Mapping[str, FeedState] | None,
    unchanged: UnchangedWriter | None,
) -> PollOutcome:
    jitter = (rng or random).uniform(0.0, 0.1)
    if states is None:
        state = await asyncio.to_thread(store.feed_state, feed.id)
    else:
        state = states.get(feed.id)
    errors = state.errors if state else 0
    try:
        result = await fetcher.fetch(feed, state)
        if result.not_modified:
            next_poll = next_poll_at(now, feed.interval, 0, None, result.max_age, jitter=jitter)
            poll = UnchangedPoll(feed.id, feed.url, now, result.status, next_poll)
            if unchanged is not None:
                await unchanged.record(poll)
            else:
                await asyncio.to_thread(store.record_unchanged, [poll])
            _log_recovery(feed, errors)
            return PollOutcome(feed.id, True, next_poll, not_modified=True, previous_errors=errors)
        new, queued = await asyncio.to_thread(
            _process, feed, state, result, store, ruleset(), now, jitter, muted
        )
    except FeedError as exc:
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        if isinstance(exc, FetchError) and exc.gone:  # 410: the README's "retried at the cap"
            retry_after = GONE_RETRY.total_seconds()
        status = exc.status if isinstance(exc, FetchError) else None
        next_poll = next_poll_at(now, feed.interval, errors + 1, retry_after, jitter=jitter)
        reason = str(exc)
        await asyncio.to_thread(
            store.record_failure, feed.id, feed.url, now, reason, status, next_poll
        )
        if errors == 0:
            log.warning("feed %s failing: %s (next try %s)", feed.id, reason, _hhmm(next_poll))
        else:
            log.info("feed %s still failing (%d): %s", feed.id, errors + 1, reason)
        return PollOutcome(
            feed.id, False, next_poll, error=reason, errors=errors + 1, previous_errors=errors
        )
    _log_recovery(feed, errors)
    next_poll = next_poll_at(now, feed.interval, 0, None, result.max_age, jitter=jitter)
    return PollOutcome(
        feed.id, True, next_poll, new_entries=new, alerts=queued, previous_errors=errors
    )


def _process(
    feed: FeedSource,
    state: FeedState | None,
    result: FetchResult,
    store: Store,
    ruleset: Ruleset,
    now: datetime,
    jitter: float,
    muted: Collection[str],
) -> tuple[int, int]:
    """The CPU-bound middle of a poll (runs in a thread): parse, match, render, commit."""
    from monitor.parse import parse_feed  # feedparser and lxml: not needed until a feed changes

    parsed = parse_feed(result)
    articles = list({a.key: a for a in to_articles(feed, parsed, now)}.values())
    first_poll = state is None or state.first_success is None
    # a feed that never succeeded has no stored entries: no query (commit_poll decides anyway)
    known = set() if first_poll else store.known_keys(feed.id, (a.key for a in articles))
    alerts: list[Alert] = []
    for article in articles:
        if article.key in known:
            continue
        if first_poll and not in_backfill(article, feed.backfill, now):
            continue
        alerts.extend(ruleset.alerts_for(article, muted))
    next_poll = next_poll_at(now, feed.interval, 0, None, result.max_age, jitter=jitter)
    with _story_lock:  # polls of two feeds carrying one story must not both pass the check
        inserted, queued = store.commit_poll(
            feed_id=feed.id,
            url=feed.url,
            now=now,
            articles=articles,
            alerts=drop_repeated_stories(alerts, store, now),
            status=result.status,
            etag=result.etag,
            last_modified=result.last_modified,
            content_hash=result.content_hash,
            next_poll=next_poll,
        )
    if parsed.warning:
        log.debug("feed %s parsed with a warning: %s", feed.id, parsed.warning)
    if inserted:
        log.info("feed %s: %d new entries, %d alerts queued", feed.id, len(inserted), queued)
    return len(inserted), queued


def drop_repeated_stories(alerts: list[Alert], store: Store, now: datetime) -> list[Alert]:
    """Keep one alert per channel for a story already alerted under another link in 24 h.

    Stories with the same canonical link or GUID are merged by the outbox's
    unique key; this catches the same wire text republished under another URL.
    """
    if not alerts:
        return alerts
    recent = store.recent_titles(sorted({a.channel for a in alerts}), now - SAME_STORY_WINDOW)
    seen = {channel: [title_key(t) for t in titles] for channel, titles in recent.items()}
    kept = []
    for alert in alerts:
        key = title_key(alert.title)
        channel_seen = seen.setdefault(alert.channel, [])
        if key and is_same_story(key, channel_seen):
            log.info(
                "channel %s: %r was already alerted from another source",
                alert.channel,
                alert.title[:80],
            )
            continue
        channel_seen.append(key)
        kept.append(alert)
    return kept


def _log_recovery(feed: FeedSource, errors: int) -> None:
    if errors:
        log.warning("feed %s recovered after %d failed polls", feed.id, errors)


def _hhmm(when: datetime) -> str:
    return when.strftime("%H:%M:%S UTC")
