"""``monitor run``: wires config, storage, fetcher, scheduler, sender and reloads.

One asyncio loop holds everything: APScheduler's ``AsyncIOScheduler`` runs one
job per feed (``max_instances=1``, ``coalesce``), the sender drains the outbox
in its own task, and a watcher reloads the configuration when a file changes
or on SIGHUP. A reload is validated completely before anything is swapped; a
broken edit is logged with every location and the old configuration keeps
running.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.config import Settings, load_settings
from monitor.exceptions import ConfigError
from monitor.fetcher import DEFAULT_USER_AGENT, Fetcher, FetchSettings
from monitor.models import FeedSource
from monitor.notifier import ConsoleNotifier, Notifier, TelegramNotifier
from monitor.pipeline import PollOutcome, Ruleset, poll_feed
from monitor.scheduler import first_poll_offset
from monitor.sender import Sender, SendStats
from monitor.storage import Store

log = logging.getLogger(__name__)

ONCE_RETRY_WINDOW = timedelta(seconds=90)  # `--once` waits this long for quick retries
RETENTION = timedelta(days=30)  # entries gone from their feed this long are forgotten
RELOAD_POLL_SECONDS = 2.0


def make_notifier(settings: Settings) -> Notifier:
    """Telegram when a token is set, else the console (the embedded default)."""
    if settings.telegram.token:
        return TelegramNotifier(settings.telegram.token, settings.telegram.api_url)
    return ConsoleNotifier()


def fetch_settings(settings: Settings) -> FetchSettings:
    defaults = settings.defaults
    return FetchSettings(
        user_agent=defaults.user_agent or DEFAULT_USER_AGENT,
        timeout=defaults.timeout.total_seconds(),
        max_bytes=defaults.max_bytes,
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


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
        return line + "".join(f"\n  feed {o.feed_id}: {o.error}" for o in failing)


async def run_once(settings: Settings, notifier: Notifier | None = None) -> OnceReport:
    """Poll every feed once, deliver what is due, and return what happened."""
    store = Store(settings.database_url)
    await asyncio.to_thread(store.migrate)
    notifier = notifier or make_notifier(settings)
    ruleset = Ruleset.from_settings(settings)
    try:
        await notifier.start()
        async with Fetcher(fetch_settings(settings)) as fetcher:
            outcomes = await asyncio.gather(
                *(
                    poll_feed(
                        feed, store=store, fetcher=fetcher, ruleset=lambda: ruleset, now=now_utc()
                    )
                    for feed in settings.feeds
                )
            )
        sender = Sender(store, notifier, ruleset.channels, paced=settings.telegram.token is not None)
        stats = await sender.drain(until=now_utc() + ONCE_RETRY_WINDOW)
        pending = await asyncio.to_thread(store.pending_count)
    finally:
        await notifier.close()
        store.close()
    return OnceReport(tuple(outcomes), stats, pending)


@dataclass
class Worker:
    """The long-running worker: scheduled polls, the sender and live reloads."""

    settings: Settings
    notifier: Notifier | None = None
    clock: Callable[[], datetime] = now_utc
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reloads: int = 0
    reload_failures: int = 0

    async def run(self) -> None:
        self.store = Store(self.settings.database_url)
        await asyncio.to_thread(self.store.migrate)
        self.notifier = self.notifier or make_notifier(self.settings)
        self.ruleset = Ruleset.from_settings(self.settings)
        self.feeds = {feed.id: feed for feed in self.settings.feeds}
        self.wake_sender = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        await self.notifier.start()
        self.fetcher = Fetcher(fetch_settings(self.settings))
        self.sender = Sender(
            self.store,
            self.notifier,
            self.ruleset.channels,
            paced=self.settings.telegram.token is not None,
        )
        try:
            self._schedule_all()
            self.scheduler.add_job(
                self._prune, "interval", hours=6, id="prune", next_run_time=self.clock()
            )
            self.scheduler.start()
            log.info(
                "worker started: %d feeds, %d rules, %d channels, delivering to %s",
                len(self.feeds),
                len(self.ruleset.rules),
                len(self.ruleset.channels),
                "Telegram" if self.settings.telegram.token else "the console",
            )
            tasks = [
                asyncio.create_task(self.sender.run_forever(self.stop, self.wake_sender)),
                asyncio.create_task(self._watch_config()),
            ]
            await self.stop.wait()
            log.info("stopping: finishing work in flight")
            self.scheduler.shutdown(wait=False)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self.fetcher.aclose()
            await self.notifier.close()
            self.store.close()
            log.info("worker stopped")

    # ---- scheduling
    def _schedule_all(self) -> None:
        now = self.clock()
        for feed in self.feeds.values():
            self._schedule(feed, now + first_poll_offset(feed.id, min(feed.interval, timedelta(seconds=30))))

    def _schedule(self, feed: FeedSource, first_run: datetime) -> None:
        self.scheduler.add_job(
            self._poll,
            "interval",
            seconds=feed.interval.total_seconds(),
            args=[feed.id],
            id=f"feed:{feed.id}",
            next_run_time=first_run,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )

    async def _poll(self, feed_id: str) -> None:
        feed = self.feeds.get(feed_id)
        if feed is None:
            return
        now = self.clock()
        state = await asyncio.to_thread(self.store.feed_state, feed_id)
        if state and state.next_poll and state.errors and state.next_poll > now:
            return  # backing off after errors (or a Retry-After)
        try:
            outcome = await poll_feed(
                feed, store=self.store, fetcher=self.fetcher, ruleset=lambda: self.ruleset, now=now
            )
        except Exception:
            log.exception("feed %s: unexpected error while polling (a bug; please report)", feed_id)
            return
        if outcome.alerts:
            self.wake_sender.set()

    async def _prune(self) -> None:
        removed = await asyncio.to_thread(self.store.prune_entries, self.clock(), RETENTION)
        if removed:
            log.info("forgot %d entries that left their feeds over %s ago", removed, RETENTION)

    # ---- reloads
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        try:
            loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)
        except (NotImplementedError, RuntimeError, AttributeError):
            pass

    async def _watch_config(self) -> None:
        """Reload when a config file changes (mtime/size polling) or on SIGHUP."""
        seen = _fingerprint(self.settings)
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.reload_requested.wait(), RELOAD_POLL_SECONDS)
            except TimeoutError:
                pass
            forced = self.reload_requested.is_set()
            self.reload_requested.clear()
            current = await asyncio.to_thread(_fingerprint, self.settings)
            if forced or current != seen:
                seen = current
                await self.reload()

    async def reload(self) -> bool:
        """Validate the configuration again and swap it in; keep the old one on errors."""
        try:
            settings = await asyncio.to_thread(load_settings, self.settings.path)
            ruleset = Ruleset.from_settings(settings)
        except ConfigError as exc:
            self.reload_failures += 1
            log.error("configuration reload failed; the previous configuration keeps running:\n%s", exc)
            return False
        if settings.version == self.settings.version:
            return True
        old_feeds, new_feeds = self.feeds, {feed.id: feed for feed in settings.feeds}
        self.settings, self.ruleset, self.feeds = settings, ruleset, new_feeds
        self.sender.channels = ruleset.channels
        now = self.clock()
        for feed_id in old_feeds.keys() - new_feeds.keys():
            self.scheduler.remove_job(f"feed:{feed_id}")
        for feed_id, feed in new_feeds.items():
            old = old_feeds.get(feed_id)
            if old is None:
                self._schedule(feed, now)
            elif old.interval != feed.interval:
                self._schedule(feed, now + feed.interval)
        self.reloads += 1
        log.info(
            "configuration reloaded (version %s): %d feeds, %d rules, %d channels",
            settings.version,
            len(new_feeds),
            len(ruleset.rules),
            len(ruleset.channels),
        )
        return True


def _fingerprint(settings: Settings) -> tuple[tuple[str, float, int], ...]:
    """mtime and size of every file the configuration was read from (and its folder globs)."""
    out = []
    folders = {path.parent for path in settings.files}  # a folder's mtime moves when an
    for path in [*settings.files, *sorted(folders)]:  # included file is added or removed
        try:
            stat = path.stat()
            out.append((str(path), stat.st_mtime, stat.st_size))
        except OSError:
            out.append((str(path), -1.0, -1))
    return tuple(out)
