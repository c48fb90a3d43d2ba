"""Translation and images end to end: feed → pipeline → translator → outbox → Bot API.

Real parts only: the feed server, the translation stand-ins and the Bot API
stand-in on 127.0.0.1, python-telegram-bot, SQLite.
"""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

import pytest

from monitor import metrics
from monitor.config import load_settings
from monitor.deliver.notifier import ConsoleNotifier, TelegramNotifier
from monitor.deliver.sender import Sender
from monitor.exceptions import ConfigError, MonitorError, TranslateError
from monitor.models import Alert, Article, Channel, Hit, Match
from monitor.pipeline import UNTRANSLATED_NOTES, Candidate, Ruleset, translate_candidates
from monitor.render.alert import render_alert, summarize, translation_request
from monitor.storage import Store
from monitor.translate import Translation, build_translator
from monitor.worker import Worker, run_once
from tests.fakes.botapi import CAPTION_LENGTH_MAX
from tests.fakes.telegram_html import parse_telegram_html
from tests.fakes.translate_api import LIBRE_KEY, PHRASES, FakeTranslateApi

AR_TITLE = "محادثات جديدة في أستانا"
AR_SENTENCES = (
    "اجتمع الوفدان في أستانا يوم الجمعة.",
    "وقف إطلاق النار أول بند على جدول الأعمال.",
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the stand-in checks the signature only

CONFIG = """
translate:
  backend: libretranslate
  url: '{translate_url}'
  api_key_env: LT_TEST_KEY
  translate_timeout: {timeout}
channels:
  desk: {{chat: "@test_channel", translate_to: en{desk_extra}}}
  orig: {{chat: "@orig_channel"{orig_extra}}}
feeds:
  - {{id: wire, url: '{feed_url}', backfill: all}}
rules:
  - name: astana
    any: [Astana, أستانا]
    notify: [desk, orig]
"""


def feed(items: list[tuple[str, str, str, str | None]]) -> bytes:
    """RSS 2.0 with Media RSS: (guid, title, description, image URL or None) per item."""
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        "<title>Wire</title><link>https://news.example/</link>\n"
    ]
    for guid, title, description, image in items:
        out.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>https://news.example/{guid}</link>"
            f'<guid isPermaLink="false">{guid}</guid>'
            "<pubDate>Tue, 10 Feb 2026 09:30:00 GMT</pubDate>"
            f"<description>{escape(description)}</description>"
        )
        if image:
            out.append(f'<media:content url={quoteattr(image)} medium="image"/>')
        out.append("</item>\n")
    out.append("</channel></rss>\n")
    return "".join(out).encode("utf-8")


@pytest.fixture
def translate_api() -> Iterator[FakeTranslateApi]:
    with FakeTranslateApi() as server:
        yield server


@pytest.fixture
def setup(write_config, feed_server, botapi, translate_api, monkeypatch, sqlite_url):
    """Build settings for a feed of ``items``; Telegram only when ``telegram`` is set."""
    botapi.add_chat("@orig_channel", "channel", title="Originals")

    def make(items, *, timeout="20s", desk_extra="", orig_extra="", telegram=True):
        url = feed_server.add(f"/{uuid.uuid4().hex}.xml", feed(items))
        monkeypatch.setenv("LT_TEST_KEY", LIBRE_KEY)
        monkeypatch.setenv("DATABASE_URL", sqlite_url)
        if telegram:
            monkeypatch.setenv("TELEGRAM_BOT_TOKEN", botapi.token)
            monkeypatch.setenv("TELEGRAM_API_URL", botapi.url)
        else:
            monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
        text = CONFIG.format(
            translate_url=translate_api.url,
            timeout=timeout,
            feed_url=url,
            desk_extra=desk_extra,
            orig_extra=orig_extra,
        )
        return load_settings(write_config(text))

    return make


ARABIC = ("ar-1", AR_TITLE, " ".join(AR_SENTENCES), None)
ENGLISH = ("en-1", "New round of talks opens in Astana", "Delegations met in Astana.", None)


async def test_translated_and_untranslated_channels_side_by_side(
    setup, botapi, translate_api, caplog
):
    caplog.set_level(logging.DEBUG)
    settings = setup([ARABIC, ENGLISH])
    report = await asyncio.wait_for(run_once(settings), 60)
    assert report.sent.sent == 4 and botapi.rejected() == []

    desk = {m.plain_text.split("\n")[1]: m for m in botapi.sent("@test_channel")}
    translated = desk[AR_TITLE]  # the original title stays, as the link
    assert "🌐 " + PHRASES[AR_TITLE] in translated.plain_text
    assert PHRASES[AR_SENTENCES[0]] in translated.plain_text
    assert "Translated from" in translated.plain_text and "Arabic" in translated.plain_text
    assert "أستانا" in translated.plain_text.split("\n")[0]  # the original's hit term
    assert any(
        e["type"] == "text_link" and e["url"] == "https://news.example/ar-1"
        for e in translated.entities
    )
    units = translated.plain_text.encode("utf-16-le")  # entity offsets are UTF-16 units
    bold = [
        units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
        for e in translated.entities
        if e["type"] == "bold"
    ]
    assert PHRASES[AR_SENTENCES[0]] in bold  # the hit sentence, bolded whole
    english = desk["New round of talks opens in Astana"]
    assert "Translated" not in english.plain_text and "🌐" not in english.plain_text

    originals = {m.plain_text.split("\n")[1]: m for m in botapi.sent("@orig_channel")}
    assert set(originals) == set(desk)
    assert "🌐" not in originals[AR_TITLE].plain_text
    assert AR_SENTENCES[0] in originals[AR_TITLE].plain_text

    [request] = translate_api.requests("libretranslate")  # the English article is not sent
    assert request.body["q"] == [AR_TITLE, AR_SENTENCES[0]]  # what the alert shows
    assert LIBRE_KEY not in caplog.text


async def test_hanging_backend_costs_the_timeout_once_for_a_queue_of_alerts(setup, translate_api):
    translate_api.mode["libretranslate"] = "slow"
    items = [(f"ar-{n}", f"{AR_TITLE} {n}", f"{AR_SENTENCES[0]} {n}", None) for n in range(6)]
    settings = setup(items, timeout="1s", telegram=False)
    out = io.StringIO()
    # one at a time, six alerts would wait six timeouts; together they wait about one
    report = await asyncio.wait_for(run_once(settings, ConsoleNotifier(out)), 4.0)
    assert report.sent.sent == 12 and report.pending == 0
    printed = out.getvalue()
    assert printed.count("Not translated: the translation service did not answer in time") == 6
    assert printed.count("[orig → @orig_channel]") == 6


@pytest.mark.parametrize(
    ("mode", "note"),
    [
        ("500", "the translation service failed"),
        ("429", "the translation service asked us to slow down"),
    ],
)
async def test_backend_failure_sends_the_alert_untranslated_with_a_note(
    setup, botapi, translate_api, caplog, mode, note
):
    caplog.set_level(logging.DEBUG)
    translate_api.mode["libretranslate"] = mode
    translate_api.retry_after = "120"
    settings = setup([ARABIC])
    before = failures(mode)
    report = await asyncio.wait_for(run_once(settings), 60)
    assert report.sent.sent == 2
    [alert] = botapi.sent("@test_channel")
    assert f"Not translated: {note}" in alert.plain_text
    assert AR_SENTENCES[0] in alert.plain_text
    assert failures(mode) == before + 1  # counted in /metrics
    assert LIBRE_KEY not in caplog.text


def failures(mode: str) -> float:
    kind = {"500": "http_5xx", "429": "rate_limited"}[mode]
    value = metrics.REGISTRY.get_sample_value("monitor_translate_failures_total", {"kind": kind})
    return value or 0.0


class Clock:
    """Monotonic seconds the test moves by hand (the breaker's clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def candidates_for(n: int, tag: str, ruleset: Ruleset) -> list[Candidate]:
    out = []
    for i in range(n):
        art = replace(article(f"{AR_SENTENCES[0]} {tag}{i}"), key=f"{tag}{i}")
        out.append(ruleset.matches_for(art))
    return out


async def test_an_outage_costs_the_timeout_once_then_fails_fast(write_config, translate_api):
    path = write_config(
        f"""
        translate: {{backend: libretranslate, url: '{translate_api.url}', api_key_env: K,
                     translate_timeout: 1s}}
        channels:
          desk: {{chat: "@d", translate_to: en}}
        rules:
          - {{name: astana, any: [أستانا], notify: [desk]}}
        """
    )
    settings = load_settings(path, env={})
    ruleset = Ruleset.from_settings(settings)
    assert settings.translate is not None
    clock = Clock()
    translator = build_translator(settings.translate, {"K": LIBRE_KEY}, clock=clock)
    translate_api.mode["libretranslate"] = "slow"
    try:
        first = candidates_for(4, "a", ruleset)
        notes = await asyncio.wait_for(translate_candidates(first, ruleset, translator), 2.5)
        assert [n["desk"] for n in notes] == [UNTRANSLATED_NOTES["timeout"]] * 4
        sent = translate_api.count("libretranslate")
        assert 1 <= sent <= 4
        assert translator.stats().state == "open"
        # the next queue of alerts: no request, no wait
        later = candidates_for(5, "b", ruleset)
        notes = await asyncio.wait_for(translate_candidates(later, ruleset, translator), 0.5)
        assert [n["desk"] for n in notes] == [UNTRANSLATED_NOTES["circuit_open"]] * 5
        assert translate_api.count("libretranslate") == sent
        # after the open period one probe goes through; success closes the breaker
        translate_api.mode["libretranslate"] = "ok"
        clock.now += 31
        notes = await asyncio.wait_for(translate_candidates(later[:1], ruleset, translator), 5)
        assert isinstance(notes[0]["desk"], Translation)
        assert translator.stats().state == "closed"
    finally:
        await translator.aclose()


async def test_the_operator_hears_of_an_outage_once_per_change(
    write_config, translate_api, sqlite_url
):
    path = write_config(
        f"""
        telegram: {{admin_chat: "@ops"}}
        translate: {{backend: libretranslate, url: '{translate_api.url}', api_key_env: K,
                     translate_timeout: 1s}}
        channels:
          desk: {{chat: "@d", translate_to: en}}
        rules:
          - {{name: astana, any: [أستانا], notify: [desk]}}
        """
    )
    settings = load_settings(path, env={"DATABASE_URL": sqlite_url})
    assert settings.translate is not None
    ruleset = Ruleset.from_settings(settings)
    clock = Clock()
    worker = Worker(settings)
    worker.store = Store(sqlite_url)
    worker.store.migrate()
    worker.wake_sender = asyncio.Event()
    worker.translator = build_translator(settings.translate, {"K": LIBRE_KEY}, clock=clock)

    def operator_titles() -> list[str]:
        return [a.title for a in worker.store.recent_alerts(20) if a.channel == "_operator"]

    try:
        translate_api.mode["libretranslate"] = "500"
        for n in range(3):  # three polls while it is down: one report
            await translate_candidates(
                candidates_for(2, f"d{n}", ruleset), ruleset, worker.translator
            )
            await worker._operator_translate_change()
        assert operator_titles() == ["monitor: translation by libretranslate is failing"]
        translate_api.mode["libretranslate"] = "ok"
        clock.now += 301
        for n in range(2):
            await translate_candidates(
                candidates_for(1, f"u{n}", ruleset), ruleset, worker.translator
            )
            await worker._operator_translate_change()
        assert operator_titles() == [
            "monitor: translation by libretranslate works again",
            "monitor: translation by libretranslate is failing",
        ]
    finally:
        await worker.translator.aclose()
        worker.store.close()


def long_description(chars: int) -> str:
    """Distinct sentences, each with a hit, ``chars`` long in all."""
    sentences = [
        f"Delegation number {n} in Astana discussed point {n} of the ceasefire plan."
        for n in range(chars // 60 + 1)
    ]
    return " ".join(sentences)[:chars]


async def test_image_by_url_with_a_caption_at_the_limit(setup, botapi, feed_server):
    image = feed_server.add(f"/{uuid.uuid4().hex}.png", PNG, content_type="image/png")
    item = ("en-img", "Aid convoy reaches Astana talks venue", long_description(3000), image)
    long = ", summary_length: 3000"
    settings = setup([item], orig_extra=", images: true" + long, desk_extra=long)
    report = await asyncio.wait_for(run_once(settings), 60)
    assert report.sent.sent == 2 and botapi.rejected() == []
    [photo] = botapi.photos("@orig_channel")
    assert photo.params["photo"] == image
    assert CAPTION_LENGTH_MAX - 80 <= len(photo.plain_text) <= CAPTION_LENGTH_MAX
    assert photo.plain_text.startswith("🔔 Matched: ")
    assert botapi.sent("@orig_channel") == []
    [text] = botapi.sent("@test_channel")  # no images there: the full text alert
    assert len(text.plain_text) > CAPTION_LENGTH_MAX


@pytest.mark.parametrize(
    ("path", "content_type", "body", "reason"),
    [
        ("/missing-image.png", None, None, "failed to get HTTP URL content"),
        ("/not-an-image.png", "text/html", b"<html>hi</html>", "wrong type of the web page"),
    ],
)
async def test_an_image_telegram_cannot_fetch_falls_back_to_text_once(
    setup, botapi, feed_server, sqlite_url, path, content_type, body, reason
):
    path = f"{path}?{uuid.uuid4().hex}"
    if body is not None:
        image = feed_server.add(path.split("?")[0], body, content_type=content_type)
    else:
        image = feed_server.url(path)
    settings = setup(
        [("en-2", "Astana talks", "Delegations met.", image)], orig_extra=", images: true"
    )
    report = await asyncio.wait_for(run_once(settings), 60)
    assert report.sent.sent == 2 and report.pending == 0
    [refused] = botapi.rejected("sendphoto")
    assert reason in refused.description
    assert botapi.photos() == []
    [text] = botapi.sent("@orig_channel")
    assert "Astana talks" in text.plain_text
    again = await asyncio.wait_for(run_once(settings), 60)
    assert again.sent.sent == 0 and len(botapi.sent("@orig_channel")) == 1
    store = Store(sqlite_url)
    try:
        rows = [a for a in store.recent_alerts(10) if a.channel == "orig"]
        assert [(a.status, a.message_id) for a in rows] == [("sent", text.message_id)]
    finally:
        store.close()


def png_alert(n: int) -> Alert:
    return Alert(
        article_key=f"chart-{n}",
        feed_id="f",
        channel="desk",
        rules=("r",),
        html=f"<b>surge {n}</b>",
        text=f"surge {n}",
        story=f"chart-{n}",
        photo_png=PNG,
        caption=f"<b>surge {n}</b> chart",
    )


async def test_png_bytes_are_uploaded_as_a_photo(botapi, sqlite_url):
    store = Store(sqlite_url)
    store.migrate()
    now = datetime.now(UTC)
    store.queue_alert(png_alert(1), now)
    notifier = TelegramNotifier(botapi.token, botapi.url)
    channels = {"desk": Channel("desk", "@test_channel")}
    try:
        stats = await asyncio.wait_for(Sender(store, notifier, channels).drain(), 30)
    finally:
        await notifier.close()
        store.close()
    assert stats.sent == 1
    [photo] = botapi.photos("@test_channel")
    assert photo.params["photo"] == PNG and photo.plain_text == "surge 1 chart"


async def test_console_saves_a_png_and_prints_its_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MONITOR_MEDIA_DIR", str(tmp_path / "media"))
    out = io.StringIO()
    notifier = ConsoleNotifier(out)
    delivery = await notifier.send_photo(
        7, "<b>c</b>", "surge 7", Channel("desk", "@d"), photo_png=PNG
    )
    assert delivery.ok
    saved = tmp_path / "media" / "alert-7.png"
    assert saved.read_bytes() == PNG
    assert f"🖼 {saved}" in out.getvalue() and "surge 7" in out.getvalue()
    url = await notifier.send_photo(
        8, "c", "surge 8", Channel("desk", "@d"), photo_url="https://example.org/a.jpg"
    )
    assert url.ok and "🖼 https://example.org/a.jpg" in out.getvalue()


# --------------------------------------------------------------------- pure parts


def article(summary: str, content: str = "", language: str = "ar", image: str | None = None):
    return Article(
        key="k",
        feed_id="f",
        title=AR_TITLE,
        summary=summary,
        content=content,
        link="https://news.example/k",
        language=language,
        image=image,
    )


def hits(art: Article, term: str) -> list[Hit]:
    out = []
    for field in ("title", "summary", "content"):
        text = art.field_text(field)
        at = text.find(term)
        while at >= 0:
            out.append(Hit(term, term, field, at, at + len(term)))
            at = text.find(term, at + len(term))
    return out


LEAD_FIRST = " ".join(reversed(AR_SENTENCES))  # a lead without a hit, then a hit sentence


def test_a_translation_that_does_not_line_up_is_not_shown() -> None:
    art = article(LEAD_FIRST)
    matches = [Match("astana", tuple(hits(art, "أستانا")))]
    channel = Channel("desk", "@d", translate_to="en")
    title, sentences = translation_request(art, matches, channel)
    assert title == AR_TITLE and sentences == tuple(reversed(AR_SENTENCES))
    wrong = Translation("T", ("only one",), "en", "ar", "libretranslate")
    alert = render_alert(art, matches, channel, translation=wrong)
    assert "only one" not in alert.text and AR_SENTENCES[1] in alert.text
    assert "Not translated" in alert.text


@pytest.mark.parametrize(
    ("translated", "bold"),
    [
        # the hit word left as it was (a name): only it is bold
        ("Talks resumed in أستانا on Friday.", ["أستانا"]),
        # no alignment: the whole hit sentence is bold, never a guessed word
        ("The two delegations met on Friday.", ["The two delegations met on Friday."]),
    ],
)
def test_hits_are_carried_over_sentence_by_sentence(translated: str, bold: list[str]) -> None:
    art = article(LEAD_FIRST)
    matches = [Match("astana", tuple(hits(art, "أستانا")))]
    channel = Channel("desk", "@d", translate_to="en")
    t = Translation("New talks", ("A ceasefire first.", translated), "en", "ar", "deepl")
    alert = render_alert(art, matches, channel, translation=t)
    plain, entities = parse_telegram_html(alert.html)
    units = plain.encode("utf-16-le")  # entity offsets are UTF-16 units
    summary_start = len(plain[: plain.index("A ceasefire first.")].encode("utf-16-le")) // 2
    shown = [
        units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
        for e in entities
        if e["type"] == "bold" and e["offset"] >= summary_start
    ]
    assert shown == bold
    assert "A ceasefire first." in plain  # a sentence without hits stays plain


@pytest.mark.parametrize(
    ("summary", "content"),
    [
        # the description is the content cut short
        (
            "The delegations met in Astana on Friday to discuss the ceasefire and the…",
            "The delegations met in Astana on Friday to discuss the ceasefire and the aid.",
        ),
        (
            "The delegations met in Astana on Friday to discuss the ceasefire and the...",
            "The delegations met in Astana on Friday to discuss the ceasefire and the aid.",
        ),
        # the description is whole, the content extends the sentence
        (
            "The delegations met in Astana on Friday.",
            "The delegations met in Astana on Friday, officials said after the meeting.",
        ),
    ],
)
def test_a_sentence_and_its_truncated_copy_are_quoted_once(summary: str, content: str) -> None:
    art = replace(article(summary, content, "en"), title="Talks")
    matches = [Match("astana", tuple(hits(art, "Astana")))]
    text = "".join(s.text for s in summarize(art, matches, 600))
    assert text.count("Friday") == 1
    assert text.count("Astana") == 1


def test_caption_is_none_when_the_fixed_parts_cannot_fit() -> None:
    art = replace(article("Astana talks resumed.", language="en"), image="https://e.org/a.png")
    rules = [Match(f"rule-{n:03d}-" + "x" * 50, tuple(hits(art, "Astana"))) for n in range(30)]
    channel = Channel("c", "@c", images=True)
    alert = render_alert(art, rules, channel)
    assert alert.caption is not None and alert.photo_url == "https://e.org/a.png"
    plain, _ = parse_telegram_html(alert.caption)
    assert len(plain) <= CAPTION_LENGTH_MAX
    no_images = render_alert(art, rules, Channel("c", "@c"))
    assert no_images.caption is None and no_images.photo_url is None


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("translate_to: english!", "not a language code"),
        ("images: sometimes", "expected true or false"),
    ],
)
def test_channel_keys_are_validated_with_their_location(write_config, snippet, message):
    path = write_config(
        f"""
        translate: {{backend: deepl, api_key_env: DEEPL_KEY}}
        channels:
          desk:
            chat: "@d"
            {snippet}
        """
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert f"{path}:5:" in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("", "there is no top-level translate: block"),
        ("translate: {backend: yandex}", "expected libretranslate or deepl or openai"),
        ("translate: {backend: openai, api_key_env: K}", "backend openai needs 'model'"),
        ("translate: {backend: deepl, api_key_env: 'sk-123 secret'}", "names an environment"),
        ("translate: {backend: deepl, translate_timeout: 0s}", "longer than zero"),
    ],
)
def test_translate_block_is_validated(write_config, block, message):
    path = write_config(f'{block}\nchannels:\n  desk: {{chat: "@d", translate_to: en}}\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert message in str(err.value) and f"{path}:" in str(err.value)


def test_translate_settings_are_loaded(write_config):
    path = write_config(
        """
        translate:
          backend: openai
          url: http://127.0.0.1:9/v1
          model: small
          api_key_env: OPENAI_KEY
          translate_timeout: 5s
        channels:
          desk: {chat: "@d", translate_to: EN-gb, images: true}
        """
    )
    settings = load_settings(path, env={})
    assert settings.translate is not None
    assert settings.translate.timeout.total_seconds() == 5
    assert (settings.translate.backend, settings.translate.model) == ("openai", "small")
    desk = settings.channels["desk"]
    assert (desk.translate_to, desk.images) == ("en-GB", True)


def test_translate_error_is_in_the_error_tree() -> None:
    assert issubclass(TranslateError, MonitorError)
    from monitor import translate

    assert translate.TranslateError is TranslateError
