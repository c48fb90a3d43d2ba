"""Storage contract: the same behaviour on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.models import Alert, Article
from monitor.storage import SCHEMA_VERSION, Store
from monitor.stories import story_key


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
        alerts=[replace(a, story=f"story:{a.article_key}") for a in alerts],
        status=200,
        etag='"v1"',
        last_modified=None,
        content_hash="h1",
        next_poll=now + timedelta(minutes=5),
    )


def test_page_errors_add_up_and_latest_keys_come_newest_first(store, now):
    keys = [f"https://t.me/chan_name/{n}" for n in (7, 8, 9)]
    store.commit_poll(
        feed_id="f",
        url="https://t.me/s/chan_name",
        now=now,
        articles=[article(k) for k in keys],
        alerts=[],
        status=200,
        etag=None,
        last_modified=None,
        content_hash=None,
        next_poll=now + timedelta(minutes=5),
        page_errors=2,
    )
    commit(store, now, [article("later")])  # page_errors defaults to none
    assert store.feed_state("f").page_errors == 2
    assert store.latest_keys("f", limit=3) == ["later", *reversed(keys[1:])]
    assert store.latest_keys("other") == []


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
            replace(first, story="https://x/1"),
            replace(also, story="https://x/1"),
            replace(alert("b", "other"), story="https://x/1"),
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
    sent = next(x for x in store.recent_alerts() if x.id == a.id)
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


def test_prune_keeps_entries_of_unchanged_and_failing_feeds(store, now):
    commit(store, now, [article("a")])
    # 40 days of 304s: the entry is still in the feed
    much_later = now + timedelta(days=40)
    store.record_not_modified("f", "u", much_later, 304, much_later)
    assert store.prune_entries(much_later, timedelta(days=30)) == 0
    # then 40 days down: no successful poll said the entry left, so it stays
    down_until = much_later + timedelta(days=40)
    store.record_failure("f", "u", down_until, "HTTP 500", 500, down_until)
    assert store.prune_entries(down_until, timedelta(days=30)) == 0
    assert store.known_keys("f", ["a"]) == {"a"}


def test_story_key_prefers_link_then_guid():
    assert story_key(Article(key="k", feed_id="f", title="t", link="https://x/1")) == "https://x/1"
    assert story_key(Article(key="k", feed_id="f", title="t", guid="g")) == "guid:g"
    assert story_key(Article(key="k", feed_id="f", title="t")) == "f:k"


def feeds(*ids: str):
    from monitor.models import FeedSource

    return [
        FeedSource(id=i, url=f"https://example.org/{i}", interval=timedelta(seconds=10))
        for i in ids
    ]


def test_due_feeds_are_leased_to_one_worker_at_a_time(store, now):
    store.sync_feeds(feeds("a", "b", "c"), now)
    later = now + timedelta(seconds=11)  # every first poll is due within its interval
    lease = timedelta(seconds=30)
    first = store.claim_due_feeds("w1", later, lease, limit=2)
    second = store.claim_due_feeds("w2", later, lease, limit=10)
    assert len(first) == 2 and len(second) == 1
    assert set(first) | set(second) == {"a", "b", "c"}
    assert store.claim_due_feeds("w3", later, lease, limit=10) == []
    # a crashed worker's lease runs out; its feeds go to whoever asks next
    assert sorted(store.claim_due_feeds("w3", later + lease + timedelta(seconds=1), lease, 10)) == [
        "a",
        "b",
        "c",
    ]
    # recording a poll releases the lease and moves the schedule on
    store.record_not_modified("a", "u", later, 304, later + timedelta(minutes=5))
    store.release_feeds("w3", ["b", "c"])
    again = store.claim_due_feeds("w4", later + timedelta(seconds=1), lease, 10)
    assert sorted(again) == ["b", "c"]


def test_feeds_leaving_the_configuration_are_not_polled(store, now):
    store.sync_feeds(feeds("a", "b"), now)
    store.sync_feeds(feeds("a"), now)
    later = now + timedelta(minutes=1)
    assert store.claim_due_feeds("w", later, timedelta(seconds=5), 10) == ["a"]
    store.sync_feeds(feeds("a", "b"), later)  # back in the configuration: scheduled again
    assert "b" in store.claim_due_feeds("w", later + timedelta(minutes=1), timedelta(seconds=5), 10)


def test_channels_are_sent_to_by_one_worker(store, now):
    commit(store, now, [article("a"), article("b")], [alert("a"), alert("b", "other")])
    lease = timedelta(seconds=30)
    assert sorted(store.claim_channels("w1", now, lease, ["c", "other", "idle"])) == ["c", "other"]
    assert store.claim_channels("w2", now, lease, ["c", "other"]) == []
    assert store.renew_channel("w1", "c", now, lease) is True
    assert store.renew_channel("w2", "c", now, lease) is False
    store.release_channels("w1")
    assert sorted(store.claim_channels("w2", now, lease, ["c", "other"])) == ["c", "other"]
    assert [a.article_key for a in store.due_alerts(now, channels=["other"])] == ["b"]


def test_named_lease(store, now):
    minute = timedelta(minutes=1)
    assert store.hold_lease("bot", "w1", now, minute) is True
    assert store.hold_lease("bot", "w2", now, minute) is False
    assert store.hold_lease("bot", "w1", now + timedelta(seconds=30), minute) is True  # renewed
    assert store.hold_lease("bot", "w2", now + timedelta(seconds=95), minute) is True  # expired
    store.drop_lease("bot", "w2")
    assert store.hold_lease("bot", "w1", now + timedelta(seconds=96), minute) is True


def test_mutes_expire(store, now):
    store.set_mute("rule:astana", now + timedelta(hours=1), by="42")
    store.set_mute("channel:desk", now + timedelta(minutes=5))
    assert set(store.active_mutes(now)) == {"rule:astana", "channel:desk"}
    assert set(store.active_mutes(now + timedelta(minutes=10))) == {"rule:astana"}
    assert store.clear_mute("rule:astana") is True and store.clear_mute("rule:astana") is False
    assert store.active_mutes(now) == {"channel:desk": now + timedelta(minutes=5)}


def test_reports(store, now):
    commit(store, now, [article("a"), article("b")], [alert("a"), alert("b", "other")])
    assert store.rule_alert_counts(now - timedelta(hours=1)) == {"astana": 2, "ceasefire": 2}
    assert store.recent_titles(["c"], now - timedelta(hours=1)) == {"c": ["title a"]}
    assert store.last_alert_at() is None
    store.mark_sent(store.due_alerts(now)[0].id, now, 7)
    assert store.last_alert_at() == now
    assert store.recent_sends("c", now - timedelta(minutes=1)) == [now]
    assert store.ping() is True


def test_recent_alerts_of_one_rule(store, now):
    tricky = Alert(
        article_key="t", feed_id="f", channel="c", rules=("50%_off",), html="x", text="x", title="t"
    )
    commit(
        store,
        now,
        [article("a"), article("b"), article("t")],
        [alert("a"), alert("b", "other"), tricky],
    )
    assert [a.article_key for a in store.recent_alerts(10, "astana")] == ["b", "a"]
    assert [a.article_key for a in store.recent_alerts(1, "astana")] == ["b"]
    assert [a.article_key for a in store.recent_alerts(10, "50%_off")] == ["t"]
    assert store.recent_alerts(10, "50") == []  # LIKE narrows, the decoded list decides


def test_unchanged_polls_are_recorded_together(store, now):
    """One call for many unchanged feeds: each one's errors cleared, schedule moved, lease
    given back; what the feed holds (validators, entries, counts) stays as it was."""
    from monitor.storage import UnchangedPoll

    store.sync_feeds(feeds("a", "b", "c"), now)
    commit(store, now, [article("x")])  # feed "f": one entry, validators '"v1"' and "h1"
    later = now + timedelta(minutes=1)
    lease = timedelta(hours=1)
    assert sorted(store.claim_due_feeds("w", later, lease, 10)) == ["a", "b", "c"]
    store.record_failure("b", "https://example.org/b", later, "HTTP 500", 500, later)
    polls = [
        UnchangedPoll("a", "https://example.org/a", later, 304, later + timedelta(minutes=5)),
        UnchangedPoll("b", "https://example.org/b", later, 304, later + timedelta(minutes=6)),
        UnchangedPoll("f", "https://example.org/feed", later, 200, later + timedelta(minutes=7)),
        UnchangedPoll("new", "https://example.org/new", later, 304, later + timedelta(hours=1)),
    ]
    store.record_unchanged(polls)
    states = store.feed_states()
    for poll in polls:
        state = states[poll.feed_id]
        assert (state.errors, state.last_error) == (0, None), poll.feed_id
        assert (state.http_status, state.last_poll, state.next_poll) == (
            poll.status,
            later,
            poll.next_poll,
        )
    assert states["f"].etag == '"v1"' and states["f"].content_hash == "h1"
    assert states["f"].entries_seen == 1 and states["f"].first_success == now
    assert store.known_keys("f", ["x"]) == {"x"}
    assert states["new"].first_success is None  # a row now, but never a changed poll
    # "c" is still leased to "w"; "a" and "b" were released and are due at their next poll
    due = store.claim_due_feeds("v", later + timedelta(minutes=6), lease, 10)
    assert sorted(due) == ["a", "b"]
    assert store.feed_states(["a", "zzz"]).keys() == {"a"}


def test_unchanged_batch_keeps_the_last_poll_of_a_feed(store, now):
    from monitor.storage import UnchangedPoll

    first = UnchangedPoll("a", "u", now, 304, now + timedelta(minutes=5))
    second = UnchangedPoll("a", "u", now + timedelta(minutes=5), 304, now + timedelta(minutes=10))
    store.record_unchanged([first, second])
    store.record_unchanged([])
    state = store.feed_state("a")
    assert state.last_poll == second.now and state.next_poll == second.next_poll


def test_prune_after_unchanged_polls_still_forgets_what_left(store, now):
    """Unchanged polls leave entries alone; the next changed poll still tells what left."""
    commit(store, now, [article("old"), article("kept")])
    for days in (10, 20, 30):
        when = now + timedelta(days=days)
        store.record_not_modified("f", "u", when, 304, when)
    later = now + timedelta(days=40)
    assert store.prune_entries(later, timedelta(days=30)) == 0  # unchanged: both still in it
    commit(store, later, [article("kept")])
    assert store.prune_entries(later + timedelta(days=31), timedelta(days=30)) == 1
    assert store.known_keys("f", ["old", "kept"]) == {"kept"}
