"""`monitor run --once` against lemon24/reader's ``update_feeds`` on the same loopback feeds.

Serves N feeds (default 1,000; 20 entries of about 2 KB of Arabic/English HTML
each, every feed distinct, dated February 2026: with ``backfill: 0`` a first run
stores them without reading their text, as they can neither alert, count in the
surge counters nor go into the archive; ``--fresh`` dates them two hours ago, so
every one is read, matched and archived) from an aiohttp server in a child process on
127.0.0.1, with an ETag and 304 answers to ``If-None-Match``. Each round, on a
fresh database:

1. ``monitor run --once`` as a subprocess — start-up included — first run
   (every feed 200) and second run (every feed unchanged: 304);
2. reader in a subprocess: ``add_feed`` × N, then ``update_feeds()`` (first)
   and, in a second process, ``update_feeds(scheduled=False)`` (second); its
   times are taken inside the process around ``update_feeds`` only, so they
   exclude its start-up (its whole process time is shown beside them).

Rounds are interleaved (monitor, then reader, on the same server), the table
shows medians, and a ratio is the median of the per-round ratios. The server
counts its answers, so a row whose second run was not all 304 says so.

    python bench/once.py [--feeds 1000] [--rounds 3] [--baseline main] [--fresh]
                         [--database postgresql+psycopg://…]

``--baseline REV`` runs that revision's ``monitor`` package (``git archive``)
beside this tree's, in the same rounds (before/after on the same noise);
``--database`` (a PostgreSQL URL) adds monitor rows on PostgreSQL (a fresh
schema per round). reader is not a dependency of monitor: install it into the
environment to compare (``pip install reader``); its vendored feedparser needs
``READER_NO_VENDORED_FEEDPARSER=1``, which this script sets. Loopback timings
are CPU cost on this machine; the server shares its cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRIES = 20

READER = r"""
import json, sys, time
started = time.perf_counter()
from reader import make_reader
db, base, n, phase = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
reader = make_reader(db)
ready = time.perf_counter()
added = 0.0
if phase == "first":
    t = time.perf_counter()
    for i in range(n):
        reader.add_feed(f"{base}/f/{i}.xml")
    added = time.perf_counter() - t
    t = time.perf_counter()
    reader.update_feeds()
else:
    t = time.perf_counter()
    reader.update_feeds(scheduled=False)
update = time.perf_counter() - t
out = {
    "startup": ready - started,
    "add": added,
    "update": update,
    "entries": reader.get_entry_counts().total,
    "broken": reader.get_feed_counts(broken=True).total,
}
reader.close()
print(json.dumps(out))
"""


# -- the server (child process) ---------------------------------------------------------------


def serve(
    port_queue: multiprocessing.Queue, feeds: int, lifetime: float, fresh: bool = False
) -> None:
    """Every feed distinct (its own GUIDs and links); ETag per feed; counts its answers.

    ``fresh`` dates the entries two hours ago instead of February 2026."""
    import asyncio
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from aiohttp import web

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ingest import feed_body as dated_feb  # the same 2 KB Arabic/English entries as ingest.py

    hour = format_datetime(datetime.now(UTC) - timedelta(hours=2), usegmt=True)[:20].encode()

    def feed_body(i: int, gen: int) -> bytes:
        body = dated_feb(i, gen)
        return body.replace(b"Tue, 10 Feb 2026 09:", hour) if fresh else body

    bodies = {(i, 0): feed_body(i, 0) for i in range(feeds)}
    counts: dict[str, int] = {}
    gen = [0]  # /bump gives every feed 20 new entries (new GUIDs, a new ETag)

    async def handle(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        etag = f'"{i}-{gen[0]}"'
        headers = {"ETag": etag, "Content-Type": "application/rss+xml"}
        if request.headers.get("If-None-Match") == etag:
            counts["304"] = counts.get("304", 0) + 1
            return web.Response(status=304, headers=headers)
        counts["200"] = counts.get("200", 0) + 1
        if (i, gen[0]) not in bodies:
            bodies[(i, gen[0])] = feed_body(i, gen[0])
        return web.Response(body=bodies[(i, gen[0])], headers=headers)

    async def bump(request: web.Request) -> web.Response:
        gen[0] += 1
        return web.Response(text=str(gen[0]))

    async def stats(request: web.Request) -> web.Response:
        out = dict(counts)
        if request.query.get("reset"):
            counts.clear()
        return web.json_response(out)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/f/{i}.xml", handle)
        app.router.add_get("/stats", stats)
        app.router.add_get("/bump", bump)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.sleep(lifetime)
        await runner.cleanup()

    asyncio.run(main())


def server_stats(base: str) -> dict[str, int]:
    """The server's answers since the last call (and reset them)."""
    with urllib.request.urlopen(f"{base}/stats?reset=1", timeout=30) as resp:
        data: dict[str, int] = json.load(resp)
    return data


# -- the clients ------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float  # seconds, the whole process
    cpu: float  # user + system seconds of the process
    inner: float = 0.0  # reader: update_feeds only
    answers: dict[str, int] = field(default_factory=dict)
    note: str = ""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], env: dict[str, str], base: str, cwd: Path = REPO) -> tuple[Run, str, str]:
    """Run ``cmd`` (``-m monitor`` imports the package in ``cwd``): wall and CPU seconds."""
    server_stats(base)
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    run = Run(time.perf_counter() - t0, children_cpu() - cpu0)
    run.answers = server_stats(base)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return run, proc.stdout, proc.stderr


def write_config(folder: Path, base: str, feeds: int) -> Path:
    lines = [
        "defaults:\n  interval: 1h\n  backfill: 0\n  timeout: 30s\n",
        "channels:\n  desk: {chat: '@desk'}\n",
        # matched against every new entry after a first poll, and hits none: the cost of
        # matching is in the worker's changed polls, without 20,000 alerts to render
        "rules:\n  - {name: geneva, any: [Geneva, جنيف, Женева], notify: [desk]}\n",
        "feeds:\n",
    ]
    lines += [f"  - {{id: f{i}, url: '{base}/f/{i}.xml'}}\n" for i in range(feeds)]
    path = folder / "monitor.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def monitor_env(database_url: str) -> dict[str, str]:
    """The environment of a `monitor` child. Bytecode caching stays on even where the
    machine turns it off (``PYTHONDONTWRITEBYTECODE``): an installed package, like
    reader's, has its ``.pyc`` files, and without them every start recompiles
    monitor's source (about 0.2 s here)."""
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    for name in ("TELEGRAM_BOT_TOKEN", "PORT", "MONITOR_CONFIG", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


def monitor_pair(config: Path, database_url: str, base: str, tree: Path) -> tuple[Run, Run]:
    """First and second `monitor run --once` on one fresh database, with ``tree``'s package."""
    env = monitor_env(database_url)
    cmd = [sys.executable, "-m", "monitor", "run", "--once", "--config", str(config)]
    first, _out, err1 = timed(cmd, env, base, tree)
    second, _out, err2 = timed(cmd, env, base, tree)
    first.note = summary_line(err1)
    second.note = summary_line(err2)
    return first, second


def baseline_tree(rev: str, into: Path) -> Path:
    """The ``monitor`` package of revision ``rev`` (``git archive``), to run beside this one."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "monitor"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def summary_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("polled ")]
    return lines[-1] if lines else stderr.strip()[-200:]


def reader_pair(folder: Path, base: str, feeds: int) -> tuple[Run, Run]:
    db = str(folder / f"reader-{uuid.uuid4().hex[:6]}.sqlite")
    env = {**os.environ, "READER_NO_VENDORED_FEEDPARSER": "1"}
    runs = []
    for phase in ("first", "second"):
        cmd = [sys.executable, "-c", READER, db, base, str(feeds), phase]
        run, out, _err = timed(cmd, env, base)
        data = json.loads(out.strip().splitlines()[-1])
        run.inner = data["update"]
        run.note = f"{data['entries']} entries, {data['broken']} broken feeds"
        runs.append(run)
    return runs[0], runs[1]


def proc_cpu(pid: int) -> float:
    """utime + stime of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_phases(config: Path, tree: Path, base: str, folder: Path, feeds: int) -> dict[str, Run]:
    """The long-running `monitor run` on SQLite: every feed made due at once, three times
    (first poll, unchanged, every feed changed); wall and worker CPU until all were polled.

    The worker's idle work (its one-second tick, the sender, the config watcher) is in
    the CPU too; it is small beside 1,000 polls.
    """
    import sqlalchemy as sa

    db = folder / f"worker-{uuid.uuid4().hex[:6]}.db"
    url = f"sqlite:///{db}"
    env = monitor_env(url)
    subprocess.run(
        [sys.executable, "-m", "monitor", "migrate", "--config", str(config)],
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
    )
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    def stamp(when: float) -> str:  # the storage's SQLite format: naive UTC
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}"

    with engine.begin() as conn:  # rows first, not due: the worker's spread does not apply
        conn.execute(
            sa.text("INSERT INTO feeds (feed_id, url, next_poll) VALUES (:id, :url, :due)"),
            [
                {"id": f"f{i}", "url": f"{base}/f/{i}.xml", "due": stamp(time.time() + 86400)}
                for i in range(feeds)
            ],
        )
    log = open(folder / "worker.log", "a")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    out: dict[str, Run] = {}
    try:
        time.sleep(3.0)  # start-up, outside every phase
        for phase in ("first poll", "unchanged", "changed"):
            if phase == "changed":
                urllib.request.urlopen(f"{base}/bump", timeout=30).close()
            server_stats(base)
            mark = time.time()
            cpu0, t0 = proc_cpu(worker.pid), time.perf_counter()
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE feeds SET next_poll = :now"), {"now": stamp(mark)})
            polled = 0
            while polled < feeds and time.perf_counter() - t0 < 600:
                time.sleep(0.2)
                with engine.connect() as conn:
                    polled = conn.execute(
                        sa.text("SELECT count(*) FROM feeds WHERE last_poll >= :mark"),
                        {"mark": stamp(mark)},
                    ).scalar_one()
            run = Run(time.perf_counter() - t0, proc_cpu(worker.pid) - cpu0)
            run.answers = server_stats(base)
            run.note = f"{polled} feeds polled"
            out[phase] = run
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
        engine.dispose()
    return out


class Postgres:
    """A fresh schema per round on the given PostgreSQL, dropped afterwards."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.sa = sa
        self.admin = sa.create_engine(url)
        self.url = url
        self.schemas: list[str] = []

    def fresh(self) -> str:
        schema = f"bench_once_{uuid.uuid4().hex[:8]}"
        with self.admin.begin() as conn:
            conn.execute(self.sa.text(f"CREATE SCHEMA {schema}"))
        self.schemas.append(schema)
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options=-csearch_path%3D{schema}"

    def close(self) -> None:
        with self.admin.begin() as conn:
            for schema in self.schemas:
                conn.execute(self.sa.text(f"DROP SCHEMA {schema} CASCADE"))
        self.admin.dispose()


def startup(tree: Path) -> float:
    """CPU seconds of `python -m monitor run --help` and the imports `run` needs."""
    cpu0 = children_cpu()
    subprocess.run(
        [sys.executable, "-c", "import monitor.cli, monitor.worker"],
        env=monitor_env("sqlite://"),
        cwd=tree,
        capture_output=True,
        check=True,
    )
    return children_cpu() - cpu0


# -- the table ----------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def answers(runs: list[Run]) -> str:
    last = runs[-1].answers
    return " / ".join(f"{last.get(code, 0)}×{code}" for code in ("200", "304"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default=None, metavar="REV", help="also run this revision")
    ap.add_argument("--database", default=None, help="also run monitor on this PostgreSQL")
    ap.add_argument("--no-reader", action="store_true", help="skip reader (not installed)")
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="date the entries two hours ago (not Feb 2026): a first run reads, matches "
        "(for the surge counters) and archives every one",
    )
    ap.add_argument(
        "--worker-rounds", type=int, default=1, help="rounds of the long-running worker (0: skip)"
    )
    args = ap.parse_args()

    ctx = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = ctx.Queue()
    server = ctx.Process(target=serve, args=(ports, args.feeds, 3600.0, args.fresh), daemon=True)
    server.start()
    rows: dict[tuple[str, str], list[Run]] = {}
    boot: dict[str, list[float]] = {}
    worker_rows: dict[tuple[str, str], list[Run]] = {}
    pg = Postgres(args.database) if args.database else None
    try:
        base = f"http://127.0.0.1:{ports.get(timeout=120)}"
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = write_config(folder, base, args.feeds)
            trees = {"this tree": REPO}
            if args.baseline:
                trees = {
                    f"{args.baseline}": baseline_tree(args.baseline, folder / "baseline"),
                    **trees,
                }
            for round_no in range(args.rounds):
                for label, tree in trees.items():
                    boot.setdefault(label, []).append(startup(tree))
                    db = folder / f"monitor-{uuid.uuid4().hex[:8]}.db"  # fresh every run
                    pair = monitor_pair(config, f"sqlite:///{db}", base, tree)
                    for phase, run in zip(("first", "second"), pair, strict=True):
                        rows.setdefault((f"monitor ({label}), SQLite", phase), []).append(run)
                    if pg is not None:
                        pair = monitor_pair(config, pg.fresh(), base, tree)
                        for phase, run in zip(("first", "second"), pair, strict=True):
                            rows.setdefault((f"monitor ({label}), PostgreSQL", phase), []).append(
                                run
                            )
                if not args.no_reader:
                    pair = reader_pair(folder, base, args.feeds)
                    for phase, run in zip(("first", "second"), pair, strict=True):
                        rows.setdefault(("reader", phase), []).append(run)
                if round_no < args.worker_rounds:
                    for label, tree in trees.items():
                        phases = worker_phases(config, tree, base, folder, args.feeds)
                        for phase, run in phases.items():
                            worker_rows.setdefault((label, phase), []).append(run)
                print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        server.terminate()
        server.join(10)
        if pg is not None:
            pg.close()

    imports = ", ".join(f"{label} {med(cpu):.2f} s" for label, cpu in boot.items())
    print(
        f"\n{args.feeds:,} loopback feeds × {ENTRIES} entries "
        f"({'dated two hours ago' if args.fresh else 'dated Feb 2026'}; ETag, 304); "
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; medians of {args.rounds} "
        f"rounds; CPU for `import monitor.cli, monitor.worker` in a fresh interpreter: {imports}; "
        "monitor's bytecode cached, as an installed package has it\n"
    )
    print(
        "| run | what is timed | seconds | CPU s (process) | ms CPU/feed "
        "| reader ÷ monitor (seconds) | server answers (last round) | result (last round) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for phase in ("first", "second"):
        reader_runs = rows.get(("reader", phase), [])
        for (name, row_phase), runs in rows.items():
            if row_phase != phase or name == "reader":
                continue
            ratio = "—"
            if reader_runs:
                pairs = zip(reader_runs, runs, strict=False)
                ratio = f"{med([r.inner / m.wall for r, m in pairs]):.1f}×"
            print(
                f"| {name}, {phase} | `monitor run --once`, whole process | "
                f"{med([r.wall for r in runs]):.2f} | {med([r.cpu for r in runs]):.2f} | "
                f"{med([r.cpu for r in runs]) / args.feeds * 1000:.2f} | {ratio} | "
                f"{answers(runs)} | {runs[-1].note} |"
            )
        if reader_runs:
            call = "update_feeds(scheduled=False)" if phase == "second" else "update_feeds()"
            print(
                f"| reader 3, {phase} | `{call}` only "
                f"(whole process {med([r.wall for r in reader_runs]):.2f} s) | "
                f"{med([r.inner for r in reader_runs]):.2f} | "
                f"{med([r.cpu for r in reader_runs]):.2f} | "
                f"{med([r.cpu for r in reader_runs]) / args.feeds * 1000:.2f} | 1.0× | "
                f"{answers(reader_runs)} | {reader_runs[-1].note} |"
            )
    if worker_rows:
        print(
            "\nThe long-running worker (`monitor run`, SQLite), every feed due at once; "
            "CPU of the worker process until all were polled:\n"
        )
        print("| worker | phase | seconds | CPU s | ms CPU per poll | server answers |")
        print("|---|---|---|---|---|---|")
        for (label, phase), runs in worker_rows.items():
            cpu = med([r.cpu for r in runs])
            print(
                f"| {label} | {phase} | {med([r.wall for r in runs]):.2f} | {cpu:.2f} | "
                f"{cpu / args.feeds * 1000:.2f} | {answers(runs)} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
