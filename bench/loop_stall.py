"""How long can one poll's processing freeze the worker's event loop?

The worker runs parse → articles → match in ``asyncio.to_thread``; the event loop
(polls, sender, bot, /healthz) keeps running only while that thread lets go of
the GIL. This script runs each stage of ``pipeline._prepare`` on hostile and
ordinary feeds in a thread, exactly as the worker does, while an asyncio loop
in the main thread sleeps 5 ms at a time and records how late it wakes up: the
largest lateness is the longest the loop was frozen. The ordinary feed is the
baseline measured in the same run; the total processing time is shown beside it.

    .venv/bin/python bench/loop_stall.py [--repeat N]

It also times the alternative, a process pool (``ProcessPoolExecutor``) doing
the same work: the loop then never waits for the GIL, but each poll pays for
pickling the document in and the articles out. The last rows process eight
documents at once, as a worker does when several feeds are due: in parallel
threads, one at a time behind a lock (``pipeline.CPU_LOCK``), and in a pool of two
processes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.articles import to_articles
from monitor.match import compile_rules
from monitor.models import Article, FeedSource, FetchResult, Rule
from monitor.parse import parse_feed

NOW = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
TICK = 0.005


def rss(items: list[str]) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>W</title>'
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def item(n: int, title: str, description: str = "", content: str = "") -> str:
    encoded = f"<content:encoded><![CDATA[{content}]]></content:encoded>" if content else ""
    return (
        f"<item><title>{title}</title><guid>g{n}</guid><link>https://news.example/{n}</link>"
        f"<description>{description}</description>{encoded}</item>"
    )


def documents() -> dict[str, bytes]:
    ordinary = [
        item(i, f"Delegations meet in Astana, round {i}", "<p>" + "Talks went on. " * 60 + "</p>")
        for i in range(50)
    ]
    return {
        "ordinary (50 entries)": rss(ordinary),
        "200 KB of dots": rss([item(1, "Astana", "Astana" + "." * 200_000)]),
        "1 MB 'appeared first on'": rss(
            [item(1, "Astana", content="The post appeared first on Wire. " * 32_000)]
        ),
        "100k nested divs": rss(
            [item(1, "Astana", content="<div>" * 100_000 + "Deep" + "</div>" * 100_000)]
        ),
        "catastrophic regex": rss([item(1, "Astana", "a" * 20_000)]),
        "5 MB feed, 500 entries": rss(
            [item(i, f"Item {i}", "<p>" + "word " * 2_000 + "</p>") for i in range(500)]
        ),
    }


RULES = [
    Rule(name="astana", any=("Astana",)),
    Rule(name="slow", any=("re:(a|aa)+c",)),
    Rule(name="talks", query="talks AND (round OR Astana)"),
]


def process(body: bytes) -> int:
    """parse → articles → match: the CPU part of ``pipeline._prepare``."""
    matcher = _MATCHER
    fetched = FetchResult(feed_id="w", url="https://news.example/feed", status=200, content=body)
    parsed = parse_feed(fetched)
    articles: list[Article] = to_articles(FeedSource(id="w", url=""), parsed, NOW)
    return sum(len(matcher.match(a)) for a in articles)


_MATCHER = compile_rules(RULES)


async def stalled(work: Callable[[], object]) -> tuple[float, float]:
    """(longest loop freeze, total seconds) while ``work`` runs off the loop."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    started = time.perf_counter()
    task = asyncio.ensure_future(work())  # type: ignore[arg-type]
    while not task.done():
        before = loop.time()
        await asyncio.sleep(TICK)
        worst = max(worst, loop.time() - before - TICK)
    await task
    return worst, time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    docs = documents()
    pool = ProcessPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(pool, process, docs["ordinary (50 entries)"])  # warm the child
    print(
        f"{'document':28} {'size':>8} {'thread: stall':>14} {'total':>8} "
        f"{'process: stall':>15} {'total':>8}"
    )
    for name, body in docs.items():
        thread_runs, pool_runs = [], []
        for _ in range(args.repeat):
            thread_runs.append(await stalled(lambda b=body: asyncio.to_thread(process, b)))
            pool_runs.append(await stalled(lambda b=body: loop.run_in_executor(pool, process, b)))
        t_stall = max(r[0] for r in thread_runs)
        t_total = statistics.median(r[1] for r in thread_runs)
        p_stall = max(r[0] for r in pool_runs)
        p_total = statistics.median(r[1] for r in pool_runs)
        print(
            f"{name:28} {len(body) / 1e6:7.2f}M {t_stall * 1000:12.0f}ms {t_total:7.2f}s "
            f"{p_stall * 1000:13.0f}ms {p_total:7.2f}s"
        )
    batch = [docs[k] for k in list(docs)[1:4]] + [docs["ordinary (50 entries)"]]
    batch = batch * 2
    lock = threading.Lock()

    def one_at_a_time(body: bytes) -> int:
        with lock:
            return process(body)

    wide = ProcessPoolExecutor(max_workers=2)
    await asyncio.gather(
        *(loop.run_in_executor(wide, process, docs["200 KB of dots"]) for _ in "ab")
    )
    ways: dict[str, Callable[[bytes], asyncio.Future[int]]] = {
        "threads in parallel": lambda b: asyncio.ensure_future(asyncio.to_thread(process, b)),
        "threads, one at a time": lambda b: asyncio.ensure_future(
            asyncio.to_thread(one_at_a_time, b)
        ),
        "2 processes": lambda b: asyncio.ensure_future(loop.run_in_executor(wide, process, b)),
    }
    print(f"\n{len(batch)} documents at once ({sum(map(len, batch)) / 1e6:.1f} MB)")
    print(f"{'how':28} {'stall':>8} {'total':>8}")
    for how, submit in ways.items():
        runs = []
        for _ in range(args.repeat):

            async def work(submit: Callable[[bytes], asyncio.Future[int]] = submit) -> None:
                await asyncio.gather(*(submit(b) for b in batch))

            runs.append(await stalled(work))
        stall = max(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        print(f"{how:28} {stall * 1000:6.0f}ms {total:7.2f}s")
    pool.shutdown()
    wide.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
