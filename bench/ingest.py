"""Ingestion benchmark: fetch → parse → normalise over loopback, against plain feedparser.

Serves N feeds (20 entries each, ~2 KB of Arabic/English HTML per entry) from an
aiohttp server in a child process on 127.0.0.1, then reports, in one run:

1. a full first poll (every feed 200): feeds/s, entries/s, CPU seconds, peak RSS;
2. an all-unchanged poll (conditional GET → 304);
3. a poll where 10% of the feeds changed;
4. plain sequential ``feedparser.parse(url)`` over the same feeds (the first
   ``--baseline`` of them, to bound the run time; throughput is per feed);
5. fetch-only aiohttp (the monitor fetcher) vs httpx on the same feeds;
6. an unchanged poll over ``--state-feeds`` feeds (default 10,000) to show
   the memory of a worker holding that many feeds' state.

Usage:  python bench/ingest.py [--feeds 2000] [--baseline 500] [--state-feeds 10000]

CPU seconds are this (client) process only; the server has its own process but
shares the same cores. Peak RSS is VmHWM of the client process.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import feedparser
import httpx

from monitor.articles import to_articles
from monitor.exceptions import FeedError
from monitor.fetch import Fetcher, FetchSettings
from monitor.models import Article, FeedSource, FeedState, FetchResult
from monitor.parse import parse_feed

ENTRIES = 20
AR = [
    "وصل وزير الخارجية الروسي إلى أستانا صباح اليوم في زيارة رسمية تستمر يومين.",
    "وتبحث الوفود المشاركة ترتيبات وقف إطلاق النار وآليات مراقبته على الأرض.",
    "وقال متحدث باسم الوزارة إن الجولة المقبلة ستعقد الشهر المقبل بحضور مراقبين.",
    "ودعت الأمم المتحدة إلى تسهيل وصول المساعدات الإنسانية إلى المناطق المتضررة.",
    "وأكد المشاركون التزامهم بالحل السياسي وفق قرارات مجلس الأمن ذات الصلة.",
]
EN = [
    "Delegations met in Astana on Tuesday to discuss the next round of talks.",
    "The ceasefire monitoring mechanism was the main item on the agenda.",
    "Officials said humanitarian access would be reviewed at the next meeting.",
    "Observers from the United Nations attended the opening session.",
]


def entry_html(i: int, j: int) -> str:
    """About 2 KB of mixed Arabic/English HTML."""
    paras = []
    for k in range(4):
        ar = " ".join(AR[(i + j + k + n) % len(AR)] for n in range(2))
        en = " ".join(EN[(i + k + n) % len(EN)] for n in range(2))
        paras.append(
            f"<p>{ar} <strong>{en}</strong> <a href='https://n.example/{i}/{j}'>link</a></p>"
        )
    return "".join(paras)


def feed_body(i: int, gen: int) -> bytes:
    items = []
    for j in range(ENTRIES):
        html = entry_html(i, j).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        items.append(
            f"<item><title>خبر {i}-{j}-{gen}: {AR[j % len(AR)][:40]}</title>"
            f"<link>https://n.example/{i}/{j}/{gen}?utm_source=rss</link>"
            f"<guid>n-{i}-{j}-{gen}</guid><pubDate>Tue, 10 Feb 2026 09:{j:02d}:00 GMT</pubDate>"
            f"<description>{html}</description></item>"
        )
    doc = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {i}</title><link>https://n.example/</link>{''.join(items)}</channel></rss>"
    )
    return doc.encode()


# -- the server (child process) ---------------------------------------------------------------


def serve(port_queue: multiprocessing.Queue, lifetime: float) -> None:
    from aiohttp import web

    gens: dict[int, int] = {}
    cache: dict[tuple[int, int], bytes] = {}

    def body(i: int) -> tuple[bytes, str]:
        gen = gens.get(i, 0)
        key = (i % 50, gen)  # 50 distinct documents, re-labelled per feed: cheap and small
        if key not in cache:
            cache[key] = feed_body(i % 50, gen)
        raw = cache[key].replace(b"<title>Feed ", f"<title>Feed {i} ".encode(), 1)
        return raw, f'"{i}-{gen}"'

    async def handle(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        raw, etag = body(i)
        headers = {"ETag": etag, "Content-Type": "application/rss+xml"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=raw, headers=headers)

    async def bump(request: web.Request) -> web.Response:
        every = int(request.query["every"])
        n = int(request.query["n"])
        for i in range(0, n, every):
            gens[i] = gens.get(i, 0) + 1
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/f/{i}.xml", handle)
        app.router.add_get("/bump", bump)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.sleep(lifetime)
        await runner.cleanup()

    asyncio.run(main())


# -- the client ---------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    feeds: int
    seconds: float
    cpu: float
    fetched: int = 0
    not_modified: int = 0
    errors: int = 0
    entries: int = 0

    def row(self) -> str:
        fps = self.feeds / self.seconds if self.seconds else 0
        eps = self.entries / self.seconds if self.seconds else 0
        return (
            f"| {self.name} | {self.feeds:,} | {self.seconds:.2f} | {fps:,.0f} | {eps:,.0f} | "
            f"{self.cpu:.2f} | {self.cpu / self.feeds * 1000:.2f} | "
            f"{self.fetched:,} / {self.not_modified:,} / {self.errors:,} |"
        )


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_and_normalize(feed: FeedSource, result: FetchResult, now: datetime) -> list[Article]:
    """The CPU part of a poll; module-level so a process pool can run it."""
    return to_articles(feed, parse_feed(result), now)


async def poll_all(
    name: str,
    fetcher: Fetcher,
    feeds: list[FeedSource],
    states: dict[str, FeedState],
    now: datetime,
    pool: ProcessPoolExecutor | None = None,
) -> Phase:
    phase = Phase(name, len(feeds), 0.0, 0.0)
    sem = asyncio.Semaphore(fetcher.settings.concurrency)

    async def one(feed: FeedSource) -> None:
        async with sem:
            state = states.get(feed.id)
            try:
                result = await fetcher.fetch(feed, state)
                if result.not_modified:
                    phase.not_modified += 1
                    return
                if pool is None:
                    articles = parse_and_normalize(feed, result, now)
                else:
                    loop = asyncio.get_running_loop()
                    articles = await loop.run_in_executor(
                        pool, parse_and_normalize, feed, result, now
                    )
            except FeedError:
                phase.errors += 1
                return
            phase.fetched += 1
            phase.entries += len(articles)
            states[feed.id] = replace(
                state or FeedState(feed_id=feed.id),
                etag=result.etag,
                last_modified=result.last_modified,
                content_hash=result.content_hash,
            )

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(one(f) for f in feeds))
    phase.seconds, phase.cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return phase


def baseline(urls: list[str]) -> Phase:
    phase = Phase("plain `feedparser.parse(url)`, sequential", len(urls), 0.0, 0.0)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for url in urls:
        d = feedparser.parse(url)
        phase.fetched += 1
        phase.entries += len(d.entries)
    phase.seconds, phase.cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return phase


async def fetch_only(urls: list[str], concurrency: int) -> tuple[Phase, Phase]:
    feeds = [FeedSource(id=str(i), url=u) for i, u in enumerate(urls)]
    a = Phase("fetch only: aiohttp (monitor.fetch)", len(urls), 0.0, 0.0)
    async with Fetcher(FetchSettings(concurrency=concurrency, per_host=concurrency)) as fetcher:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        results = await asyncio.gather(*(fetcher.fetch(f) for f in feeds))
        a.seconds, a.cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        a.fetched = sum(1 for r in results if r.content)
    h = Phase("fetch only: httpx AsyncClient", len(urls), 0.0, 0.0)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        sem = asyncio.Semaphore(concurrency)

        async def get(url: str) -> bytes:
            async with sem:
                return (await client.get(url)).content

        cpu0, t0 = cpu_seconds(), time.perf_counter()
        bodies = await asyncio.gather(*(get(u) for u in urls))
        h.seconds, h.cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        h.fetched = sum(1 for b in bodies if b)
    return a, h


async def run(args: argparse.Namespace, base: str) -> list[Phase]:
    n = args.feeds
    now = datetime.now(UTC)
    feeds = [FeedSource(id=f"f{i}", url=f"{base}/f/{i}.xml") for i in range(n)]
    settings = FetchSettings(concurrency=args.concurrency, per_host=args.concurrency)
    states: dict[str, FeedState] = {}
    phases = []
    async with Fetcher(settings) as fetcher:
        phases.append(await poll_all("first poll (all 200)", fetcher, feeds, states, now))
        phases.append(await poll_all("unchanged poll (all 304)", fetcher, feeds, states, now))
        async with httpx.AsyncClient() as client:
            await client.get(f"{base}/bump", params={"every": 10, "n": n})
        phases.append(await poll_all("10% changed", fetcher, feeds, states, now))
        if args.workers:
            with ProcessPoolExecutor(
                args.workers, mp_context=multiprocessing.get_context("spawn")
            ) as pool:
                # warm the workers up (imports) before timing
                list(pool.map(abs, range(args.workers * 4)))
                fresh: dict[str, FeedState] = {}
                phases.append(
                    await poll_all(
                        f"first poll, parse in {args.workers} worker processes",
                        fetcher,
                        feeds,
                        fresh,
                        now,
                        pool,
                    )
                )
    urls = [f.url for f in feeds]
    phases.extend(await fetch_only(urls[: args.baseline], args.concurrency))
    phases.append(await asyncio.to_thread(baseline, urls[: args.baseline]))
    if args.state_feeds:
        big = [FeedSource(id=f"s{i}", url=f"{base}/f/{i}.xml") for i in range(args.state_feeds)]
        # validators as the first poll would have stored them (the server's ETag is "<i>-<gen>")
        big_states = {
            f.id: FeedState(feed_id=f.id, etag=f'"{i}-{1 if i % 10 == 0 and i < n else 0}"')
            for i, f in enumerate(big)
        }
        async with Fetcher(settings) as fetcher:
            phases.append(
                await poll_all(
                    f"unchanged poll, {args.state_feeds:,} feeds of state",
                    fetcher,
                    big,
                    big_states,
                    now,
                )
            )
    return phases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--baseline", type=int, default=500, help="feeds for plain feedparser")
    ap.add_argument("--state-feeds", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2, help="process pool phase (0: skip)")
    args = ap.parse_args()

    ctx = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = ctx.Queue()
    server = ctx.Process(target=serve, args=(ports, 1800.0), daemon=True)
    server.start()
    try:
        base = f"http://127.0.0.1:{ports.get(timeout=60)}"
        phases = asyncio.run(run(args, base))
    finally:
        server.terminate()
        server.join(10)
    print(
        f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {ENTRIES} entries/feed, "
        f"feed size {len(feed_body(0, 0)) / 1024:.0f} KiB\n"
    )
    print(
        "| phase | feeds | seconds | feeds/s | entries/s | CPU s | CPU ms/feed "
        "| parsed / 304 / errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for p in phases:
        print(p.row())
    plain = next(p for p in phases if p.name.startswith("plain"))
    plain_rate = plain.feeds / plain.seconds
    for p in phases:
        if p.name.startswith("first poll"):
            print(f"{p.name} vs plain feedparser: {p.feeds / p.seconds / plain_rate:.1f}x feeds/s")
    first = phases[0]
    print(
        f"CPU per feed, first poll vs plain feedparser: "
        f"{(plain.cpu / plain.feeds) / (first.cpu / first.feeds):.1f}x less"
    )
    print(f"peak RSS (client, whole run): {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
