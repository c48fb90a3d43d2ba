"""Delivery through the real python-telegram-bot client to a strict Bot API stand-in."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from monitor.config import load_settings
from monitor.deliver.notifier import TelegramNotifier
from monitor.deliver.sender import Sender
from monitor.models import Alert, Article, Channel
from monitor.storage import Store
from monitor.worker import run_once
from tests.fakes.botapi import FakeBotApi, Pace
from tests.fakes.feedserver import ARABIC_ITEMS, ENGLISH_ITEMS, RUSSIAN_ITEMS, rss_feed

from .conftest import run_monitor

# ``stories: off``: these tests count one message per article (ar-1 and ru-1 report
# one event; grouping them is tests/test_story_delivery.py's subject)
CONFIG = """
channels:
  desk: {{chat: "@test_channel", stories: off}}
  kicked: {{chat: "@kicked_channel", stories: off}}
feeds:
  - {{id: wire, url: '{url}', backfill: all}}
rules:
  - name: astana
    any: [Astana, أستانا, Астана]
    notify: [desk]
  - name: lavrov
    any: [Lavrov, لافروف, Лавров]
    notify: [{lavrov_to}]
"""


def settings_for(write_config, feed_server, botapi, monkeypatch, sqlite_url, lavrov_to="desk"):
    url = feed_server.add(
        f"/{uuid.uuid4().hex}.xml", rss_feed("Wire", ARABIC_ITEMS + RUSSIAN_ITEMS + ENGLISH_ITEMS)
    )
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", botapi.token)
    monkeypatch.setenv("TELEGRAM_API_URL", botapi.url)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    return load_settings(write_config(CONFIG.format(url=url, lavrov_to=lavrov_to)))


async def test_alerts_reach_telegram_once_as_valid_html(
    write_config, feed_server, botapi, monkeypatch, sqlite_url
):
    settings = settings_for(write_config, feed_server, botapi, monkeypatch, sqlite_url)
    report = await run_once(settings)
    sent = botapi.sent("@test_channel")
    # ar-1, ru-1, ru-2, en-1 mention Astana (ar-1 and ru-1 also Lavrov): one message each
    assert len(sent) == 4 and report.sent.sent == 4
    assert botapi.rejected() == [] and botapi.count_429 == 0
    assert all(m.parse_mode == "HTML" for m in sent)
    assert all(m.link_preview_options == {"is_disabled": True} for m in sent)
    assert any("لافروف يصل إلى أستانا" in m.plain_text for m in sent)
    lavrov_alert = next(m for m in sent if "Лавров прибыл" in m.plain_text)
    assert "astana" in lavrov_alert.plain_text and "lavrov" in lavrov_alert.plain_text

    store = Store(sqlite_url)
    assert {a.message_id for a in store.recent_alerts()} == {m.message_id for m in sent}
    store.close()

    report = await run_once(settings)
    assert len(botapi.sent("@test_channel")) == 4 and report.sent.sent == 0


async def test_kicked_channel_is_reported_and_does_not_hold_up_others(
    write_config, feed_server, botapi, monkeypatch, sqlite_url
):
    botapi.add_chat("@kicked_channel", "channel", state="kicked")
    settings = settings_for(
        write_config, feed_server, botapi, monkeypatch, sqlite_url, lavrov_to="kicked"
    )
    report = await run_once(settings)
    assert len(botapi.sent("@test_channel")) == 4
    assert botapi.sent("@kicked_channel") == []
    assert report.pending == 2  # held for the operator, not dropped
    store = Store(sqlite_url)
    health = store.channel_health()
    store.close()
    assert health["kicked"]["pending"] == 2 and health["kicked"]["broken_since"] is not None
    assert "bot was kicked from the channel chat" in health["kicked"]["last_error"]
    assert health["desk"]["sent"] == 4


def alert_for(channel: str, n: int) -> Alert:
    return Alert(
        article_key=f"{channel}-{n}",
        feed_id="f",
        channel=channel,
        rules=("r",),
        html=f"<b>alert {n}</b> for {channel}",
        text=f"alert {n}",
        story=f"story-{channel}-{n}",
    )


async def test_429_pauses_only_that_chat(sqlite_url):
    api = FakeBotApi(pace=Pace(group_limits=((2, 60.0),))).start()
    try:
        api.add_chat("@slow", "channel")
        api.add_chat("@fast", "channel")
        channels = {"slow": Channel("slow", "@slow"), "fast": Channel("fast", "@fast")}
        store = Store(sqlite_url)
        store.migrate()
        now = datetime.now(UTC)
        alerts = [alert_for("slow", n) for n in range(3)] + [alert_for("fast", n) for n in range(2)]
        store.commit_poll(
            feed_id="f",
            url="u",
            now=now,
            articles=[Article(key=a.article_key, feed_id="f", title="t") for a in alerts],
            alerts=alerts,
            status=200,
            etag=None,
            last_modified=None,
            content_hash=None,
            next_poll=now,
        )
        notifier = TelegramNotifier(api.token, api.url)
        await notifier.start()
        # the stand-in allows 2 a minute here, our pacer 20: the third message meets a 429
        stats = await Sender(store, notifier, channels).drain()
        await notifier.close()
        assert api.count_429 == 1
        assert len(api.sent("@slow")) == 2 and len(api.sent("@fast")) == 2
        assert stats.sent == 4 and stats.retried == 1
        (waiting,) = store.due_alerts(now.replace(year=2100))
        assert waiting.channel == "slow" and "retry after" in waiting.last_error
        assert (waiting.next_attempt - now).total_seconds() > 30  # retry_after obeyed
        store.close()
    finally:
        api.stop()


async def test_transient_server_error_is_retried(
    write_config, feed_server, botapi, monkeypatch, sqlite_url
):
    settings = settings_for(write_config, feed_server, botapi, monkeypatch, sqlite_url)
    botapi.fail_next("sendMessage", 502)
    report = await run_once(settings)
    assert report.sent.sent == 4 and report.sent.retried == 1 and report.pending == 0
    assert len(botapi.sent("@test_channel")) == 4


async def test_token_never_reaches_the_logs(
    write_config, feed_server, botapi, monkeypatch, sqlite_url, caplog
):
    settings = settings_for(write_config, feed_server, botapi, monkeypatch, sqlite_url)
    caplog.set_level(logging.DEBUG)
    botapi.fail_next("sendMessage", "drop")
    await run_once(settings)
    assert caplog.records  # the run did log
    assert botapi.token not in caplog.text
    assert botapi.token.split(":")[1] not in caplog.text


def test_send_test_reports_what_telegram_said(botapi, write_config, sqlite_url):
    botapi.add_chat("@kicked_channel", "channel", state="kicked")
    path = write_config(
        'channels:\n  desk: {chat: "@test_channel"}\n  gone: {chat: "@kicked_channel"}\n'
    )
    env = {
        "TELEGRAM_BOT_TOKEN": botapi.token,
        "TELEGRAM_API_URL": botapi.url,
        "DATABASE_URL": sqlite_url,
    }
    ok = run_monitor("send-test", "--config", str(path), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "sent a sample alert to Telegram chat @test_channel" in ok.stdout
    assert len(botapi.sent("@test_channel")) == 1
    refused = run_monitor("send-test", "--config", str(path), "--channel", "gone", env=env)
    assert refused.returncode == 1
    assert "Forbidden: bot was kicked from the channel chat" in refused.stderr
    assert botapi.token not in refused.stderr + refused.stdout


def test_a_refused_token_is_one_clear_error(botapi, write_config, sqlite_url):
    path = write_config('channels:\n  desk: {chat: "@test_channel"}\n')
    env = {
        "TELEGRAM_BOT_TOKEN": "42:not-the-right-token",
        "TELEGRAM_API_URL": botapi.url,
        "DATABASE_URL": sqlite_url,
    }
    result = run_monitor("run", "--once", "--config", str(path), env=env)
    assert result.returncode == 1
    assert "TELEGRAM_BOT_TOKEN was rejected by Telegram" in result.stderr
    assert "Traceback" not in result.stderr and "not-the-right-token" not in result.stderr


async def test_unreachable_telegram_keeps_alerts_for_later(
    write_config, feed_server, botapi, monkeypatch, sqlite_url
):
    settings = settings_for(write_config, feed_server, botapi, monkeypatch, sqlite_url)
    dead = load_settings(
        settings.path,
        env={
            "TELEGRAM_BOT_TOKEN": botapi.token,
            "TELEGRAM_API_URL": "http://127.0.0.1:9",
            "DATABASE_URL": sqlite_url,
        },
    )
    from monitor import worker

    monkeypatch.setattr(worker, "ONCE_RETRY_WINDOW", worker.timedelta(seconds=0))
    report = await run_once(dead)
    assert report.sent.sent == 0 and report.pending == 4
    # Telegram is back: the same alerts, once each, when their retry is due (seconds)
    monkeypatch.setattr(worker, "ONCE_RETRY_WINDOW", worker.timedelta(seconds=90))
    report = await run_once(settings)
    assert report.sent.sent == 4 and len(botapi.sent("@test_channel")) == 4
