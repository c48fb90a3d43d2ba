"""Full-text benchmark: what fetching and extracting linked pages costs one poll.

One feed of N one-line snippets (default 20), each linking to an article page
from ``tests/data/pages`` (5-9 KB of news-site HTML), served on 127.0.0.1 by
the test feed server (in this process, in its own thread: CPU seconds include
the server). Each row is a first poll with ``backfill: all`` into a fresh
SQLite database, so every entry is new and matched once:

- ``never``: the baseline, the feed's own text only;
- ``always`` with the politeness limits varied (pages in flight per host,
  seconds between two request starts on one host).

Usage:  python bench/fulltext.py [--entries 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import load_settings
from monitor.fetch import Fetcher, FetchSettings
from monitor.fulltext import PageFetcher, PagePolicy
from monitor.pipeline import Ruleset, poll_feed
from monitor.storage import Store
from tests.fakes.feedserver import FeedServer, Item, rss_feed

PAGES = Path(__file__).resolve().parents[1] / "tests" / "data" / "pages"
RULES = """
channels:
  desk: {chat: "@desk"}
rules:
  - name: astana
    any: [Astana, Астана, أستانا]
    notify: [desk]
feeds:
  - {id: wire, url: 'URL', backfill: all, full_text: FULL}
"""


async def one_poll(
    url: str, full: str, policy: PagePolicy, folder: Path
) -> tuple[float, float, int, int]:
    config = folder / f"{full}-{policy.per_host}-{policy.interval}.yaml"
    config.write_text(RULES.replace("URL", url).replace("FULL", full), encoding="utf-8")
    settings = load_settings(config)
    store = Store(f"sqlite:///{folder / (config.stem + '-' + str(time.monotonic_ns()) + '.db')}")
    store.migrate()
    ruleset = Ruleset.from_settings(settings)
    wall, cpu = time.perf_counter(), time.process_time()
    async with Fetcher(FetchSettings(timeout=30)) as fetcher:
        outcome = await poll_feed(
            settings.feeds[0],
            store=store,
            fetcher=fetcher,
            ruleset=lambda: ruleset,
            now=datetime.now(UTC),
            pages=PageFetcher(fetcher, policy),
        )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    store.close()
    assert outcome.ok, outcome.error
    return wall, cpu, outcome.pages, outcome.alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pages = sorted(PAGES.glob("*.html"))
    with FeedServer() as server, tempfile.TemporaryDirectory() as tmp:
        items = []
        for n in range(args.entries):
            page = pages[n % len(pages)]
            link = server.add(f"/a/{n}-{page.name}", page.read_bytes(), content_type="text/html")
            items.append(Item(f"Wire item {n}", "<p>One line from the wire.</p>", link, f"g{n}"))
        url = server.add("/feed.xml", rss_feed("Bench", items))
        rows = [
            ("never", PagePolicy(per_host=2, interval=0.0)),
            ("always", PagePolicy(per_host=2, interval=0.0)),
            ("always", PagePolicy(per_host=4, interval=0.0)),
            ("always", PagePolicy(per_host=2, interval=0.1)),
        ]
        print(f"{args.entries} new entries, best of {args.rounds} first polls\n")
        head = ("full_text", "per_host", "interval", "wall s", "CPU s", "pages", "alerts")
        print(f"{head[0]:<10}" + "".join(f" {h:>8}" for h in head[1:]) + "  ms/page")
        base = None
        for full, policy in rows:
            results = [
                asyncio.run(one_poll(url, full, policy, Path(tmp))) for _ in range(args.rounds)
            ]
            wall, cpu, fetched, alerts = min(results)
            if base is None:
                base = wall
            per_page = (wall - base) / fetched * 1000 if fetched else 0.0
            print(
                f"{full:<10} {policy.per_host:>8} {policy.interval:>8.2f} {wall:>8.3f} {cpu:>8.3f} "
                f"{fetched:>8} {alerts:>8} {per_page:>8.1f}"
            )


if __name__ == "__main__":
    main()
