"""``poll_feed``: the one place that runs the stages in order for one feed.

fetch → parse → articles → (storage: which entries are new) → match (every
new entry: the surge counters count them all) → backfill → render (one alert
per channel, carrying its story key, with its story candidate) → (storage, in
one transaction: entries, match counters, feed state, and each alert queued or
grouped into a story the channel was already alerted to) → surges (rules with
``surge`` whose counters moved).

A feed that fails is recorded and backed off here; nothing a feed does can
stop the others. Rules and channels come from a ``Ruleset`` that the worker
swaps whole when the configuration changes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
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
    StoryMode,
)
from monitor.parse import parse_feed
from monitor.render.alert import render_alert
from monitor.scheduler import next_poll_at
from monitor.storage import Store
from monitor.stories import StoryClaim, candidate_from

log = logging.getLogger(__name__)


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

    def matches(self, article: Article) -> list[Match]:
        """The rules that match ``article`` (counted in the metrics)."""
        matches = self.matcher.match(article, self.feed_tags.get(article.feed_id, ()))
        for match in matches:
            metrics.MATCHES.labels(match.rule).inc()
        return matches

    @functools.cached_property
    def surge_rules(self) -> frozenset[str]:
        """Rules watched for surges: ``surge: true``, or notifying a ``surges: true`` channel."""
        return frozenset(
            rule.name
            for rule in self.rules.values()
            if rule.surge
            or any(c in self.channels and self.channels[c].surges for c in rule.notify)
        )

    def alerts_for(
        self, article: Article, muted: Collection[str] = (), matches: Sequence[Match] | None = None
    ) -> list[Alert]:
        """One rendered alert per channel that any matching rule notifies.

        ``muted`` holds the targets silenced with /mute as stored ("rule:NAME",
        "channel:NAME"; see ``MuteTarget``).
        """
        return [claim.alert for claim in self.claims_for(article, muted, matches)]

    def claims_for(
        self,
        article: Article,
        muted: Collection[str] = (),
        matches: Sequence[Match] | None = None,
        now: datetime | None = None,
    ) -> list[StoryClaim]:
        """``alerts_for`` with each alert's story candidate (None for ``stories: off``).

        An article without a publication time is placed in stories by ``now``,
        when it was first seen.
        """
        if matches is None:
            matches = self.matches(article)
        per_channel: dict[str, list[Match]] = {}
        for match in matches:
            if str(MuteTarget.rule(match.rule)) in muted:
                continue
            for channel in self.rules[match.rule].notify:
                if str(MuteTarget.channel(channel)) not in muted:
                    per_channel.setdefault(channel, []).append(match)
        priorities: dict[str, Priority] = {m.rule: self.rules[m.rule].priority for m in matches}
        dated = article if article.published or now is None else replace(article, published=now)
        claims = []
        for name, channel_matches in per_channel.items():
            channel = self.channels.get(name)
            if channel is None:
                continue
            alert = render_alert(article, channel_matches, channel, priorities)
            candidate = None
            if channel.stories != StoryMode.OFF:
                candidate = candidate_from(dated, channel_matches)
            claims.append(StoryClaim(alert, candidate, channel.story_window))
        return claims


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
    articles = list({a.key: a for a in to_articles(feed, parsed, now)}.values())
    known = store.known_keys(feed.id, (a.key for a in articles))
    first_poll = state is None or state.first_success is None
    claims: list[StoryClaim] = []
    matched: dict[str, tuple[str, ...]] = {}
    for article in articles:
        if article.key in known:
            continue
        matches = ruleset.matches(article)  # also outside backfill: history for surges
        if not matches:
            continue
        matched[article.key] = tuple(m.rule for m in matches)
        if first_poll and not in_backfill(article, feed.backfill, now):
            continue
        claims.extend(ruleset.claims_for(article, muted, matches, now))
    next_poll = next_poll_at(now, feed.interval, 0, None, result.max_age, jitter=jitter)
    inserted, queued = store.commit_poll(
        feed_id=feed.id,
        url=feed.url,
        now=now,
        articles=articles,
        alerts=(),
        claims=claims,
        matched=matched,
        status=result.status,
        etag=result.etag,
        last_modified=result.last_modified,
        content_hash=result.content_hash,
        next_poll=next_poll,
    )
    surging = ruleset.surge_rules.intersection(
        rule for key in inserted for rule in matched.get(key, ())
    )
    if surging:
        from monitor.trends import check_surges  # matplotlib loads only where surges are on

        queued += check_surges(store, ruleset, sorted(surging), now)
    if parsed.warning:
        log.debug("feed %s parsed with a warning: %s", feed.id, parsed.warning)
    if inserted:
        log.info("feed %s: %d new entries, %d alerts queued", feed.id, len(inserted), queued)
    return len(inserted), queued


def _log_recovery(feed: FeedSource, errors: int) -> None:
    if errors:
        log.warning("feed %s recovered after %d failed polls", feed.id, errors)


def _hhmm(when: datetime) -> str:
    return when.strftime("%H:%M:%S UTC")
