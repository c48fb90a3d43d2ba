"""Delivery benchmark: the outbox sender against a strict Bot API stand-in, and a naive loop.

Queues ``--alerts`` rendered alerts (default 600) for ``--channels`` Telegram
channels (default 30) in a temporary SQLite outbox, then drains them through
the real ``Sender`` → ``TelegramNotifier`` → python-telegram-bot → HTTP on
127.0.0.1 → ``tests.fakes.botapi.FakeBotApi`` enforcing Telegram's published
pace (``Pace()``: 20 messages a minute per channel, 30 a second overall;
anything faster is answered 429 with ``retry_after``).

It reports, in one run:

1. the sender: wall time, the theoretical minimum under those limits, the
   ratio, 429s received, alerts lost or duplicated, and where the time went
   (HTTP round trips, database calls, pacing waits);
2. a naive baseline on a fresh stand-in: ``bot.send_message`` in a plain loop
   with no pacing, a 429 counted and the message dropped (fire-and-forget).

Each run gets a fresh stand-in, so no run's messages count against another's
pace; the one-round-trip probe uses its own unpaced stand-in.

Usage:  python bench/deliver.py [--alerts 600] [--channels 30] [--runs 1]

The theoretical minimum: with N messages, n per channel, the k-th message
overall (0-based) cannot be accepted before ``floor(k / 30)`` seconds (30 per
sliding second), nor the j-th of a channel before ``floor(j / 20) × 60`` s;
the per-chat "one a second" guideline Telegram publishes (and our sender
keeps) adds ``j × 1 s``.  The minimum is the largest of these for the last
message, plus one HTTP round trip to have it accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from monitor.deliver.notifier import TelegramNotifier
from monitor.deliver.sender import (
    GLOBAL_LIMIT,
    GROUP_LIMIT,
    GROUP_WINDOW,
    PER_CHAT_SPACING,
    Sender,
)
from monitor.models import Article, Channel
from monitor.render.alert import render_sample_alert
from monitor.storage import Store
from tests.fakes.botapi import FakeBotApi, Pace

LANGUAGES = ("en", "ar", "ru")
MARK = "bench #"  # each alert ends with its number, to find losses and duplicates


def tally(api: FakeBotApi, channels: dict[str, Channel], total: int) -> tuple[int, int, int]:
    """(accepted, lost, duplicated) by the number each alert carries."""
    seen: dict[int, int] = defaultdict(int)
    accepted = 0
    for channel in channels.values():
        for message in api.sent(channel.chat):
            accepted += 1
            tail = message.plain_text.rsplit(MARK, 1)
            if len(tail) == 2 and tail[1].isdigit():
                seen[int(tail[1])] += 1
    lost = sum(1 for n in range(total) if seen.get(n, 0) == 0)
    duplicates = sum(c - 1 for c in seen.values() if c > 1)
    return accepted, lost, duplicates


# ---------------------------------------------------------------------------
# measuring


@dataclass
class Timings:
    """Seconds spent per labelled call, from any thread."""

    total: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, label: str, seconds: float) -> None:
        with self.lock:
            self.total[label] += seconds
            self.count[label] += 1


class TimedStore:
    """Wraps ``Store``: every method call is timed (the sender calls them from threads)."""

    def __init__(self, store: Store, timings: Timings) -> None:
        self._store = store
        self._timings = timings

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value):
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                self._timings.add(f"db.{name}", time.perf_counter() - start)

        return timed


class TimedNotifier(TelegramNotifier):
    """The real notifier, timing each send and recording when Telegram accepted it."""

    def __init__(self, token: str, api_url: str, timings: Timings) -> None:
        super().__init__(token, api_url)
        self.timings = timings
        self.accepted_at: list[float] = []
        self.round_trips: list[float] = []

    async def send(self, alert_id: int, html: str, text: str, channel: Channel, **kw: Any) -> Any:
        start = time.perf_counter()
        delivery = await super().send(alert_id, html, text, channel, **kw)
        elapsed = time.perf_counter() - start
        self.timings.add("http.sendMessage", elapsed)
        self.round_trips.append(elapsed)
        if delivery.ok:
            self.accepted_at.append(time.perf_counter())
        return delivery


class TimedSleep:
    """Counts time the sender spends in ``asyncio.sleep`` (its pacing waits)."""

    def __init__(self, timings: Timings) -> None:
        self.timings = timings
        self.original = asyncio.sleep

    async def __call__(self, delay: float, result: Any = None) -> Any:
        start = time.perf_counter()
        try:
            return await self.original(delay, result)
        finally:
            if delay > 0:
                self.timings.add("pacing sleep (summed over chats)", time.perf_counter() - start)


# ---------------------------------------------------------------------------
# the scenario


def bench_channels(count: int, prefix: str) -> dict[str, Channel]:
    return {
        f"{prefix}{i:02d}": Channel(
            name=f"{prefix}{i:02d}",
            chat=f"@{prefix}{i:02d}",
            language=LANGUAGES[i % len(LANGUAGES)],
        )
        for i in range(count)
    }


def queue_alerts(store: Store, channels: dict[str, Channel], total: int, now: datetime) -> None:
    """``total`` realistic alerts (en/ar/ru sample alerts), round-robin over the channels."""
    names = list(channels)
    alerts, articles = [], []
    for n in range(total):
        channel = channels[names[n % len(names)]]
        sample = render_sample_alert(channel, now)
        key = f"bench-{n}"
        alert = replace(
            sample,
            article_key=key,
            feed_id="bench",
            channel=channel.name,
            html=f"{sample.html}\n{MARK}{n}",
            text=f"{sample.text}\n{MARK}{n}",
            story=key,
        )
        alerts.append(alert)
        articles.append(Article(key=key, feed_id="bench", title=f"{sample.title} {n}"))
    store.commit_poll(
        feed_id="bench",
        url="bench://deliver",
        now=now,
        articles=articles,
        alerts=alerts,
        status=200,
        etag=None,
        last_modified=None,
        content_hash=None,
        next_poll=now + timedelta(hours=1),
    )


def theoretical_minimum(total: int, per_channel: int, per_chat_spacing: bool) -> float:
    """Earliest time the last message can be accepted (without the final round trip)."""
    global_floor = math.floor((total - 1) / GLOBAL_LIMIT) * 1.0
    group_floor = math.floor((per_channel - 1) / GROUP_LIMIT) * GROUP_WINDOW
    spacing_floor = (per_channel - 1) * PER_CHAT_SPACING if per_chat_spacing else 0.0
    return max(global_floor, group_floor, spacing_floor)


async def one_round_trip() -> float:
    """Median time of one accepted sendMessage on an idle stand-in (the last message's cost).

    Its own stand-in, so the probe's messages do not count against the run's pace.
    """
    api = FakeBotApi(pace=Pace.off()).start()
    api.add_chat("@rtt_probe", "channel")
    notifier = TelegramNotifier(api.token, api.url)
    await notifier.start()
    probe = Channel("rtt", "@rtt_probe")
    samples = []
    for i in range(15):
        start = time.perf_counter()
        await notifier.send(i, f"probe {i}", "", probe)
        samples.append(time.perf_counter() - start)
        await asyncio.sleep(0.05)
    await notifier.close()
    api.stop()
    return statistics.median(samples[3:])


async def run_sender(total: int, count: int) -> dict[str, Any]:
    rtt = await one_round_trip()
    api = FakeBotApi(pace=Pace()).start()
    tmp = tempfile.TemporaryDirectory(prefix="monitor-bench-")
    try:
        channels = bench_channels(count, "bench")
        for channel in channels.values():
            api.add_chat(channel.chat, "channel")
        store = Store(f"sqlite:///{Path(tmp.name) / 'bench.db'}")
        store.migrate()
        queue_alerts(store, channels, total, datetime.now(UTC))
        timings = Timings()
        notifier = TimedNotifier(api.token, api.url, timings)
        await notifier.start()
        sender = Sender(TimedStore(store, timings), notifier, channels, paced=True, owner="bench")
        sleeper = TimedSleep(timings)
        asyncio.sleep = sleeper  # type: ignore[assignment]  # count the sender's pacing waits
        start = time.perf_counter()
        try:
            stats = await sender.drain(until=datetime.now(UTC) + timedelta(minutes=10))
        finally:
            asyncio.sleep = sleeper.original  # type: ignore[assignment]
        elapsed = time.perf_counter() - start
        await notifier.close()

        accepted, lost, duplicates = tally(api, channels, total)
        pending = store.pending_count()
        store.close()
        first = start
        accepted_at = sorted(t - first for t in notifier.accepted_at)
        return {
            "elapsed": elapsed,
            "rtt": rtt,
            "accepted": accepted,
            "lost": lost,
            "duplicates": duplicates,
            "sent_marked": stats.sent,
            "retried": stats.retried,
            "failed": stats.failed,
            "pending": pending,
            "count_429": api.count_429,
            "timings": timings,
            "accepted_at": accepted_at,
            "round_trips": notifier.round_trips,
        }
    finally:
        api.stop()
        tmp.cleanup()


async def run_naive(total: int, count: int) -> dict[str, Any]:
    """``bot.send_message`` in a loop, no pacing: what a fire-and-forget bot does."""
    api = FakeBotApi(pace=Pace()).start()
    try:
        channels = bench_channels(count, "naive")
        for channel in channels.values():
            api.add_chat(channel.chat, "channel")
        names = list(channels)
        bot = Bot(
            api.token,
            base_url=api.base_url,
            request=HTTPXRequest(connection_pool_size=16),
        )
        await bot.initialize()
        now = datetime.now(UTC)
        count_429 = errors = 0
        start = time.perf_counter()
        for n in range(total):
            channel = channels[names[n % len(names)]]
            html = f"{render_sample_alert(channel, now).html}\n{MARK}{n}"
            try:
                await bot.send_message(chat_id=channel.chat, text=html, parse_mode=ParseMode.HTML)
            except RetryAfter:
                count_429 += 1
            except TelegramError:
                errors += 1
        elapsed = time.perf_counter() - start
        await bot.shutdown()
        accepted, lost, _ = tally(api, channels, total)
        return {
            "elapsed": elapsed,
            "accepted": accepted,
            "lost": lost,
            "count_429": count_429,
            "errors": errors,
            "server_429": api.count_429,
        }
    finally:
        api.stop()


# ---------------------------------------------------------------------------
# report


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        )
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=600)
    parser.add_argument("--channels", type=int, default=30)
    parser.add_argument("--runs", type=int, default=1, help="repeat each sender run")
    args = parser.parse_args(argv)
    per_channel = math.ceil(args.alerts / args.channels)

    results = []
    for _ in range(args.runs):
        results.append(("sender", asyncio.run(run_sender(args.alerts, args.channels))))
    naive = asyncio.run(run_naive(args.alerts, args.channels))

    floor_api = theoretical_minimum(args.alerts, per_channel, per_chat_spacing=False)
    floor_ours = theoretical_minimum(args.alerts, per_channel, per_chat_spacing=True)
    print(
        f"{args.alerts} alerts, {args.channels} channels ({per_channel} each), "
        f"stand-in pace: {GROUP_LIMIT}/{GROUP_WINDOW:g}s per channel, {GLOBAL_LIMIT}/s overall\n"
        f"theoretical minimum: last message may be accepted at {floor_api:.1f} s "
        f"(global 30/s; the 20/min per channel is not binding for {per_channel} each; "
        f"with Telegram's 1/s per-chat guideline also {floor_ours:.1f} s) "
        f"+ one round trip ({results[0][1]['rtt'] * 1000:.1f} ms)\n"
    )
    rows = [
        ("run", "time (s)", "minimum (s)", "ratio", "429s", "accepted", "lost", "duplicates"),
    ]
    for label, r in results:
        minimum = max(floor_api, floor_ours) + r["rtt"]
        rows.append(
            (
                label,
                f"{r['elapsed']:.2f}",
                f"{minimum:.2f}",
                f"{r['elapsed'] / minimum:.3f}×",
                str(r["count_429"]),
                str(r["accepted"]),
                str(r["lost"]),
                str(r["duplicates"]),
            )
        )
    naive_min = floor_api + results[0][1]["rtt"]
    rows.append(
        (
            "naive loop",
            f"{naive['elapsed']:.2f}",
            f"{naive_min:.2f}",
            "—",
            str(naive["count_429"]),
            str(naive["accepted"]),
            str(naive["lost"]),
            "0",
        )
    )
    print(table(rows))

    for label, r in results:
        print(f"\nwhere the time went, {label} (summed over the concurrent chat tasks):")
        breakdown(r)
    return 0


def breakdown(r: dict[str, Any]) -> None:
    t: Timings = r["timings"]
    trows = [("call", "calls", "total (s)", "mean (ms)")]
    for label in sorted(t.total, key=lambda k: -t.total[k]):
        trows.append(
            (
                label,
                str(t.count[label]),
                f"{t.total[label]:.2f}",
                f"{t.total[label] / t.count[label] * 1000:.2f}",
            )
        )
    print(table(trows))
    trips = sorted(r["round_trips"])
    if trips:
        p50 = trips[len(trips) // 2] * 1000
        p99 = trips[min(len(trips) - 1, int(len(trips) * 0.99))] * 1000
        print(f"sendMessage round trip under load: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    at = r["accepted_at"]
    if at:
        print(
            f"first accepted at {at[0]:.2f} s, last at {at[-1]:.2f} s; "
            f"retried {r['retried']}, failed {r['failed']}, still pending {r['pending']}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
