"""``poll_feed``: the one place that runs the stages in order for one feed.

fetch → parse (a feed; a Telegram preview and its older pages; a page's
article links) → articles → (storage: which entries are new) → backfill →
linked pages of the new entries (``full_text``, page sources; fetched on the
event loop, extracted in threads) → match (every new entry that may alert or
counts in the surge counters, which count them all within ``COUNT_RETENTION``;
only those, and the ones the archive keeps, have their text read) → translate
(channels with ``translate_to``; I/O, concurrent, bounded) → render (one alert
per channel, carrying its story key, with its story candidate) → (storage, in
one transaction: entries, archive, match counters, feed state, and each alert
queued or grouped into a story the channel was already alerted to) → surges
(rules with ``surge`` whose counters moved).

Translation runs on the event loop between matching and committing (threads):
every alert of the poll is translated at once (``asyncio.gather``), each call
bounded by ``translate_timeout``, so a hanging backend delays the poll's alerts
by that bound once; the translator's circuit breaker then fails the next calls
without waiting. A failed translation never stops an alert: it is rendered
untranslated with a short note.

Each entry is matched once, after its page arrived or failed: a page that
fails never loses the entry (it is matched on what the feed carried) and is
counted in the feed's ``page_errors``. The CPU-bound parts run in threads:
parse + known keys; match; render + commit.

A feed that fails is recorded and backed off here; nothing a feed does can
stop the others. Rules and channels come from a ``Ruleset`` that the worker
swaps whole when the configuration changes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from monitor import metrics
from monitor.archive import archive_entries, kept
from monitor.articles import EntryHead, entry_head, read_entry
from monitor.config import Settings
from monitor.exceptions import FeedError, FetchError, ParseError, TranslateError
from monitor.fetch import Fetcher
from monitor.fulltext import PageFetcher, PageResult, wants_page, with_page
from monitor.match import Matcher, compile_rules
from monitor.models import (
    Alert,
    Article,
    Channel,
    EntryRow,
    FeedKind,
    FeedSource,
    FeedState,
    FetchResult,
    Match,
    MuteTarget,
    ParsedFeed,
    Priority,
    Rule,
    StoryMode,
)
from monitor.parse import parse_feed
from monitor.render.alert import render_alert, translation_request
from monitor.scheduler import next_poll_at
from monitor.sources import telegram
from monitor.statebatch import UnchangedWriter
from monitor.storage import Store, UnchangedPoll
from monitor.storage.surges import count_hour
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
    pages: int = 0  # linked pages fetched with text
    page_errors: int = 0  # linked pages that failed (their entries matched on feed text)


def in_backfill(article: EntryRow, backfill: timedelta | None, now: datetime) -> bool:
    """On a feed's first poll, only entries newer than ``backfill`` may alert."""
    if backfill is None:
        return True
    if backfill <= timedelta(0) or article.published is None:
        return False
    return article.published >= now - backfill


def first_poll_backfill(feed: FeedSource) -> timedelta | None:
    """The backfill a first poll applies: a page source's links carry no date (every
    one would look published at first sight), so its first poll alerts on nothing
    unless ``backfill: all``."""
    if feed.kind is FeedKind.PAGE and feed.backfill is not None:
        return timedelta(0)
    return feed.backfill


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
    pages: PageFetcher | None = None,
    states: Mapping[str, FeedState] | None = None,
    unchanged: UnchangedWriter | None = None,
) -> PollOutcome:
    """Poll one feed and queue alerts for its new entries; never raises for a feed's fault.

    ``pages`` fetches linked article pages; the worker shares one between its
    polls so the per-host politeness limits hold across feeds (default: one
    for this poll only). ``states`` are feed states read beforehand for a whole
    batch of polls (a feed missing from it has none yet); without it the poll
    reads its own. ``unchanged`` batches the state writes of unchanged polls;
    without it an unchanged poll writes alone.
    """
    started = time.perf_counter()
    try:
        outcome = await _poll(
            feed,
            store,
            fetcher,
            ruleset,
            now,
            muted,
            rng,
            translator,
            budget,
            pages or PageFetcher(fetcher, cpu_lock=CPU_LOCK),
            states,
            unchanged,
        )
    finally:
        metrics.POLL_SECONDS.observe(time.perf_counter() - started)
    label = "error" if not outcome.ok else "not_modified" if outcome.not_modified else "ok"
    metrics.POLLS.labels(label).inc()
    metrics.NEW_ENTRIES.inc(outcome.new_entries)
    if outcome.pages:
        metrics.PAGES.labels("ok").inc(outcome.pages)
    if outcome.page_errors:
        metrics.PAGES.labels("error").inc(outcome.page_errors)
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
    budget: float,
    pages: PageFetcher,
    states: Mapping[str, FeedState] | None = None,
    unchanged: UnchangedWriter | None = None,
) -> PollOutcome:
    jitter = (rng or random).uniform(0.0, 0.1)
    cap = pages.policy.max_per_poll
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
        spent = ProcessingBudget(feed, budget)
        if feed.kind is FeedKind.TELEGRAM:
            parsed = await _read_channel(feed, state, result, store, fetcher, spent)
        else:
            parsed = await asyncio.to_thread(_parse, feed, result, spent)
        keep_text = ruleset().keep_text
        batch = await asyncio.to_thread(
            _select, feed, state, parsed, store, now, cap, keep_text, spent
        )
        fetched = await pages.fetch_pages(feed, batch.page_links)
        rules = ruleset()
        prepared = await asyncio.to_thread(_prepare, feed, batch, fetched, rules, muted, spent)
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
        feed.id,
        True,
        next_poll,
        new_entries=new,
        alerts=queued,
        previous_errors=errors,
        pages=len(fetched) - prepared.page_errors,
        page_errors=prepared.page_errors,
    )


@dataclass(frozen=True)
class _Batch:
    """A parsed poll before matching: every entry, and which new ones may alert."""

    articles: list[EntryRow]  # every entry (its text read only when ``new`` holds it)
    new: list[Article]  # not seen before in this feed and matched or archived: with text
    to_match: list[Article]  # new and within backfill: matched once their pages are in
    to_count: frozenset[str] = frozenset()  # keys of the other new entries that are matched
    page_links: list[tuple[str, str]] = field(default_factory=list)  # (key, link) to fetch
    deferred: frozenset[str] = frozenset()  # keys left for the next poll (page cap)
    warning: str | None = None


def _parse(feed: FeedSource, result: FetchResult, spent: ProcessingBudget) -> ParsedFeed:
    """A feed document, or a page's article links, as entries (in a thread, CPU slot held)."""
    with spent.cpu_slot():
        parsed = _page_links(feed, result) if feed.kind is FeedKind.PAGE else parse_feed(result)
        spent.check("parsing")
    return parsed


def _select(
    feed: FeedSource,
    state: FeedState | None,
    parsed: ParsedFeed,
    store: Store,
    now: datetime,
    cap: int,
    keep_text: timedelta,
    spent: ProcessingBudget,
) -> _Batch:
    """Which entries are new and may alert, and which of those (at most ``cap``) need
    their page (in a thread).

    Only a new entry that may alert, counts in the surge counters or goes into the
    archive has its text read (``read_entry``, most of the cost of an entry): an entry
    seen before, or a first poll's old history, is stored by its key, title, link and
    date alone.
    """
    heads: dict[str, EntryHead] = {}
    with spent.cpu_slot():
        for entry in parsed.entries:  # one at a time, so the budget is checked between
            head = entry_head(entry, now)
            heads.setdefault(head.key, head)
            spent.check("reading entries")
    known = store.known_keys(feed.id, list(heads))
    first_poll = state is None or state.first_success is None
    backfill = first_poll_backfill(feed)
    new: list[Article] = []
    to_match: list[Article] = []
    to_count: set[str] = set()
    articles: list[EntryRow] = []
    with spent.cpu_slot():
        for head in heads.values():
            if head.key in known:
                articles.append(head)
                continue
            alerts = not first_poll or in_backfill(head, backfill, now)
            counts = count_hour(head.published, now) is not None
            if not (alerts or counts or kept(head.published, now, keep_text)):
                articles.append(head)  # stored, never read: it can neither alert nor count
                continue
            article = read_entry(feed, parsed, head)
            articles.append(article)
            new.append(article)
            if alerts:
                to_match.append(article)
            elif counts:
                to_count.add(article.key)
            spent.check("reading entries")
    wanting = [a for a in to_match if wants_page(feed, a)]
    over = wanting[cap:]
    deferred: frozenset[str] = frozenset()
    if over and feed.kind is FeedKind.PAGE:
        # a link is all such an entry has: it waits for the next poll (validators are
        # not stored, so that poll reads the page again in full)
        deferred = frozenset(a.key for a in over)
        log.info("feed %s: %d new links wait for the next poll (page cap)", feed.id, len(over))
    elif over:
        log.info(
            "feed %s: %d new entries over the page cap are matched on the feed's text",
            feed.id,
            len(over),
        )
    return _Batch(
        articles=[a for a in articles if a.key not in deferred],
        new=[a for a in new if a.key not in deferred],
        to_match=[a for a in to_match if a.key not in deferred],
        to_count=frozenset(to_count - deferred),
        page_links=[(a.key, a.link or "") for a in wanting[:cap]],
        deferred=deferred,
        warning=parsed.warning,
    )


@dataclass(frozen=True)
class _Prepared:
    """A poll's articles and the new ones that matched (with their pages' text)."""

    articles: list[EntryRow]
    candidates: list[Candidate]
    warning: str | None
    page_errors: int = 0
    keep_validators: bool = True  # False when links wait for the next poll
    fresh: list[Article] = field(default_factory=list)  # new here: archived if inserted
    matched: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # key → rules (surges)
    muted: Collection[str] = ()  # /mute targets: no surge alerts for them either


def _prepare(
    feed: FeedSource,
    batch: _Batch,
    fetched: Mapping[str, PageResult],
    ruleset: Ruleset,
    muted: Collection[str],
    spent: ProcessingBudget,
) -> _Prepared:
    """CPU-bound (runs in a thread): match each new entry once, with its page's text
    when the page came.

    Raises ``FeedError`` when the work outgrows the poll's budget (see
    ``POLL_BUDGET``); nothing is committed then, so the next poll starts over.
    """
    candidates: list[Candidate] = []
    page_errors = 0
    read: dict[str, Article] = {}
    matched: dict[str, tuple[str, ...]] = {}
    may_alert = {a.key for a in batch.to_match}
    with spent.cpu_slot():
        # new entries outside backfill are matched too, when they count in the surge
        # counters (history); only those within backfill may alert
        for article in batch.new:
            if article.key not in may_alert and article.key not in batch.to_count:
                continue  # archived only
            got = fetched.get(article.key)
            if got is not None:
                if got.page is not None:
                    article = read[article.key] = with_page(feed, article, got.page)
                else:
                    page_errors += 1
                    log.info("feed %s: page %s: %s", feed.id, got.link, got.error)
            matches = ruleset.matches(article)
            spent.check("matching")
            if not matches:
                continue
            matched[article.key] = tuple(m.rule for m in matches)
            if article.key not in may_alert:
                continue
            candidate = ruleset.matches_for(article, muted, matches)
            if candidate.per_channel:
                candidates.append(candidate)
    return _Prepared(
        batch.articles,
        candidates,
        batch.warning,
        page_errors,
        keep_validators=not batch.deferred,
        fresh=[read.get(a.key, a) for a in batch.new],
        matched=matched,
        muted=muted,
    )


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
    """The last part (runs in a thread): render, commit (storage queues each alert or
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
        etag=result.etag if prepared.keep_validators else None,
        last_modified=result.last_modified if prepared.keep_validators else None,
        content_hash=result.content_hash if prepared.keep_validators else None,
        next_poll=next_poll,
        page_errors=prepared.page_errors,
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


_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:+-]{1,40})""", re.IGNORECASE)


def _page_links(feed: FeedSource, result: FetchResult) -> ParsedFeed:
    """A page source's article links as entries (``links:`` selector, else discovered)."""
    from monitor.sources import page as page_source  # loads with the first page source

    declared = _CHARSET.search(result.headers.get("content-type", ""))
    try:
        links = page_source.discover_links(
            result.content,
            result.url,
            feed.links,
            encoding=declared.group(1) if declared else None,
        )
    except ValueError as exc:  # the config check refuses bad selectors first
        raise ParseError(f"links: {exc}", feed_id=feed.id, url=feed.url) from exc
    return page_source.links_feed(links, None, result.url)


#: A Telegram post's key, ``https://t.me/NAME/ID``.
_POST_KEY = re.compile(r"^https://t\.me/[A-Za-z0-9_]{1,64}/(\d{1,18})$")


def known_max_post(keys: Collection[str]) -> int | None:
    """The highest post id among a channel feed's stored entry keys."""
    ids = [int(m.group(1)) for key in keys if (m := _POST_KEY.match(key))]
    return max(ids) if ids else None


async def _read_channel(
    feed: FeedSource,
    state: FeedState | None,
    result: FetchResult,
    store: Store,
    fetcher: Fetcher,
    spent: ProcessingBudget,
) -> ParsedFeed:
    """A channel's preview and, when more than a page of posts arrived since the last
    poll, its older pages (``?before=ID``, at most ``telegram.MAX_BEFORE_PAGES``)."""
    name = feed.telegram or telegram.channel_name(feed.url) or feed.id
    first = await asyncio.to_thread(_parse_channel, result.content, name, spent)
    if not first.available:
        raise ParseError(
            "no public preview: the page shows no channel posts (a private or unknown "
            "channel, or one that disabled its web preview)",
            feed_id=feed.id,
            url=feed.url,
        )
    entries = list(first.entries)
    first_poll = state is None or state.first_success is None
    if first_poll or _scheme(feed.url) not in ("http", "https"):
        return first.feed()
    known = known_max_post(await asyncio.to_thread(store.latest_keys, feed.id))
    page, pages, cursor = first, 1, None
    try:
        async with asyncio.timeout(fetcher.settings.timeout):
            while (
                nxt := telegram.next_before(page, known, pages, fetched_before=cursor)
            ) is not None:
                older = FeedSource(
                    id=feed.id,
                    url=telegram.before_url(feed.url, nxt),
                    user_agent=feed.user_agent,
                    headers=feed.headers,
                )
                body = (await fetcher.fetch(older, None)).content
                page = await asyncio.to_thread(_parse_channel, body, name, spent)
                pages, cursor = pages + 1, nxt
                entries[:0] = page.entries  # older posts first
    except TimeoutError as exc:
        raise FetchError(
            f"older preview pages took more than {fetcher.settings.timeout:g} s",
            feed_id=feed.id,
            url=feed.url,
        ) from exc
    if pages > 1:
        log.info("feed %s: read %d preview pages (posts since %s)", feed.id, pages, known)
    return ParsedFeed(title=first.title, link=feed.url, entries=tuple(entries))


def _parse_channel(body: bytes, name: str, spent: ProcessingBudget) -> telegram.ChannelPage:
    """One preview page, parsed holding the CPU slot (in a thread)."""
    with spent.cpu_slot():
        page = telegram.parse_channel_page(body, name)
        spent.check("parsing")
    return page


def _scheme(url: str) -> str:
    """The lower-case scheme of ``url`` ("" for a local path)."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep else ""


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
