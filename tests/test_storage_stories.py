"""The story tables (storage/stories.py) on SQLite and PostgreSQL: grouping, restarts,
first-seen times, and the edit lifecycle the sender drives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.models import Article, Channel, Hit, Match
from monitor.pipeline import Ruleset
from monitor.render.alert import render_alert
from monitor.storage import Store
from monitor.stories import StoryClaim, candidate_from

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
DESK = Channel("desk", "@desk")
TITLE_EN = "Lavrov arrives in Astana for the ninth round of Syria talks"
TITLE_RU = "Лавров прибыл в Астану на девятый раунд переговоров по Сирии"


def article(key: str, title: str, published: datetime | None, source: str) -> Article:
    return Article(
        key=key,
        feed_id=source.lower(),
        title=title,
        summary=title,
        link=f"https://{source.lower()}.example/{key}",
        published=published,
        source=source,
    )


def claim(a: Article, now: datetime) -> StoryClaim:
    term = "Lavrov" if "Lavrov" in a.title else "Лавров"
    start = a.title.index(term)
    matches = [Match("lavrov", (Hit(term, term, "title", start, start + len(term)),))]
    dated = a if a.published else Article(**{**a.__dict__, "published": now})
    return StoryClaim(render_alert(a, matches, DESK), candidate_from(dated, matches))


def commit(store: Store, a: Article, now: datetime) -> int:
    return store.commit_poll(
        feed_id=a.feed_id,
        url=f"https://{a.feed_id}.example/rss",
        now=now,
        articles=[a],
        alerts=(),
        claims=[claim(a, now)],
        status=200,
        etag=None,
        last_modified=None,
        content_hash=None,
        next_poll=now,
    )[1]


def test_a_later_report_joins_across_restarts_and_the_same_link_never_twice(database_url):
    store = Store(database_url)
    store.migrate()
    first = article("1", TITLE_EN, T0, "Reuters")
    assert commit(store, first, T0) == 1
    store.close()

    store = Store(database_url)  # a restart: the decision is in the database
    try:
        later = article("2", TITLE_RU, T0 + timedelta(minutes=30), "TASS")
        assert commit(store, later, T0 + timedelta(minutes=31)) == 0
        assert store.story_of("desk", later.link or "") == first.link
        same_link = Article(**{**first.__dict__, "feed_id": "mirror", "key": "m1"})
        assert commit(store, same_link, T0 + timedelta(minutes=32)) == 0
        (alert,) = store.due_alerts(T0 + timedelta(hours=1))
        assert alert.link == first.link
        # not sent yet: nothing to edit
        assert store.due_story_updates(T0 + timedelta(hours=1), ["desk"]) == []
        store.mark_sent(alert.id, T0 + timedelta(minutes=40), 77)
        (update,) = store.due_story_updates(T0 + timedelta(minutes=40), ["desk"])
        assert (update.message_id, update.source_count, update.shown) == (77, 1, 0)
        assert [s.name for s in update.sources] == ["TASS"] and update.unshown == update.sources

        store.story_retry(update.id, "flood", T0 + timedelta(minutes=45))
        assert store.due_story_updates(T0 + timedelta(minutes=44), ["desk"]) == []
        assert store.next_story_update(["desk"]) == T0 + timedelta(minutes=45)
        store.story_updated(update.id, 1, T0 + timedelta(minutes=45), T0 + timedelta(minutes=46))
        assert store.due_story_updates(T0 + timedelta(hours=5), ["desk"]) == []  # all shown

        third = article("3", TITLE_EN.replace("arrives", "lands"), T0 + timedelta(hours=1), "AP")
        assert commit(store, third, T0 + timedelta(hours=1)) == 0
        (update,) = store.due_story_updates(T0 + timedelta(hours=1), ["desk"])
        assert update.unshown[-1].name == "AP" and len(update.unshown) == 1
        store.story_gone(update.id, "message to edit not found")
        assert store.due_story_updates(T0 + timedelta(hours=2), ["desk"]) == []
        assert store.story_sources([alert.id]) == {alert.id: update.sources}
    finally:
        store.close()


def test_without_a_publication_time_the_first_seen_time_places_a_report(database_url):
    store = Store(database_url)
    store.migrate()
    try:
        assert commit(store, article("1", TITLE_EN, None, "Reuters"), T0) == 1
        # seen two days later, undated: outside the 24 h window of the first
        late = article("2", TITLE_RU, None, "TASS")
        assert commit(store, late, T0 + timedelta(days=2)) == 1
        # seen within the hour: the same story
        soon = article("3", TITLE_EN.replace("arrives", "lands"), None, "AP")
        assert commit(store, soon, T0 + timedelta(days=2, minutes=20)) == 0
        assert store.story_of("desk", soon.link or "") == late.link
    finally:
        store.close()


def test_claims_for_gives_each_channel_its_policy(write_config):
    from monitor.config import load_settings

    settings = load_settings(
        write_config(
            "channels:\n  a: {chat: '@a'}\n  b: {chat: '@b', stories: off}\n"
            "  c: {chat: '@c', story_window: 2h}\n"
            "rules:\n  - {name: lavrov, any: [Lavrov], notify: [a, b, c]}\n"
        ),
        env={},
    )
    ruleset = Ruleset.from_settings(settings)
    candidate = ruleset.matches_for(article("1", TITLE_EN, None, "Reuters"))
    claims = {c.alert.channel: c for c in ruleset.claims(candidate, None, T0)}
    assert claims["b"].candidate is None
    assert claims["a"].candidate is not None and claims["a"].candidate.published == T0
    assert claims["a"].window == timedelta(hours=24) and claims["c"].window == timedelta(hours=2)


async def test_a_photo_alerts_story_is_answered_with_a_reply(sqlite_url):
    """A photo's caption is not text editMessageText can change: later sources go as a reply."""
    import io
    from dataclasses import replace

    from monitor.deliver.notifier import ConsoleNotifier
    from monitor.deliver.sender import Sender

    store = Store(sqlite_url)
    store.migrate()
    try:
        first = article("1", TITLE_EN, T0, "Reuters")
        photo = claim(first, T0)
        photo = replace(
            photo,
            alert=replace(
                photo.alert, caption=photo.alert.html, photo_url="https://i.example/a.jpg"
            ),
        )
        store.commit_poll(
            feed_id=first.feed_id,
            url="https://reuters.example/rss",
            now=T0,
            articles=[first],
            alerts=(),
            claims=[photo],
            status=200,
            etag=None,
            last_modified=None,
            content_hash=None,
            next_poll=T0,
        )
        (alert,) = store.due_alerts(T0)
        store.mark_sent(alert.id, T0, 5)
        assert commit(store, article("2", TITLE_RU, T0, "TASS"), T0 + timedelta(minutes=1)) == 0
        (update,) = store.due_story_updates(T0 + timedelta(minutes=1), ["desk"])
        assert update.photo
        out = io.StringIO()
        sender = Sender(
            store,
            ConsoleNotifier(out),
            {"desk": DESK},
            paced=False,
            clock=lambda: T0 + timedelta(minutes=2),
        )
        stats = await sender.drain()
        assert stats.edited == 1
        assert "[desk → @desk, reply to message 5]\nAlso: TASS" in out.getvalue()
        assert "edited" not in out.getvalue()
    finally:
        store.close()


def test_pruning_forgets_old_reports_then_stories_whose_alert_is_gone(database_url):
    store = Store(database_url)
    store.migrate()
    try:
        first = article("1", TITLE_EN, T0, "Reuters")
        assert commit(store, first, T0) == 1
        assert commit(store, article("2", TITLE_RU, T0, "TASS"), T0) == 0
        (alert,) = store.due_alerts(T0)
        store.mark_sent(alert.id, T0, 9)
        later = T0 + timedelta(days=40)
        assert store.prune_stories(later, timedelta(days=30)) == 2  # the two reports
        assert store.story_of("desk", first.link or "") is None
        assert store.story_sources([alert.id])  # the story row stays while its alert does
        assert store.prune_alerts(later) == 1
        assert store.prune_stories(later, timedelta(days=30)) == 1
        assert store.story_sources([alert.id]) == {}
    finally:
        store.close()
