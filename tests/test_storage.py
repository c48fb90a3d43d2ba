"""Storage contract: the same behaviour on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.models import Alert, Article
from monitor.storage import SCHEMA_VERSION, Store, story_key


@pytest.fixture
def store(database_url):
    store = Store(database_url)
    store.migrate()
    yield store
    store.close()


def article(key: str, link: str | None = None) -> Article:
    return Article(key=key, feed_id="f", title=f"title {key}", link=link)


def alert(key: str, channel: str = "c") -> Alert:
    return Alert(
        article_key=key,
        feed_id="f",
        channel=channel,
        rules=("astana", "ceasefire"),
        html=f"<b>{key}</b>",
        text=key,
        title=f"title {key}",
    )


def commit(store, now, articles, alerts=()):
    return store.commit_poll(
        feed_id="f",
        url="https://example.org/feed",
        now=now,
        articles=articles,
        alerts=[(a, f"story:{a.article_key}") for a in alerts],
        status=200,
        etag='"v1"',
        last_modified=None,
        content_hash="h1",
        next_poll=now + timedelta(minutes=5),
    )


def test_migrate_is_idempotent(store):
    assert store.migrate() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION


def test_only_new_entries_are_inserted_and_alerted(store, now):
    inserted, queued = commit(store, now, [article("a"), article("b")], [alert("a")])
    assert inserted == {"a", "b"} and queued == 1
    # the same poll again: nothing new, so its alerts are not queued again
    inserted, queued = commit(
        store, now, [article("a"), article("b"), article("c")], [alert("a"), alert("c")]
    )
    assert inserted == {"c"} and queued == 1
    assert store.known_keys("f", ["a", "c", "zzz"]) == {"a", "c"}
    state = store.feed_state("f")
    assert state.entries_seen == 3 and state.etag == '"v1"' and state.first_success == now
    assert [a.article_key for a in store.due_alerts(now)] == ["a", "c"]


def test_one_alert_per_story_and_channel(store, now):
    first = alert("a")
    also = Alert(**{**first.__dict__, "article_key": "b"})
    store.commit_poll(
        feed_id="f",
        url="u",
        now=now,
        articles=[article("a"), article("b")],
        alerts=[
            (first, "https://x/1"),
            (also, "https://x/1"),
            (alert("b", "other"), "https://x/1"),
        ],
        status=200,
        etag=None,
        last_modified=None,
        content_hash=None,
        next_poll=now,
    )
    due = store.due_alerts(now)
    assert sorted((a.channel, a.article_key) for a in due) == [("c", "a"), ("other", "b")]


def test_outbox_lifecycle(store, now):
    commit(
        store, now, [article("a"), article("b"), article("c")], [alert("a"), alert("b"), alert("c")]
    )
    a, b, c = store.due_alerts(now)
    assert a.rules == ("astana", "ceasefire") and a.status == "pending"
    store.mark_sent(a.id, now, message_id=42)
    store.mark_retry(b.id, "network: timed out", now + timedelta(seconds=30))
    store.mark_failed(c.id, "Telegram refused: message is too long")
    assert [x.id for x in store.due_alerts(now)] == []
    assert [x.id for x in store.due_alerts(now + timedelta(seconds=31))] == [b.id]
    assert store.next_due() == now + timedelta(seconds=30)
    assert store.pending_count() == 1
    health = store.channel_health()["c"]
    assert (health["pending"], health["sent"], health["failed"]) == (1, 1, 1)
    sent = [x for x in store.recent_alerts() if x.id == a.id][0]
    assert sent.message_id == 42 and sent.sent_at == now


def test_broken_channel_is_reported_once_until_it_heals(store, now):
    commit(store, now, [article("a")], [alert("a")])
    assert store.mark_channel_broken("c", now, "Forbidden: bot was kicked") is True
    assert store.mark_channel_broken("c", now, "Forbidden: bot was kicked") is False
    assert store.channel_health()["c"]["broken_since"] == now
    store.mark_sent(store.due_alerts(now)[0].id, now, 1)
    assert store.channel_health()["c"]["broken_since"] is None


def test_failures_count_and_reset(store, now):
    state = store.record_failure("f", "u", now, "HTTP 500", 500, now + timedelta(minutes=10))
    state = store.record_failure("f", "u", now, "HTTP 500", 500, now + timedelta(minutes=20))
    assert state.errors == 2 and state.last_error == "HTTP 500" and state.http_status == 500
    assert state.first_success is None
    store.record_not_modified("f", "u", now, 304, now + timedelta(minutes=5))
    state = store.feed_state("f")
    assert state.errors == 0 and state.last_error is None and state.http_status == 304


def test_prune_forgets_only_entries_that_left_their_feed(store, now):
    commit(store, now, [article("old"), article("kept")])
    later = now + timedelta(days=40)
    commit(store, later, [article("kept")])  # still in the feed: last_seen moves on
    assert store.prune_entries(later, timedelta(days=30)) == 1
    assert store.known_keys("f", ["old", "kept"]) == {"kept"}


def test_story_key_prefers_link_then_guid():
    assert story_key(Article(key="k", feed_id="f", title="t", link="https://x/1")) == "https://x/1"
    assert story_key(Article(key="k", feed_id="f", title="t", guid="g")) == "guid:g"
    assert story_key(Article(key="k", feed_id="f", title="t")) == "f:k"
