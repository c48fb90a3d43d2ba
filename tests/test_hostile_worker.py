"""The issue's acceptance test: one hostile feed or one typo never silences the worker.

`monitor run` in a subprocess (``PORT`` set, so ``/healthz`` is served) polls the
test feed server, where hostile feeds sit beside good ones: bad character
references and NUL in every field, 200 KB of dots, a megabyte "appeared first on"
tail without line breaks, 100,000 nested <div>s, an article that sends a rule's
regular expression into catastrophic backtracking, and a redirect to a local
file. Alerts go to the Bot API stand-in. Throughout, ``/healthz`` is sampled
every 100 ms from another thread; its slowest answer must stay under a generous
liveness bound (a frozen event loop shows up as seconds, not milliseconds).

The redirect guard cannot be exercised from a subprocess here: every address
this test can serve from is private, and a private-to-private redirect is
followed on purpose. ``tests/test_hostile_content.py`` tests the guard in-process
with 127.0.0.1 playing a public address.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fakes.botapi import FakeBotApi
from tests.fakes.feedserver import FeedServer

from .conftest import REPO, clean_env, monitor_command

HEALTH_BOUND = 2.0  # seconds: a liveness bound, not a speed benchmark
RUN_DEADLINE = 150.0  # seconds every expected alert may take to arrive
INTERVAL = 2.0  # every feed's poll interval
BAD_REFS = "&#xD800;&#xdfff;&#0;&#x1;&#xFFFE;&#x1FFFF;&#55296;"
CHANNEL, OPS = "@test_channel", "@ops_room"


def rss(title: str, items: list[str]) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>{title}</title><link>https://news.example/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def item(guid: str, title: str, description: str = "", extra: str = "") -> str:
    return (
        f"<item><title>{title}</title><guid isPermaLink='false'>{guid}</guid>"
        f"<link>https://news.example/{guid}</link>"
        f"<description>{description}</description>"
        f"<pubDate>Tue, 10 Feb 2026 09:30:00 GMT</pubDate>{extra}</item>"
    )


@dataclass
class Scenario:
    """Feeds on the server and the alert titles that must arrive, each exactly once."""

    paths: dict[str, str] = field(default_factory=dict)  # feed id → server path
    expected: list[str] = field(default_factory=list)


def hostile_scenario(server: FeedServer) -> Scenario:
    tag = uuid.uuid4().hex[:8]
    scenario = Scenario()

    def add(feed_id: str, body: bytes) -> None:
        path = f"/hostile-run/{tag}/{feed_id}.xml"
        server.add(path, body)
        scenario.paths[feed_id] = path

    good = [
        item(f"{tag}-g1", "Delegations arrive in Astana for a new round"),
        item(f"{tag}-g2", "Astana talks: the agenda is agreed", "<p>Both sides signed.</p>"),
        item(f"{tag}-g3", "Weather turns cold in the north"),  # matches nothing
    ]
    add("good", rss("Good wire", good))
    add("good2", rss("Second wire", [item(f"{tag}-g4", "Aid convoy crosses near Astana road")]))
    scenario.expected += [
        "Delegations arrive in Astana for a new round",
        "Astana talks: the agenda is agreed",
        "Aid convoy crosses near Astana road",
    ]
    chars = [
        item(f"{tag}-c1{BAD_REFS}", f"Astana{BAD_REFS} delegates meet", f"Text{BAD_REFS}."),
        item(f"{tag}-c2&#0;", "Astana statement issued", f"&lt;p&gt;Body{BAD_REFS}&lt;/p&gt;"),
        item(
            f"{tag}-c3",
            "Astana envoy speaks",
            extra=f"<author>desk@news.example (Desk{BAD_REFS})</author>",
        ).replace(f"https://news.example/{tag}-c3", f"https://news.example/{tag}-c3&#0;x"),
    ]
    add("chars", rss(f"Hostile{BAD_REFS} characters", chars))
    scenario.expected += ["Astana delegates meet", "Astana statement issued", "Astana envoy speaks"]
    add("dots", rss("Dots", [item(f"{tag}-d1", "Astana dots", "Astana" + "." * 200_000)]))
    scenario.expected.append("Astana dots")
    tail = "The post appeared first on Wire. " * 32_000  # ~1 MB, no line break
    add(
        "tail",
        rss(
            "Tail",
            [item(f"{tag}-t1", "Astana tail", extra=f"<content:encoded>{tail}</content:encoded>")],
        ),
    )
    scenario.expected.append("Astana tail")
    divs = "<![CDATA[" + "<div>" * 100_000 + "Deep in Astana" + "</div>" * 100_000 + "]]>"
    add(
        "divs",
        rss(
            "Divs",
            [item(f"{tag}-v1", "Astana divs", extra=f"<content:encoded>{divs}</content:encoded>")],
        ),
    )
    scenario.expected.append("Astana divs")
    backtrack = "a" * 20_000 + " " + "word " * 2_000
    add("regex", rss("Regex", [item(f"{tag}-r1", "Astana regex", backtrack)]))
    scenario.expected.append("Astana regex")
    scenario.paths["redirect"] = "/redirect-to-file"  # refused: a feed never reads local files
    return scenario


def config_for(server: FeedServer, scenario: Scenario) -> str:
    feeds = "".join(
        f"  - {{id: {feed_id}, url: '{server.url(path)}', interval: {INTERVAL:g}s, "
        f"backfill: all}}\n"
        for feed_id, path in scenario.paths.items()
    )
    return (
        "defaults:\n  timeout: 10s\n"
        f"telegram:\n  admin_chat: '{OPS}'\n  feed_down_after: 1\n"
        f"channels:\n  desk: {{chat: '{CHANNEL}'}}\n"
        f"feeds:\n{feeds}"
        "rules:\n"
        "  - {name: astana, any: [Astana], notify: [desk]}\n"
        "  - {name: backtracking, any: ['re:(\\w+\\s?)+:', 're:(a|aa)+c'], notify: [desk]}\n"
    )


class HealthSampler(threading.Thread):
    """GET /healthz every ~100 ms; records each answer's latency and status."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/healthz"
        self.samples: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0  # not listening (yet, or any more)
            elapsed = time.monotonic() - started
            if status:
                self.samples.append((elapsed, status))
            self.halt.wait(max(0.0, 0.1 - elapsed))

    @property
    def max_latency(self) -> float:
        return max((s[0] for s in self.samples), default=0.0)


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_hostile_feeds_never_silence_the_worker(
    database: str, feed_server: FeedServer, botapi: FakeBotApi, tmp_path: Path
) -> None:
    botapi.add_chat(OPS, "channel", title="Ops")
    scenario = hostile_scenario(feed_server)
    config = tmp_path / "monitor.yaml"
    config.write_text(config_for(feed_server, scenario), encoding="utf-8")
    port = free_port()
    log_path = tmp_path / "worker.log"
    sampler = HealthSampler(port)
    with open(log_path, "w", encoding="utf-8") as log_file:
        worker = subprocess.Popen(
            monitor_command("run", "--config", str(config)),
            cwd=REPO,
            env=clean_env(
                DATABASE_URL=database,
                PORT=str(port),
                TELEGRAM_BOT_TOKEN=botapi.token,
                TELEGRAM_API_URL=botapi.url,
            ),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        started = time.monotonic()
        try:
            sampler.start()
            wait_for(lambda: bool(sampler.samples), "/healthz to answer", 30)

            def delivered() -> list[str]:
                return [m.plain_text for m in botapi.sent(CHANNEL)]

            def all_arrived() -> bool:
                texts = delivered()
                return all(any(t in x for x in texts) for t in scenario.expected)

            wait_for(all_arrived, "every good entry's alert", RUN_DEADLINE)
            wait_for(
                lambda: any(
                    "regular expression is too slow" in m.plain_text for m in botapi.sent(OPS)
                ),
                "the operator alert for the slow regular expression",
                30,
            )
            time.sleep(3 * INTERVAL)  # a few more polls: nothing is sent twice
            assert worker.poll() is None, "the worker died"
        finally:
            elapsed = time.monotonic() - started
            worker.send_signal(signal.SIGTERM)
            try:
                code = worker.wait(timeout=20)
            finally:
                if worker.poll() is None:
                    worker.kill()
                sampler.halt.set()
                sampler.join(timeout=15)
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]

    texts = [m.plain_text for m in botapi.sent(CHANNEL)]
    for title in scenario.expected:
        assert sum(title in t for t in texts) == 1, (title, texts)
    assert not any("Weather turns cold" in t for t in texts)
    assert all("\x00" not in t and "\ufffe" not in t for t in texts)
    operator = [m.plain_text for m in botapi.sent(OPS)]
    assert sum("regular expression is too slow" in t for t in operator) == 1, operator

    # no feed is fetched more often than its interval allows (failing ones back off)
    for feed_id, path in scenario.paths.items():
        if feed_id == "redirect":
            continue
        requests = len(feed_server.requests_to(path))
        assert 1 <= requests <= elapsed / INTERVAL + 2, (feed_id, requests, elapsed)

    statuses = [status for _, status in sampler.samples]
    assert 200 in statuses
    after_start = statuses[statuses.index(200) :]  # 503 before the first tick is fine
    assert set(after_start) == {200}, sorted(set(after_start))
    print(
        f"\n/healthz: {len(sampler.samples)} samples over {elapsed:.0f} s, "
        f"max {sampler.max_latency * 1000:.0f} ms"
    )
    slowest = sorted((s[0] for s in sampler.samples), reverse=True)[:5]
    assert sampler.max_latency < HEALTH_BOUND, slowest
