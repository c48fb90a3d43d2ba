"""Translation: the three backends against loopback stand-ins, the cache, the breaker.

Time is a parameter: the translator's clock is a ``Clock`` the tests move; the
timeout is real but small, and every call that could hang is wrapped in
``asyncio.wait_for`` with a generous bound, so a broken timeout fails the test
instead of hanging it. No assertion on wall-clock durations.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.exceptions import MonitorError
from monitor.translate import (
    MAX_INPUT_CHARS,
    DeepLBackend,
    LibreTranslateBackend,
    OpenAIBackend,
    TranslateError,
    TranslateSettings,
    Translator,
    _clean,
    build_translator,
    deepl_target,
    effective_language,
    normalize_language,
    parse_model_array,
)
from tests.fakes.translate_api import (
    DEEPL_KEY,
    LIBRE_KEY,
    MODEL,
    OPENAI_KEY,
    PHRASES,
    FakeTranslateApi,
    fake_translation,
)

BOUND = 10.0  # seconds any single call may take before the test calls it hung

AR_TITLE = "محادثات جديدة في أستانا"
AR_SENTENCES = [
    "اجتمع الوفدان في أستانا يوم الجمعة.",
    "وقف إطلاق النار أول بند على جدول الأعمال.",
]
RU_TITLE = "Новые переговоры в Астане"
RU_SENTENCES = ["Переговоры возобновились в Астане.", "Делегации обсудили режим прекращения огня."]
EN_TITLE = "Ceasefire talks resume in Astana"
EN_SENTENCES = ["Delegations met on Friday.", "A ceasefire was the first item, officials said."]

KEYS = {"libretranslate": LIBRE_KEY, "deepl": DEEPL_KEY, "openai": OPENAI_KEY}
ENV_NAMES = {"libretranslate": "LT_KEY", "deepl": "DEEPL_KEY", "openai": "OPENAI_KEY"}


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[FakeTranslateApi]:
    with FakeTranslateApi() as server:
        yield server


@pytest.fixture(scope="module")
def shared_api() -> Iterator[FakeTranslateApi]:
    """One stand-in for a property test's many examples."""
    with FakeTranslateApi() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(
    api: FakeTranslateApi,
    backend: str,
    clock: Clock,
    *,
    timeout: float = 5.0,
    key: str | None = "right",
    **kwargs: float,
) -> Translator:
    """A translator for ``backend`` pointed at the stand-in."""
    secret = KEYS[backend] if key == "right" else key
    if backend == "libretranslate":
        b: LibreTranslateBackend | DeepLBackend | OpenAIBackend = LibreTranslateBackend(
            api.url, secret
        )
    elif backend == "deepl":
        b = DeepLBackend(api.url, secret)
    else:
        b = OpenAIBackend(api.url + "/v1", secret, MODEL)
    return Translator(b, timeout=timeout, clock=clock, **kwargs)


async def call(t: Translator, title: str, sentences: list[str], source: str | None, target="en"):
    return await asyncio.wait_for(t.translate_alert_text(title, sentences, source, target), BOUND)


ALL = pytest.mark.parametrize("backend", ["libretranslate", "deepl", "openai"])


# ------------------------------------------------------------------------ pure parts


@pytest.mark.parametrize(
    ("code", "expected"),
    [("en", "en"), ("EN", "en"), (" ar ", "ar"), ("en_gb", "en-GB"), ("pt-br", "pt-BR"),
     ("zh-hans", "zh-Hans"), ("ckb", "ckb")],
)  # fmt: skip
def test_normalize_language(code: str, expected: str) -> None:
    assert normalize_language(code) == expected


@pytest.mark.parametrize("code", ["", "english", "e", "en-", "en GB", "12", "en-\x00", "ру"])
def test_normalize_language_refuses(code: str) -> None:
    with pytest.raises(ValueError, match="not a language code"):
        normalize_language(code)


@pytest.mark.parametrize(
    ("ours", "deepl"),
    [("en", "EN-US"), ("en-US", "EN-US"), ("en-GB", "EN-GB"), ("ru", "RU"), ("ar", "AR"),
     ("pt", "PT-PT"), ("pt-BR", "PT-BR"), ("zh", "ZH-HANS"), ("zh-TW", "ZH-HANT")],
)  # fmt: skip
def test_deepl_target(ours: str, deepl: str) -> None:
    assert deepl_target(ours) == deepl


@pytest.mark.parametrize(
    ("text", "declared", "expected"),
    [
        (AR_TITLE, "ar", "ar"),
        (AR_TITLE, None, "ar"),  # the script tells
        (AR_TITLE, "en", "ar"),  # an English edition tag on Arabic text: the script wins
        (AR_TITLE, "fa", "fa"),  # same script: the declaration is more precise
        (RU_TITLE, "uk", "uk"),
        (RU_TITLE, "ar-SY", "ru"),
        (EN_TITLE + " and the talks", "ar", "en"),
        (EN_TITLE, "fr", "fr"),  # both Latin: trust the feed
        ("2026 · 12 · 07", "ru", "ru"),  # no letters: the declaration
        ("2026 · 12 · 07", None, None),
    ],
)
def test_effective_language(text: str, declared: str | None, expected: str | None) -> None:
    assert effective_language(text, declared) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('["a", "b"]', ("a", "b")),
        ('  ["a", "b"]\n', ("a", "b")),
        ('```json\n["a", "b"]\n```', ("a", "b")),
        ('```\n["a", "b"]\n```', ("a", "b")),
        ('<think>\nThe user wants English.\n</think>\n\n["a", "b"]', ("a", "b")),
    ],
)
def test_parse_model_array_accepts(content: str, expected: tuple[str, ...]) -> None:
    assert parse_model_array(content, 2) == expected


@pytest.mark.parametrize(
    "content",
    [
        'Here you go: ["a", "b"]',
        '["a"]',
        '["a", "b", "c"]',
        '["a", 2]',
        '{"translations": ["a", "b"]}',
        '["a", "b"] I hope this helps',
        '```json\n["a", "b"]\n``` and more',
        "[" * 100_000,
        "<think>" + "x" * 100_000,
        '["a", "b"]<think>late</think>',
        "",
    ],
)
def test_parse_model_array_refuses(content: str) -> None:
    with pytest.raises(ValueError):
        parse_model_array(content, 2)


@given(st.text())
def test_clean_text_is_safe_json_for_any_server(text: str) -> None:
    cleaned = _clean(text)
    cleaned.encode("utf-8")  # no lone surrogates
    assert "\x00" not in cleaned
    assert json.loads(json.dumps(cleaned)) == cleaned


def test_requests_have_the_documented_shapes() -> None:
    lt = LibreTranslateBackend("http://h:5000/", "k1").build(["a", "b"], "ar", "en")
    assert lt.url == "http://h:5000/translate"
    assert lt.body == {"q": ["a", "b"], "source": "ar", "target": "en", "format": "text",
                       "api_key": "k1"}  # fmt: skip
    auto = LibreTranslateBackend("http://h/translate", None).build(["a"], None, "en")
    assert auto.url == "http://h/translate"
    assert auto.body == {"q": ["a"], "source": "auto", "target": "en", "format": "text"}

    dl = DeepLBackend(None, "abc:fx").build(["a"], "ru", "en")
    assert dl.url == "https://api-free.deepl.com/v2/translate"
    assert dl.headers["Authorization"] == "DeepL-Auth-Key abc:fx"
    assert dl.body == {"text": ["a"], "target_lang": "EN-US", "source_lang": "RU"}
    assert DeepLBackend(None, "abc").url == "https://api.deepl.com/v2/translate"
    assert "source_lang" not in DeepLBackend(None, "abc").build(["a"], None, "en-GB").body

    oa = OpenAIBackend(None, "sk-1", "m").build(["x", "y"], "ar", "en")
    assert oa.url == "https://api.openai.com/v1/chat/completions"
    assert oa.headers["Authorization"] == "Bearer sk-1"
    assert set(oa.body) == {"model", "messages"}
    assert [m["role"] for m in oa.body["messages"]] == ["system", "user"]
    assert json.loads(oa.body["messages"][1]["content"]) == ["x", "y"]
    assert "English (en)" in oa.body["messages"][0]["content"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:11434/v1", "http://localhost:11434/v1/chat/completions"),
        ("http://localhost:8000", "http://localhost:8000/v1/chat/completions"),
        ("https://x.example/api/v1/", "https://x.example/api/v1/chat/completions"),
        ("https://x.example/v1/chat/completions", "https://x.example/v1/chat/completions"),
    ],
)
def test_openai_url_forms(url: str, expected: str) -> None:
    assert OpenAIBackend(url, None, "m").url == expected


# ------------------------------------------------------------- backends over HTTP


@ALL
async def test_arabic_alert_is_translated_in_one_aligned_request(
    api: FakeTranslateApi, clock: Clock, backend: str
) -> None:
    async with make(api, backend, clock) as t:
        result = await call(t, AR_TITLE, AR_SENTENCES, "ar")
    assert result.translated
    assert result.title == PHRASES[AR_TITLE]
    assert result.sentences == tuple(PHRASES[s] for s in AR_SENTENCES)
    assert (result.source, result.target, result.backend) == ("ar", "en", backend)
    assert api.count(backend) == 1


@ALL
async def test_russian_without_a_declared_language(
    api: FakeTranslateApi, clock: Clock, backend: str
) -> None:
    async with make(api, backend, clock) as t:
        result = await call(t, RU_TITLE, RU_SENTENCES, None)
    assert result.sentences == tuple(PHRASES[s] for s in RU_SENTENCES)
    assert result.source == "ru"


async def test_wire_shapes_seen_by_the_stand_ins(api: FakeTranslateApi, clock: Clock) -> None:
    for backend in ("libretranslate", "deepl", "openai"):
        async with make(api, backend, clock) as t:
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
    [lt] = api.requests("libretranslate")
    assert lt.body == {"q": [AR_TITLE, *AR_SENTENCES], "source": "ar", "target": "en",
                       "format": "text", "api_key": LIBRE_KEY}  # fmt: skip
    [dl] = api.requests("deepl")
    assert dl.body == {"text": [AR_TITLE, *AR_SENTENCES], "target_lang": "EN-US",
                       "source_lang": "AR"}  # fmt: skip
    assert dl.headers["Authorization"] == f"DeepL-Auth-Key {DEEPL_KEY}"
    [oa] = api.requests("openai")
    assert oa.body["model"] == MODEL
    assert json.loads(oa.body["messages"][-1]["content"]) == [AR_TITLE, *AR_SENTENCES]
    assert oa.headers["Authorization"] == f"Bearer {OPENAI_KEY}"


@pytest.mark.parametrize("backend", ["libretranslate", "deepl"])
async def test_a_declared_language_the_service_refuses_falls_back_to_detection(
    api: FakeTranslateApi, clock: Clock, backend: str
) -> None:
    """Persian-tagged Arabic text: the service refuses ``fa``, then detects ``ar``."""
    async with make(api, backend, clock) as t:
        result = await call(t, AR_TITLE, AR_SENTENCES, "fa")
    assert result.title == PHRASES[AR_TITLE]
    assert result.source == "ar"  # detectedLanguage / detected_source_language
    first, second = api.requests(backend)
    if backend == "libretranslate":
        assert (first.body["source"], second.body["source"]) == ("fa", "auto")
    else:
        assert first.body["source_lang"] == "FA"
        assert "source_lang" not in second.body
    assert t.stats().state == "closed"


async def test_british_english_for_deepl(api: FakeTranslateApi, clock: Clock) -> None:
    async with make(api, "deepl", clock) as t:
        result = await call(t, RU_TITLE, RU_SENTENCES, "ru", target="en-GB")
    assert result.target == "en-GB"
    assert api.requests("deepl")[0].body["target_lang"] == "EN-GB"


async def test_hostile_text_keeps_alignment(api: FakeTranslateApi, clock: Clock) -> None:
    sentences = ["Бомба\x00 в порту.", "\ud800 Сломанный суррогат.", "", "  ", "Конец."]
    async with make(api, "libretranslate", clock) as t:
        result = await call(t, RU_TITLE, sentences, "ru")
    assert len(result.sentences) == len(sentences)
    assert result.sentences[0] == "[en] Бомба  в порту."
    assert result.sentences[1] == "[en] \ufffd Сломанный суррогат."
    assert result.sentences[2:4] == ("", "")
    assert result.sentences[4] == "[en] Конец."
    assert api.requests("libretranslate")[0].body["q"][1:] == [
        "Бомба  в порту.", "\ufffd Сломанный суррогат.", "Конец."
    ]  # fmt: skip


_ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates, NUL included
_PIECE = st.one_of(
    st.text(_ANY_CHAR, max_size=40),
    st.sampled_from([*PHRASES, "", "  ", "Слово.", "كلمة."]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=_PIECE, sentences=st.lists(_PIECE, max_size=8), declared=st.sampled_from(
    [None, "ar", "ru", "en", "fr"]))  # fmt: skip
def test_alignment_holds_for_any_text(
    shared_api: FakeTranslateApi,
    title: str,
    sentences: list[str],
    declared: str | None,
) -> None:
    """Whatever the feed holds, each sentence maps to its own translation, or stays as is."""

    async def run() -> None:
        async with make(shared_api, "libretranslate", Clock()) as t:
            result = await call(t, title, sentences, declared)
        assert len(result.sentences) == len(sentences)
        if not result.translated:
            assert (result.title, result.sentences) == (title, tuple(sentences))
            return
        pairs = zip([title, *sentences], [result.title, *result.sentences], strict=True)
        for original, translated in pairs:
            cleaned = _clean(original)
            assert translated == (fake_translation(cleaned, "en") if cleaned else "")

    asyncio.run(run())


# --------------------------------------------------------------- what is not sent


@ALL
async def test_an_article_in_the_target_language_is_not_sent(
    api: FakeTranslateApi, clock: Clock, backend: str
) -> None:
    async with make(api, backend, clock) as t:
        result = await call(t, EN_TITLE, EN_SENTENCES, "en")
        same = await call(t, EN_TITLE, EN_SENTENCES, None)
        russian = await call(t, RU_TITLE, RU_SENTENCES, "ru", target="ru-RU")
        stats = t.stats()
    assert not result.translated and result.title == EN_TITLE
    assert result.sentences == tuple(EN_SENTENCES)
    assert not same.translated and not russian.translated
    assert api.count(backend) == 0
    assert stats.same_language == 3


async def test_arabic_text_tagged_english_is_still_translated(
    api: FakeTranslateApi, clock: Clock
) -> None:
    async with make(api, "deepl", clock) as t:
        result = await call(t, AR_TITLE, AR_SENTENCES, "en")
    assert result.translated and result.title == PHRASES[AR_TITLE]
    assert api.count("deepl") == 1


async def test_too_long_is_refused_without_a_request(api: FakeTranslateApi, clock: Clock) -> None:
    async with make(api, "libretranslate", clock) as t:
        with pytest.raises(TranslateError, match="too long"):
            await call(t, RU_TITLE, ["Слово " * (MAX_INPUT_CHARS // 6 + 1)], "ru")
        assert t.stats().state == "closed"
    assert api.count("libretranslate") == 0


# --------------------------------------------------------------------------- cache


async def test_same_text_same_target_is_one_request(api: FakeTranslateApi, clock: Clock) -> None:
    async with make(api, "deepl", clock) as t:
        first = await call(t, AR_TITLE, AR_SENTENCES, "ar")
        clock.now += 3600
        again = await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert again == first
        assert api.count("deepl") == 1
        assert t.stats().cache_hits == 3
        await call(t, AR_TITLE, AR_SENTENCES, "ar", target="ru")  # another target
        assert api.count("deepl") == 2
        clock.now += 86400  # a day later the cache has forgotten
        await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert api.count("deepl") == 3


async def test_three_channels_at_once_cost_one_request(api: FakeTranslateApi, clock: Clock) -> None:
    async with make(api, "libretranslate", clock) as t:
        results = await asyncio.gather(*(call(t, RU_TITLE, RU_SENTENCES, "ru") for _ in range(3)))
    assert len(set(results)) == 1
    assert api.count("libretranslate") == 1


async def test_only_new_sentences_are_sent(api: FakeTranslateApi, clock: Clock) -> None:
    """A channel with a longer summary sends only what the cache lacks, aligned."""
    more = [*AR_SENTENCES, "قال مسؤولون إن الجولة المقبلة ستعقد الشهر المقبل."]
    async with make(api, "libretranslate", clock) as t:
        await call(t, AR_TITLE, AR_SENTENCES, "ar")
        longer = await call(t, AR_TITLE, more, "ar")
    assert longer.sentences == tuple(PHRASES[s] for s in more)
    assert api.requests("libretranslate")[1].body["q"] == [more[-1]]


async def test_the_cache_is_bounded(api: FakeTranslateApi, clock: Clock) -> None:
    async with make(api, "libretranslate", clock, cache_size=3) as t:
        await call(t, AR_TITLE, AR_SENTENCES, "ar")
        await call(t, RU_TITLE, RU_SENTENCES, "ru")  # pushes the Arabic texts out
        await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert len(t._cache) == 3
    assert api.count("libretranslate") == 3


# --------------------------------------------------------- never late, never lost


@ALL
async def test_a_slow_backend_costs_the_timeout_once(
    api: FakeTranslateApi, clock: Clock, backend: str
) -> None:
    api.mode[backend] = "slow"
    async with make(api, backend, clock, timeout=1.0) as t:
        with pytest.raises(TranslateError, match="timed out") as caught:
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert caught.value.backend_down
        for _ in range(5):  # queued alerts fail fast, without a request
            with pytest.raises(TranslateError, match="paused"):
                await call(t, RU_TITLE, RU_SENTENCES, "ru")
        stats = t.stats()
    assert api.count(backend) == 1
    assert stats.state == "open" and stats.fast_failures == 5
    assert stats.failures == {"timeout": 1}


async def test_concurrent_alerts_are_not_serialised(api: FakeTranslateApi, clock: Clock) -> None:
    """Three different alerts against a hanging server: all three requests are in flight."""
    api.mode["deepl"] = "slow"
    alerts = [
        (AR_TITLE, AR_SENTENCES, "ar"),
        (RU_TITLE, RU_SENTENCES, "ru"),
        ("Pourparlers à Astana", ["Les délégations se sont réunies."], "fr"),
    ]
    async with make(api, "deepl", clock, timeout=1.0) as t:
        outcomes = await asyncio.gather(
            *(call(t, *alert) for alert in alerts), return_exceptions=True
        )
    assert all(isinstance(o, TranslateError) for o in outcomes)
    assert api.count("deepl") == 3  # a lock would have let the breaker stop calls 2 and 3
    assert round(t.stats().open_for) == 30  # one outage, counted once


@pytest.mark.parametrize(
    ("backend", "mode", "kind", "words"),
    [
        ("libretranslate", "500", "http_5xx", "server error 500"),
        ("deepl", "456", "quota", "quota exceeded"),
        ("deepl", "500", "http_5xx", "server error 500"),
        ("openai", "500", "http_5xx", "server error 500"),
        ("openai", "429", "rate_limited", "too many requests"),
    ],
)
async def test_breaker_opens_then_recovers(
    api: FakeTranslateApi, clock: Clock, backend: str, mode: str, kind: str, words: str
) -> None:
    api.mode[backend] = mode
    async with make(api, backend, clock) as t:
        with pytest.raises(TranslateError, match=words) as caught:
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert isinstance(caught.value, MonitorError)
        for _ in range(4):
            with pytest.raises(TranslateError):
                await call(t, RU_TITLE, RU_SENTENCES, "ru")
        assert api.count(backend) == 1
        assert t.stats().failures == {kind: 1}
        clock.now += 29
        with pytest.raises(TranslateError, match="paused"):
            await call(t, RU_TITLE, RU_SENTENCES, "ru")
        api.mode[backend] = "ok"
        clock.now += 2  # the open period (30 s) is over: one probe goes through
        assert t.stats().state == "half-open"
        result = await call(t, RU_TITLE, RU_SENTENCES, "ru")
        assert result.title == PHRASES[RU_TITLE]
        assert t.stats().state == "closed"
    assert api.count(backend) == 2


async def test_open_period_doubles_while_failures_continue(
    api: FakeTranslateApi, clock: Clock
) -> None:
    api.mode["libretranslate"] = "500"
    async with make(api, "libretranslate", clock) as t:
        for expected in (30, 60, 120):
            with pytest.raises(TranslateError, match="server error"):
                await call(t, AR_TITLE, AR_SENTENCES, "ar")
            assert round(t.stats().open_for) == expected
            clock.now += expected
    assert api.count("libretranslate") == 3


async def test_half_open_lets_one_probe_through(api: FakeTranslateApi, clock: Clock) -> None:
    api.mode["deepl"] = "500"
    async with make(api, "deepl", clock, timeout=1.0) as t:
        with pytest.raises(TranslateError):
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
        api.mode["deepl"] = "slow"
        clock.now += 31
        outcomes = await asyncio.gather(
            call(t, AR_TITLE, AR_SENTENCES, "ar"),
            call(t, RU_TITLE, RU_SENTENCES, "ru"),
            call(t, "Pourparlers à Astana", ["Les délégations se sont réunies."], "fr"),
            return_exceptions=True,
        )
    assert all(isinstance(o, TranslateError) for o in outcomes)
    assert api.count("deepl") == 2  # the first failure, then a single probe


@pytest.mark.parametrize("backend", ["libretranslate", "deepl", "openai"])
async def test_retry_after_is_obeyed(api: FakeTranslateApi, clock: Clock, backend: str) -> None:
    api.mode[backend] = "429"
    api.retry_after = "120"
    async with make(api, backend, clock) as t:
        with pytest.raises(TranslateError, match="too many requests") as caught:
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert caught.value.retry_after == 120
        api.mode[backend] = "ok"
        clock.now += 60  # past the usual 30 s, not past Retry-After
        with pytest.raises(TranslateError, match="paused"):
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert api.count(backend) == 1
        clock.now += 61
        await call(t, AR_TITLE, AR_SENTENCES, "ar")
    assert api.count(backend) == 2


@pytest.mark.parametrize(
    ("backend", "key", "status"),
    [
        ("libretranslate", "wrong-libre-key-123", 403),
        ("deepl", "wrong-deepl-key-123:fx", 403),
        ("openai", "sk-wrong-openai-key-123", 401),
    ],
)
async def test_a_refused_key_opens_the_breaker(
    api: FakeTranslateApi, clock: Clock, backend: str, key: str, status: int
) -> None:
    async with make(api, backend, clock, key=key) as t:
        with pytest.raises(TranslateError, match="API key was refused") as caught:
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert caught.value.status == status
        with pytest.raises(TranslateError, match="paused"):
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert t.stats().failures == {"auth": 1}
    assert api.count(backend) == 1


@pytest.mark.parametrize("mode", ["chatty", "short", "malformed", "length", "refusal"])
async def test_a_sloppy_model_is_a_failure_not_garbage(
    api: FakeTranslateApi, clock: Clock, mode: str
) -> None:
    api.mode["openai"] = mode
    async with make(api, "openai", clock) as t:
        with pytest.raises(TranslateError, match="malformed"):
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
        api.mode["openai"] = "ok"  # not an outage: the next alert is tried at once
        result = await call(t, AR_TITLE, AR_SENTENCES, "ar")
        assert t.stats().failures == {"malformed": 1}
    assert result.title == PHRASES[AR_TITLE]
    assert api.count("openai") == 2


async def test_a_fenced_model_answer_is_accepted(api: FakeTranslateApi, clock: Clock) -> None:
    api.mode["openai"] = "fenced"
    async with make(api, "openai", clock) as t:
        result = await call(t, RU_TITLE, RU_SENTENCES, "ru")
    assert result.sentences == tuple(PHRASES[s] for s in RU_SENTENCES)


@pytest.mark.parametrize("backend", ["libretranslate", "deepl"])
async def test_a_wrongly_shaped_answer_is_a_failure(
    api: FakeTranslateApi, clock: Clock, backend: str
) -> None:
    api.mode[backend] = "malformed"
    async with make(api, backend, clock) as t:
        with pytest.raises(TranslateError, match="malformed answer"):
            await call(t, AR_TITLE, AR_SENTENCES, "ar")


async def test_a_huge_answer_is_not_read_whole(api: FakeTranslateApi, clock: Clock) -> None:
    api.mode["libretranslate"] = "huge"
    async with make(api, "libretranslate", clock) as t:
        with pytest.raises(TranslateError, match="too large"):
            await call(t, AR_TITLE, AR_SENTENCES, "ar")


async def test_a_bad_target_is_an_error_not_a_traceback(
    api: FakeTranslateApi, clock: Clock
) -> None:
    async with make(api, "deepl", clock) as t:
        with pytest.raises(TranslateError, match="not a language code"):
            await call(t, AR_TITLE, AR_SENTENCES, "ar", target="English")
    assert api.count("deepl") == 0


async def test_unreachable_backend(clock: Clock) -> None:
    with FakeTranslateApi() as gone:
        url = gone.url
    async with Translator(LibreTranslateBackend(url, None), timeout=2, clock=clock) as t:
        with pytest.raises(TranslateError, match="cannot reach") as caught:
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
    assert caught.value.backend_down
    assert t.stats().failures == {"connect": 1}


async def test_unknown_model_is_refused(api: FakeTranslateApi, clock: Clock) -> None:
    backend = OpenAIBackend(api.url, OPENAI_KEY, "no-such-model")
    async with Translator(backend, timeout=5, clock=clock) as t:
        with pytest.raises(TranslateError, match="does not exist"):
            await call(t, AR_TITLE, AR_SENTENCES, "ar")


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("backend", "env", "problem"),
    [
        ("deepl", {}, "no API key"),
        ("openai", {"OPENAI_KEY": OPENAI_KEY}, None),
        ("libretranslate", {}, None),  # a self-hosted server may need no key
    ],
)
def test_build_translator(backend: str, env: dict[str, str], problem: str | None) -> None:
    settings = TranslateSettings(
        backend=backend,  # type: ignore[arg-type]
        url="http://127.0.0.1:9",
        model=MODEL if backend == "openai" else None,
        api_key_env=ENV_NAMES[backend],
        timeout=timedelta(seconds=7),
    )
    t = build_translator(settings, env)
    assert t.timeout == 7
    assert t.problem == problem or (problem and problem in (t.problem or ""))


async def test_missing_key_fails_fast_without_a_request(api: FakeTranslateApi) -> None:
    settings = TranslateSettings(backend="deepl", url=api.url, api_key_env="DEEPL_KEY")
    async with build_translator(settings, {}) as t:
        with pytest.raises(TranslateError, match="no API key"):
            await call(t, AR_TITLE, AR_SENTENCES, "ar")
    assert api.count("deepl") == 0


# ------------------------------------------------------------------ the key stays secret


@pytest.mark.parametrize(
    ("backend", "key"),
    [
        ("libretranslate", "wrong-libre-SECRET-4242"),
        ("deepl", "wrong-deepl-SECRET-4242:fx"),
        ("openai", "sk-wrong-SECRET-4242"),  # the stand-in quotes it back in its 401
    ],
)
async def test_the_key_never_appears(
    api: FakeTranslateApi, clock: Clock, caplog: pytest.LogCaptureFixture, backend: str, key: str
) -> None:
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    t = make(api, backend, clock, key=key, timeout=1.0)
    async with t:
        for mode in ("ok", "500", "slow"):  # refused key, then outages
            api.mode[backend] = mode
            clock.now += 10_000
            with pytest.raises(TranslateError) as caught:
                await call(t, AR_TITLE, AR_SENTENCES, "ar")
            err = caught.value
            shown += [str(err), repr(err), err.reason, repr(err.args), repr(err.__cause__)]
        shown += [repr(t), str(t.stats()), repr(t.backend), str(t.backend.key)]
    assert api.count(backend) >= 2
    assert caplog.records  # the failures were logged ...
    text = caplog.text + "\n".join(shown)
    assert key not in text  # ... without the key
    assert "SECRET" not in text
