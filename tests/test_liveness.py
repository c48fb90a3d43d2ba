"""No input can hold the worker: the processing budget, feed leases renewed while a
poll runs, and no database call on the event loop."""

from __future__ import annotations

import ast
import asyncio
import io
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor import worker as worker_module
from monitor.config import load_settings
from monitor.deliver.notifier import ConsoleNotifier
from monitor.exceptions import FeedError
from monitor.fetch import Fetcher, FetchSettings
from monitor.models import FeedSource
from monitor.pipeline import CPU_LOCK, ProcessingBudget, Ruleset, poll_feed
from monitor.storage import Store
from monitor.worker import Worker
from tests.fakes.feedserver import FeedServer, Item, rss_feed

from .conftest import REPO, run_monitor

DEADLINE = 20.0


async def until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


CONFIG = """\
defaults:
  timeout: {timeout}
channels:
  desk: {{chat: '@desk'}}
feeds:
  - {{id: wire, url: '{url}', interval: 1s, backfill: all}}
rules:
  - {{name: astana, any: [Astana], notify: [desk]}}
"""


# ------------------------------------------------------------------ processing budget


async def test_a_feed_over_its_processing_budget_fails_for_that_poll_only(
    feed_server: FeedServer, write_config: Callable[..., Path], sqlite_url: str, now: datetime
) -> None:
    items = [
        Item(f"Talks in Astana, day {n}", "<p>Delegations met.</p>", "", f"b{n}") for n in range(30)
    ]
    url = feed_server.add(f"/{uuid.uuid4().hex}.xml", rss_feed("Wire", items))
    config = write_config(CONFIG.format(timeout="10s", url=url))
    settings = load_settings(config)
    feed = settings.feeds[0]
    ruleset = Ruleset.from_settings(settings)
    store = Store(sqlite_url)
    store.migrate()
    try:
        async with Fetcher(FetchSettings(timeout=10)) as fetcher:
            over = await poll_feed(
                feed, store=store, fetcher=fetcher, ruleset=lambda: ruleset, now=now, budget=0.0
            )
            assert not over.ok and over.errors == 1
            assert over.error is not None and "processing took longer than 0 s" in over.error
            assert over.next_poll > now + feed.interval  # backed off like any failure
            state = store.feed_state(feed.id)
            assert state is not None and state.errors == 1 and state.first_success is None
            assert store.pending_count() == 0  # nothing of the abandoned poll was kept

            shown = run_monitor(
                "feeds", "--json", "--config", str(config), env={"DATABASE_URL": sqlite_url}
            )
            assert shown.returncode == 0, shown.stderr
            assert "processing took longer than" in shown.stdout

            later = over.next_poll
            ok = await poll_feed(
                feed, store=store, fetcher=fetcher, ruleset=lambda: ruleset, now=later
            )
            assert ok.ok and ok.new_entries == 30 and ok.alerts == 30 and ok.previous_errors == 1
    finally:
        store.close()


def test_the_budget_counts_only_time_spent_holding_the_cpu_slot() -> None:
    budget = ProcessingBudget(FeedSource(id="f", url="https://news.example/f"), 0.5)
    held = threading.Event()

    def hog() -> None:
        with CPU_LOCK:
            held.set()
            time.sleep(1.0)  # another feed's processing: not ours to pay for

    other = threading.Thread(target=hog)
    other.start()
    assert held.wait(5)
    with budget.cpu_slot():
        budget.check("waiting for the slot")  # a second in the queue is not spent
    other.join(5)
    time.sleep(0.6)  # outside the slot (a database call): not spent either
    budget.check("between slots")
    with budget.cpu_slot(), pytest.raises(FeedError) as info:
        time.sleep(0.6)
        budget.check("matching")
    assert "processing took longer than 0.5 s (while matching)" in str(info.value)
    assert info.value.feed_id == "f"


# ------------------------------------------------------------------------ feed leases


def test_a_feed_lease_is_renewed_only_by_its_holder(database_url: str, now: datetime) -> None:
    store = Store(database_url)
    store.migrate()
    try:
        feed = FeedSource(id="wire", url="https://news.example/feed")
        store.sync_feeds([feed], now - timedelta(hours=1))
        lease = timedelta(seconds=60)
        assert store.claim_due_feeds("a", now, lease, 10) == ["wire"]
        later = now + timedelta(seconds=50)
        assert store.renew_feed("a", "wire", later, lease) is True
        # the renewed lease holds past the first one's end: nobody else may claim it
        assert store.claim_due_feeds("b", now + timedelta(seconds=70), lease, 10) == []
        assert store.renew_feed("b", "wire", later, lease) is False
        store.release_feeds("a", ["wire"])
        assert store.renew_feed("a", "wire", later, lease) is False  # a finished poll
    finally:
        store.close()


async def test_a_poll_slower_than_its_lease_is_never_run_twice_at_once(
    feed_server: FeedServer,
    write_config: Callable[..., Path],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fetch hangs (until its 4 s timeout) far longer than a 1 s lease: renewals
    keep the feed ours, so the next tick does not claim and fetch it again."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setattr(worker_module, "feed_lease", lambda _settings: timedelta(seconds=1))
    path = f"/hang/{uuid.uuid4().hex}"
    config = write_config(CONFIG.format(timeout="4s", url=feed_server.url(path)))
    worker = Worker(load_settings(config), notifier=ConsoleNotifier())
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: len(feed_server.requests_to(path)) == 1, "the first fetch")
        await asyncio.sleep(3.0)  # three lease lengths, every tick looking for due feeds
        assert len(feed_server.requests_to(path)) == 1
        state = await asyncio.to_thread(worker.store.feed_state, "wire")
        assert state is not None and state.errors == 0  # still the first poll
    finally:
        worker.stop.set()
        await asyncio.wait_for(task, 15)


# ------------------------------------------------------------- nothing on the event loop


def synchronous_store_calls(source: str) -> list[str]:
    """Every ``….store.method(...)`` called directly inside an ``async def`` (passing
    ``store.method`` to ``asyncio.to_thread`` is not a call, so not listed)."""
    found: list[str] = []
    scopes: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        scoped = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if scoped:
            scopes.append(node)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and ast.unparse(node.func.value).split(".")[-1] in ("store", "_store")
            and scopes
            and isinstance(scopes[-1], ast.AsyncFunctionDef)
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)[:60]}")
        for child in ast.iter_child_nodes(node):
            visit(child)
        if scoped:
            scopes.pop()

    visit(ast.parse(source))
    return found


def test_no_coroutine_calls_the_database_on_the_event_loop() -> None:
    found = {
        str(path.relative_to(REPO)): calls
        for path in sorted((REPO / "monitor").rglob("*.py"))
        if (calls := synchronous_store_calls(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_scan_finds_a_synchronous_call() -> None:
    """The scan above is not vacuous."""
    code = (
        "async def f(self):\n"
        "    self.store.mark_retry(1)\n"
        "    await asyncio.to_thread(self.store.next_due)\n"
        "    def inner():\n"
        "        return store.due_alerts()\n"
        "    await asyncio.to_thread(lambda: store.ping())\n"
    )
    assert synchronous_store_calls(code) == ["2: self.store.mark_retry(1)"]


# ------------------------------------------------------------------- slow rule terms


async def test_a_timed_out_regex_term_reaches_the_operator_once(
    feed_server: FeedServer,
    write_config: Callable[..., Path],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    path = f"/{uuid.uuid4().hex}.xml"
    backtrack = "a" * 20_000

    def feed(count: int) -> bytes:
        items = [
            Item(f"Report {n}", backtrack, f"https://news.example/s/{n}", f"s{n}")
            for n in range(count)
        ]
        return rss_feed("Wire", items)

    url = feed_server.add(path, feed(1))
    text = (
        "telegram:\n  admin_chat: '@ops'\n"
        + CONFIG.format(timeout="10s", url=url)
        + "  - {name: slow, any: ['re:(a|aa)+c'], notify: [desk]}\n"
    )
    config = write_config(text)
    out = io.StringIO()
    worker = Worker(load_settings(config), notifier=ConsoleNotifier(out))
    task = asyncio.create_task(worker.run())
    try:
        await until(
            lambda: "regular expression is too slow" in out.getvalue(), "the operator alert"
        )
        config.write_text(
            text + "  - {name: aid, any: [convoy], notify: [desk]}\n", encoding="utf-8"
        )
        await until(lambda: worker.reloads == 1, "a reload (a new matcher)")
        feed_server.add(path, feed(3))  # more articles that time out, under the new matcher
        await until(
            lambda: worker.ruleset.matcher.regex_timeouts.get("re:(a|aa)+c", 0) >= 2,
            "more timeouts",
        )
        await asyncio.sleep(1.5)  # the sender would have sent a second alert by now
    finally:
        worker.stop.set()
        await asyncio.wait_for(task, 15)
    printed = out.getvalue()
    assert printed.count("regular expression is too slow") == 1
    assert "re:(a|aa)+c" in printed and "[_operator → @ops]" in printed
