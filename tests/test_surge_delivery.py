"""Surges end to end: a feed's history and a burst → counters → one photo alert.

The feed carries three days of history (publication times in the past), so the
first poll of a new deployment gives each rule its usual rate and does not
surge; a later burst of one rule alerts once, as a chart sent with sendPhoto;
the next poll, still in the burst, does not alert again; a steady rule never
does. ``monitor trend --png`` draws the same chart from the same counters.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.config import load_settings
from monitor.deliver.notifier import TelegramNotifier
from monitor.deliver.sender import Sender
from monitor.fetch import Fetcher
from monitor.pipeline import Ruleset, poll_feed
from monitor.storage import Store
from monitor.worker import fetch_settings
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feedserver import Item, rss_feed

from .conftest import run_monitor

NOW = datetime(2026, 11, 28, 12, 20, tzinfo=UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

CONFIG = """
channels:
  desk: {{chat: "@test_channel", stories: off}}
  markets: {{chat: "@markets", stories: off, surges: true}}
feeds:
  - {{id: wire, url: '{url}', name: Wire}}
rules:
  - {{name: quake, any: [earthquake], surge: true, notify: [desk]}}
  - {{name: grain, any: [wheat], notify: [markets]}}
  - {{name: quiet, any: [eclipse], notify: [desk]}}
"""


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def history(run: str) -> list[Item]:
    """Three days: wheat twice an hour (steady), an earthquake every six hours."""
    items = []
    for h in range(1, 72):
        moment = NOW - timedelta(hours=h)
        for k in range(2):
            items.append(news(run, f"Wheat prices move at the port, report {h}-{k}", moment))
        if h % 6 == 0:
            items.append(news(run, f"Small earthquake felt in the hills, report {h}", moment))
    return items


def news(run: str, title: str, moment: datetime) -> Item:
    slug = uuid.uuid4().hex[:10]
    return Item(
        title,
        f"<p>{title}.</p>",
        f"https://wire.example/{run}/{slug}",
        f"{run}-{slug}",
        format_datetime(moment),
    )


@pytest.fixture
def api():
    server = FakeBotApi().start()
    server.add_chat("@test_channel", "channel")
    server.add_chat("@markets", "channel")
    yield server
    server.stop()
    assert not server.bugs


async def test_a_burst_alerts_once_as_a_photo_and_a_steady_rule_never(
    feed_server, write_config, api, sqlite_url, tmp_path
):
    run = uuid.uuid4().hex[:8]
    items = history(run)
    path = f"/{run}/wire.xml"
    url = feed_server.add(path, rss_feed("Wire", items))
    config = write_config(CONFIG.format(url=url))
    settings = load_settings(config, env={"DATABASE_URL": sqlite_url})
    ruleset = Ruleset.from_settings(settings)
    assert ruleset.surge_rules == {"quake", "grain"}  # rule key and channel key
    store = Store(sqlite_url)
    store.migrate()
    store.register_rules(ruleset.surge_rules, NOW)  # a new deployment, today

    async def poll(now: datetime) -> int:
        async with Fetcher(fetch_settings(settings)) as fetcher:
            outcome = await poll_feed(
                settings.feeds[0], store=store, fetcher=fetcher, ruleset=lambda: ruleset, now=now
            )
        assert outcome.ok, outcome.error
        return outcome.alerts

    notifier = TelegramNotifier(api.token, api.url)
    clock = Clock(NOW)
    sender = Sender(store, notifier, ruleset.channels, clock=clock, paced=False)
    try:
        # a new deployment: three days of history arrive at once, nothing surges
        assert await poll(NOW) == 0  # backfill 0: old entries alert nothing
        counts = store.hourly_counts("grain", NOW - timedelta(days=4))
        assert sum(counts.values()) == 142 and max(counts.values()) == 2  # by publication hour
        await sender.drain()
        assert api.photos() == []

        # the burst: eight earthquake reports in twenty minutes; wheat as always
        burst = [
            news(run, f"Strong earthquake shakes the coast, report {n}", NOW + timedelta(minutes=n))
            for n in range(8)
        ]
        steady = [news(run, "Wheat prices move at the port again", NOW + timedelta(minutes=5))]
        feed_server.add(path, rss_feed("Wire", burst + steady + items))
        clock.now = NOW + timedelta(minutes=21)
        await poll(clock.now)
        await sender.drain()
        (photo,) = api.photos("@test_channel")
        assert photo.plain_text.startswith("📈 Surge: quake")
        assert "8 matches in the last hour" in photo.plain_text
        assert bytes(photo.params["photo"]).startswith(PNG_MAGIC)
        assert api.photos("@markets") == []  # the steady rule

        # the next poll, still inside the burst: no second alert
        more = [news(run, "Another earthquake aftershock, report 9", NOW + timedelta(minutes=25))]
        feed_server.add(path, rss_feed("Wire", more + burst + steady + items))
        clock.now = NOW + timedelta(minutes=30)
        await poll(clock.now)
        await sender.drain()
        assert len(api.photos()) == 1
        assert api.rejected() == []
    finally:
        await notifier.close()
        store.close()

    chart = tmp_path / "quake.png"
    result = run_monitor(
        "trend",
        "quake",
        "--since",
        "2d",
        "--png",
        str(chart),
        "--config",
        str(config),
        env={"DATABASE_URL": sqlite_url},
    )
    assert result.returncode == 0, result.stderr
    assert chart.read_bytes().startswith(PNG_MAGIC)
    assert "HOUR (UTC)" in result.stdout and f"chart written to {chart}" in result.stdout
    assert result.stdout.count("\n") >= 48  # an hour a line for two days


def test_trend_names_an_unknown_rule_clearly(write_config, sqlite_url):
    config = write_config('channels:\n  desk: {chat: "@d"}\n')
    result = run_monitor("trend", "nope", "--config", str(config), env={"DATABASE_URL": sqlite_url})
    assert result.returncode == 1
    assert "no rule named 'nope'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("rule", "muted", "channels"),
    [
        ("quake", (), ["desk"]),  # surge: true on the rule
        ("grain", (), ["markets"]),  # surges: true on its channel
        ("quiet", (), []),  # neither
        ("quake", ("rule:quake",), []),
        ("grain", ("channel:markets",), []),
        ("quake", ("channel:markets",), ["desk"]),
    ],
)
def test_surge_alerts_go_where_the_keys_say_unless_muted(write_config, rule, muted, channels):
    from monitor.trends import surge_channels

    settings = load_settings(write_config(CONFIG.format(url="https://wire.example/rss")), env={})
    assert surge_channels(Ruleset.from_settings(settings), rule, set(muted)) == channels
