"""``poll_feed``: the one place that runs the stages in order for one feed.

fetch → parse → normalise → (storage: which entries are new) → backfill →
match → render → (storage: entries, alerts and feed state in one transaction).

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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor import metrics
from monitor.archive import archive_entries
from monitor.articles import normalize
from monitor.config import Settings
from monitor.exceptions import FeedError, FetchError
from monitor.fetch import Fetcher
from monitor.match import Matcher, compile_rules
from monitor.models import Alert, Article, Channel, FeedSource, FeedState, FetchResult, Match, Rule
from monitor.parse import parse_feed
from monitor.render.alert import render_alert
from monitor.scheduler import next_poll_at
from monitor.storage import Store
from monitor.stories import SAME_STORY_WINDOW, is_same_story, story_key, title_key

log = logging.getLogger(__name__)

_story_lock = threading.Lock()


@dataclass(frozen=True)
class Ruleset:
    """Compiled rules and the channels they notify; replaced whole on reload."""

    rules: Mapping[str, Rule]
    channels: Mapping[str, Channel]
    matcher: Matcher
    feed_tags: Mapping[str, tuple[str, ...]]
    version: str = ""
    keep_text: timedelta = timedelta(days=30)  # article text kept in the archive; 0: none

    @classmethod
    def from_settings(cls, settings: Settings) -> Ruleset:
        return cls(
            rules={rule.name: rule for rule in settings.rules},
            channels=dict(settings.channels),
            matcher=compile_rules(settings.rules),
            feed_tags={feed.id: feed.tags for feed in settings.feeds},
            version=settings.version,
            keep_text=settings.defaults.keep_text,
        )

    def alerts_for(self, article: Article, muted: Collection[str] = ()) -> list[tuple[Alert, str]]:
        """One rendered alert per channel that any matching rule notifies.

        ``muted`` holds "rule:NAME" and "channel:NAME" targets silenced with /mute.
        """
        matches = self.matcher.match(article, self.feed_tags.get(article.feed_id, ()))
        per_channel: dict[str, list[Match]] = {}
        for match in matches:
            metrics.MATCHES.labels(match.rule).inc()
            if f"rule:{match.rule}" in muted:
                continue
            for channel in self.rules[match.rule].notify:
                if f"channel:{channel}" not in muted:
                    per_channel.setdefault(channel, []).append(match)
        story = story_key(article)
        out = []
        for name, channel_matches in per_channel.items():
            if name not in self.channels:
                continue
            high = any(self.rules[m.rule].priority == "high" for m in channel_matches)
            alert = render_alert(article, channel_matches, self.channels[name])
            alert = replace(
                alert,
                priority="high" if high else "normal",
                source=article.source,
                published=article.published,
            )
            out.append((alert, story))
        return out


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
) -> PollOutcome:
    """Poll one feed and queue alerts for its new entries; never raises for a feed's fault."""
    started = time.perf_counter()
    try:
        outcome = await _poll(feed, store, fetcher, ruleset, now, muted, rng)
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
) -> PollOutcome:
    jitter = (rng or random).uniform(0.0, 0.1)
    state = await asyncio.to_thread(store.feed_state, feed.id)
    errors = state.errors if state else 0
    try:
        result = await fetcher.fetch(feed, state)
        if result.not_modified:
            next_poll = next_poll_at(now, feed.interval, 0, None, result.max_age, jitter=jitter)
            await asyncio.to_thread(
                store.record_not_modified, feed.id, feed.url, now, result.status, next_poll
            )
            _log_recovery(feed, errors)
            return PollOutcome(feed.id, True, next_poll, not_modified=True, previous_errors=errors)
        new, queued = await asyncio.to_thread(
            _process, feed, state, result, store, ruleset(), now, jitter, muted
        )
    except FeedError as exc:
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
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
    parsed = parse_feed(result)
    articles = list({a.key: a for a in normalize(feed, parsed, now)}.values())
    known = store.known_keys(feed.id, (a.key for a in articles))
    first_poll = state is None or state.first_success is None
    alerts: list[tuple[Alert, str]] = []
    for article in articles:
        if article.key in known:
            continue
        if first_poll and not in_backfill(article, feed.backfill, now):
            continue
        alerts.extend(ruleset.alerts_for(article, muted))
    next_poll = next_poll_at(now, feed.interval, 0, None, result.max_age, jitter=jitter)
    fresh = [a for a in articles if a.key not in known]
    archive = archive_entries(fresh, now, ruleset.keep_text)
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
            archive=archive,
        )
    if parsed.warning:
        log.debug("feed %s parsed with a warning: %s", feed.id, parsed.warning)
    if inserted:
        log.info("feed %s: %d new entries, %d alerts queued", feed.id, len(inserted), queued)
    return len(inserted), queued


def drop_repeated_stories(
    alerts: list[tuple[Alert, str]], store: Store, now: datetime
) -> list[tuple[Alert, str]]:
    """Keep one alert per channel for a story already alerted under another link in 24 h.

    Stories with the same canonical link or GUID are merged by the outbox's
    unique key; this catches the same wire text republished under another URL.
    """
    if not alerts:
        return alerts
    recent = store.recent_titles(sorted({a.channel for a, _ in alerts}), now - SAME_STORY_WINDOW)
    seen = {channel: [title_key(t) for t in titles] for channel, titles in recent.items()}
    kept = []
    for alert, story in alerts:
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
        kept.append((alert, story))
    return kept


def _log_recovery(feed: FeedSource, errors: int) -> None:
    if errors:
        log.warning("feed %s recovered after %d failed polls", feed.id, errors)


def _hhmm(when: datetime) -> str:
    return when.strftime("%H:%M:%S UTC")
