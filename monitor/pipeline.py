"""``poll_feed``: the one place that runs the stages in order for one feed.

fetch → parse → articles → (storage: which entries are new) → match (every
new entry: the surge counters count them all) → backfill → translate (channels
with ``translate_to``; I/O, concurrent, bounded) → render (one alert per
channel, carrying its story key, with its story candidate) → (storage, in one
transaction: entries, match counters, feed state, and each alert queued or
grouped into a story the channel was already alerted to) → surges (rules with
``surge`` whose counters moved).

Translation runs on the event loop between the two threaded halves of a poll:
every alert of the poll is translated at once (``asyncio.gather``), each call
bounded by ``translate_timeout``, so a hanging backend delays the poll's alerts
by that bound once; the translator's circuit breaker then fails the next calls
without waiting. A failed translation never stops an alert: it is rendered
untranslated with a short note.

A feed that fails is recorded and backed off here; nothing a feed does can
stop the others. Rules and channels come from a ``Ruleset`` that the worker
swaps whole when the configuration changes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from monitor import metrics
from monitor.archive import archive_entries
from monitor.articles import to_articles
from monitor.config import Settings
from monitor.exceptions import FeedError, FetchError, TranslateError
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
from monitor.render.alert import render_alert, translation_request
from monitor.scheduler import next_poll_at
from monitor.storage import Store
from monitor.stories import StoryClaim, candidate_from
from monitor.translate import Translation, Translator

log = logging.getLogger(__name__)

#: A feed that answered 410 Gone is asked again this late (the back-off cap), in case
#: the publisher brings it back; the operator hears of it after ``feed_down_after``.
GONE_RETRY = timedelta(hours=6)

#: Seconds of processing (parse, entries to articles, match, render) one poll of one
#: feed may take. The caps bound each step; this bounds their sum over a hostile or
#: enormous feed. Checked between steps and between entries: a feed over it is
#: abandoned for this poll as failed (counted, backed off, shown in ``monitor feeds``).
POLL_BUDGET = 20.0

#: One poll at a time does CPU-bound work (parse, articles, match) in this process.
#: Python threads share one GIL: several CPU-bound threads at once made the event
#: loop (sender, bot, /healthz) wait up to 1.5 s for it, one at a time ~0.1–0.3 s,
#: for ~7 % less throughput (bench/loop_stall.py). Hold it with ``cpu_slot()``.
CPU_LOCK = threading.Lock()


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

    def alerts_for(self, article: Article, muted: Collection[str] = ()) -> list[Alert]:
        """One rendered alert per channel that any matching rule notifies (untranslated).

        ``muted`` holds the targets silenced with /mute as stored ("rule:NAME",
        "channel:NAME"; see ``MuteTarget``).
        """
        return self.render(self.matches_for(article, muted))

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

    def matches_for(
        self, article: Article, muted: Collection[str] = (), matches: Sequence[Match] | None = None
    ) -> Candidate:
        """The article's matches grouped by the channel they notify (mutes applied)."""
        if matches is None:
            matches = self.matches(article)
        per_channel: dict[str, list[Match]] = {}
        for match in matches:
            if str(MuteTarget.rule(match.rule)) in muted:
                continue
            for channel in self.rules[match.rule].notify:
                if str(MuteTarget.channel(channel)) not in muted and channel in self.channels:
                    per_channel.setdefault(channel, []).append(match)
        priorities: dict[str, Priority] = {m.rule: self.rules[m.rule].priority for m in matches}
        return Candidate(article, per_channel, priorities)

    def render(
        self, candidate: Candidate, translations: Mapping[str, Translation | str] | None = None
    ) -> list[Alert]:
        """The candidate's alerts; ``translations`` maps a channel to its translation or
        to the short reason it has none."""
        out = []
        for name, channel_matches in candidate.per_channel.items():
            got = (translations or {}).get(name)
            out.append(
                render_alert(
                    candidate.article,
                    channel_matches,
                    self.channels[name],
                    candidate.priorities,
                    translation=got if isinstance(got, Translation) else None,
                    translation_note=got if isinstance(got, str) else None,
                )
            )
        return out

    def claims(
        self,
        candidate: Candidate,
        translations: Mapping[str, Translation | str] | None = None,
        now: datetime | None = None,
    ) -> list[StoryClaim]:
        """``render``'s alerts, each with its story candidate (None for ``stories: off``).

        An article without a publication time is placed in stories by ``now``,
        when it was first seen.
        """
        article = candidate.article
        dated = article if article.published or now is None else replace(article, published=now)
        claims = []
        alerts = self.render(candidate, translations)
        for (name, matches), alert in zip(candidate.per_channel.items(), alerts, strict=True):
            channel = self.channels[name]
            story = candidate_from(dated, matches) if channel.stories != StoryMode.OFF else None
            claims.append(StoryClaim(alert, story, channel.story_window))
        return claims


@dataclass(frozen=True)
class Candidate:
    """A new article that matched, before rendering: its matches per channel."""

    article: Article
    per_channel: Mapping[str, list[Match]]
    priorities: Mapping[str, Priority]


#: The short note an untranslated alert carries, per failure kind (``failure_kind``).
UNTRANSLATED_NOTES = {
    "timeout": "the translation service did not answer in time",
    "circuit_open": "the translation service is down",
    "unavailable": "the translation service is unreachable",
    "rate_limited": "the translation service asked us to slow down",
    "auth_or_quota": "the translation key was refused or its quota is used up",
    "http_5xx": "the translation service failed",
    "too_long": "the text is too long to translate",
    "not_configured": "translation is not configured",
}
_DEFAULT_NOTE = "the translation failed"


async def translate_candidates(
    candidates: list[Candidate], ruleset: Ruleset, translator: Translator | None
) -> list[dict[str, Translation | str]]:
    """Per candidate, each ``translate_to`` channel's translation or the note saying why not.

    All calls run at once (nothing waits for another alert's translation); each
    is bounded by the translator's timeout (plus a second as a guard), so the
    whole batch waits at most about that long, and the translator's circuit
    breaker makes the next batches fail at once while the backend is down.
    """
    jobs: list[tuple[int, str, Any]] = []
    results: list[dict[str, Translation | str]] = [{} for _ in candidates]
    problem = translator.problem if translator is not None else "no translate: block"
    for i, candidate in enumerate(candidates):
        for name, matches in candidate.per_channel.items():
            channel = ruleset.channels[name]
            if channel.translate_to is None:
                continue
            if translator is None or problem:
                metrics.TRANSLATIONS.labels("failed").inc()
                metrics.TRANSLATE_FAILURES.labels("not_configured").inc()
                results[i][name] = UNTRANSLATED_NOTES["not_configured"]
                continue
            title, sentences = translation_request(candidate.article, matches, channel)
            call = translator.translate_alert_text(
                title, sentences, candidate.article.language, channel.translate_to
            )
            jobs.append((i, name, asyncio.wait_for(call, translator.timeout + 1.0)))
    if not jobs:
        return results
    answers = await asyncio.gather(*(job for _, _, job in jobs), return_exceptions=True)
    for (i, name, _), answer in zip(jobs, answers, strict=True):
        if isinstance(answer, Translation):
            outcome = "translated" if answer.translated else "same_language"
            metrics.TRANSLATIONS.labels(outcome).inc()
            results[i][name] = answer
            continue
        if isinstance(answer, TranslateError):
            reason, kind = answer.reason, failure_kind(answer)
        elif isinstance(answer, TimeoutError):
            reason, kind = "timed out", "timeout"
        elif isinstance(answer, asyncio.CancelledError):
            raise answer
        else:  # a bug in a backend: the alert must still go out
            log.error("translation failed unexpectedly", exc_info=answer)
            reason, kind = "unexpected error", "error"
        metrics.TRANSLATIONS.labels("failed").inc()
        metrics.TRANSLATE_FAILURES.labels(kind).inc()
        log.info("channel %s: alert goes out untranslated (%s)", name, reason)
        results[i][name] = UNTRANSLATED_NOTES.get(kind, _DEFAULT_NOTE)
    return results


def failure_kind(error: TranslateError) -> str:
    """The ``/metrics`` label of a failed translation (the keys of ``UNTRANSLATED_NOTES``)."""
    status = error.status
    if status is None:
        if error.reason.startswith("timed out"):
            return "timeout"
        if error.reason.startswith("paused"):
            return "circuit_open"
        if "too long" in error.reason:
            return "too_long"
        return "unavailable" if error.backend_down else "malformed"
    if status == 429:
        return "rate_limited"
    if status in (401, 403, 456):
        return "auth_or_quota"
    return "http_5xx" if status >= 500 else "bad_request"


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
    translator: Translator | None = None,
    budget: float = POLL_BUDGET,
) -> PollOutcome:
    """Poll one feed and queue alerts for its new entries; never raises for a feed's fault."""
    started = time.perf_counter()
    try:
        outcome = await _poll(
            feed, store, fetcher, ruleset, now, muted, rng, translator, budget
        )
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
    translator: Translator | None,
    budget: float = POLL_BUDGET,
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
        rules = ruleset()
        spent = ProcessingBudget(feed, budget)
        prepared = await asyncio.to_thread(
            _prepare, feed, state, result, store, rules, now, muted, spent
        )
        translations = await translate_candidates(prepared.candidates, rules, translator)
        new, queued = await asyncio.to_thread(
            _commit, feed, prepared, translations, result, store, rules, now, jitter, spent
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


@dataclass(frozen=True)
class _Prepared:
    """The first half of a poll: the feed's articles and the new ones that matched."""

    articles: list[Article]
    candidates: list[Candidate]
    warning: str | None
    fresh: list[Article]  # not seen before in this feed (archived if the commit inserts them)
    matched: Mapping[str, tuple[str, ...]]  # new entry key → rules it matched (surge counts)
    muted: Collection[str] = ()  # /mute targets: no surge alerts for them either


def _prepare(
    feed: FeedSource,
    state: FeedState | None,
    result: FetchResult,
    store: Store,
    ruleset: Ruleset,
    now: datetime,
    muted: Collection[str],
    spent: ProcessingBudget,
) -> _Prepared:
    """CPU-bound (runs in a thread): parse, find the new entries, match.

    Raises ``FeedError`` when the work outgrows the poll's budget (see
    ``POLL_BUDGET``); nothing is committed then, so the next poll starts over.
    """
    with spent.cpu_slot():
        parsed = parse_feed(result)
        spent.check("parsing")
        by_key: dict[str, Article] = {}
        for entry in parsed.entries:  # one at a time, so the budget is checked between
            for article in to_articles(feed, replace(parsed, entries=(entry,)), now):
                by_key.setdefault(article.key, article)
            spent.check("reading entries")
    articles = list(by_key.values())
    known = store.known_keys(feed.id, list(by_key))
    first_poll = state is None or state.first_success is None
    candidates: list[Candidate] = []
    matched: dict[str, tuple[str, ...]] = {}
    with spent.cpu_slot():
        for article in articles:
            if article.key in known:
                continue
            matches = ruleset.matches(article)  # also outside backfill: history for surges
            spent.check("matching")
            if not matches:
                continue
            matched[article.key] = tuple(m.rule for m in matches)
            if first_poll and not in_backfill(article, feed.backfill, now):
                continue
            candidate = ruleset.matches_for(article, muted, matches)
            if candidate.per_channel:
                candidates.append(candidate)
    fresh = [a for a in articles if a.key not in known]
    return _Prepared(articles, candidates, parsed.warning, fresh, matched, muted)


def _commit(
    feed: FeedSource,
    prepared: _Prepared,
    translations: list[dict[str, Translation | str]],
    result: FetchResult,
    store: Store,
    ruleset: Ruleset,
    now: datetime,
    jitter: float,
    spent: ProcessingBudget,
) -> tuple[int, int]:
    """The second half (runs in a thread): render, commit (storage queues each alert or
    groups it into a story already alerted), then look for surges."""
    claims: list[StoryClaim] = []
    with spent.cpu_slot():
        for candidate, translated in zip(prepared.candidates, translations, strict=True):
            claims.extend(ruleset.claims(candidate, translated, now))
        archive = archive_entries(prepared.fresh, now, ruleset.keep_text)
        spent.check("rendering")
    next_poll = next_poll_at(now, feed.interval, 0, None, result.max_age, jitter=jitter)
    inserted, queued = store.commit_poll(
        feed_id=feed.id,
        url=feed.url,
        now=now,
        articles=prepared.articles,
        alerts=(),
        claims=claims,
        matched=prepared.matched,
        status=result.status,
        etag=result.etag,
        last_modified=result.last_modified,
        content_hash=result.content_hash,
        next_poll=next_poll,
        archive=archive,
    )
    surging = ruleset.surge_rules.intersection(
        rule for key in inserted for rule in prepared.matched.get(key, ())
    )
    if surging:
        from monitor.trends import check_surges  # matplotlib loads only where surges are on

        queued += check_surges(store, ruleset, sorted(surging), now, prepared.muted)
    if prepared.warning:
        log.debug("feed %s parsed with a warning: %s", feed.id, prepared.warning)
    if inserted:
        log.info("feed %s: %d new entries, %d alerts queued", feed.id, len(inserted), queued)
    return len(inserted), queued


class ProcessingBudget:
    """The CPU time one poll has used, counted only while it holds ``CPU_LOCK`` (time
    spent waiting for the lock or for the database is not the feed's fault)."""

    def __init__(self, feed: FeedSource, seconds: float = POLL_BUDGET) -> None:
        self.feed = feed
        self.seconds = seconds
        self.used = 0.0
        self._since: float | None = None

    @contextmanager
    def cpu_slot(self) -> Iterator[ProcessingBudget]:
        """Hold the process's CPU slot (see ``CPU_LOCK``) and count the time against us."""
        with CPU_LOCK:
            self._since = time.monotonic()
            try:
                yield self
            finally:
                self.used += time.monotonic() - self._since
                self._since = None

    def check(self, stage: str) -> None:
        """Raise ``FeedError`` once the budget is spent (call it between units of work)."""
        used = self.used + (time.monotonic() - self._since if self._since is not None else 0.0)
        if used > self.seconds:
            raise FeedError(
                f"processing took longer than {self.seconds:g} s (while {stage}); "
                "abandoned for this poll",
                feed_id=self.feed.id,
                url=self.feed.url,
            )


def _log_recovery(feed: FeedSource, errors: int) -> None:
    if errors:
        log.warning("feed %s recovered after %d failed polls", feed.id, errors)


def _hhmm(when: datetime) -> str:
    return when.strftime("%H:%M:%S UTC")
