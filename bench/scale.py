"""Scale-out benchmark: 1, 2 and 3 `monitor run` workers on one PostgreSQL.

Serves N feeds (default 5,000; 5 entries each) from a loopback aiohttp server
in a separate process, points 1, 2, then 3 workers at a fresh PostgreSQL schema
each, with every feed due at once (a backlog: new workers normally spread
first polls over 30 s), and reports, per configuration: wall time until every feed was polled
once, feeds/s (first to last poll), and CPU seconds per worker (utime + stime
from /proc). A naive baseline runs in the same run: one process fetching and
parsing the same feeds sequentially with ``feedparser.parse(url)``.

    python bench/scale.py [--feeds 5000] [--database postgresql+psycopg://postgres@127.0.0.1/test]

Not a test: it prints a table. Loopback server, workers and database share this
machine's cores, so read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]

SERVER = r"""
import sys
from aiohttp import web
ENTRY = ("<item><title>Bulletin {n}-{k}: delegations meet in the capital</title>"
         "<link>https://bench.example/{n}/{k}</link><guid>b-{n}-{k}</guid>"
         "<pubDate>Tue, 10 Feb 2026 09:30:00 GMT</pubDate>"
         "<description>&lt;p&gt;Talks on the ceasefire continued for a second day, "
         "officials said.&lt;/p&gt;</description></item>")
async def feed(request):
    n = request.match_info["n"]
    items = "".join(ENTRY.format(n=n, k=k) for k in range(5))
    body = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Feed {n}</title><link>https://bench.example/</link>{items}</channel></rss>")
    return web.Response(text=body, content_type="application/rss+xml")
app = web.Application()
app.router.add_get("/feed/{n}.xml", feed)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_config(folder: Path, port: int, feeds: int) -> Path:
    lines = [
        "defaults:\n  interval: 1h\n  backfill: 0\n  timeout: 20s\n",
        "channels:\n  desk: {chat: '@desk'}\n",
        "rules:\n  - {name: astana, any: [Astana], notify: [desk]}\n",
        "feeds:\n",
    ]
    lines += [
        f"  - {{id: f{n}, url: 'http://127.0.0.1:{port}/feed/{n}.xml'}}\n" for n in range(feeds)
    ]
    path = folder / "monitor.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def run_workers(count: int, config: Path, base_url: str, feeds: int, timeout: float) -> dict:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base_url else "?"
    url = f"{base_url}{sep}options=-csearch_path%3D{schema}"
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    for name in ("TELEGRAM_BOT_TOKEN", "PORT"):
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "-m", "monitor", "migrate", "--config", str(config)],
        env=env,
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # every feed due at once: a backlog, not the 30 s spread
        conn.execute(
            sa.text("INSERT INTO feeds (feed_id, url, next_poll) VALUES (:id, '', now())"),
            [{"id": f"f{n}"} for n in range(feeds)],
        )
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    polled = 0
    try:
        while time.monotonic() - started < timeout:
            with engine.connect() as conn:
                polled = conn.execute(
                    sa.text("SELECT count(*) FROM feeds WHERE last_poll IS NOT NULL")
                ).scalar_one()
            if polled >= feeds:
                break
            time.sleep(0.5)
        wall = time.monotonic() - started
        cpu = [cpu_seconds(w.pid) for w in workers]
        with engine.connect() as conn:
            first, last, errors = conn.execute(
                sa.text(
                    "SELECT min(last_poll), max(last_poll),"
                    " sum(CASE WHEN errors > 0 THEN 1 ELSE 0 END) FROM feeds"
                )
            ).one()
            entries = conn.execute(sa.text("SELECT count(*) FROM entries")).scalar_one()
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    span = (last - first).total_seconds() if first and last else float("nan")
    return {
        "workers": count,
        "polled": polled,
        "wall": wall,
        "span": span,
        "rate": polled / span if span else float("nan"),
        "cpu": cpu,
        "entries": entries,
        "errors": errors or 0,
    }


def naive(port: int, feeds: int, sample: int) -> float:
    """Sequential feedparser.parse(url) over the first ``sample`` feeds: feeds/s."""
    import feedparser

    started = time.monotonic()
    for n in range(sample):
        feedparser.parse(f"http://127.0.0.1:{port}/feed/{n}.xml")
    return sample / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument(
        "--database",
        default=os.environ.get(
            "MONITOR_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        time.sleep(1.5)
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), port, args.feeds)
            baseline = naive(port, args.feeds, min(args.feeds, 500))
            rows = [
                run_workers(n, config, args.database, args.feeds, args.timeout) for n in (1, 2, 3)
            ]
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(
        f"\n{args.feeds} loopback feeds × 5 entries, first poll of each; "
        f"machine: {os.cpu_count()} cores\n"
    )
    print(
        "| workers | feeds polled | wall to all polled (s) | feeds/s (first→last poll) "
        "| × naive | CPU s per worker | entries stored | feeds with errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cpu = " / ".join(f"{c:.1f}" for c in r["cpu"])
        print(
            f"| {r['workers']} | {r['polled']} | {r['wall']:.1f} | {r['rate']:.0f} | "
            f"{r['rate'] / baseline:.1f}× | {cpu} | {r['entries']} | {r['errors']} |"
        )
    print(
        f"| naive: sequential feedparser.parse(url), 500 feeds | | | {baseline:.0f} | 1.0× | | | |"
    )


if __name__ == "__main__":
    main()
