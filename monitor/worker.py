"""``monitor run``: wires config, storage, fetcher, scheduler, sender and reloads.

One asyncio loop holds everything. The schedule lives in the database: each
feed row has ``next_poll``, and APScheduler's tick job (every second,
``max_instances=1``, ``coalesce``) leases the feeds that are due and polls each
in its own task — so a slow feed never delays the others, and several workers
on one PostgreSQL share the feeds without a coordinator of their own. The
sender drains the outbox in its own task; a watcher reloads the configuration
when a file changes or on SIGHUP (validated completely before anything is
swapped; a broken edit keeps the old configuration running).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor import metrics
from monitor.config import Settings, load_settings
from monitor.deliver.notifier import ConsoleNotifier, Notifier, TelegramNotifier
from monitor.deliver.sender import Sender, SendStats
from monitor.exceptions import ConfigError, NotifyError, StorageError
from monitor.fetch import DEFAULT_USER_AGENT, Fetcher, FetchSettings
from monitor.fulltext import PageFetcher
from monitor.match import REGEX_TIMEOUT
from monitor.models import Alert, Channel, FeedSource, FeedState, utc_now
from monitor.outage import OutageLog
from monitor.pipeline import CPU_LOCK, PollOutcome, Ruleset, poll_feed
from monitor.render import operator_alerts as operator
from monitor.render.digest import DigestItem, digest_due, render_digest
from monitor.render.operator_alerts import OPERATOR_CHANNEL
from monitor.statebatch import UnchangedWriter
from monitor.storage import Store
from monitor.translate import Translator, build_translator

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # how often a worker looks for due feeds
TICK_BUDGET = 5.0  # a tick may keep claiming this long while there is a backlog
ONCE_RETRY_WINDOW = timedelta(seconds=90)  # `--once` waits this long for quick retries
RETENTION = timedelta(days=30)  # entries gone from their feed this long are forgotten
RELOAD_POLL_SECONDS = 2.0  # config files are checked this often (plus SIGHUP)
SHUTDOWN_GRACE = 6.0  # seconds running polls and jobs get to finish on SIGTERM
DIGEST_LEASE = timedelta(seconds=60)
BOT_LEASE = timedelta(seconds=30)  # one worker answers Telegram commands; renewed every 10 s
MIN_FEED_LEASE = timedelta(seconds=60)  # a claimed feed's lease, renewed every third of it


def feed_lease(settings: FetchSettings) -> timedelta:
    """How long a claimed feed stays ours without renewal: longer than one fetch, and
    renewed every third of it while the poll runs, so a slow poll (a fetch near its
    timeout, then up to ``POLL_BUDGET`` of processing) is never polled twice at once;
    a crashed worker's feeds pass on when it lapses."""
    return max(MIN_FEED_LEASE, timedelta(seconds=settings.timeout * 2 + 10))


def make_notifier(settings: Settings) -> Notifier:
    """Telegram when a token is set, else the console (the embedded default)."""
    if settings.telegram.token:
        return TelegramNotifier(settings.telegram.token, settings.telegram.api_url)
    return ConsoleNotifier()


def make_translator(settings: Settings) -> Translator | None:
    """The ``translate:`` block's translator (its key read from the environment), or None."""
    if settings.translate is None:
        return None
    translator = build_translator(settings.translate, os.environ)
    if translator.problem:
        log.warning("translation will fail until fixed: %s", translator.problem)
    return translator


def fetch_settings(settings: Settings) -> FetchSettings:
    defaults = settings.defaults
    return FetchSettings(
        user_agent=defaults.user_agent or DEFAULT_USER_AGENT,
        timeout=defaults.timeout.total_seconds(),
        max_bytes=defaults.max_bytes,
        allow_private_redirects=defaults.allow_private_redirects,
    )


def delivery_channels(settings: Settings, ruleset: Ruleset) -> dict[str, Channel]:
    """The rules' channels plus the operator's chat, when one is configured."""
    channels = dict(ruleset.channels)
    if settings.telegram.admin_chat:
        channels[OPERATOR_CHANNEL] = Channel(OPERATOR_CHANNEL, settings.telegram.admin_chat)
    return channels


def flush_digests(store: Store, channels: dict[str, Channel], owner: str, now: datetime) -> int:
    """Turn each channel's held alerts into digest messages when its period is up.

    Digest channels hold everything but high-priority alerts; instant channels
    hold what their hourly cap or quiet hours kept back. Returns messages queued.
    """
    queued = 0
    for channel in channels.values():
        held = store.held_alerts(channel.name)
        if not held:
            continue
        last = store.last_digest_at(channel.name)
        if not digest_due(channel, last or held[0].created_at, now, True):
            continue
        if not store.hold_lease(f"digest:{channel.name}", owner, now, DIGEST_LEASE):
            continue  # another worker is writing this digest
        also = store.story_sources(a.id for a in held)  # a story is one line, with its sources
        items = [
            DigestItem(a.title, a.link, a.rules, a.source, a.published, also.get(a.id, ()))
            for a in held
        ]
        parts = render_digest(items, channel, last or held[0].created_at, now)
        queued += store.queue_digest(channel.name, parts, [a.id for a in held], now)
    return queued


@dataclass(frozen=True)
class OnceReport:
    """What `monitor run --once` did."""

    outcomes: tuple[PollOutcome, ...]
    sent: SendStats
    pending: int

    def summary(self) -> str:
        failing = [o for o in self.outcomes if not o.ok]
        new = sum(o.new_entries for o in self.outcomes)
        queued = sum(o.alerts for o in self.outcomes)
        line = (
            f"polled {len(self.outcomes)} feeds ({len(failing)} failing): {new} new entries, "
            f"{queued} alerts queued, {self.sent.sent} sent, {self.sent.failed} failed, "
            f"{self.pending} pending"
        )
        if self.sent.edited:
            line += f", {self.sent.edited} story edits or replies"
        pages = sum(o.pages for o in self.outcomes)
        page_errors = sum(o.page_errors for o in self.outcomes)
        if pages or page_errors:
            line += f"; {pages} linked pages read, {page_errors} failed"
        return line + "".join(f"\n  feed {o.feed_id}: {o.error}" for o in failing)


async def run_once(settings: Settings, notifier: Notifier | None = None) -> OnceReport:
    """Poll every feed once, deliver what is due, and return what happened."""
    store = Store(settings.database_url)
    await asyncio.to_thread(store.migrate)
    notifier = notifier or make_notifier(settings)
    ruleset = Ruleset.from_settings(settings)
    translator = make_translator(settings)
    now = utc_now()
    muted = frozenset(await asyncio.to_thread(store.active_mutes, now))
    await asyncio.to_thread(store.register_rules, ruleset.surge_rules, now)
    # every feed's state in one read, and unchanged polls written in batches
    states = await asyncio.to_thread(store.feed_states, [feed.id for feed in settings.feeds])
    unchanged = UnchangedWriter(store)
    try:
        await notifier.start()
        async with Fetcher(fetch_settings(settings)) as fetcher:
            pages = PageFetcher(fetcher, cpu_lock=CPU_LOCK)  # one politeness budget per host
            outcomes = await asyncio.gather(
                *(
                    poll_feed(
                        feed,
                        store=store,
                        fetcher=fetcher,
                        ruleset=lambda: ruleset,
                        now=now,
                        muted=muted,
                        translator=translator,
                        pages=pages,
                        states=states,
                        unchanged=unchanged,
                    )
                    for feed in settings.feeds
                )
            )
            await unchanged.aclose()
        sender = Sender(
            store,
            notifier,
            delivery_channels(settings, ruleset),
            paced=settings.telegram.token is not None,
            owner=_owner_id(),
        )
        try:
            stats = await sender.drain(until=utc_now() + ONCE_RETRY_WINDOW)
            channels = delivery_channels(settings, ruleset)
            if await asyncio.to_thread(flush_digests, store, channels, sender.owner, utc_now()):
                stats = await sender.drain(until=utc_now() + ONCE_RETRY_WINDOW)
        finally:
            await sender.release()
        pending = await asyncio.to_thread(store.pending_count)
    finally:
        if translator is not None:
            await translator.aclose()
        await notifier.close()
        await asyncio.to_thread(store.close)
    return OnceReport(tuple(outcomes), stats, pending)


@dataclass
class Worker:
    """The long-running worker: leased polls, the sender, reloads, bot and health."""

    settings: Settings
    notifier: Notifier | None = None
    clock: Callable[[], datetime] = utc_now
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reloads: int = 0
    reload_failures: int = 0
    last_tick: datetime | None = None
    _sighup: bool = False
    _last_reload_error: str | None = None
    translator: Translator | None = None
    translate_down: bool = False  # reported to the operator once per change
    outage: OutageLog = field(default_factory=OutageLog)

    async def run(self) -> None:
        self.owner = _owner_id()
        self.started_at = self.clock()
        self.store = Store(self.settings.database_url)
        await asyncio.to_thread(self.store.migrate)
        with _single_sqlite_worker(self.settings.database_url):
            await self._run()

    async def _run(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler  # not needed by `--once`

        self.notifier = self.notifier or make_notifier(self.settings)
        self.loop = asyncio.get_running_loop()
        self._regex_reported: set[str] = set()
        self.ruleset = self._watch_regex(Ruleset.from_settings(self.settings))
        self._unreleased: set[str] = set()  # feeds whose poll ended in an outage
        self._polling: set[str] = set()  # feeds with a poll in flight
        self.feeds = {feed.id: feed for feed in self.settings.feeds}
        self.muted: frozenset[str] = frozenset()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.wake_sender = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.unchanged = UnchangedWriter(self.store)
        self._install_signals(asyncio.get_running_loop())
        await asyncio.to_thread(self.store.sync_feeds, self.settings.feeds, self.clock())
        await asyncio.to_thread(self.store.register_rules, self.ruleset.surge_rules, self.clock())
        await self.notifier.start()
        self.fetcher = Fetcher(fetch_settings(self.settings))
        self.translator = make_translator(self.settings)
        self.pages = PageFetcher(self.fetcher, cpu_lock=CPU_LOCK)  # per-host limits span feeds
        self.sender = Sender(
            self.store,
            self.notifier,
            delivery_channels(self.settings, self.ruleset),
            paced=self.settings.telegram.token is not None,
            owner=self.owner,
        )
        self.sender.outage = self.outage
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._jobs: set[asyncio.Task[Any]] = set()  # scheduled jobs running now
        self.scheduler.add_job(
            self._scheduled(self._tick),
            "interval",
            seconds=TICK_SECONDS,
            id="tick",
            max_instances=1,
            coalesce=True,
            next_run_time=self.clock(),
        )
        self.scheduler.add_job(
            self._scheduled(self._prune),
            "interval",
            hours=1,
            id="prune",
            next_run_time=self.clock(),
        )
        self.scheduler.add_job(
            self._scheduled(self._digests),
            "interval",
            seconds=30,
            id="digests",
            max_instances=1,
            coalesce=True,
        )
        tasks: list[asyncio.Task[Any]] = []
        try:
            self.scheduler.start()
            log.info(
                "worker %s started: %d feeds, %d rules, %d channels, delivering to %s",
                self.owner,
                len(self.feeds),
                len(self.ruleset.rules),
                len(self.ruleset.channels),
                "Telegram" if self.settings.telegram.token else "the console",
            )
            tasks.append(asyncio.create_task(self.sender.run_forever(self.stop, self.wake_sender)))
            tasks.append(asyncio.create_task(self._watch_config()))
            async with contextlib.AsyncExitStack() as extras:
                await self._start_extras(extras)
                await self.stop.wait()
                log.info("stopping: no new polls; finishing work in flight")
                await self._stop_scheduler()
                with contextlib.suppress(StorageError):  # unwritten: polled again after the lease
                    await self.unchanged.aclose()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.sender.release()
                await asyncio.to_thread(self.store.release_feeds, self.owner)
            await self.fetcher.aclose()
            if self.translator is not None:
                await self.translator.aclose()
            await self.notifier.close()
            with contextlib.suppress(StorageError):
                await asyncio.to_thread(self.store.close)
            log.info("worker stopped")

    async def _start_extras(self, stack: contextlib.AsyncExitStack) -> None:
        """The Telegram command bot (with a token) and /healthz + /metrics (with PORT)."""
        if self.settings.telegram.token and self.settings.telegram.commands:
            task = asyncio.create_task(self._keep_bot())
            stack.push_async_callback(_cancel, task)
        port = os.environ.get("PORT")
        if port:
            from monitor.health import serve_health

            await stack.enter_async_context(serve_health(self, int(port)))

    async def _keep_bot(self) -> None:
        """Run the command bot while this worker holds the "bot" lease.

        Telegram lets one client long-poll a bot's updates; with several workers
        the lease picks one, and another takes over when its holder dies.
        """
        from monitor.bot import BotContext, running_bot

        context = BotContext(
            store=self.store,
            get_ruleset=lambda: self.ruleset,
            get_settings=lambda: self.settings,
            started_at=self.started_at,
            clock=self.clock,
        )
        token, api_url = self.settings.telegram.token or "", self.settings.telegram.api_url
        bot: contextlib.AsyncExitStack | None = None
        try:
            while not self.stop.is_set():
                try:
                    held = await asyncio.to_thread(
                        self.store.hold_lease, "bot", self.owner, self.clock(), BOT_LEASE
                    )
                except StorageError as exc:  # keep what we have; retried in a third of the lease
                    self.outage.failed(exc, "bot lease")
                    held = bot is not None
                if held and bot is None:
                    bot = contextlib.AsyncExitStack()
                    try:
                        await bot.enter_async_context(running_bot(token, api_url, context))
                        log.info("Telegram commands are answered by this worker")
                    except Exception as exc:  # commands are a convenience; alerts are not
                        log.error("Telegram commands are unavailable: %s", exc)
                        await bot.aclose()
                        bot = None
                        if isinstance(exc, NotifyError) and exc.permanent:
                            return  # a refused token will not start working by itself
                elif not held and bot is not None:
                    log.warning("another worker answers Telegram commands now")
                    await bot.aclose()
                    bot = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), BOT_LEASE.total_seconds() / 3)
        finally:
            if bot is not None:
                await bot.aclose()
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.store.drop_lease, "bot", self.owner)

    # ---- polling
    async def _tick(self) -> None:
        """Lease due feeds (as many as there is room for) and poll each in its own task.

        While claims come back full there is a backlog (a first start, a burst):
        keep claiming as polls finish, for up to ``TICK_BUDGET`` seconds, instead of
        waiting for the next tick.
        """
        loop = asyncio.get_running_loop()
        budget_end = loop.time() + TICK_BUDGET
        capacity = self.fetcher.settings.concurrency * 2
        lease = feed_lease(self.fetcher.settings)
        self.last_tick = self.clock()
        try:
            self.muted = frozenset(await asyncio.to_thread(self.store.active_mutes, self.clock()))
            metrics.ALERTS_PENDING.set(await asyncio.to_thread(self.store.pending_count))
            self.outage.ok()
            if self._unreleased:  # polls cut short by an outage: poll them again now
                idle = self._unreleased - self._polling
                await asyncio.to_thread(self.store.release_feeds, self.owner, idle)
                self._unreleased -= idle
            while not self.stop.is_set():
                room = capacity - len(self.in_flight)
                claimed = []
                if room > 0:
                    now = self.clock()
                    claimed = await asyncio.to_thread(
                        self.store.claim_due_feeds, self.owner, now, lease, room
                    )
                    await self._start_polls(claimed, now)
                if (room > 0 and len(claimed) < room) or loop.time() > budget_end:
                    return
                await asyncio.wait(
                    set(self.in_flight), timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
        except StorageError as exc:
            self.outage.failed(exc, "schedule")

    async def _start_polls(self, feed_ids: list[str], now: datetime) -> None:
        # the claimed feeds' states in one read, not one per poll
        states = await asyncio.to_thread(self.store.feed_states, feed_ids) if feed_ids else {}
        for feed_id in feed_ids:
            feed = self.feeds.get(feed_id)
            if feed is None:  # in the database but not (or no longer) in our configuration
                await asyncio.to_thread(self.store.release_feeds, self.owner, [feed_id])
                continue
            task = asyncio.create_task(self._poll(feed, now, states))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    async def _poll(
        self, feed: FeedSource, now: datetime, states: dict[str, FeedState] | None = None
    ) -> None:
        renewer = asyncio.create_task(self._renew_lease(feed.id))
        self._polling.add(feed.id)
        try:
            outcome = await poll_feed(
                feed,
                store=self.store,
                fetcher=self.fetcher,
                pages=self.pages,
                ruleset=lambda: self.ruleset,
                now=now,
                muted=self.muted,
                translator=self.translator,
                states=states,
                unchanged=self.unchanged,
            )
        except StorageError as exc:  # released (and so polled again) once the database is back
            self.outage.failed(exc, f"poll of feed {feed.id}")
            self._unreleased.add(feed.id)
            return
        except Exception:
            log.exception("feed %s: unexpected error while polling (a bug; please report)", feed.id)
            with contextlib.suppress(StorageError):
                await asyncio.to_thread(self.store.release_feeds, self.owner, [feed.id])
            return
        finally:
            self._polling.discard(feed.id)
            await _cancel(renewer)
        if outcome.alerts:
            self.wake_sender.set()
        await self._operator_feed_change(feed, outcome)
        await self._operator_translate_change()

    async def _operator_translate_change(self) -> None:
        """Tell the operator once when translation goes down, and once when it is back."""
        if self.translator is None:
            return
        stats = self.translator.stats()
        down = stats.state != "closed"
        if down == self.translate_down:
            return
        self.translate_down = down
        if not self.settings.telegram.admin_chat:
            return
        now = self.clock()
        if down:
            message = operator.translation_down(stats.backend, stats.last_error, now)
        else:
            message = operator.translation_recovered(stats.backend, now)
        await self._tell_operator(message, now, "about translation")

    async def _renew_lease(self, feed_id: str) -> None:
        """Keep a running poll's feed leased to us (see ``feed_lease``); ends with the poll."""
        lease = feed_lease(self.fetcher.settings)
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                ours = await asyncio.to_thread(
                    self.store.renew_feed, self.owner, feed_id, self.clock(), lease
                )
            except StorageError as exc:
                self.outage.failed(exc, f"lease of feed {feed_id}")
                continue
            if not ours:
                log.warning("feed %s: lost its lease while the poll was still running", feed_id)
                return

    def _watch_regex(self, ruleset: Ruleset) -> Ruleset:
        """Hook the matcher so a ``re:`` term that times out reaches the operator once."""
        ruleset.matcher.on_regex_timeout = self._regex_timed_out
        return ruleset

    def _regex_timed_out(self, term: str) -> None:
        """Called from the matching thread (the matcher has logged it already): hand the
        operator alert to the loop, so the matching thread never waits for the database."""
        with contextlib.suppress(RuntimeError):  # the loop is closing
            asyncio.run_coroutine_threadsafe(self._report_regex_timeout(term), self.loop)

    async def _report_regex_timeout(self, term: str) -> None:
        """One operator alert per slow term for the worker's lifetime (reloads included)."""
        if term in self._regex_reported or not self.settings.telegram.admin_chat:
            return
        self._regex_reported.add(term)
        now = self.clock()
        alert = operator.regex_timeout(term, REGEX_TIMEOUT, now)
        if not await self._tell_operator(alert, now, f"for term {term!r}"):
            self._regex_reported.discard(term)  # a later timeout (after a reload) tries again

    async def _operator_feed_change(self, feed: FeedSource, outcome: PollOutcome) -> None:
        if not self.settings.telegram.admin_chat:
            return
        threshold = self.settings.telegram.feed_down_after
        now = self.clock()
        if not outcome.ok and outcome.errors == threshold:
            message = operator.feed_down(feed.id, outcome.errors, outcome.error or "", now)
        elif outcome.ok and outcome.previous_errors >= threshold:
            message = operator.feed_recovered(feed.id, outcome.previous_errors, now)
        else:
            return
        await self._tell_operator(message, now, f"for feed {feed.id}")

    async def _tell_operator(self, alert: Alert, now: datetime, about: str) -> bool:
        """Queue an operator alert and wake the sender; False (logged) if the store failed."""
        try:
            await asyncio.to_thread(self.store.queue_alert, alert, now)
        except StorageError as exc:
            log.error("could not queue the operator alert %s: %s", about, exc)
            return False
        self.wake_sender.set()
        return True

    def _scheduled(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """``job`` as the scheduler runs it: tracked while it runs, quiet if stopped.

        APScheduler's shutdown cancels the jobs still running and logs each as an
        error with a traceback. The stop lets them finish first; one that outlives
        the grace is cut short, which is no error: its database work runs in a
        thread and completes, and claimed feeds are released as the worker stops.
        """

        @functools.wraps(job)
        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None  # the scheduler runs jobs as tasks
            self._jobs.add(task)
            try:
                await job()
            except asyncio.CancelledError:
                if not self.stop.is_set():
                    raise
                log.debug("%s cut short by the stop", job.__name__)
            finally:
                self._jobs.discard(task)

        return run

    async def _stop_scheduler(self) -> None:
        """No new jobs; running jobs and polls share one grace, then are cancelled.

        A tick sees the stop within a second, but it may start polls until then,
        so the tasks to wait for are read again after each one ends.
        """
        self.scheduler.pause()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        while (running := self.in_flight | self._jobs) and loop.time() < deadline:
            await asyncio.wait(
                running, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
        late = self.in_flight | self._jobs
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        self.scheduler.shutdown(wait=False)

    async def _digests(self) -> None:
        channels = delivery_channels(self.settings, self.ruleset)
        try:
            queued = await asyncio.to_thread(
                flush_digests, self.store, channels, self.owner, self.clock()
            )
        except StorageError as exc:  # the next run (30 s) tries again
            self.outage.failed(exc, "digests")
            return
        if queued:
            self.wake_sender.set()

    async def _prune(self) -> None:
        """Hourly housekeeping: seen entries, finished alerts, the archive, stories, counts."""
        now, keep_text = self.clock(), self.settings.defaults.keep_text
        jobs: list[tuple[str, Callable[[], int]]] = [
            ("entries that left their feeds", lambda: self.store.prune_entries(now, RETENTION)),
            ("finished alerts", lambda: self.store.prune_alerts(now)),
            ("archived articles", lambda: self.store.prune_archive(now, keep_text)),
            # story reports and hourly match counters outlive their windows, then go
            ("story reports", lambda: self.store.prune_stories(now, RETENTION)),
            ("hourly match counts", lambda: self.store.prune_counts(now)),
        ]
        for what, job in jobs:
            try:
                removed = await asyncio.to_thread(job)
            except StorageError as exc:  # the next round tries again
                self.outage.failed(exc, f"pruning {what}")
                continue
            if removed:
                log.info("pruned %d %s", removed, what)

    # ---- reloads
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        self._sighup = True
        self.reload_requested.set()

    async def _watch_config(self) -> None:
        """Reload when a config file changes, or on SIGHUP.

        watchfiles (inotify and friends) wakes the loop as soon as a YAML file in
        a configuration folder changes; the mtime/size comparison every
        ``RELOAD_POLL_SECONDS`` is the fallback where file events do not arrive
        (network filesystems, some containers).
        """
        seen = _fingerprint(self.settings)
        events = asyncio.create_task(self._file_events())
        try:
            while not self.stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.reload_requested.wait(), RELOAD_POLL_SECONDS)
                woken = self.reload_requested.is_set()  # a file event or SIGHUP
                self.reload_requested.clear()
                sighup, self._sighup = self._sighup, False
                current = await asyncio.to_thread(_fingerprint, self.settings)
                if woken or current != seen:  # an unchanged file reloads as a no-op
                    try:
                        await self.reload(announce=sighup)
                    except StorageError as exc:  # not swapped: tried again on the next round
                        self.outage.failed(exc, "configuration reload")
                        continue
                    except Exception:  # a bug in a reload must never stop the worker
                        log.exception(
                            "configuration reload crashed; the previous one keeps running"
                        )
                    seen = await asyncio.to_thread(_fingerprint, self.settings)
        finally:
            await _cancel(events)

    async def _file_events(self) -> None:
        """Turn file-system events on configuration files into an early wake-up."""
        from watchfiles import awatch

        folders = sorted({str(path.parent) for path in self.settings.files})
        # watchfiles sets its stop event when cancelled: give it its own, never the worker's
        done = asyncio.Event()
        relay = asyncio.create_task(_relay(self.stop, done))
        try:
            async for _ in awatch(
                *folders, watch_filter=_is_config_file, debounce=200, stop_event=done
            ):
                self.reload_requested.set()
        except Exception as exc:  # e.g. inotify limits: the polling fallback still works
            log.info("file watching unavailable (%s); checking every %ss", exc, RELOAD_POLL_SECONDS)
        finally:
            await _cancel(relay)

    async def reload(self, announce: bool = False) -> bool:
        """Validate the configuration again and swap it in; keep the old one on errors.

        The same broken configuration is reported once, not on every file event;
        ``announce`` logs a reload that found nothing changed (SIGHUP).
        """
        try:
            settings = await asyncio.to_thread(load_settings, self.settings.path)
            ruleset = Ruleset.from_settings(settings)
        except Exception as exc:  # any failure keeps the running configuration
            located = isinstance(exc, ConfigError)
            # a failure that is not a located ConfigError is a bug: name the file and the type
            report = str(exc) if located else f"{self.settings.path}:1:1: {exc!r}"
            if report == self._last_reload_error:
                return False
            self._last_reload_error = report
            self.reload_failures += 1
            metrics.RELOAD_FAILURES.inc()
            log.error(
                "configuration reload failed; the previous configuration keeps running:\n%s",
                report,
                exc_info=None if located else exc,
            )
            if self.settings.telegram.admin_chat:
                now = self.clock()
                await self._tell_operator(operator.reload_failed(report, now), now, "on the reload")
            return False
        self._last_reload_error = None
        if settings.version == self.settings.version:
            if announce:
                log.info("reload requested: configuration unchanged (version %s)", settings.version)
            return True
        old_feeds = self.feeds
        new_feeds = {feed.id: feed for feed in settings.feeds}
        await asyncio.to_thread(self.store.sync_feeds, settings.feeds, self.clock())
        await asyncio.to_thread(self.store.register_rules, ruleset.surge_rules, self.clock())
        now = self.clock()
        for feed_id, feed in new_feeds.items():
            old = old_feeds.get(feed_id)
            if old is not None and old.interval != feed.interval:
                await asyncio.to_thread(self.store.reschedule_feed, feed_id, now + feed.interval)
        if settings.translate != self.settings.translate:
            old_translator, self.translator = self.translator, make_translator(settings)
            self.translate_down = False
            if old_translator is not None:
                await old_translator.aclose()
        self.settings, self.ruleset, self.feeds = settings, self._watch_regex(ruleset), new_feeds
        for warning in settings.warnings:
            log.warning("%s", warning)
        self.sender.channels = delivery_channels(settings, ruleset)
        self.reloads += 1
        log.info(
            "configuration reloaded (version %s): %d feeds, %d rules, %d channels",
            settings.version,
            len(new_feeds),
            len(ruleset.rules),
            len(ruleset.channels),
        )
        return True


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    """Set ``target`` once ``source`` is set (and when cancelled)."""
    try:
        await source.wait()
    finally:
        target.set()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _owner_id() -> str:
    """Who holds a lease: host, process and a random tag (pids repeat across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def _single_sqlite_worker(database_url: str) -> Any:
    """Refuse a second worker on the same SQLite file (PostgreSQL shares work safely)."""
    if not database_url.startswith("sqlite") or ":memory:" in database_url:
        yield
        return
    import fcntl

    db_path = Path(database_url.split(":///", 1)[-1])
    lock_path = db_path.with_name(db_path.name + ".worker-lock")
    handle = open(lock_path, "a+")  # noqa: SIM115 - held for the worker's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StorageError(
            f"another monitor worker ({holder}) is already running on {db_path}; "
            "SQLite serves one worker — use PostgreSQL (DATABASE_URL=postgresql://…) for several"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _is_config_file(_change: object, path: str) -> bool:
    return path.endswith((".yaml", ".yml"))


def _fingerprint(settings: Settings) -> tuple[tuple[str, float, int], ...]:
    """mtime and size of every configuration file, and of their folders (a folder's mtime
    moves when an included file is added or removed)."""
    out = []
    folders = {path.parent for path in settings.files}
    for path in [*settings.files, *sorted(folders)]:
        try:
            stat = path.stat()
            out.append((str(path), stat.st_mtime, stat.st_size))
        except OSError:
            out.append((str(path), -1.0, -1))
    return tuple(out)
