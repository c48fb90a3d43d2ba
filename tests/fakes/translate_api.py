"""Stand-ins for LibreTranslate, DeepL API v2 and OpenAI chat completions on 127.0.0.1.

One aiohttp server in its own thread serves the three documented endpoints:

* ``POST /translate`` — LibreTranslate: JSON ``q`` (string or list), ``source``
  (a code or ``auto``), ``target``, ``format`` (``text``/``html``), ``api_key``;
  answers ``translatedText`` (a list for a list) and, for ``auto``,
  ``detectedLanguage`` ``{"confidence", "language"}`` (one per text for a list).
  Errors are ``{"error": "..."}``: 400 (missing parameter, unsupported
  language or format, no key when keys are required), 403 (invalid key), 429,
  500 — the codes LibreTranslate's ``app.py`` documents.
* ``POST /v2/translate`` — DeepL: header ``Authorization: DeepL-Auth-Key KEY``
  (else 403), JSON ``text`` (a list of 1–50 strings), ``target_lang`` (DeepL's
  codes, ``EN-US``/``EN-GB``…; bare ``EN`` accepted as DeepL still does),
  optional ``source_lang`` (no variants); answers ``translations[]`` with
  ``detected_source_language`` and ``text``. Errors are ``{"message": "..."}``:
  400, 403, 429 (too many requests), 456 (quota exceeded), 500.
* ``POST /v1/chat/completions`` — OpenAI: header ``Authorization: Bearer KEY``
  (else 401 ``invalid_api_key``), JSON ``model`` (unknown → 404
  ``model_not_found``) and ``messages`` (``role`` + string ``content``);
  answers ``choices[0].message.content`` with ``finish_reason``. Errors are
  ``{"error": {"message", "type", "param", "code"}}``. The "model" follows an
  instruction that names the target code in parentheses, e.g. ``English (en)``,
  and translates the JSON array of strings in the last user message.

Choices stricter than the real services (stated, not hidden): every API
refuses an unknown request field with 400 (OpenAI does; LibreTranslate and
DeepL ignore them), so our client cannot send anything undocumented; the 401
message of the OpenAI stand-in repeats the presented key in full (OpenAI masks
most of it), so a client that quotes error bodies must redact.

Translation is deterministic: a small dictionary of our own Arabic and Russian
sentences into English (``PHRASES``), and otherwise a visible transform
``"[en] text"``, so tests can check alignment. The source language is detected
from the script (Arabic, Cyrillic, else English).

Each API has a ``mode``: ``ok``, ``slow`` (hangs up to ``SLOW_LIMIT_SECONDS``,
longer than any test timeout), ``500``, ``429`` (with ``Retry-After`` when
``retry_after`` is set), ``456`` (DeepL), ``malformed`` (a 200 with the wrong
shape); for LibreTranslate ``huge`` (a 200 of several MiB); for OpenAI
``fenced`` (the array in a Markdown fence), ``chatty`` (a sentence before the
array), ``short`` (one translation missing), ``length`` (``finish_reason:
length``), ``refusal`` (``content: null``).

    with FakeTranslateApi() as api:
        api.url  # http://127.0.0.1:PORT
        api.mode["deepl"] = "456"
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

__all__ = [
    "DEEPL_KEY",
    "LIBRE_KEY",
    "MODEL",
    "OPENAI_KEY",
    "PHRASES",
    "FakeTranslateApi",
    "Seen",
    "fake_translation",
    "translate_api",
]

SLOW_LIMIT_SECONDS = 30.0
HUGE_CHARS = 2 * 1024 * 1024  # a translation larger than any client should read
LIBRE_KEY = "lt-key-0f3c9a-for-tests"
DEEPL_KEY = "9b1e27c4-deepl-test-key:fx"
OPENAI_KEY = "sk-test-5d2f8e1a7c-key"
MODEL = "fake-translator-1"

#: Our own sample sentences and their English translations.
PHRASES: dict[str, str] = {
    "محادثات جديدة في أستانا": "New talks in Astana",
    "اجتمع الوفدان في أستانا يوم الجمعة.": "The two delegations met in Astana on Friday.",
    "وقف إطلاق النار أول بند على جدول الأعمال.": "A ceasefire is the first item on the agenda.",
    "قال مسؤولون إن الجولة المقبلة ستعقد الشهر المقبل.": (
        "Officials said the next round will be held next month."
    ),
    "Новые переговоры в Астане": "New talks in Astana",
    "Переговоры возобновились в Астане.": "Talks resumed in Astana.",
    "Делегации обсудили режим прекращения огня.": "The delegations discussed the ceasefire.",
    "Следующий раунд пройдёт через месяц.": "The next round will take place in a month.",
}

_LIBRE_LANGUAGES = ("en", "ar", "ru", "fr", "de", "es", "uk")
_LIBRE_FIELDS = {"q", "source", "target", "format", "alternatives", "api_key", "secret"}
_DEEPL_SOURCES = {"AR", "BG", "DE", "EN", "ES", "FR", "IT", "PT", "RU", "TR", "UK", "ZH"}
_DEEPL_TARGETS = {
    "AR", "BG", "DE", "EN", "EN-GB", "EN-US", "ES", "FR", "IT", "PT", "PT-BR", "PT-PT",
    "RU", "TR", "UK", "ZH", "ZH-HANS", "ZH-HANT",
}  # fmt: skip
_DEEPL_FIELDS = {
    "text", "source_lang", "target_lang", "context", "show_billed_characters",
    "split_sentences", "preserve_formatting", "formality", "model_type", "glossary_id",
    "tag_handling", "outline_detection", "non_splitting_tags", "splitting_tags", "ignore_tags",
}  # fmt: skip
_OPENAI_FIELDS = {
    "model", "messages", "temperature", "top_p", "n", "stream", "stop", "max_tokens",
    "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "top_logprobs", "user", "seed", "response_format", "tools", "tool_choice",
    "parallel_tool_calls", "store", "metadata", "reasoning_effort", "service_tier",
}  # fmt: skip
_OPENAI_ROLES = {"system", "developer", "user", "assistant", "tool"}
_TARGET_IN_INSTRUCTION = re.compile(r"\(([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?)\)")


def detect(text: str) -> str:
    """The stand-ins' language detection: by script."""
    for ch in text:
        if "\u0600" <= ch <= "\u06ff":
            return "ar"
        if "\u0400" <= ch <= "\u04ff":
            return "ru"
    return "en"


def fake_translation(text: str, target: str) -> str:
    """What every stand-in answers for ``text``: the dictionary, else ``[target] text``."""
    if target.lower().startswith("en") and text in PHRASES:
        return PHRASES[text]
    return f"[{target.lower()}] {text}"


@dataclass(frozen=True)
class Seen:
    """One request as received: which API, its JSON body (None if not JSON), its headers."""

    api: str
    body: Any
    headers: Mapping[str, str]


class FakeTranslateApi:
    """The three translation APIs on one loopback port, in a background thread."""

    def __init__(
        self,
        *,
        libre_key: str | None = LIBRE_KEY,
        deepl_key: str = DEEPL_KEY,
        openai_key: str = OPENAI_KEY,
        models: tuple[str, ...] = (MODEL,),
    ) -> None:
        self.libre_key = libre_key  # None: a self-hosted server without keys
        self.deepl_key = deepl_key
        self.openai_key = openai_key
        self.models = models
        self.mode: dict[str, str] = {"libretranslate": "ok", "deepl": "ok", "openai": "ok"}
        self.retry_after: str | None = None
        self.seen: list[Seen] = []
        self.port = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    # -- public -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, api: str) -> list[Seen]:
        """Requests received by one API (``libretranslate``, ``deepl``, ``openai``)."""
        with self._lock:
            return [s for s in self.seen if s.api == api]

    def count(self, api: str) -> int:
        return len(self.requests(api))

    def start(self) -> FakeTranslateApi:
        self._thread = threading.Thread(target=self._run, name="translate-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("translation stand-in did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)

    def __enter__(self) -> FakeTranslateApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- server thread ------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/translate", self._libre)
        app.router.add_post("/v2/translate", self._deepl)
        app.router.add_post("/v1/chat/completions", self._openai)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _receive(self, api: str, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw) if request.content_type == "application/json" else None
        except ValueError:
            body = None
        with self._lock:
            self.seen.append(Seen(api, body, dict(request.headers)))
        return body

    async def _misbehave(self, api: str, error: Any) -> web.Response | None:
        """The response a non-``ok`` mode gives instead of a translation (None: translate)."""
        mode = self.mode[api]
        if mode == "slow":
            assert self._stop is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SLOW_LIMIT_SECONDS)
            return web.Response(status=504)
        if mode == "500":
            return web.json_response(error("internal error"), status=500)
        if mode == "429":
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.json_response(error("too many requests"), status=429, headers=headers)
        if mode == "456" and api == "deepl":
            return web.json_response(error("Quota Exceeded"), status=456)
        return None

    # -- LibreTranslate -----------------------------------------------------------------
    async def _libre(self, request: web.Request) -> web.Response:
        body = await self._receive("libretranslate", request)

        def error(message: str) -> dict[str, str]:
            return {"error": message}

        def bad(message: str, status: int = 400) -> web.Response:
            return web.json_response(error(message), status=status)

        if not isinstance(body, dict):
            return bad("Invalid JSON format")
        if self.libre_key is not None:
            key = body.get("api_key")
            if key and key != self.libre_key:
                return bad("Invalid API key", 403)
            if not key:
                return bad("Please contact the server operator to get an API key")
        unknown = sorted(set(body) - _LIBRE_FIELDS)
        if unknown:
            return bad(f"Invalid request: unknown parameter {unknown[0]}")
        q, source, target = body.get("q"), body.get("source"), body.get("target")
        for name, value in (("q", q), ("source", source), ("target", target)):
            if not value:
                return bad(f"Invalid request: missing {name} parameter")
        batch = isinstance(q, list)
        texts: list[Any] = q if isinstance(q, list) else [q]
        if not all(isinstance(t, str) for t in texts):
            return bad("Invalid request: q must be a string or a list of strings")
        assert isinstance(target, str)
        if source != "auto" and source not in _LIBRE_LANGUAGES:
            return bad(f"{source} is not supported")
        if target not in _LIBRE_LANGUAGES:
            return bad(f"{target} is not supported")
        fmt = body.get("format") or "text"
        if fmt not in ("text", "html"):
            return bad(f"{fmt} format is not supported")
        refused = await self._misbehave("libretranslate", error)
        if refused is not None:
            return refused
        if self.mode["libretranslate"] == "malformed":
            return web.json_response({"translatedText": "one string for a list"})
        if self.mode["libretranslate"] == "huge":
            return web.json_response({"translatedText": ["x" * HUGE_CHARS for _ in texts]})
        out = [fake_translation(t, target) for t in texts]
        result: dict[str, Any] = {"translatedText": out if batch else out[0]}
        if source == "auto":
            found = {"confidence": 90.0, "language": detect(" ".join(texts))}
            result["detectedLanguage"] = [found] * len(texts) if batch else found
        return web.json_response(result)

    # -- DeepL --------------------------------------------------------------------------
    async def _deepl(self, request: web.Request) -> web.Response:
        body = await self._receive("deepl", request)

        def error(message: str) -> dict[str, str]:
            return {"message": message}

        def bad(message: str, status: int = 400) -> web.Response:
            return web.json_response(error(message), status=status)

        if request.headers.get("Authorization") != f"DeepL-Auth-Key {self.deepl_key}":
            return bad("Forbidden", 403)
        if not isinstance(body, dict):
            return bad("Invalid request: expected a JSON object")
        unknown = sorted(set(body) - _DEEPL_FIELDS)
        if unknown:
            return bad(f"Unknown parameter '{unknown[0]}'.")
        texts = body.get("text")
        if not isinstance(texts, list) or not texts:
            return bad("Parameter 'text' not specified.")
        if len(texts) > 50 or not all(isinstance(t, str) for t in texts):
            return bad("Value for 'text' not supported.")
        target = body.get("target_lang")
        if not isinstance(target, str) or not target:
            return bad("Parameter 'target_lang' not specified.")
        if target.upper() not in _DEEPL_TARGETS:
            return bad("Value for 'target_lang' not supported.")
        source = body.get("source_lang")
        if source is not None and (
            not isinstance(source, str) or source.upper() not in _DEEPL_SOURCES
        ):
            return bad("Value for 'source_lang' not supported.")
        refused = await self._misbehave("deepl", error)
        if refused is not None:
            return refused
        if self.mode["deepl"] == "malformed":
            return web.json_response({"translations": [{"text": texts[0]}]})
        detected = (source or detect(" ".join(texts))).upper()
        return web.json_response(
            {
                "translations": [
                    {"detected_source_language": detected, "text": fake_translation(t, target)}
                    for t in texts
                ]
            }
        )

    # -- OpenAI -------------------------------------------------------------------------
    async def _openai(self, request: web.Request) -> web.Response:
        body = await self._receive("openai", request)

        def error(
            message: str, code: str | None = None, kind: str = "invalid_request_error"
        ) -> Any:
            return {"error": {"message": message, "type": kind, "param": None, "code": code}}

        def bad(message: str, status: int = 400, code: str | None = None) -> web.Response:
            return web.json_response(error(message, code), status=status)

        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:]:
            return bad(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth.",
                401,
            )
        if auth[7:] != self.openai_key:
            return bad(
                f"Incorrect API key provided: {auth[7:]}. You can find your API key in "
                "your account settings.",
                401,
                "invalid_api_key",
            )
        if not isinstance(body, dict):
            return bad("We could not parse the JSON body of your request.")
        unknown = sorted(set(body) - _OPENAI_FIELDS)
        if unknown:
            return bad(f"Unrecognized request argument supplied: {unknown[0]}")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return bad("you must provide a model parameter")
        if model not in self.models:
            return bad(
                f"The model `{model}` does not exist or you do not have access to it.",
                404,
                "model_not_found",
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return bad("Missing required parameter: 'messages'.")
        for n, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in _OPENAI_ROLES:
                return bad(f"Invalid value for 'messages[{n}].role'.")
            if not isinstance(m.get("content"), str):
                return bad(f"Invalid type for 'messages[{n}].content': expected a string.")
        refused = await self._misbehave(
            "openai", lambda msg: error(msg, "rate_limit_exceeded", "requests")
        )
        if refused is not None:
            return refused
        return web.json_response(self._complete(model, messages))

    def _complete(self, model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
        """What a well-behaved (or, by mode, a sloppy) translation model answers."""
        mode = self.mode["openai"]
        instruction = " ".join(
            m["content"] for m in messages if m["role"] in ("system", "developer")
        )
        found = _TARGET_IN_INSTRUCTION.search(instruction)
        target = found.group(1) if found else "en"
        user = [m["content"] for m in messages if m["role"] == "user"]
        try:
            texts = json.loads(user[-1]) if user else None
        except ValueError:
            texts = None
        finish, refusal = "stop", None
        content: str | None
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            content = "Please send the text to translate."
        else:
            out = [fake_translation(t, target) for t in texts]
            if mode == "short":
                out = out[:-1]
            content = json.dumps(out, ensure_ascii=False)
            if mode == "fenced":
                content = f"```json\n{content}\n```"
            elif mode == "chatty":
                content = f"Here is the translation:\n{content}"
            elif mode == "malformed":
                content = "{" + content
            elif mode == "length":
                content, finish = content[: len(content) // 2], "length"
            elif mode == "refusal":
                content, refusal = None, "I can't help with that."
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }


@pytest.fixture
def translate_api() -> Iterator[FakeTranslateApi]:
    """A started stand-in, fresh per test (modes and request logs do not leak)."""
    server = FakeTranslateApi().start()
    try:
        yield server
    finally:
        server.stop()
