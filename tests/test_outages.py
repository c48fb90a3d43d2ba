"""A database outage never ends a task of the worker: it resumes when the database is back.

A real worker (in this process) against a real database that goes away and comes
back: PostgreSQL behind a TCP relay that is cut and restored, and SQLite whose
folder is moved away and back. Alerts go to the Bot API stand-in, so the command
bot's lease keeper runs too.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from monitor.config import load_settings
from monitor.worker import Worker
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feedserver import FeedServer, Item, rss_feed
from tests.fakes.tcpproxy import TcpProxy

DEADLINE = 30.0  # seconds any single expectation may take
CHAT = "@test_channel"


async def until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Wait (bounded) for ``condition``; fail with ``what`` when it never holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Outage:
    """A database the test can take away and bring back."""

    url: str
    cut: Callable[[Worker], None]
    restore: Callable[[], None]


@pytest.fixture(params=["sqlite", "postgresql"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "sqlite":
        folder = tmp_path / "state"
        away = tmp_path / "state-away"
        folder.mkdir()

        def cut_sqlite(worker: Worker) -> None:
            folder.rename(away)
            # an open SQLite file stays usable through its descriptor wherever its folder
            # goes: drop the pool, as a restarted volume would, so the worker must reopen it
            worker.store.engine.dispose()

        def restore_sqlite() -> None:
            away.rename(folder)

        yield Outage(f"sqlite:///{folder / 'monitor.db'}", cut_sqlite, restore_sqlite)
        return
    url = sa.engine.make_url(request.getfixturevalue("postgres_url"))
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        relayed = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        yield Outage(relayed, lambda _worker: proxy.cut(), proxy.restore)


CONFIG = """\
channels:
  desk: {{chat: '{chat}'}}
feeds:
  - {{id: wire, url: '{url}', interval: 1s, backfill: all}}
rules:
  - {{name: astana, any: [Astana], notify: [desk]}}
{extra}"""
CONVOY_RULE = "  - {name: aid, any: [convoy], notify: [desk]}\n"


def item(title: str, n: str) -> Item:
    return Item(title, f"<p>{title}.</p>", f"https://news.example/o/{n}", n)


async def health(port: int) -> tuple[int, dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.json()


def titles(botapi: FakeBotApi) -> list[str]:
    return [m.plain_text.split("\n")[0] for m in botapi.sent(CHAT)]


def sent_count(botapi: FakeBotApi, title: str) -> int:
    return sum(title in m.plain_text for m in botapi.sent(CHAT))


async def test_every_task_survives_a_database_outage_and_resumes(
    outage: Outage,
    feed_server: FeedServer,
    botapi: FakeBotApi,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.setenv("DATABASE_URL", outage.url)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", botapi.token)
    monkeypatch.setenv("TELEGRAM_API_URL", botapi.url)
    path = f"/{uuid.uuid4().hex}.xml"
    url = feed_server.add(path, rss_feed("Wire", [item("Talks in Astana open", "1")]))
    config = write_config(CONFIG.format(chat=CHAT, url=url, extra=""))
    worker = Worker(load_settings(config))
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: sent_count(botapi, "Talks in Astana open") == 1, "the first alert")
        assert (await health(port))[0] == 200

        # an alert that Telegram refuses once (500) is pending when the database goes away
        botapi.fail_next("sendMessage", 500)
        items = [item("Astana round two", "2"), item("Talks in Astana open", "1")]
        feed_server.add(path, rss_feed("Wire", items))
        await until(lambda: len(botapi.rejected("sendMessage")) == 1, "the refused send")
        outage.cut(worker)
        await until(lambda: worker.outage.down, "the worker to notice the outage")

        # during the outage: new entries, a configuration edit, health, digests, pruning
        feed_server.add(path, rss_feed("Wire", [item("Astana round three", "3"), *items]))
        config.write_text(CONFIG.format(chat=CHAT, url=url, extra=CONVOY_RULE), encoding="utf-8")
        await until(lambda: worker.outage.failures >= 10, "the tasks to keep trying")
        status, body = await health(port)
        assert status == 503 and body["database"] == "unreachable" and body["outage_since"]
        await worker._digests()  # the jobs return instead of raising into APScheduler
        await worker._prune()
        await asyncio.sleep(3)  # a few more ticks, sends and reload attempts in the dark
        assert not task.done() and worker.reloads == 0

        outage.restore()
        await until(lambda: not worker.outage.down, "the worker to notice the database is back")
        await until(lambda: sent_count(botapi, "Astana round two") == 1, "the pending alert")
        await until(lambda: sent_count(botapi, "Astana round three") == 1, "the new entry's alert")
        await until(lambda: worker.reloads == 1, "the configuration edit made in the dark")
        feed_server.add(path, rss_feed("Wire", [item("Aid convoy reaches Homs", "4"), *items]))
        await until(lambda: sent_count(botapi, "Aid convoy reaches Homs") == 1, "the new rule")
        status, body = await health(port)
        assert status == 200 and body["database"] == "ok" and body["outage_since"] is None

        # the command bot kept running through it
        botapi.add_chat(4242, "private", title="Someone")
        before = len(botapi.sent(4242))
        botapi.push_message(4242, 4242, "/start")
        got = await asyncio.to_thread(botapi.wait_for_messages, before + 1, DEADLINE, 4242)
        assert len(got) > before, botapi.rejected()
        assert not task.done()
    finally:
        worker.stop.set()
        await asyncio.wait_for(task, 15)

    for title in ("Talks in Astana open", "Astana round two", "Astana round three"):
        assert sent_count(botapi, title) == 1, (title, titles(botapi))
    unavailable = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    back = [r for r in caplog.records if "database is back" in r.getMessage()]
    assert len(unavailable) == 1 and len(back) == 1, [r.getMessage() for r in unavailable]
    assert all(r.levelno == logging.WARNING for r in unavailable + back)
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= 40]
    assert tracebacks == []


def test_the_relay_can_be_cut_and_restored() -> None:
    """The test double itself: a cut relay refuses, a restored one relays again."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        target = server.getsockname()[1]
        with TcpProxy("127.0.0.1", target) as proxy:
            proxy.cut()
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
            proxy.restore()
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as client:
                accepted, _ = server.accept()
                with accepted:
                    client.sendall(b"ping")
                    assert accepted.recv(4) == b"ping"


@pytest.fixture(autouse=True)
def _no_leftover_folder(tmp_path: Path) -> Iterator[None]:
    yield
    shutil.rmtree(tmp_path / "state-away", ignore_errors=True)
