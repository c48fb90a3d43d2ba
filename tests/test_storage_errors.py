"""Every public Store method raises our StorageError, never a raw SQLAlchemy error,
when the database is gone; and StorageUnavailable when it cannot be reached."""

from __future__ import annotations

import inspect
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from monitor.exceptions import StorageError, StorageUnavailable
from monitor.models import Alert, Article, FeedSource
from monitor.storage import ArchiveEntry, Store, UnchangedPoll
from tests.fakes.tcpproxy import TcpProxy

#: close() only hands pooled connections back; it never opens one.
NEEDS_NO_DATABASE = {"close"}


def public_methods() -> list[str]:
    return sorted(
        name
        for name, value in inspect.getmembers(Store, inspect.isfunction)
        if not name.startswith("_")
    )


def plausible_calls(now: datetime) -> dict[str, Callable[[Store], Any]]:
    """One ordinary call per public method; a new method must add its own here."""
    alert = Alert(
        article_key="k1",
        feed_id="f",
        channel="c",
        rules=("ceasefire",),
        html="<b>talks resume</b>",
        text="talks resume",
        title="Talks resume",
    )
    minute = timedelta(minutes=1)
    return {
        "migrate": lambda s: s.migrate(),
        "schema_version": lambda s: s.schema_version(),
        "ping": lambda s: s.ping(),
        "feed_state": lambda s: s.feed_state("f"),
        "feed_states": lambda s: s.feed_states(),
        "record_failure": lambda s: s.record_failure("f", "https://x/f", now, "timeout", None, now),
        "record_not_modified": lambda s: s.record_not_modified("f", "https://x/f", now, 304, now),
        "record_unchanged": lambda s: s.record_unchanged(
            [UnchangedPoll("f", "https://x/f", now, 304, now + minute)]
        ),
        "sync_feeds": lambda s: s.sync_feeds([FeedSource(id="f", url="https://x/f")], now),
        "reschedule_feed": lambda s: s.reschedule_feed("f", now + minute),
        "claim_due_feeds": lambda s: s.claim_due_feeds("w1", now, minute, 10),
        "release_feeds": lambda s: s.release_feeds("w1", ["f"]),
        "renew_feed": lambda s: s.renew_feed("w1", "f", now, minute),
        "known_keys": lambda s: s.known_keys("f", ["k1"]),
        "latest_keys": lambda s: s.latest_keys("f"),
        "commit_poll": lambda s: s.commit_poll(
            feed_id="f",
            url="https://x/f",
            now=now,
            articles=[Article(key="k1", feed_id="f", title="Talks resume")],
            alerts=[replace(alert, story="story:k1")],
            status=200,
            etag=None,
            last_modified=None,
            content_hash=None,
            next_poll=now + minute,
        ),
        "prune_entries": lambda s: s.prune_entries(now, timedelta(days=7)),
        "queue_alert": lambda s: s.queue_alert(replace(alert, story="story:k1"), now),
        "due_alerts": lambda s: s.due_alerts(now),
        "pending_count": lambda s: s.pending_count(),
        "next_due": lambda s: s.next_due(),
        "mark_sent": lambda s: s.mark_sent(1, now, 42),
        "mark_retry": lambda s: s.mark_retry(1, "timed out", now + minute),
        "mark_failed": lambda s: s.mark_failed(1, "message is too long"),
        "mark_channel_broken": lambda s: s.mark_channel_broken("c", now, "Forbidden"),
        "channel_health": lambda s: s.channel_health(),
        "recent_titles": lambda s: s.recent_titles(["c"], now - minute),
        "recent_alerts": lambda s: s.recent_alerts(5, "ceasefire"),
        "recent_sends": lambda s: s.recent_sends("c", now - minute),
        "prune_alerts": lambda s: s.prune_alerts(now),
        "hold_alert": lambda s: s.hold_alert(1),
        "held_alerts": lambda s: s.held_alerts("c"),
        "last_digest_at": lambda s: s.last_digest_at("c"),
        "queue_digest": lambda s: s.queue_digest("c", [("<b>d</b>", "d")], [1], now),
        "claim_channels": lambda s: s.claim_channels("w1", now, minute, ["c"]),
        "renew_channel": lambda s: s.renew_channel("w1", "c", now, minute),
        "release_channels": lambda s: s.release_channels("w1"),
        "hold_lease": lambda s: s.hold_lease("bot", "w1", now, minute),
        "drop_lease": lambda s: s.drop_lease("bot", "w1"),
        "set_mute": lambda s: s.set_mute("rule:ceasefire", now + minute, "ops"),
        "clear_mute": lambda s: s.clear_mute("rule:ceasefire"),
        "active_mutes": lambda s: s.active_mutes(now),
        "rule_alert_counts": lambda s: s.rule_alert_counts(now - minute),
        "last_alert_at": lambda s: s.last_alert_at(),
        "archive_articles": lambda s: s.archive_articles(
            [ArchiveEntry(Article(key="k1", feed_id="f", title="Astana"), frozenset({"astana"}))],
            now,
        ),
        "prune_archive": lambda s: s.prune_archive(now, timedelta(days=30)),
        "search_candidates": lambda s: s.search_candidates(frozenset({"astana"}), now - minute),
        "archived_articles": lambda s: s.archived_articles([1, 2]),
        "archive_count": lambda s: s.archive_count(now - minute),
        "due_story_updates": lambda s: s.due_story_updates(now, ["c"]),
        "next_story_update": lambda s: s.next_story_update(["c"]),
        "story_updated": lambda s: s.story_updated(1, 2, now, now + minute),
        "story_retry": lambda s: s.story_retry(1, "flood control", now + minute),
        "story_gone": lambda s: s.story_gone(1, "message to edit not found"),
        "story_sources": lambda s: s.story_sources([1, 2]),
        "story_of": lambda s: s.story_of("c", "https://x/1"),
        "prune_stories": lambda s: s.prune_stories(now, timedelta(days=30)),
        "register_rules": lambda s: s.register_rules(["ceasefire"], now),
        "hourly_counts": lambda s: s.hourly_counts("ceasefire", now - minute),
        "surge_history": lambda s: s.surge_history("ceasefire", now - minute),
        "top_feeds": lambda s: s.top_feeds("ceasefire", now - minute),
        "queue_surge": lambda s: s.queue_surge("ceasefire", [replace(alert, story="s")], now, None),
        "prune_counts": lambda s: s.prune_counts(now),
    }


def test_every_public_method_has_a_plausible_call(now: datetime) -> None:
    assert set(public_methods()) - NEEDS_NO_DATABASE == set(plausible_calls(now))


def test_the_calls_work_on_a_live_database(sqlite_url: str, now: datetime) -> None:
    """The table's arguments are plausible: none of them is refused by a working store."""
    store = Store(sqlite_url)
    try:
        for name, call in plausible_calls(now).items():
            call(store)
            assert name  # each call returned instead of raising
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


@pytest.fixture(
    params=["sqlite-dir-removed", "sqlite-garbage", "postgresql-closed-port", "postgresql-cut"]
)
def gone(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, type[Exception]]]:
    """A Store whose database is gone, and the error class every call must raise."""
    if request.param.startswith("sqlite"):
        folder = tmp_path / "state"
        folder.mkdir()
        store = Store(f"sqlite:///{folder / 'monitor.db'}")
        store.migrate()
        store.close()  # the pool forgets its open files; the next call opens anew
        if request.param == "sqlite-dir-removed":
            shutil.rmtree(folder)  # works as root too, unlike chmod
            expected: type[Exception] = StorageUnavailable
        else:
            for path in folder.iterdir():
                path.unlink()
            (folder / "monitor.db").write_bytes(b"not a database, just bytes\x00" * 200)
            expected = StorageError
        yield store, expected
        store.close()
    elif request.param == "postgresql-closed-port":
        store = Store(f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/test")
        yield store, StorageUnavailable
        store.close()
    else:
        url = sa.engine.make_url(request.getfixturevalue("postgres_url"))
        with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            store = Store(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
            store.migrate()
            assert store.pending_count() == 0  # a pooled connection now runs through the relay
            proxy.cut()
            yield store, StorageUnavailable
            store.close()


def test_a_gone_database_raises_only_our_errors(
    gone: tuple[Store, type[Exception]], now: datetime
) -> None:
    store, expected = gone
    calls = plausible_calls(now)
    assert len(calls) > 40
    for name, call in calls.items():
        with pytest.raises(StorageError) as caught:
            call(store)
            pytest.fail(f"{name} did not raise")
        assert isinstance(caught.value, expected), (name, caught.value)
        assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError), name
        assert not isinstance(caught.value, sa.exc.SQLAlchemyError)
    store.close()  # releasing nothing still works


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (sa.exc.OperationalError("SELECT 1", {}, Exception("server closed")), StorageUnavailable),
        (
            sa.exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
            StorageUnavailable,
        ),
        (sa.exc.TimeoutError("QueuePool limit reached"), StorageUnavailable),
        (sa.exc.DisconnectionError("gone"), StorageUnavailable),
        (sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key")), StorageError),
        (sa.exc.ProgrammingError("SELECT", {}, Exception("no such table: alerts")), StorageError),
        (sa.exc.DataError("INSERT", {}, Exception("value too long")), StorageError),
        (sa.exc.NoResultFound("No row was found"), StorageError),
    ],
)
def test_translation_table(error: sa.exc.SQLAlchemyError, expected: type[StorageError]) -> None:
    """The classes the wrapper sorts by, one real SQLAlchemy error of each kind."""
    from monitor.storage.base import translate_error

    out = translate_error(error, "due_alerts")
    assert type(out) is expected
    assert str(out).startswith("due_alerts: database ")
    assert "SELECT" not in str(out) and "INSERT" not in str(out)  # the reason, not the SQL


def test_a_new_method_cannot_escape_the_wrapper(sqlite_url: str, now: datetime) -> None:
    """A method added to any part later is wrapped too, by StoreBase itself."""
    from monitor.storage.schema import mutes_table

    class Extended(Store):
        def mute_twice(self, target: str) -> None:
            with self.engine.begin() as conn:
                for _ in range(2):
                    conn.execute(mutes_table.insert().values(target=target, until=now))

    store = Extended(sqlite_url)
    try:
        store.migrate()
        with pytest.raises(StorageError, match="mute_twice: database error: UNIQUE") as caught:
            store.mute_twice("rule:ceasefire")
        assert not isinstance(caught.value, StorageUnavailable)
        assert isinstance(caught.value.__cause__, sa.exc.IntegrityError)
        assert store.active_mutes(now - timedelta(seconds=1)) == {}  # the transaction was undone
    finally:
        store.close()


def test_only_storage_imports_sqlalchemy() -> None:
    """Callers catch our errors; SQLAlchemy stays behind the storage package."""
    import ast

    import monitor

    root = Path(monitor.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.parent.name == "storage":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "sqlalchemy" for name in names):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
