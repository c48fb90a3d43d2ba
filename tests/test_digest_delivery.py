"""Digests, hourly caps, quiet hours and priority through the real sender and Bot API client."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from monitor.config import load_settings
from monitor.deliver.notifier import TelegramNotifier
from monitor.deliver.sender import Sender
from monitor.pipeline import Ruleset
from monitor.storage import Store
from monitor.worker import delivery_channels, flush_digests, run_once
from tests.fakes.feedserver import Item, rss_feed

TITLES = [f"Astana round {n}: delegations arrive" for n in range(4)]


def setup(
    write_config, feed_server, botapi, monkeypatch, sqlite_url, channel: str, urgent: bool = False
) -> object:
    items = [
        Item(t, f"<p>{t}.</p>", f"https://n.example/{uuid.uuid4().hex}", f"g{n}")
        for n, t in enumerate(TITLES)
    ]
    url = feed_server.add(f"/{uuid.uuid4().hex}.xml", rss_feed("Wire", items))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", botapi.token)
    monkeypatch.setenv("TELEGRAM_API_URL", botapi.url)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    urgent_rule = "  - {name: urgent, any: ['round 3'], priority: high, notify: [desk]}\n"
    return load_settings(
        write_config(
            f"channels:\n  desk: {{chat: '@test_channel', {channel}}}\n"
            f"feeds:\n  - {{id: wire, url: '{url}', backfill: all}}\n"
            "rules:\n  - {name: astana, any: [Astana], notify: [desk]}\n"
            + (urgent_rule if urgent else "")
        )
    )


def quiet_now(quiet: str) -> str:
    """Channel keys for quiet hours from an hour ago to an hour from now (UTC)."""
    now = datetime.now(UTC)
    start, end = ((now + timedelta(hours=h)).strftime("%H:%M") for h in (-1, 1))
    return f"quiet_hours: '{start}-{end}', quiet: {quiet}"


async def flush_and_send(settings, later: datetime):
    """Flush digests as the worker's job would at ``later``, then send what is due then."""
    store = Store(settings.database_url)
    channels = delivery_channels(settings, Ruleset.from_settings(settings))
    queued = flush_digests(store, channels, "test", later)
    notifier = TelegramNotifier(settings.telegram.token, settings.telegram.api_url)
    await notifier.start()
    stats = await Sender(store, notifier, channels, clock=lambda: later).drain()
    await notifier.close()
    store.close()
    return queued, stats


async def test_digest_channel_sends_one_message_per_period(
    write_config, feed_server, botapi, monkeypatch, sqlite_url
):
    settings = setup(
        write_config,
        feed_server,
        botapi,
        monkeypatch,
        sqlite_url,
        "mode: digest, every: 1h",
        urgent=True,
    )
    report = await run_once(settings)
    # only the high-priority article went out at once
    sent = botapi.sent("@test_channel")
    assert len(sent) == 1 and "Astana round 3" in sent[0].plain_text
    assert report.sent.held == 3
    queued, _ = await flush_and_send(settings, datetime.now(UTC) + timedelta(hours=1))
    assert queued == 1
    sent = botapi.sent("@test_channel")
    assert len(sent) == 2
    digest = sent[1].plain_text
    for title in TITLES[:3]:
        assert digest.count(title) == 1
    assert "Astana round 3" not in digest  # already sent on its own
    # nothing is held any more: a later flush queues nothing
    queued, _ = await flush_and_send(settings, datetime.now(UTC) + timedelta(hours=3))
    assert queued == 0 and len(botapi.sent("@test_channel")) == 2


async def test_hourly_cap_rolls_overflow_into_the_next_digest(
    write_config, feed_server, botapi, monkeypatch, sqlite_url
):
    settings = setup(write_config, feed_server, botapi, monkeypatch, sqlite_url, "max_per_hour: 2")
    report = await run_once(settings)
    assert report.sent.sent == 2 and report.sent.held == 2 and report.pending == 0
    queued, _ = await flush_and_send(settings, datetime.now(UTC) + timedelta(hours=1))
    assert queued == 1
    sent = botapi.sent("@test_channel")
    assert len(sent) == 3
    held_titles = [t for t in TITLES if not any(t in m.plain_text for m in sent[:2])]
    assert len(held_titles) == 2 and all(t in sent[2].plain_text for t in held_titles)


async def test_quiet_hours_silent_sends_without_sound(
    write_config, feed_server, botapi, monkeypatch, sqlite_url
):
    settings = setup(
        write_config, feed_server, botapi, monkeypatch, sqlite_url, quiet_now("silent")
    )
    await run_once(settings)
    sent = botapi.sent("@test_channel")
    assert len(sent) == 4 and all(m.disable_notification for m in sent)


async def test_quiet_hours_hold_keeps_alerts_for_later(
    write_config, feed_server, botapi, monkeypatch, sqlite_url
):
    now = datetime.now(UTC)
    settings = setup(write_config, feed_server, botapi, monkeypatch, sqlite_url, quiet_now("hold"))
    report = await run_once(settings)
    assert botapi.sent("@test_channel") == [] and report.sent.held == 4
    # still quiet: no digest yet
    queued, _ = await flush_and_send(settings, now + timedelta(minutes=30))
    assert queued == 0
    # after the quiet hours, one digest lists them all
    queued, _ = await flush_and_send(settings, now + timedelta(hours=2))
    assert queued == 1
    (digest,) = botapi.sent("@test_channel")
    assert all(t in digest.plain_text for t in TITLES)
