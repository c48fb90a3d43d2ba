"""The long-running worker in this process: polls, reloads, operator alerts, health."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import aiohttp
import pytest

from monitor.config import load_settings
from monitor.deliver.notifier import ConsoleNotifier
from monitor.models import utc_now
from monitor.storage import Store
from monitor.worker import Worker
from tests.fakes.feedserver import Item, rss_feed

from .conftest import run_monitor, start_worker_process

DEADLINE = 20.0  # seconds any single expectation may take


def config_text(url: str, rules: str, admin: bool = False, extra_feed: str = "") -> str:
    telegram = "telegram:\n  admin_chat: '@ops'\n  feed_down_after: 1\n" if admin else ""
    return (
        f"{telegram}channels:\n  desk: {{chat: '@desk'}}\n"
        f"feeds:\n  - {{id: wire, url: '{url}', interval: 1s, backfill: all}}\n{extra_feed}"
        f"rules:\n{rules}"
    )


ASTANA_RULE = "  - {name: astana, any: [Astana], notify: [desk]}\n"
AID_RULE = "  - {name: aid, any: [convoy], notify: [desk]}\n"


async def until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Wait (bounded) for ``condition``; fail with ``what`` when it never holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


class Running:
    """A Worker running as a task, with its console output captured."""

    def __init__(self, settings) -> None:
        self.out = io.StringIO()
        self.worker = Worker(settings, notifier=ConsoleNotifier(self.out))
        self.task = asyncio.create_task(self.worker.run())

    @property
    def printed(self) -> str:
        return self.out.getvalue().replace("*", "")

    async def stop(self) -> float:
        started = time.monotonic()
        self.worker.stop.set()
        await asyncio.wait_for(self.task, 10)
        return time.monotonic() - started


def item(title: str, n: str) -> Item:
    return Item(title, f"<p>{title}.</p>", f"https://news.example/w/{n}", n)


async def test_rules_reload_without_restart_and_broken_yaml_keeps_old_rules(
    feed_server, write_config, sqlite_url, monkeypatch, caplog
):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    caplog.set_level(logging.INFO)
    path = f"/{uuid.uuid4().hex}.xml"
    url = feed_server.add(path, rss_feed("Wire", [item("Talks in Astana", "1")]))
    config = write_config(config_text(url, ASTANA_RULE))
    run = Running(load_settings(config))
    try:
        await until(lambda: "Talks in Astana" in run.printed, "the first alert")

        # a new rule: applies to entries seen from now on
        config.write_text(config_text(url, ASTANA_RULE + AID_RULE), encoding="utf-8")
        await until(lambda: run.worker.reloads == 1, "the reload")
        feed_server.add(
            path,
            rss_feed("Wire", [item("Aid convoy reaches Homs", "2"), item("Talks in Astana", "1")]),
        )
        await until(lambda: "Aid convoy reaches Homs" in run.printed, "the new rule's alert")

        # broken YAML: located error in the log, the worker keeps the old rules
        config.write_text(
            config_text(url, ASTANA_RULE + AID_RULE) + "  - name: [broken\n", encoding="utf-8"
        )
        await until(lambda: run.worker.reload_failures == 1, "the refused reload")
        assert f"{config}:" in caplog.text and "YAML syntax error" in caplog.text
        feed_server.add(
            path,
            rss_feed(
                "Wire",
                [item("Second convoy on the way", "3"), item("Aid convoy reaches Homs", "2")],
            ),
        )
        await until(lambda: "Second convoy on the way" in run.printed, "alerts after a bad edit")

        # the next valid save is picked up again
        config.write_text(config_text(url, ASTANA_RULE), encoding="utf-8")
        await until(lambda: run.worker.reloads == 2, "the recovery reload")
        assert [r for r in run.worker.ruleset.rules] == ["astana"]
    finally:
        assert await run.stop() < 10
    assert run.printed.count("🔗 https://news.example/w/1\n") == 1  # never alerted twice


async def test_operator_hears_of_a_broken_feed_once_and_of_a_failed_reload(
    feed_server, write_config, sqlite_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    url = feed_server.add(f"/{uuid.uuid4().hex}.xml", rss_feed("Wire", [item("Quiet", "q")]))
    broken = f"  - {{id: down, url: '{feed_server.url('/status/500')}', interval: 1s}}\n"
    config = write_config(config_text(url, ASTANA_RULE, admin=True, extra_feed=broken))
    run = Running(load_settings(config))
    try:
        await until(lambda: "feed down is down" in run.printed, "the feed-down operator alert")
        config.write_text("rules: [", encoding="utf-8")
        await until(lambda: "configuration reload failed" in run.printed, "the reload alert")
        await asyncio.sleep(3)  # more failed polls (back-off permitting) must not repeat it
    finally:
        await run.stop()
    assert run.printed.count("feed down is down") == 1
    assert "[_operator → @ops]" in run.printed


async def test_health_and_metrics(feed_server, write_config, sqlite_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PORT", str(port))
    url = feed_server.add(f"/{uuid.uuid4().hex}.xml", rss_feed("Wire", [item("Astana", "h")]))
    run = Running(load_settings(write_config(config_text(url, ASTANA_RULE))))
    try:
        await until(lambda: "Astana" in run.printed, "an alert")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
                body = await response.json()
            assert body["status"] == "ok" and body["database"] == "ok"
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
        assert 'monitor_polls_total{outcome="ok"}' in text
        assert 'monitor_matches_total{rule="astana"}' in text
        assert "monitor_alerts_sent_total" in text
    finally:
        await run.stop()


BACKLOG = 130  # due feeds: more than one tick may claim (the fetcher's concurrency × 2)


async def test_a_stop_while_the_tick_works_through_a_backlog_ends_without_errors(
    feed_server, write_config, sqlite_url, monkeypatch, caplog
):
    """SIGTERM while a tick still claims a backlog and its polls wait on a slow server.

    The scheduler's shutdown used to cancel the running tick, and APScheduler
    logged that as a job that "raised an exception", with a traceback.
    """
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    caplog.set_level(logging.DEBUG)
    tag = uuid.uuid4().hex
    feeds = []
    for n in range(BACKLOG):
        body = rss_feed("Wire", [item(f"Talks in Astana, round {n}", f"{tag}-{n}")])
        url = feed_server.add(f"/{tag}/{n}.xml", body, delay=1.0)  # 4 per host at a time
        feeds.append(f"  - {{id: f{n}, url: '{url}', interval: 1s}}\n")
    config = write_config(
        "channels:\n  desk: {chat: '@desk'}\nfeeds:\n" + "".join(feeds) + "rules:\n" + ASTANA_RULE
    )
    run = Running(load_settings(config))
    try:
        # a tick that claims as many feeds as it has room for keeps claiming as polls end
        await until(lambda: len(getattr(run.worker, "in_flight", ())) >= 100, "a full claim")
    finally:
        stopped_in = await run.stop()
    assert stopped_in < 10
    problems = [
        f"{r.name} {r.levelname}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info
    ]
    assert problems == []
    assert "worker stopped" in caplog.text
    # every lease was given back: another worker may claim all the feeds at once
    store = Store(sqlite_url)
    try:
        later = utc_now() + timedelta(hours=1)
        assert len(store.claim_due_feeds("next", later, timedelta(minutes=1), 1000)) == BACKLOG
    finally:
        store.close()


def test_a_second_worker_on_the_same_sqlite_file_is_refused(write_config, sqlite_url, tmp_path):
    config = write_config(config_text(str(tmp_path / "none.xml"), ASTANA_RULE))
    first = start_worker_process(config, sqlite_url, tmp_path)
    try:
        second = run_monitor("run", "--config", str(config), env={"DATABASE_URL": sqlite_url})
        assert second.returncode == 1
        assert "already running" in second.stderr and "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        started = time.monotonic()
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=15)
    assert first.returncode == 0, err
    assert time.monotonic() - started < 10
    assert "worker stopped" in err


def test_sighup_reloads(write_config, sqlite_url, tmp_path):
    config = write_config(config_text(str(tmp_path / "none.xml"), ASTANA_RULE))
    worker = start_worker_process(config, sqlite_url, tmp_path)
    try:
        time.sleep(1.0)
        worker.send_signal(signal.SIGHUP)  # nothing changed: reloaded, and said so
        time.sleep(1.0)
        config.write_text(config_text(str(tmp_path / "none.xml"), ASTANA_RULE + AID_RULE))
        worker.send_signal(signal.SIGHUP)
        time.sleep(3.0)
    finally:
        worker.send_signal(signal.SIGINT)
        _, err = worker.communicate(timeout=15)
    assert worker.returncode == 0, err
    assert "reload requested: configuration unchanged" in err
    assert "configuration reloaded" in err and "2 rules" in err
