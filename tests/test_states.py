"""States as types: the enums keep the stored strings, alerts say what they are."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.models import (
    Alert,
    AlertKind,
    AlertStatus,
    Article,
    Channel,
    ChannelMode,
    Decision,
    Hit,
    Match,
    MuteKind,
    MuteTarget,
    Priority,
    QuietMode,
    Rule,
    stored_kind,
    utc_now,
)
from monitor.pipeline import Ruleset
from monitor.render import operator_alerts as operator
from monitor.render.alert import render_alert
from monitor.render.digest import delivery_decision
from monitor.storage import Store
from monitor.stories import StoryClaim, story_key

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("member", "stored"),
    [
        (AlertStatus.PENDING, "pending"),
        (AlertStatus.SENT, "sent"),
        (AlertStatus.FAILED, "failed"),
        (AlertStatus.HELD, "held"),
        (AlertStatus.DIGESTED, "digested"),
        (Decision.SEND, "send"),
        (Decision.SEND_SILENT, "send_silent"),
        (Decision.HOLD, "hold"),
        (ChannelMode.INSTANT, "instant"),
        (ChannelMode.DIGEST, "digest"),
        (QuietMode.SILENT, "silent"),
        (QuietMode.HOLD, "hold"),
        (Priority.NORMAL, "normal"),
        (Priority.HIGH, "high"),
        (AlertKind.ARTICLE, "article"),
        (AlertKind.DIGEST, "digest"),
        (AlertKind.OPERATOR, "operator"),
    ],
)
def test_states_are_the_strings_storage_keeps(member: str, stored: str) -> None:
    assert member == stored
    assert str(member) == stored
    assert f"{member}" == stored
    assert type(member)(stored) is member


def test_config_strings_become_enums() -> None:
    channel = Channel("desk", "@desk", mode="digest", quiet="hold")  # type: ignore[arg-type]
    assert channel.mode is ChannelMode.DIGEST
    assert channel.quiet is QuietMode.HOLD
    assert Rule("r", priority="high").priority is Priority.HIGH  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Channel("desk", "@desk", mode="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rule:astana", MuteTarget(MuteKind.RULE, "astana")),
        ("channel:syria-desk", MuteTarget(MuteKind.CHANNEL, "syria-desk")),
        ("rule:a:b", MuteTarget(MuteKind.RULE, "a:b")),  # only the first colon separates
        ("rule:", MuteTarget(MuteKind.RULE, "")),
        ("astana", None),
        ("feed:sana", None),
        ("Rule:astana", None),  # stored targets are lower-case kinds
        ("", None),
    ],
)
def test_mute_target_parse(text: str, expected: MuteTarget | None) -> None:
    assert MuteTarget.parse(text) == expected


@given(st.sampled_from(list(MuteKind)), st.text(max_size=40))
def test_mute_target_round_trips_through_its_stored_string(kind: MuteKind, name: str) -> None:
    target = MuteTarget(kind, name)
    assert MuteTarget.parse(str(target)) == target
    assert str(target) == f"{kind.value}:{name}"


@pytest.mark.parametrize(
    ("column", "kind", "priority"),
    [
        ("digest", AlertKind.DIGEST, Priority.NORMAL),
        ("high", AlertKind.ARTICLE, Priority.HIGH),
        ("normal", AlertKind.ARTICLE, Priority.NORMAL),
        ("", AlertKind.ARTICLE, Priority.NORMAL),
    ],
)
def test_stored_kind(column: str, kind: AlertKind, priority: Priority) -> None:
    assert stored_kind(column) == (kind, priority)


@pytest.mark.parametrize(
    ("channel", "priority", "kind", "now", "sent", "expected"),
    [
        # a digest message is never held again, even in a digest channel or over the cap
        (
            Channel("d", "@d", mode=ChannelMode.DIGEST),
            Priority.NORMAL,
            AlertKind.DIGEST,
            NOW,
            0,
            Decision.SEND,
        ),
        (
            Channel("d", "@d", max_per_hour=1),
            Priority.NORMAL,
            AlertKind.DIGEST,
            NOW,
            5,
            Decision.SEND,
        ),
        # ... and goes silently in quiet hours
        (
            Channel("d", "@d", quiet_hours="23:00-07:00", quiet=QuietMode.SILENT),
            Priority.NORMAL,
            AlertKind.DIGEST,
            NIGHT,
            0,
            Decision.SEND_SILENT,
        ),
        # the same message as an article is held
        (
            Channel("d", "@d", mode=ChannelMode.DIGEST),
            Priority.NORMAL,
            AlertKind.ARTICLE,
            NOW,
            0,
            Decision.HOLD,
        ),
        (
            Channel("d", "@d", mode=ChannelMode.DIGEST),
            Priority.HIGH,
            AlertKind.ARTICLE,
            NOW,
            0,
            Decision.SEND,
        ),
        (
            Channel("d", "@d"),
            Priority.NORMAL,
            AlertKind.OPERATOR,
            NOW,
            0,
            Decision.SEND,
        ),
    ],
)
def test_delivery_decision_by_kind(
    channel: Channel,
    priority: Priority,
    kind: AlertKind,
    now: datetime,
    sent: int,
    expected: Decision,
) -> None:
    assert delivery_decision(channel, priority, now, sent, kind) is expected


def _article(link: str | None = "https://example.org/news/1", guid: str | None = None) -> Article:
    return Article(
        key="k1",
        feed_id="wire",
        title="Talks resume in Astana",
        summary="Delegations met again in Astana on Friday.",
        link=link,
        guid=guid,
        published=NOW - timedelta(hours=1),
        source="Wire Service",
    )


def _hits(article: Article, term: str) -> tuple[Hit, ...]:
    start = article.title.find(term)
    return (Hit(term, term, "title", start, start + len(term)),)


@pytest.mark.parametrize(
    ("priorities", "expected"),
    [
        (None, Priority.NORMAL),
        ({"calm": Priority.NORMAL}, Priority.NORMAL),
        ({"calm": Priority.NORMAL, "urgent": Priority.HIGH}, Priority.HIGH),
        ({"elsewhere": Priority.HIGH}, Priority.NORMAL),  # only matched rules count
    ],
)
def test_render_alert_fills_what_the_alert_is(
    priorities: dict[str, Priority] | None, expected: Priority
) -> None:
    article = _article()
    matches = [Match("calm", _hits(article, "Astana")), Match("urgent", _hits(article, "Talks"))]
    alert = render_alert(article, matches, Channel("desk", "@desk"), priorities)
    assert alert.priority is expected
    assert alert.kind is AlertKind.ARTICLE
    assert alert.story == story_key(article) == "https://example.org/news/1"
    assert alert.source == "Wire Service"
    assert alert.published == article.published


def test_story_key_without_link_uses_the_guid() -> None:
    alert = render_alert(_article(link=None, guid="tag:wire,1"), [Match("r")], Channel("c", "@c"))
    assert alert.story == "guid:tag:wire,1"


def test_ruleset_alerts_carry_priority_and_story_and_respect_mutes() -> None:
    rules = (
        Rule("calm", notify=("desk",), any=("astana",)),
        Rule("urgent", notify=("alarm",), any=("talks",), priority=Priority.HIGH),
    )
    from monitor.match import compile_rules

    ruleset = Ruleset(
        rules={r.name: r for r in rules},
        channels={"desk": Channel("desk", "@desk"), "alarm": Channel("alarm", "@alarm")},
        matcher=compile_rules(rules),
        feed_tags={},
    )
    alerts = {a.channel: a for a in ruleset.alerts_for(_article())}
    assert {name: a.priority for name, a in alerts.items()} == {
        "desk": Priority.NORMAL,
        "alarm": Priority.HIGH,
    }
    assert {a.story for a in alerts.values()} == {"https://example.org/news/1"}
    muted = {str(MuteTarget.rule("urgent")), str(MuteTarget.channel("desk"))}
    assert ruleset.alerts_for(_article(), muted) == []
    only_desk = ruleset.alerts_for(_article(), {"rule:urgent"})
    assert [a.channel for a in only_desk] == ["desk"]


def test_stories_off_drops_a_repeated_title_and_keeps_alerts_whole(sqlite_url: str) -> None:
    """``stories: off`` keeps the old title check, decided in storage under the channel lock."""
    desk = Channel("desk", "@desk", stories="off")
    first = render_alert(_article(), [Match("r")], desk)
    copy = replace(_article(link="https://mirror.example/copy"), key="k2")
    again = render_alert(copy, [Match("r")], desk)
    store = Store(sqlite_url)

    def commit(articles: list[Article], alerts: list, now: datetime) -> int:
        return store.commit_poll(
            feed_id="wire",
            url="https://example.org/feed",
            now=now,
            articles=articles,
            alerts=(),
            claims=[StoryClaim(a, None) for a in alerts],
            status=200,
            etag=None,
            last_modified=None,
            content_hash=None,
            next_poll=now,
        )[1]

    try:
        store.migrate()
        assert commit([_article(), copy], [first, again], NOW) == 1
        (queued,) = store.due_alerts(NOW)
        assert (queued.html, queued.link) == (first.html, first.link)
        # an hour later the copy under yet another link is still the same story
        third = replace(_article(link="https://mirror.example/third"), key="k3")
        later = NOW + timedelta(hours=1)
        assert commit([third], [render_alert(third, [Match("r")], desk)], later) == 0
    finally:
        store.close()


@pytest.mark.parametrize(
    "message",
    [
        operator.feed_down("sana", 5, "HTTP 503", NOW),
        operator.feed_recovered("sana", 5, NOW),
        operator.channel_broken("desk", "@desk", "chat not found", NOW),
        operator.reload_failed("rules.yaml:3:1: bad", NOW),
    ],
)
def test_operator_alerts_say_they_are_operator_alerts(message: Alert) -> None:
    assert message.kind is AlertKind.OPERATOR
    assert message.story.startswith("operator:")
    assert message.story.endswith(NOW.isoformat())
    assert message.article_key == message.story
    assert message.priority is Priority.NORMAL


def test_utc_now_is_aware_utc() -> None:
    now = utc_now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
