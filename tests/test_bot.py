"""The bot's own commands, end to end against the Bot API stand-in on 127.0.0.1.

The bot runs in the test's event loop through ``running_bot``; messages are
injected as updates that getUpdates returns, and answers are read back from
what the stand-in accepted (it parses Telegram HTML strictly, so a reply with a
stray ``<`` or over 4096 characters would be refused and the wait would fail).
Time moves through the ``clock`` argument, never through sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.bot import (
    COMMANDS,
    MAX_REPLY,
    BotContext,
    render_feeds,
    render_recent,
    render_rules,
    render_test,
    resolve_target,
    running_bot,
)
from monitor.config import Settings, load_settings
from monitor.exceptions import NotifyError
from monitor.models import Article, FeedState, Hit, Match
from monitor.pipeline import Ruleset
from monitor.storage import Store
from tests.fakes.botapi import AcceptedMessage, FakeBotApi
from tests.fakes.telegram_html import parse_telegram_html

ADMIN = 4242
STRANGER = 777
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WAIT = 10.0  # seconds: the bound on every wait for an answer

CONFIG = """
telegram:
  admins: [4242]
channels:
  syria:
    chat: "@syria_watch"
  digest:
    chat: "@digest_watch"
feeds:
  - id: sana
    url: https://sana.sy/feed/
    tags: [agency]
  - id: tass
    url: https://tass.ru/rss/v2.xml
  - id: bbc
    url: https://feeds.bbci.co.uk/news/world/rss.xml
rules:
  - name: astana
    any: [Astana, Астана, أستانا]
    notify: [syria]
  - name: ceasefire
    any: [ceasefire, truce, перемирие]
    none: [football]
    notify: [syria, digest]
  - name: agency-only
    any: [Lavrov]
    feeds: [agency]
    notify: [digest]
"""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Harness:
    """A running bot plus what a test needs to talk to it."""

    botapi: FakeBotApi
    store: Store
    settings: Settings
    ruleset: Ruleset
    clock: Clock

    async def ask(self, user: int, text: str) -> AcceptedMessage:
        """Send ``text`` from ``user`` in their private chat; return the bot's answer."""
        before = len(self.botapi.sent(user))
        self.botapi.push_message(user, user, text)
        got = await asyncio.to_thread(self.botapi.wait_for_messages, before + 1, WAIT, user)
        assert len(got) > before, f"no answer to {text!r} within {WAIT}s: {self.botapi.rejected()}"
        return got[before]


def write_settings(tmp_path: Path, text: str = CONFIG) -> Settings:
    path = tmp_path / "monitor.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def harness_args(botapi: FakeBotApi, store: Store, tmp_path: Path) -> BotContext:
    """A BotContext over the test config, for tests that run the bot themselves."""
    settings = write_settings(tmp_path)
    ruleset = Ruleset.from_settings(settings)
    botapi.add_chat(ADMIN, "private")
    return BotContext(store, lambda: ruleset, lambda: settings, T0, clock=lambda: T0)


@pytest.fixture
async def harness(botapi: FakeBotApi, store: Store, tmp_path: Path) -> AsyncIterator[Harness]:
    settings = write_settings(tmp_path)
    ruleset = Ruleset.from_settings(settings)
    clock = Clock(T0)
    botapi.add_chat(ADMIN, "private", title="Admin")
    botapi.add_chat(STRANGER, "private", title="Stranger")
    ctx = BotContext(
        store=store,
        get_ruleset=lambda: ruleset,
        get_settings=lambda: settings,
        started_at=T0 - timedelta(hours=2, minutes=5),
        clock=clock,
    )
    async with running_bot(botapi.token, botapi.url, ctx):
        yield Harness(botapi, store, settings, ruleset, clock)


def plain(message: AcceptedMessage) -> str:
    return message.plain_text


def bold_texts(message: AcceptedMessage) -> list[str]:
    """The text under every bold entity of an accepted message."""
    text = message.plain_text
    return [
        text[e["offset"] : e["offset"] + e["length"]]
        for e in message.entities
        if e["type"] == "bold"
    ]


def add_alerts(store: Store, ruleset: Ruleset, now: datetime) -> None:
    """Real alerts in the outbox: two articles through the real matcher and renderer."""
    articles = [
        Article(
            key="a1",
            feed_id="sana",
            title="Talks in Astana resume",
            content="Delegations met in Astana on Monday.",
            link="https://sana.sy/en/?p=1",
            language="en",
            source="SANA",
        ),
        Article(
            key="a2",
            feed_id="tass",
            title="Перемирие & <продлено>",
            content="Стороны договорились о перемирии.",
            link="https://tass.ru/politika/2",
            language="ru",
            source="TASS",
        ),
    ]
    for article in articles:
        alerts = ruleset.alerts_for(article)
        assert alerts, article.title
        store.commit_poll(
            feed_id=article.feed_id,
            url=f"https://{article.feed_id}.example/feed",
            now=now,
            articles=[article],
            alerts=alerts,
            status=200,
            etag=None,
            last_modified=None,
            content_hash=None,
            next_poll=now + timedelta(minutes=5),
        )


# --------------------------------------------------------------------------- end to end


async def test_set_my_commands_registered(harness: Harness):
    registered = harness.botapi.commands()
    assert [c["command"] for c in registered] == [c.name for c in COMMANDS]
    assert all(c["description"] for c in registered)


async def test_help_for_everyone_shows_chat_id(harness: Harness):
    for user in (ADMIN, STRANGER):
        for command in ("/start", "/help"):
            answer = await harness.ask(user, command)
            assert answer.parse_mode == "HTML"
            assert f"This chat's id: {user}" in plain(answer)
            assert "/status" in plain(answer) and "/mute" in plain(answer)
    stranger = await harness.ask(STRANGER, "/help")
    assert "add it to telegram.admins" in plain(stranger)
    admin = await harness.ask(ADMIN, "/help")
    assert "you are an administrator" in plain(admin)


async def test_help_in_a_channel_tells_the_channel_id(harness: Harness):
    channel = harness.botapi.add_chat("@ops_room", "channel", title="Ops")
    post = {
        "message_id": 5,
        "chat": channel.to_json(),
        "date": int(T0.timestamp()),
        "text": "/help",
        "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
    }
    harness.botapi.push_update({"channel_post": post})
    got = await asyncio.to_thread(harness.botapi.wait_for_messages, 1, WAIT, "@ops_room")
    assert got, harness.botapi.rejected()
    assert f"This chat's id: {channel.id}" in plain(got[0])


@pytest.mark.parametrize(
    "command",
    ["/status", "/feeds", "/rules", "/test Astana", "/recent", "/mute astana 1h", "/unmute astana"],
)
async def test_strangers_are_refused_politely(harness: Harness, command: str):
    answer = await harness.ask(STRANGER, command)
    name = command.split()[0]
    assert f"Sorry, {name} is only for this bot's administrators." in plain(answer)
    assert str(STRANGER) in plain(answer)
    assert harness.store.active_mutes(harness.clock()) == {}  # nothing changed


async def test_status(harness: Harness):
    store = harness.store
    add_alerts(store, harness.ruleset, T0 - timedelta(minutes=30))  # a good poll of sana, tass
    store.record_failure(
        "sana",
        "https://sana.sy/feed/",
        T0 - timedelta(minutes=3),
        "HTTP 503",
        503,
        T0 + timedelta(minutes=2),
    )
    store.record_not_modified(
        "tass",
        "https://tass.ru/rss/v2.xml",
        T0 - timedelta(minutes=1),
        304,
        T0 + timedelta(minutes=4),
    )
    pending = store.due_alerts(T0)
    store.mark_sent(pending[0].id, T0 - timedelta(minutes=20), 99)
    answer = plain(await harness.ask(ADMIN, "/status"))
    assert f"config version {harness.settings.version}" in answer
    assert "Feeds: 1 ok, 1 failing, 1 not polled yet (of 3)" in answer
    assert "Last poll: 2026-11-28 11:59 UTC (1m ago)" in answer
    assert "Last alert sent: 2026-11-28 11:40 UTC (20m ago)" in answer
    assert f"Outbox: {len(pending) - 1} alerts waiting" in answer
    assert "Uptime: 2h 5m" in answer


async def test_feeds_lists_failing_feeds_with_errors(harness: Harness):
    answer = plain(await harness.ask(ADMIN, "/feeds"))
    assert "0 ok, 0 failing, 3 not polled yet" in answer
    harness.store.record_failure(
        "bbc",
        "https://feeds.bbci.co.uk/news/world/rss.xml",
        T0,
        "timed out after 30s <read>",
        None,
        T0 + timedelta(minutes=5),
    )
    harness.store.record_failure(
        "bbc",
        "https://feeds.bbci.co.uk/news/world/rss.xml",
        T0,
        "timed out after 30s <read>",
        None,
        T0 + timedelta(minutes=9),
    )
    answer = await harness.ask(ADMIN, "/feeds")
    assert "bbc — 2 failed polls in a row" in plain(answer)
    assert "timed out after 30s <read>" in plain(answer)  # escaped, shown literally
    assert "next 2026-11-28 12:09 UTC (in 9m)" in plain(answer)
    assert "sana" not in plain(answer)


async def test_rules_with_channels_and_counts(harness: Harness):
    add_alerts(harness.store, harness.ruleset, T0 - timedelta(hours=1))
    answer = plain(await harness.ask(ADMIN, "/rules"))
    assert "Rules (3)" in answer
    assert "astana → syria — 1 alert" in answer
    # the Russian article alerts to syria and digest: two alerts for ceasefire
    assert "ceasefire → syria, digest — 2 alerts" in answer
    assert "agency-only → digest — 0 alerts" in answer
    harness.clock.advance(timedelta(hours=24))
    answer = plain(await harness.ask(ADMIN, "/rules"))
    assert "astana → syria — 0 alerts" in answer  # older than 24 h no longer counts


@pytest.mark.parametrize(
    ("text", "rules", "bold"),
    [
        ("Talks in Astana on Monday", ["astana"], ["Astana"]),
        ("Переговоры в Астане о перемирии", ["astana", "ceasefire"], ["Астане", "перемирии"]),
        ("وفد يصل بأستانا", ["astana"], ["بأستانا"]),
        ("A truce <b>was</b> agreed & signed", ["ceasefire"], ["truce"]),
        ("Lavrov met the envoy", ["agency-only"], ["Lavrov"]),  # feed filter still tested
    ],
)
async def test_test_shows_matching_rules_and_bold_hits(harness: Harness, text, rules, bold):
    answer = await harness.ask(ADMIN, f"/test {text}")
    shown = plain(answer)
    for rule in rules:
        assert f"✅ {rule} →" in shown
    assert f"{len(rules)} rule" in shown
    for word in bold:
        assert word in bold_texts(answer)
    assert text in shown  # echoed, escaped, nothing eaten by the HTML parser


async def test_test_without_a_match_and_without_text(harness: Harness):
    answer = plain(await harness.ask(ADMIN, "/test a truce in the football league"))
    assert "No rule matches this text" in answer
    answer = plain(await harness.ask(ADMIN, "/test"))
    assert "Usage: /test" in answer


async def test_test_first_line_is_the_title(harness: Harness):
    answer = await harness.ask(ADMIN, "/test Astana talks\nThe delegations met again.")
    assert "in title" in plain(answer)
    assert "Title: Astana talks" in plain(answer)


async def test_recent_alerts_all_and_by_rule(harness: Harness):
    answer = plain(await harness.ask(ADMIN, "/recent"))
    assert "No alerts yet." in answer
    add_alerts(harness.store, harness.ruleset, T0 - timedelta(minutes=10))
    answer = await harness.ask(ADMIN, "/recent")
    assert "Last 3 alerts" in plain(answer)
    assert "Перемирие & <продлено>" in plain(answer)
    links = [e["url"] for e in answer.entities if e["type"] == "text_link"]
    assert "https://tass.ru/politika/2" in links and "https://sana.sy/en/?p=1" in links
    answer = plain(await harness.ask(ADMIN, "/recent astana"))
    assert "Last 1 alert of rule astana" in answer
    assert "Talks in Astana resume" in answer and "Перемирие" not in answer
    answer = plain(await harness.ask(ADMIN, "/recent astanna"))
    assert "No alerts from a rule named astanna" in answer
    assert "Did you mean astana?" in answer


async def test_mute_stores_a_mute_that_expires(harness: Harness):
    answer = plain(await harness.ask(ADMIN, "/mute astana 2h"))
    assert "Muted rule astana until 2026-11-28 14:00 UTC (2h)" in answer
    mutes = harness.store.active_mutes(harness.clock())
    assert mutes == {"rule:astana": T0 + timedelta(hours=2)}
    answer = plain(await harness.ask(ADMIN, "/rules"))
    assert "muted until 2026-11-28 14:00 UTC" in answer
    harness.clock.advance(timedelta(hours=2, seconds=1))
    assert harness.store.active_mutes(harness.clock()) == {}
    answer = plain(await harness.ask(ADMIN, "/status"))
    assert "Muted" not in answer
    answer = plain(await harness.ask(ADMIN, "/rules"))
    assert "muted" not in answer


async def test_mute_channel_and_unmute(harness: Harness):
    answer = plain(await harness.ask(ADMIN, "/mute digest 20m 10m"))
    assert "Muted channel digest until 2026-11-28 12:30 UTC (30m)" in answer
    assert "channel:digest" in harness.store.active_mutes(T0)
    answer = plain(await harness.ask(ADMIN, "/mute"))
    assert "channel:digest until 2026-11-28 12:30 UTC (30m left)" in answer
    answer = plain(await harness.ask(ADMIN, "/unmute digest"))
    assert "Unmuted channel digest" in answer
    assert harness.store.active_mutes(T0) == {}
    answer = plain(await harness.ask(ADMIN, "/unmute digest"))
    assert "was not muted" in answer


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/mute astanna 1h", "No rule or channel named astanna. Did you mean astana?"),
        ("/mute astana soon", "bad duration 'soon'"),
        ("/mute astana 0", "must be more than 0"),
        ("/mute astana 400d", "at most 365d"),
        ("/mute astana", "Usage: /mute"),
        ("/mute astana 1h soon", "bad duration '1hsoon'"),
        ("/unmute", "Usage: /unmute"),
    ],
)
async def test_mute_mistakes_get_helpful_answers(harness: Harness, command, expected):
    answer = plain(await harness.ask(ADMIN, command))
    assert expected in answer
    assert harness.store.active_mutes(T0) == {}


async def test_admins_follow_the_current_settings(botapi: FakeBotApi, store: Store, tmp_path):
    """A reload that adds an admin takes effect without restarting the bot."""
    current = {"settings": write_settings(tmp_path)}
    ruleset = Ruleset.from_settings(current["settings"])
    botapi.add_chat(STRANGER, "private")
    ctx = BotContext(store, lambda: ruleset, lambda: current["settings"], T0, clock=lambda: T0)
    async with running_bot(botapi.token, botapi.url, ctx):
        botapi.push_message(STRANGER, STRANGER, "/feeds")
        got = await asyncio.to_thread(botapi.wait_for_messages, 1, WAIT, STRANGER)
        assert "only for this bot's administrators" in got[0].plain_text
        new_telegram = replace(current["settings"].telegram, admins=(ADMIN, STRANGER))
        current["settings"] = replace(current["settings"], telegram=new_telegram)
        botapi.push_message(STRANGER, STRANGER, "/feeds")
        got = await asyncio.to_thread(botapi.wait_for_messages, 2, WAIT, STRANGER)
        assert "Feeds:" in got[1].plain_text


async def test_a_failing_command_is_logged_and_the_bot_keeps_answering(
    botapi: FakeBotApi, store: Store, tmp_path, caplog
):
    settings = write_settings(tmp_path)
    ruleset = Ruleset.from_settings(settings)
    botapi.add_chat(ADMIN, "private")
    broken = Store(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    ctx = BotContext(broken, lambda: ruleset, lambda: settings, T0, clock=lambda: T0)
    async with running_bot(botapi.token, botapi.url, ctx):
        botapi.push_message(ADMIN, ADMIN, "/status")
        got = await asyncio.to_thread(botapi.wait_for_messages, 1, WAIT, ADMIN)
        assert "the state database did not answer" in got[0].plain_text
        botapi.push_message(ADMIN, ADMIN, "/help")
        got = await asyncio.to_thread(botapi.wait_for_messages, 2, WAIT, ADMIN)
        assert "This chat's id" in got[1].plain_text
    assert "bot command failed" in caplog.text


async def test_stops_promptly_while_a_long_poll_is_open(botapi: FakeBotApi, store: Store, tmp_path):
    settings = write_settings(tmp_path)
    ruleset = Ruleset.from_settings(settings)
    ctx = BotContext(store, lambda: ruleset, lambda: settings, T0)
    cm = running_bot(botapi.token, botapi.url, ctx)
    application = await cm.__aenter__()
    assert application.updater is not None and application.updater.running
    # leaving must not wait out the 10 s long poll; bounded so a hang fails the test
    await asyncio.wait_for(cm.__aexit__(None, None, None), timeout=8)
    assert not application.running


# --------------------------------------------------------------------------- pure renderers


def _valid_reply(html_text: str) -> str:
    """Telegram's parse of a reply (raises on bad HTML); checks the length limit."""
    text, _entities = parse_telegram_html(html_text)
    assert len(text) <= MAX_REPLY
    assert len(html_text) <= MAX_REPLY
    return text


def test_long_lists_are_cut_with_and_n_more(tmp_path: Path):
    rules = "\n".join(
        f"  - name: rule-{i:04d}\n    any: [word{i}]\n    notify: [syria]" for i in range(600)
    )
    settings = write_settings(
        tmp_path, 'channels:\n  syria:\n    chat: "@s"\nfeeds: []\nrules:\n' + rules + "\n"
    )
    ruleset = Ruleset.from_settings(settings)
    text = _valid_reply(render_rules(ruleset, {}, {}, T0))
    assert text.startswith("Rules (600)")
    assert "rule-0000 → syria" in text
    shown = text.count("\n• ")
    assert f"… and {600 - shown} more" in text


def test_feeds_cut_and_escaped():
    from monitor.models import FeedSource

    feeds = [FeedSource(id=f"f{i}", url=f"https://x/{i}") for i in range(300)]
    states = {
        f.id: FeedState(feed_id=f.id, last_poll=T0, errors=3, last_error="<&>" * 200) for f in feeds
    }
    text = _valid_reply(render_feeds(feeds, states, T0))
    assert "<&>" in text
    assert "more" in text.splitlines()[-1]


@settings(max_examples=60, deadline=None)
@given(
    st.text(min_size=1, max_size=5000),
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 40)), max_size=30),
)
def test_test_reply_is_always_valid_html_within_the_limit(text: str, spans):
    hits = tuple(
        Hit("term", text[a : a + n], "content", a, min(len(text), a + n))
        for a, n in spans
        if a < len(text)
    )
    article = Article(key="k", feed_id="", title="", content=text, language="en")
    matches = [Match("rule<&>", hits), Match("other", hits[:3])]
    ruleset = _tiny_ruleset()
    _valid_reply(render_test(article, matches, ruleset))


def test_test_reply_cuts_a_long_text_between_flags_not_inside_one():
    text = "Talks in Astana: " + "🇸🇾" * 1000  # odd prefix: a cut by count splits a flag
    hit = Hit("Astana", "Astana", "content", 9, 15)
    article = Article(key="k", feed_id="", title="", content=text, language="en")
    reply = _valid_reply(render_test(article, [Match("astana", (hit,))], _tiny_ruleset()))
    flags = reply[reply.index("🇸") : reply.index("…")]
    assert flags and set(flags) == {"🇸", "🇾"} and len(flags) % 2 == 0
    assert flags == "🇸🇾" * (len(flags) // 2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=1, max_size=80))
def test_recent_reply_is_always_valid_html_within_the_limit(titles):
    from monitor.storage import OutboxAlert

    alerts = [
        OutboxAlert(
            i,
            "syria<>",
            "f",
            str(i),
            ("r&1", "r2"),
            t,
            "https://x.test/?a=1&b=<2>",
            "",
            "",
            "sent",
            1,
            T0,
            T0,
            T0,
        )
        for i, t in enumerate(titles)
    ]
    _valid_reply(render_recent(alerts, None, _tiny_ruleset(), T0))


_TINY: list[Ruleset] = []


def _tiny_ruleset() -> Ruleset:
    if not _TINY:
        from monitor.match import compile_rules
        from monitor.models import Channel, Rule

        rules = [Rule("astana", notify=("syria",), any=("Astana",))]
        _TINY.append(
            Ruleset(
                rules={r.name: r for r in rules},
                channels={"syria": Channel("syria", "@s")},
                matcher=compile_rules(rules),
                feed_tags={},
            )
        )
    return _TINY[0]


@pytest.mark.parametrize(
    ("typed", "target"),
    [
        ("astana", "rule:astana"),
        ("syria", "channel:syria"),
        ("rule:astana", "rule:astana"),
        ("channel:syria", "channel:syria"),
        ("rule:syria", None),
        ("nothing", None),
    ],
)
def test_resolve_target(typed, target):
    ruleset = _tiny_ruleset()
    found, problem = resolve_target(typed, ruleset.rules, ruleset.channels)
    assert found == target
    assert (problem == "") is (target is not None)


def test_resolve_target_ambiguous_and_stale_mutes():
    ruleset = _tiny_ruleset()
    channels = {**ruleset.channels, "astana": ruleset.channels["syria"]}
    found, problem = resolve_target("astana", ruleset.rules, channels)
    assert found is None and "both a rule and a channel" in problem
    # a rule removed from the configuration can still be unmuted
    found, _ = resolve_target("gone", ruleset.rules, ruleset.channels, {"rule:gone": T0})
    assert found == "rule:gone"


async def test_a_refused_token_is_one_clear_error_without_the_token(
    botapi: FakeBotApi, store: Store, tmp_path
):
    settings = write_settings(tmp_path)
    ruleset = Ruleset.from_settings(settings)
    ctx = BotContext(store, lambda: ruleset, lambda: settings, T0)
    wrong = "999:wrong-token"
    with pytest.raises(NotifyError) as info:
        async with running_bot(wrong, botapi.url, ctx):
            pytest.fail("the bot started with a wrong token")
    assert info.value.permanent
    assert "TELEGRAM_BOT_TOKEN" in str(info.value)
    assert wrong not in str(info.value) and info.value.__cause__ is None
    assert botapi.commands() == []


async def test_a_failing_set_my_commands_does_not_stop_the_bot(botapi: FakeBotApi, harness_args):
    botapi.fail_next("setMyCommands", 500)
    async with running_bot(botapi.token, botapi.url, harness_args):
        botapi.push_message(ADMIN, ADMIN, "/start")
        got = await asyncio.to_thread(botapi.wait_for_messages, 1, WAIT, ADMIN)
        assert got and "This chat's id" in got[0].plain_text
    assert botapi.commands() == []


async def test_mutes_survive_a_restart_of_the_bot(botapi: FakeBotApi, harness_args: BotContext):
    async with running_bot(botapi.token, botapi.url, harness_args):
        botapi.push_message(ADMIN, ADMIN, "/mute ceasefire 1d")
        got = await asyncio.to_thread(botapi.wait_for_messages, 1, WAIT, ADMIN)
        assert "Muted rule ceasefire" in got[0].plain_text
    restarted = Store(harness_args.store.url)  # a new process would open the file anew
    try:
        ctx = replace(harness_args, store=restarted)
        async with running_bot(botapi.token, botapi.url, ctx):
            botapi.push_message(ADMIN, ADMIN, "/mute")
            got = await asyncio.to_thread(botapi.wait_for_messages, 2, WAIT, ADMIN)
            assert "rule:ceasefire until 2026-11-29 12:00 UTC (1d left)" in got[1].plain_text
    finally:
        restarted.close()


async def test_test_on_a_replied_message_and_on_a_huge_text(harness: Harness):
    chat = harness.botapi.chat(ADMIN).to_json()
    user = {"id": ADMIN, "is_bot": False, "first_name": "Admin"}
    earlier = {"message_id": 90, "from": user, "chat": chat, "date": 0, "text": "Astana again"}
    harness.botapi.push_update(
        {
            "message": {
                "message_id": 91,
                "from": user,
                "chat": chat,
                "date": int(T0.timestamp()),
                "text": "/test",
                "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
                "reply_to_message": earlier,
            }
        }
    )
    got = await asyncio.to_thread(harness.botapi.wait_for_messages, 1, WAIT, ADMIN)
    assert got and "✅ astana →" in got[0].plain_text
    huge = "/test " + "Astana & <truce> " * 240  # 4086 characters, 5× longer once escaped
    answer = await harness.ask(ADMIN, huge)
    assert "✅ astana →" in answer.plain_text and "✅ ceasefire →" in answer.plain_text
    assert len(answer.plain_text) <= MAX_REPLY
    assert "Astana & <truce>" in answer.plain_text


async def test_trend_sends_the_rules_chart_as_a_photo(harness: Harness):
    articles = [
        Article(key=f"t{n}", feed_id="tass", title="Astana", published=T0 - timedelta(hours=n))
        for n in range(6)
    ]
    harness.store.commit_poll(
        feed_id="tass",
        url="https://tass.ru/rss/v2.xml",
        now=T0,
        articles=articles,
        alerts=(),
        matched={a.key: ("astana",) for a in articles},
        status=200,
        etag=None,
        last_modified=None,
        content_hash=None,
        next_poll=T0,
    )
    harness.botapi.push_message(ADMIN, ADMIN, "/trend astana 2d")
    deadline = time.monotonic() + WAIT
    while not harness.botapi.photos(ADMIN) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (photo,) = harness.botapi.photos(ADMIN)
    assert bytes(photo.params["photo"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert photo.plain_text.startswith("📊 astana: 6 matches")
    answer = plain(await harness.ask(ADMIN, "/trend nope"))
    assert "There is no rule named nope" in answer
    answer = plain(await harness.ask(STRANGER, "/trend astana"))
    assert "only for this bot's administrators" in answer


def test_ptb_shutdown_cleanup_error_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    """PTB logs a failed last getUpdates on stop with a traceback; we keep one line."""
    import monitor.bot  # noqa: F401  (installs the filter)

    caplog.set_level(logging.DEBUG, logger="telegram.ext.Updater")
    logger = logging.getLogger("telegram.ext.Updater")
    try:
        raise TimeoutError("pool timeout")
    except TimeoutError:
        logger.exception("Error while calling `get_updates` one more time to mark all fetched")
    [record] = [r for r in caplog.records if r.name == "telegram.ext.Updater"]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == "bot: last getUpdates on stop failed: pool timeout"
