"""Stories end to end: feeds on 127.0.0.1 → poll → story table → sender → Bot API stand-in.

Reports come from ``tests/data/stories.yaml`` (the labelled set): one event
reported in English, Arabic and Russian by three outlets, and a confusable
event (another round of the same talks) that must stay a message of its own.
Time is injected: polls get ``now``, the sender a clock the test advances.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import yaml

from monitor.config import load_settings
from monitor.deliver.notifier import TelegramNotifier
from monitor.deliver.sender import Sender
from monitor.fetch import Fetcher
from monitor.pipeline import Ruleset, poll_feed
from monitor.storage import Store
from monitor.worker import fetch_settings
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feedserver import Item, rss_feed

DATA = Path(__file__).parent / "data" / "stories.yaml"
EVENTS = {e["id"]: e for e in yaml.safe_load(DATA.read_text(encoding="utf-8"))["events"]}
OUTLETS = {"en": "Wire EN", "ar": "SANA", "ru": "TASS"}

CONFIG = """
channels:
  desk: {{chat: "@test_channel", stories: {stories}}}
feeds:
{feeds}
rules:
  - name: astana
    any: [Astana, أستانا, Астана]
    notify: [desk]
"""


@dataclass
class Clock:
    """The sender's clock; the test moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def report(event: str, lang: str) -> dict:
    return next(r for r in EVENTS[event]["reports"] if r["lang"] == lang)


def at(event: str, lang: str) -> datetime:
    value = report(event, lang)["at"]  # YAML reads the timestamp itself
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def item(event: str, lang: str, run: str) -> Item:
    r = report(event, lang)
    return Item(
        r["title"],
        f"<p>{r['lead']}</p>",
        f"https://{lang}.news.example/{run}/{event}",
        f"{run}-{event}-{lang}",
        format_datetime(at(event, lang)),
    )


class Setup:
    """Three feeds (one outlet per language) whose items the test publishes in waves."""

    def __init__(self, feed_server, write_config, botapi: FakeBotApi, db: str, stories: str):
        self.server = feed_server
        self.run = uuid.uuid4().hex[:8]
        self.items: dict[str, list[Item]] = {lang: [] for lang in OUTLETS}
        lines = []
        for lang, name in OUTLETS.items():
            url = self.publish(lang)
            lines.append(f"  - {{id: {lang}, url: '{url}', name: {name}, language: {lang}}}")
        path = write_config(CONFIG.format(stories=stories, feeds="\n".join(lines)))
        env = {"TELEGRAM_BOT_TOKEN": botapi.token, "TELEGRAM_API_URL": botapi.url}
        self.settings = load_settings(path, env={**env, "DATABASE_URL": db})
        self.ruleset = Ruleset.from_settings(self.settings)
        self.feeds = {f.id: f for f in self.settings.feeds}
        self.store = Store(db)
        self.store.migrate()
        self.botapi = botapi

    def publish(self, lang: str, *items: Item) -> str:
        self.items[lang].extend(items)
        return self.server.add(
            f"/{self.run}/{lang}.xml", rss_feed(OUTLETS[lang], self.items[lang], language=lang)
        )

    async def poll(self, lang: str, now: datetime) -> int:
        async with Fetcher(fetch_settings(self.settings)) as fetcher:
            outcome = await poll_feed(
                self.feeds[lang],
                store=self.store,
                fetcher=fetcher,
                ruleset=lambda: self.ruleset,
                now=now,
            )
        assert outcome.ok, outcome.error
        return outcome.alerts


async def first_poll_everywhere(setup: Setup, now: datetime) -> None:
    """Feeds start empty: their first polls record nothing, later items are new."""
    for lang in OUTLETS:
        await setup.poll(lang, now)


@pytest.fixture
def api():
    server = FakeBotApi().start()
    server.add_chat("@test_channel", "channel")
    yield server
    server.stop()
    assert not server.bugs


async def test_waves_across_languages_make_one_message_and_paced_edits(
    feed_server, write_config, api, sqlite_url
):
    setup = Setup(feed_server, write_config, api, sqlite_url, "edit")
    start = at("astana-8", "en") - timedelta(minutes=30)
    await first_poll_everywhere(setup, start)
    clock = Clock(start)
    notifier = TelegramNotifier(api.token, api.url)
    sender = Sender(setup.store, notifier, setup.ruleset.channels, clock=clock)
    try:
        # wave 1: the English wire — one alert
        setup.publish("en", item("astana-8", "en", setup.run))
        clock.now = at("astana-8", "en") + timedelta(minutes=2)
        assert await setup.poll("en", clock.now) == 1
        await sender.drain()
        (first,) = api.sent("@test_channel")
        assert "Eighth round of Astana talks" in first.plain_text

        # wave 2: the Arabic report of the same round — no new message, one edit
        setup.publish("ar", item("astana-8", "ar", setup.run))
        clock.now = at("astana-8", "ar") + timedelta(minutes=2)
        assert await setup.poll("ar", clock.now) == 0
        await sender.drain()
        edits = [m for m in api.messages("@test_channel") if m.method == "editmessagetext"]
        assert len(api.sent("@test_channel")) == 1 and len(edits) == 1
        assert edits[0].message_id == first.message_id
        assert edits[0].plain_text.startswith(first.plain_text)
        assert edits[0].plain_text.endswith("Also: \u2068SANA\u2069")
        links = [e["url"] for e in edits[0].entities if e["type"] == "text_link"]
        assert links[-1] == f"https://ar.news.example/{setup.run}/astana-8"

        # wave 3, 20 s after the edit: the Russian report waits for the minute to pass
        setup.publish("ru", item("astana-8", "ru", setup.run))
        clock.now += timedelta(seconds=20)
        assert await setup.poll("ru", clock.now) == 0
        await sender.drain()
        assert len([m for m in api.messages() if m.method == "editmessagetext"]) == 1
        clock.now += timedelta(seconds=41)
        await sender.drain()
        edits = [m for m in api.messages() if m.method == "editmessagetext"]
        assert len(edits) == 2 and len(api.sent()) == 1
        assert edits[1].plain_text.endswith("Also: \u2068SANA\u2069 · \u2068TASS\u2069")

        # the next round of the talks, that evening, is a story of its own
        setup.publish("en", item("astana-9", "en", setup.run))
        clock.now = at("astana-9", "en") + timedelta(minutes=2)
        assert await setup.poll("en", clock.now) == 1
        setup.publish("ru", item("astana-9", "ru", setup.run))
        clock.now = at("astana-9", "ru") + timedelta(minutes=1)
        assert await setup.poll("ru", clock.now) == 0
        await sender.drain()
        sent = api.sent()
        assert len(sent) == 2 and "ninth Astana round" in sent[1].plain_text
        edits = [m for m in api.messages() if m.method == "editmessagetext"]
        assert len(edits) == 3 and edits[2].message_id == sent[1].message_id
        assert "TASS" in edits[2].plain_text and "SANA" not in edits[2].plain_text
        assert api.rejected() == [] and api.count_429 == 0

        # nothing lost: every report is in its story
        assert setup.store.story_of("desk", f"https://ru.news.example/{setup.run}/astana-8") == (
            f"https://en.news.example/{setup.run}/astana-8"
        )
    finally:
        await notifier.close()
        setup.store.close()


async def test_reply_mode_answers_the_first_alert(feed_server, write_config, api, sqlite_url):
    setup = Setup(feed_server, write_config, api, sqlite_url, "reply")
    start = at("lavrov-syria", "en") - timedelta(minutes=30)
    await first_poll_everywhere(setup, start)
    clock = Clock(start)
    notifier = TelegramNotifier(api.token, api.url)
    sender = Sender(setup.store, notifier, setup.ruleset.channels, clock=clock)
    try:
        setup.publish("en", item("astana-8", "en", setup.run))
        clock.now = at("astana-8", "en") + timedelta(minutes=1)
        await setup.poll("en", clock.now)
        setup.publish("ar", item("astana-8", "ar", setup.run))
        setup.publish("ru", item("astana-8", "ru", setup.run))
        clock.now = at("astana-8", "ru") + timedelta(minutes=1)
        assert await setup.poll("ar", clock.now) == 0
        assert await setup.poll("ru", clock.now) == 0
        await sender.drain()
        first, reply = api.sent()
        assert reply.params.get("reply_parameters") or reply.params.get("reply_to_message_id")
        assert str(first.message_id) in str(reply.params)
        assert reply.plain_text == "Also: \u2068SANA\u2069 · \u2068TASS\u2069"
        assert reply.disable_notification
        assert not [m for m in api.messages() if m.method == "editmessagetext"]
    finally:
        await notifier.close()
        setup.store.close()


@pytest.mark.parametrize("spelling", ["off", "'off'"])
async def test_off_keeps_one_alert_per_article(
    feed_server, write_config, api, sqlite_url, spelling
):
    setup = Setup(feed_server, write_config, api, sqlite_url, spelling)
    assert setup.settings.channels["desk"].stories == "off"
    start = at("astana-8", "en") - timedelta(minutes=30)
    await first_poll_everywhere(setup, start)
    notifier = TelegramNotifier(api.token, api.url)
    later = Clock(at("astana-8", "ru") + timedelta(minutes=3))
    sender = Sender(setup.store, notifier, setup.ruleset.channels, clock=later)
    try:
        for lang in OUTLETS:
            setup.publish(lang, item("astana-8", lang, setup.run))
            assert await setup.poll(lang, at("astana-8", "ru") + timedelta(minutes=1)) == 1
        # the old title check still holds: the same wire title under another link
        copy = report("astana-8", "en")
        setup.publish(
            "en",
            Item(copy["title"], f"<p>{copy['lead']}</p>", "https://mirror.example/x", "mirror-1"),
        )
        assert await setup.poll("en", at("astana-8", "ru") + timedelta(minutes=2)) == 0
        await sender.drain()
        assert len(api.sent()) == 3
        assert not [m for m in api.messages() if m.method == "editmessagetext"]
    finally:
        await notifier.close()
        setup.store.close()


async def test_an_edit_of_a_deleted_message_is_dropped_not_resent(
    feed_server, write_config, api, sqlite_url, caplog
):
    setup = Setup(feed_server, write_config, api, sqlite_url, "edit")
    start = at("astana-8", "en") - timedelta(minutes=30)
    await first_poll_everywhere(setup, start)
    clock = Clock(at("astana-8", "en") + timedelta(minutes=1))
    notifier = TelegramNotifier(api.token, api.url)
    sender = Sender(setup.store, notifier, setup.ruleset.channels, clock=clock)
    try:
        setup.publish("en", item("astana-8", "en", setup.run))
        await setup.poll("en", clock.now)
        await sender.drain()
        (first,) = api.sent()
        bot = api.bot()
        async with bot:  # an admin deletes the alert
            await bot.delete_message("@test_channel", first.message_id)
        setup.publish("ar", item("astana-8", "ar", setup.run))
        clock.now = at("astana-8", "ar") + timedelta(minutes=1)
        await setup.poll("ar", clock.now)
        await sender.drain()
        assert [r.description for r in api.rejected("editmessagetext")] == [
            "Bad Request: message to edit not found"
        ]
        assert "dropped" in caplog.text
        setup.publish("ru", item("astana-8", "ru", setup.run))
        clock.now += timedelta(minutes=5)
        await setup.poll("ru", clock.now)
        await sender.drain()
        assert len(api.sent()) == 1  # never resent as a new alert
        assert len(api.rejected("editmessagetext")) == 1  # and not retried
    finally:
        await notifier.close()
        setup.store.close()


async def test_a_429_on_an_edit_is_obeyed(feed_server, write_config, api, sqlite_url):
    setup = Setup(feed_server, write_config, api, sqlite_url, "edit")
    start = at("astana-8", "en") - timedelta(minutes=30)
    await first_poll_everywhere(setup, start)
    clock = Clock(at("astana-8", "en") + timedelta(minutes=1))
    notifier = TelegramNotifier(api.token, api.url)
    # unpaced: the pacer would hold the chat for the real 120 s; the retry time is stored
    sender = Sender(setup.store, notifier, setup.ruleset.channels, clock=clock, paced=False)
    try:
        setup.publish("en", item("astana-8", "en", setup.run))
        await setup.poll("en", clock.now)
        await sender.drain()
        setup.publish("ar", item("astana-8", "ar", setup.run))
        clock.now = at("astana-8", "ar") + timedelta(minutes=1)
        await setup.poll("ar", clock.now)
        api.fail_next("editMessageText", 429, description="Too Many Requests: retry after 120")
        await sender.drain()
        assert not [m for m in api.messages() if m.method == "editmessagetext"]
        clock.now += timedelta(seconds=90)  # before retry_after: still waiting
        await sender.drain()
        assert not [m for m in api.messages() if m.method == "editmessagetext"]
        clock.now += timedelta(seconds=40)
        await asyncio.wait_for(sender.drain(), 30)
        assert len([m for m in api.messages() if m.method == "editmessagetext"]) == 1
        assert api.count_429 == 1
    finally:
        await notifier.close()
        setup.store.close()


# ------------------------------------------------------------------ several workers

RACE_EVENTS = ("astana-8", "astana-9", "lavrov-syria", "truce-south", "truce-north", "quake-turkey")


def race_rules() -> str:
    """The labelled set's rules with the terms its reports of ``RACE_EVENTS`` matched."""
    terms: dict[str, list[str]] = {}
    for event in RACE_EVENTS:
        for r in EVENTS[event]["reports"]:
            for rule in r["rules"]:
                terms.setdefault(rule, [])
                terms[rule] += [t for t in r["terms"] if t not in terms[rule]]
    return "".join(
        f"  - {{name: {rule}, any: {json.dumps(words, ensure_ascii=False)}, notify: [desk]}}\n"
        for rule, words in terms.items()
    )


async def test_two_workers_racing_start_each_story_once(
    feed_server, write_config, api, database_url
):
    """Every report in its own feed, all polled at once by two workers (two stores,
    two connection pools): one message per event, every other outlet in its edit."""
    run = uuid.uuid4().hex[:8]
    feeds, outlets = [], {}
    for event in RACE_EVENTS:
        for r in EVENTS[event]["reports"]:
            feed_id = f"{event}-{r['lang']}"
            outlets[feed_id] = f"Outlet {len(outlets) + 1}"
            url = feed_server.add(
                f"/{run}/{feed_id}.xml",
                rss_feed(outlets[feed_id], [item(event, r["lang"], run)], language=r["lang"]),
            )
            feeds.append(
                f"  - {{id: {feed_id}, url: '{url}', name: {outlets[feed_id]}, backfill: all}}"
            )
    text = 'channels:\n  desk: {chat: "@test_channel"}\nfeeds:\n' + "\n".join(feeds)
    settings = load_settings(
        write_config(text + "\nrules:\n" + race_rules()), env={"DATABASE_URL": database_url}
    )
    ruleset = Ruleset.from_settings(settings)
    stores = [Store(database_url), Store(database_url)]
    stores[0].migrate()
    now = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # every report within the day
    try:
        async with (
            Fetcher(fetch_settings(settings)) as one,
            Fetcher(fetch_settings(settings)) as two,
        ):
            outcomes = await asyncio.gather(
                *(
                    poll_feed(
                        feed,
                        store=stores[n % 2],
                        fetcher=(one, two)[n % 2],
                        ruleset=lambda: ruleset,
                        now=now,
                    )
                    for n, feed in enumerate(settings.feeds)
                )
            )
        assert all(o.ok for o in outcomes)
        assert sum(o.alerts for o in outcomes) == len(RACE_EVENTS)
        queued = stores[0].due_alerts(now)
        assert len(queued) == len(RACE_EVENTS)
        by_event = {e: [a for a in queued if f"/{e}" in (a.link or "")] for e in RACE_EVENTS}
        assert all(len(alerts) == 1 for alerts in by_event.values()), by_event

        notifiers = [TelegramNotifier(api.token, api.url) for _ in stores]
        senders = [
            Sender(s, n, ruleset.channels, owner=f"w{i}", clock=lambda: now, paced=False)
            for i, (s, n) in enumerate(zip(stores, notifiers, strict=True))
        ]
        try:
            await asyncio.gather(*(s.drain() for s in senders))
            await asyncio.gather(*(s.drain() for s in senders))
        finally:
            for notifier in notifiers:
                await notifier.close()
        sent = api.sent()
        assert len(sent) == len(RACE_EVENTS)
        final = {m.message_id: m.plain_text for m in api.messages()}  # last version wins
        for event in RACE_EVENTS:
            (message,) = [m for m in sent if f"/{event}" in str(m.entities)]
            names = {outlets[f"{event}-{r['lang']}"] for r in EVENTS[event]["reports"]}
            also = final[message.message_id].rsplit("Also: ", 1)[1]
            listed = {n.strip("\u2068\u2069") for n in also.split(" · ")}
            assert len(listed) == len(names) - 1 and listed < names, (event, also)
        assert api.rejected() == []
    finally:
        for store in stores:
            store.close()


async def test_a_digest_lists_a_story_once_with_its_sources(
    feed_server, write_config, api, sqlite_url
):
    from monitor.worker import flush_digests

    setup = Setup(feed_server, write_config, api, sqlite_url, "edit, mode: digest, every: 1h")
    start = at("astana-8", "en") - timedelta(minutes=30)
    await first_poll_everywhere(setup, start)
    clock = Clock(at("astana-8", "ru") + timedelta(minutes=1))
    notifier = TelegramNotifier(api.token, api.url)
    sender = Sender(setup.store, notifier, setup.ruleset.channels, clock=clock, paced=False)
    try:
        for lang in OUTLETS:
            setup.publish(lang, item("astana-8", lang, setup.run))
            await setup.poll(lang, clock.now)
        setup.publish("en", item("astana-9", "en", setup.run))
        await setup.poll("en", clock.now)
        await sender.drain()
        assert api.messages() == []  # held for the digest
        clock.now += timedelta(hours=1)
        assert flush_digests(setup.store, dict(setup.ruleset.channels), "w", clock.now) == 1
        await sender.drain()
        (digest,) = api.sent()
        lines = digest.plain_text.split("\n")
        assert len(lines) == 3  # the header and one line per story
        assert "Eighth round of Astana talks" in lines[1]
        assert lines[1].endswith("Also: \u2068SANA\u2069 · \u2068TASS\u2069")
        assert "ninth Astana round" in lines[2] and "Also" not in lines[2]
        assert not [m for m in api.messages() if m.method == "editmessagetext"]
    finally:
        await notifier.close()
        setup.store.close()


def test_two_monitor_run_workers_on_postgresql(tmp_path, feed_server, postgres_url):
    """Real ``monitor run`` processes sharing feeds and channels: each event one message,
    and its last edit names every other outlet (edits paced, so this waits up to a minute
    or two)."""
    from .test_scale import start_worker, stop, wait_until

    events = ("astana-8", "lavrov-syria", "quake-turkey")
    api = FakeBotApi().start()
    try:
        api.add_chat("@test_channel", "channel")
        run = uuid.uuid4().hex[:8]
        lines = ["defaults:\n  interval: 2s\n  backfill: all\n  timeout: 5s\n"]
        lines.append("telegram:\n  commands: false\n")  # no getUpdates between the two
        lines.append('channels:\n  desk: {chat: "@test_channel"}\nfeeds:\n')
        names = {}
        for event in events:
            for r in EVENTS[event]["reports"]:
                feed_id = f"{event}-{r['lang']}"
                names[feed_id] = f"Outlet{len(names) + 1}"
                url = feed_server.add(
                    f"/{run}/{feed_id}.xml",
                    rss_feed(names[feed_id], [item(event, r["lang"], run)], language=r["lang"]),
                )
                lines.append(f"  - {{id: {feed_id}, url: '{url}', name: {names[feed_id]}}}\n")
        assert set(events) <= set(RACE_EVENTS)  # race_rules() covers their terms
        lines.append("rules:\n" + race_rules())
        config = tmp_path / "monitor.yaml"
        config.write_text("".join(lines), encoding="utf-8")
        logs = [tmp_path / f"worker{n}.log" for n in range(2)]
        workers = [start_worker(config, postgres_url, api, log) for log in logs]

        def complete() -> bool:
            final = {m.message_id: m.plain_text for m in api.messages()}
            return len(api.sent()) >= len(events) and all(
                "Also: " in text and text.rsplit("Also: ", 1)[1].count("Outlet") == 2
                for text in final.values()
            )

        try:
            wait_until(complete, 150, "one message per event naming every other outlet")
            time.sleep(2)  # a duplicate, if any, would arrive now
        finally:
            took = stop(workers)
        assert len(api.sent()) == len(events), [m.plain_text[:80] for m in api.sent()]
        assert api.rejected() == [] and api.count_429 == 0
        edits = [m for m in api.messages() if m.method == "editmessagetext"]
        assert len(edits) <= 2 * len(events)  # paced: a wave is one or two edits, not one each
        assert [w.returncode for w in workers] == [0, 0], [log.read_text()[-2000:] for log in logs]
        assert max(took) < 10
    finally:
        api.stop()
