"""Crash safety and scale-out with real `monitor run` processes.

Workers are subprocesses; the feeds and the Bot API stand-in are servers in this
process on 127.0.0.1. Every wait is bounded.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.botapi import FakeBotApi
from tests.fakes.feedserver import Item, rss_feed

from .conftest import REPO, clean_env, monitor_command

CHANNELS = 12


def write_setup(tmp_path: Path, feed_server, botapi: FakeBotApi, feeds: int) -> tuple[Path, set]:
    """``feeds`` feeds with one entry each; entry i is for channel i % CHANNELS."""
    lines = ["defaults:\n  interval: 2s\n  backfill: all\n  timeout: 5s\n", "channels:\n"]
    for c in range(CHANNELS):
        botapi.add_chat(f"@chan{c}", "channel")
        # stories off: "Bulletin 3 …" and "Bulletin 15 …" would be one story; this test
        # counts one message per entry (stories across workers: test_story_delivery.py)
        lines.append(f"  c{c}: {{chat: '@chan{c}', stories: off}}\n")
    lines.append("feeds:\n")
    expected = set()
    run = uuid.uuid4().hex[:8]
    for n in range(feeds):
        c = n % CHANNELS
        title = f"Bulletin {n} from the wire for topic{c}"
        url = feed_server.add(
            f"/{run}/{n}.xml",
            rss_feed(
                "Wire",
                [Item(title, f"<p>{title}.</p>", f"https://n.example/{run}/{n}", f"{run}-{n}")],
            ),
        )
        lines.append(f"  - {{id: f{n}, url: '{url}'}}\n")
        expected.add((f"chan{c}", title))
    lines.append("rules:\n")
    for c in range(CHANNELS):
        lines.append(f"  - {{name: r{c}, any: [topic{c}], notify: [c{c}]}}\n")
    config = tmp_path / "monitor.yaml"
    config.write_text("".join(lines), encoding="utf-8")
    return config, expected


def start_worker(
    config: Path, database_url: str, botapi: FakeBotApi, log: Path
) -> subprocess.Popen:
    env = clean_env(
        DATABASE_URL=database_url, TELEGRAM_BOT_TOKEN=botapi.token, TELEGRAM_API_URL=botapi.url
    )
    return subprocess.Popen(
        monitor_command("run", "--config", str(config)),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )


def delivered(botapi: FakeBotApi) -> Counter:
    """(channel username, title) → how many times Telegram accepted it."""
    seen: Counter = Counter()
    for message in botapi.sent():
        username = botapi.chat(message.chat_id).username
        title = message.plain_text.split("\n")[1]
        seen[(username, title)] += 1
    return seen


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.25)


def stop(workers: list[subprocess.Popen]) -> list[float]:
    """SIGTERM every worker; return how long each took to exit (all must exit 0)."""
    took = []
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        started = time.monotonic()
        worker.wait(timeout=20)
        took.append(time.monotonic() - started)
    return took


@pytest.fixture
def quiet_botapi():
    api = FakeBotApi().start()
    yield api
    api.stop()


def test_three_workers_on_postgresql_alert_each_story_once(
    tmp_path, feed_server, quiet_botapi, postgres_url
):
    botapi = quiet_botapi
    config, expected = write_setup(tmp_path, feed_server, botapi, feeds=240)
    logs = [tmp_path / f"worker{n}.log" for n in range(3)]
    workers = [start_worker(config, postgres_url, botapi, log) for log in logs]
    try:
        wait_until(lambda: set(delivered(botapi)) >= expected, 120, "every alert")
        time.sleep(3)  # a duplicate, if any, would arrive now
    finally:
        took = stop(workers)
    counts = delivered(botapi)
    assert set(counts) == expected
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]
    assert botapi.count_429 == 0
    assert [w.returncode for w in workers] == [0, 0, 0], [log.read_text()[-2000:] for log in logs]
    assert max(took) < 10
    # the work was shared: more than one worker polled feeds
    busy = [log for log in logs if "new entries" in log.read_text()]
    assert len(busy) >= 2


def test_sigkill_loses_nothing_on_postgresql(tmp_path, feed_server, quiet_botapi, postgres_url):
    botapi = quiet_botapi
    config, expected = write_setup(tmp_path, feed_server, botapi, feeds=72)
    logs = [tmp_path / f"worker{n}.log" for n in range(3)]
    workers = [start_worker(config, postgres_url, botapi, log) for log in logs]
    try:
        wait_until(lambda: len(botapi.sent()) >= 12, 60, "delivery to start")
        workers[0].send_signal(signal.SIGKILL)
        wait_until(lambda: set(delivered(botapi)) >= expected, 150, "every alert after the kill")
        time.sleep(3)
    finally:
        stop(workers[1:])
        workers[0].wait(timeout=10)
    counts = delivered(botapi)
    assert set(counts) == expected  # nothing lost
    per_channel = Counter(channel for (channel, _), n in counts.items() for _ in range(n - 1))
    assert all(n <= 1 for n in per_channel.values()), per_channel  # ≤ 1 duplicate a channel
    assert [w.returncode for w in workers[1:]] == [0, 0]


def test_sigkill_during_delivery_then_restart_on_sqlite(tmp_path, feed_server, quiet_botapi):
    botapi = quiet_botapi
    config, expected = write_setup(tmp_path, feed_server, botapi, feeds=36)
    database_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    first = start_worker(config, database_url, botapi, tmp_path / "first.log")
    try:
        wait_until(lambda: len(botapi.sent()) >= 6, 60, "delivery to start")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert len(delivered(botapi)) < len(expected)  # killed mid-way
    second = start_worker(config, database_url, botapi, tmp_path / "second.log")
    try:
        wait_until(lambda: set(delivered(botapi)) >= expected, 120, "the rest after restart")
        time.sleep(2)
    finally:
        (took,) = stop([second])
    counts = delivered(botapi)
    assert set(counts) == expected
    per_channel = Counter(channel for (channel, _), n in counts.items() for _ in range(n - 1))
    assert all(n <= 1 for n in per_channel.values()), per_channel
    assert second.returncode == 0 and took < 10
