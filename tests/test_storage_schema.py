"""Schema versions: a fresh database gets the latest schema at once, an older one
steps through the numbered migrations; and the retention of finished alerts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from monitor.models import Alert
from monitor.storage import ALERT_RETENTION, SCHEMA_VERSION, Store
from monitor.storage.schema import alerts_table, metadata, schema_table


def index_names(store: Store, table: str) -> set[str]:
    return {ix["name"] or "" for ix in sa.inspect(store.engine).get_indexes(table)}


def versions(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(schema_table.c.version).order_by("version")).scalars())


def create_v1(url: str, now: datetime) -> None:
    """The schema as version 1 shipped it (no index on alerts.created_at, no
    feeds.page_errors), with some rows."""
    v1 = sa.MetaData()
    for table in metadata.sorted_tables:
        if table.name == "feeds":
            sa.Table("feeds", v1, *(c._copy() for c in table.columns if c.name != "page_errors"))
        else:
            table.to_metadata(v1)
    alerts = v1.tables["alerts"]
    alerts.indexes = {ix for ix in alerts.indexes if ix.name != "ix_alerts_created_at"}
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            v1.create_all(conn)
            conn.execute(v1.tables["schema_version"].insert().values(version=1, applied_at=now))
            conn.execute(
                alerts.insert().values(
                    channel="c",
                    story="story:old",
                    feed_id="f",
                    article_key="old",
                    rules='["ceasefire"]',
                    title="Talks resume in Astana",
                    html="<b>Talks resume</b>",
                    text="Talks resume",
                    status="sent",
                    created_at=now,
                    next_attempt=now,
                    sent_at=now,
                )
            )
    finally:
        engine.dispose()


def test_latest_version_is_six() -> None:
    assert SCHEMA_VERSION == 6


def test_fresh_database_gets_the_latest_schema_at_once(database_url: str) -> None:
    store = Store(database_url)
    try:
        assert store.schema_version() == 0
        assert store.migrate() == SCHEMA_VERSION
        assert versions(store) == [SCHEMA_VERSION]  # stamped, not stepped
        assert "ix_alerts_created_at" in index_names(store, "alerts")
        assert store.migrate() == SCHEMA_VERSION
        assert versions(store) == [SCHEMA_VERSION]
    finally:
        store.close()


def test_version_1_database_steps_to_the_latest(database_url: str, now: datetime) -> None:
    create_v1(database_url, now)
    store = Store(database_url)
    try:
        assert store.schema_version() == 1
        assert "ix_alerts_created_at" not in index_names(store, "alerts")
        assert store.migrate() == SCHEMA_VERSION
        assert versions(store) == list(range(1, SCHEMA_VERSION + 1))
        assert "ix_alerts_created_at" in index_names(store, "alerts")
        assert store.recent_titles(["c"], now) == {"c": ["Talks resume in Astana"]}  # kept
        [old] = store.recent_alerts(1)
        assert (old.photo_url, old.photo_png, old.caption) == (None, None, None)  # migration 3
        tables = set(sa.inspect(store.engine).get_table_names())  # migrations 4 and 5
        assert "archive" in tables
        assert {"stories", "story_reports", "story_locks", "rule_counts", "surges"} <= tables
        assert "ix_story_reports_recent" in index_names(store, "story_reports")
        assert store.due_story_updates(now, ["c"]) == []
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("feeds")}
        assert "page_errors" in columns  # migration 6
        assert store.migrate() == SCHEMA_VERSION
        assert versions(store) == list(range(1, SCHEMA_VERSION + 1))
    finally:
        store.close()


def test_workers_migrating_at_once_apply_each_step_once(postgres_url: str, now: datetime) -> None:
    """PostgreSQL's advisory lock: one worker migrates, the others then find nothing to do."""
    create_v1(postgres_url, now)
    stores = [Store(postgres_url) for _ in range(3)]
    results: list[int] = []
    errors: list[BaseException] = []

    def run(store: Store) -> None:
        try:
            results.append(store.migrate())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert results == [SCHEMA_VERSION] * 3
        assert versions(stores[0]) == list(range(1, SCHEMA_VERSION + 1))
    finally:
        for store in stores:
            store.close()


def _alert(key: str) -> Alert:
    return Alert(
        article_key=key,
        feed_id="f",
        channel="c",
        rules=("ceasefire",),
        html=f"<b>{key}</b>",
        text=key,
        title=f"Talks resume {key}",
    )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    yield store
    store.close()


# (status the row ends in, age when pruning, pruned with the default retention?)
PRUNE_CASES = [
    ("sent", ALERT_RETENTION + timedelta(days=1), True),
    ("failed", ALERT_RETENTION + timedelta(seconds=1), True),
    ("digested", timedelta(days=365), True),
    ("sent", ALERT_RETENTION, False),  # exactly at the edge: kept
    ("sent", timedelta(days=1), False),
    ("failed", timedelta(0), False),
    ("pending", timedelta(days=365), False),  # still owed to the channel
    ("held", timedelta(days=365), False),  # waiting for its digest
]


def test_prune_alerts_removes_only_old_finished_rows(store: Store, now: datetime) -> None:
    ids: dict[int, bool] = {}
    for number, (status, age, pruned) in enumerate(PRUNE_CASES):
        created = now - age
        assert store.queue_alert(replace(_alert(f"k{number}"), story=f"story:{number}"), created)
        (row,) = [a for a in store.due_alerts(created, limit=1000) if a.article_key == f"k{number}"]
        if status == "sent":
            store.mark_sent(row.id, created, message_id=number)
        elif status == "failed":
            store.mark_failed(row.id, "Forbidden: bot was blocked")
        elif status in ("held", "digested"):
            store.hold_alert(row.id)
            if status == "digested":
                assert store.queue_digest("c", [("<b>d</b>", "d")], [row.id], now) == 1
        ids[row.id] = pruned
    expected_gone = sum(ids.values())
    assert store.prune_alerts(now) == expected_gone
    with store.engine.connect() as conn:
        left = dict(conn.execute(sa.select(alerts_table.c.id, alerts_table.c.status)).all())
    assert {i for i, pruned in ids.items() if not pruned} <= set(left)
    assert not {i for i, pruned in ids.items() if pruned} & set(left)
    assert sorted(s for i, s in left.items() if i in ids) == sorted(
        status for status, _, pruned in PRUNE_CASES if not pruned
    )
    assert store.prune_alerts(now) == 0  # nothing more to do


def test_prune_alerts_honours_a_shorter_retention(store: Store, now: datetime) -> None:
    store.queue_alert(replace(_alert("a"), story="story:a"), now - timedelta(hours=2))
    (row,) = store.due_alerts(now)
    store.mark_sent(row.id, now - timedelta(hours=2), 1)
    assert store.prune_alerts(now, keep=timedelta(hours=3)) == 0
    assert store.prune_alerts(now, keep=timedelta(hours=1)) == 1
    assert store.recent_alerts() == []


def test_photo_alert_round_trips(database_url: str, now: datetime) -> None:
    """Migration 3: an alert's photo (URL or PNG bytes) and caption are stored with it."""
    store = Store(database_url)
    try:
        store.migrate()
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
        photo = replace(
            _alert("p"), photo_url="https://example.org/a.jpg", photo_png=png, caption="<b>c</b>"
        )
        assert store.queue_alert(photo, now)
        [row] = store.due_alerts(now)
        assert (row.photo_url, row.photo_png, row.caption) == (
            "https://example.org/a.jpg",
            png,
            "<b>c</b>",
        )
    finally:
        store.close()
