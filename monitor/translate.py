"""Translate an alert's title and summary sentences, never late and never lost.

Three backends behind one small interface, each speaking its real HTTP API with
aiohttp (no SDK):

* ``libretranslate`` — ``POST {url}/translate`` with JSON ``q`` (a list),
  ``source`` (``auto`` when unknown), ``target``, ``format: text`` and
  ``api_key`` (only when one is set); answers ``translatedText`` (a list) and,
  for ``auto``, ``detectedLanguage`` (``{"language", "confidence"}`` per text).
* ``deepl`` — ``POST {url}/v2/translate``, header ``Authorization: DeepL-Auth-Key
  KEY``, JSON ``text`` (a list), ``target_lang``, optional ``source_lang``;
  answers ``translations[].text`` and ``translations[].detected_source_language``.
  Our ``en`` becomes ``EN-US`` (DeepL's bare ``EN`` target is deprecated);
  write ``translate_to: en-GB`` for British English. ``pt`` becomes ``PT-PT``,
  ``pt-BR`` stays ``PT-BR``. The default URL is ``https://api-free.deepl.com``
  for a key ending in ``:fx`` (a Free key), else ``https://api.deepl.com``.
* ``openai`` — any OpenAI-compatible ``POST …/v1/chat/completions`` with
  ``model`` and ``messages``, header ``Authorization: Bearer KEY``. The texts go
  as a JSON array; the instruction asks for a JSON array of translations and
  nothing else. The answer is parsed strictly (one optional Markdown code fence
  is the only wrapping accepted; the length must match): a malformed answer is
  a ``TranslateError``, never garbage shown to users.

What is translated: ``Translator.translate_alert_text(title, sentences,
source_lang, target)`` sends the title and the summary sentences in ONE request
and returns a ``Translation`` aligned one-to-one with them, so the renderer can
carry bold hits over sentence by sentence. An article already in the target
language (judged from its script, then its declared language) is not sent.
Each text is cached for a day per target (bounded LRU), and identical texts in
flight are shared, so a story sent to three channels costs one request.

Never late, never lost: every call is bounded by ``timeout`` (the config's
``translate_timeout``, 20 s by default) in total, retries included. A backend
that is slow, unreachable, refuses the key, is out of quota (DeepL 456), asks
us to slow down (429) or fails (5xx) raises ``TranslateError`` with a short
reason, and a circuit breaker then refuses further calls without a request for
an open period (30 s, doubling on each failure in a row up to 5 min, or the
server's ``Retry-After`` when longer), so an outage costs the delay once, not
once per queued alert. After the period one probe goes through; success closes
the breaker. A request-specific refusal (400, a malformed answer) is counted
but does not open the breaker. Calls run concurrently; there is no global lock.

The API key comes from the environment variable named by ``api_key_env`` and
never appears in a repr, a log line or an exception text (a backend's error
message is redacted before it is quoted).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import aiohttp

from monitor import __version__
from monitor.exceptions import TranslateError
from monitor.fetch import parse_retry_after
from monitor.text import guess_language, primary_subtag

__all__ = [
    "BACKENDS",
    "Backend",
    "BatchResult",
    "DeepLBackend",
    "LibreTranslateBackend",
    "OpenAIBackend",
    "TranslateError",
    "TranslateSettings",
    "TranslateStats",
    "Translation",
    "Translator",
    "build_translator",
    "deepl_target",
    "effective_language",
    "language_name",
    "normalize_language",
]

log = logging.getLogger(__name__)

BACKENDS = ("libretranslate", "deepl", "openai")
DEFAULT_TIMEOUT = 20.0
#: Caps on what one alert may send: DeepL takes at most 50 texts per request, and
#: an alert's title and summary are far below 5,000 characters.
MAX_PIECES = 50
MAX_INPUT_CHARS = 5000
#: A backend's answer is read up to this size; more is a malformed answer.
MAX_RESPONSE_BYTES = 1 << 20
CACHE_SIZE = 4096  # texts, per translator
CACHE_TTL = 86400.0  # seconds: "same text + target within a day → one request"
OPEN_PERIOD = 30.0  # seconds the breaker stays open after a first failure
MAX_OPEN_PERIOD = 300.0  # ... doubling per failure in a row up to this
MAX_RETRY_AFTER = 3600.0  # a larger Retry-After is read as this
_REASON_MAX = 160

_LANG_RE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z0-9]{2,8}))?$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_THINK_RE = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)  # reasoning models' preamble
_FENCE_RE = re.compile(r"^```[A-Za-z]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)

# Scripts of languages, so a declared "uk" is kept when the text "looks" Russian
# (Cyrillic) but a declared "ar" is overruled by a text in Latin letters.
_ARABIC_SCRIPT = frozenset({"ar", "fa", "ur", "ps", "ckb", "sd", "ug", "ku"})
_CYRILLIC_SCRIPT = frozenset({"ru", "uk", "bg", "sr", "be", "kk", "mk", "mn", "ky", "tg"})
_OTHER_SCRIPT = frozenset(
    {"zh", "ja", "ko", "he", "el", "hi", "th", "hy", "ka", "am", "bn", "ta", "te", "my"}
)
_LANGUAGE_NAMES = {
    "en": "English",
    "ar": "Arabic",
    "ru": "Russian",
    "uk": "Ukrainian",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "tr": "Turkish",
    "fa": "Persian",
    "he": "Hebrew",
    "zh": "Chinese",
    "ja": "Japanese",
}


# ----------------------------------------------------------------------- values


@dataclass(frozen=True)
class TranslateSettings:
    """The top-level ``translate:`` block, validated by the config loader."""

    backend: Literal["libretranslate", "deepl", "openai"]
    url: str | None = None  # None: the service's public URL (LibreTranslate has none)
    model: str | None = None  # openai only
    api_key_env: str | None = None  # the variable's NAME; the key never sits in YAML
    timeout: timedelta = timedelta(seconds=DEFAULT_TIMEOUT)


@dataclass(frozen=True)
class BatchResult:
    """One backend answer: a translation per text sent, in order."""

    texts: tuple[str, ...]
    detected: str | None  # source language the backend reports, lower-case base code


@dataclass(frozen=True)
class Translation:
    """An alert's title and sentences in ``target``, one-to-one with the originals.

    ``translated`` is False when the article was already in the target language:
    nothing was sent and ``title``/``sentences`` are the originals.
    """

    title: str
    sentences: tuple[str, ...]
    target: str
    source: str | None  # the language translated from, as detected or declared
    backend: str
    translated: bool = True


@dataclass(frozen=True)
class TranslateStats:
    """A snapshot of a translator's counters, for Prometheus and ``monitor channels``."""

    backend: str
    state: Literal["closed", "open", "half-open"]
    open_for: float  # seconds until the next probe is allowed (0 when closed)
    requests: int  # HTTP requests sent
    failures: Mapping[str, int]  # failed requests by kind: timeout, connect, http_5xx, ...
    fast_failures: int  # calls refused without a request while the breaker was open
    cache_hits: int  # texts answered from the cache (or shared with a call in flight)
    cache_misses: int  # texts sent
    same_language: int  # calls with nothing to send
    last_error: str  # short reason of the last failure ("" if none)


# ------------------------------------------------------------------- languages


def normalize_language(code: str) -> str:
    """``EN`` → ``en``, ``pt_br`` → ``pt-BR``; ``ValueError`` for anything else.

    The config loader uses it for ``translate_to``.
    """
    m = _LANG_RE.match(str(code).strip())
    if m is None:
        raise ValueError(f"not a language code: {str(code)[:40]!r} (write e.g. en, ar, en-GB)")
    base, region = m.group(1).lower(), m.group(2)
    if region is None:
        return base
    region = region.upper() if len(region) <= 3 else region.capitalize()
    return f"{base}-{region}"


def _base(code: str | None) -> str | None:
    if not code:
        return None
    return primary_subtag(code) or None


def _script_family(base: str) -> str:
    if base in _ARABIC_SCRIPT:
        return "arabic"
    if base in _CYRILLIC_SCRIPT:
        return "cyrillic"
    if base in _OTHER_SCRIPT:
        return "other"
    return "latin"


def effective_language(text: str, declared: str | None) -> str | None:
    """The language an article is in: the declared one unless its script disagrees.

    Feeds often declare the wrong language (an English edition tagged ``ar``),
    but the script of the text does not lie; within one script the declaration
    is more precise than a guess (``uk`` vs ``ru``).
    """
    base = _base(declared)
    guessed = guess_language(text)
    if guessed is None:
        return base
    if base is None:
        return guessed
    return base if _script_family(base) == _script_family(guessed) else guessed


def language_name(code: str | None) -> str:
    """``ar`` → ``Arabic`` (English names, for the alert's translation mark); else the code."""
    base = _base(code)
    if base is None:
        return "another language"
    return _LANGUAGE_NAMES.get(base, base)


def deepl_target(target: str) -> str:
    """DeepL's ``target_lang`` for our code: ``en`` → ``EN-US``, ``en-GB`` → ``EN-GB``."""
    norm = normalize_language(target)
    base, _, region = norm.partition("-")
    if base == "en":
        return "EN-GB" if region.upper() in ("GB", "UK") else "EN-US"
    if base == "pt":
        return "PT-BR" if region.upper() == "BR" else "PT-PT"
    if base == "zh":
        return "ZH-HANT" if region.upper() in ("HANT", "TW", "HK") else "ZH-HANS"
    return base.upper()


def _clean(text: str) -> str:
    """Text safe to put in JSON for any server: no lone surrogates, no control characters."""
    text = _SURROGATE_RE.sub("\ufffd", text)
    text = _CONTROL_RE.sub(" ", text)
    return unicodedata.normalize("NFC", text).strip()


# --------------------------------------------------------------------- backends


class _Secret:
    """Holds the API key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def get(self) -> str | None:
        return self._value

    def redact(self, text: str) -> str:
        if self._value and len(self._value) >= 4:
            text = text.replace(self._value, "***")
        return text

    def __repr__(self) -> str:
        return "<secret>" if self._value else "<no key>"

    __str__ = __repr__


@dataclass(frozen=True)
class _Request:
    url: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]


class Backend(Protocol):
    """Maps texts to one HTTP request and one answer back; no I/O of its own."""

    name: str
    key: _Secret
    sends_source: bool  # whether a declared source language goes into the request

    def problem(self) -> str | None:
        """Why no request can be made (e.g. a required key is missing), or None."""
        ...

    def build(self, texts: Sequence[str], source: str | None, target: str) -> _Request:
        """The request for ``texts`` (``source`` None: let the service detect it)."""
        ...

    def parse(self, body: Any, count: int, source: str | None) -> BatchResult:
        """The answer's translations; ``ValueError`` when it is not the documented shape."""
        ...

    def error_message(self, body: Any) -> str:
        """The service's own error text from an error body ("" if none)."""
        ...


def _join(base: str, suffixes: Sequence[str], path: str) -> str:
    base = base.rstrip("/")
    for suffix in suffixes:
        if base.endswith(suffix):
            return base[: -len(suffix)] + path
    return base + path


def _json_headers() -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"monitor/{__version__}",
    }


class LibreTranslateBackend:
    """LibreTranslate's ``POST /translate`` (self-hosted or libretranslate.com)."""

    name = "libretranslate"
    sends_source = True

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = _join(url, ("/translate",), "/translate")
        self.key = _Secret(api_key)

    def __repr__(self) -> str:
        return f"LibreTranslateBackend({self.url!r}, key={self.key!r})"

    def problem(self) -> str | None:
        return None  # a self-hosted server may need no key

    def build(self, texts: Sequence[str], source: str | None, target: str) -> _Request:
        body: dict[str, Any] = {
            "q": list(texts),
            "source": _base(source) or "auto",
            "target": target,
            "format": "text",
        }
        if self.key.get():
            body["api_key"] = self.key.get()
        return _Request(self.url, _json_headers(), body)

    def parse(self, body: Any, count: int, source: str | None) -> BatchResult:
        if not isinstance(body, dict):
            raise ValueError("the answer is not a JSON object")
        texts = body.get("translatedText")
        if not isinstance(texts, list) or len(texts) != count:
            raise ValueError("translatedText is not a list of one translation per text")
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("translatedText holds something other than text")
        detected = body.get("detectedLanguage")
        if isinstance(detected, list):  # one per text in a batch; the batch shares one
            detected = detected[0] if detected else None
        language = detected.get("language") if isinstance(detected, dict) else None
        found = _base(language) if isinstance(language, str) else None
        return BatchResult(tuple(texts), found or _base(source))

    def error_message(self, body: Any) -> str:
        return str(body.get("error", "")) if isinstance(body, dict) else ""


class DeepLBackend:
    """DeepL API v2 ``POST /v2/translate`` (Free or Pro, by the key's ``:fx`` suffix)."""

    name = "deepl"
    sends_source = True

    def __init__(self, url: str | None, api_key: str | None) -> None:
        self.key = _Secret(api_key)
        if not url:
            free = (api_key or "").endswith(":fx")
            url = "https://api-free.deepl.com" if free else "https://api.deepl.com"
        self.url = _join(url, ("/v2/translate", "/v2"), "/v2/translate")

    def __repr__(self) -> str:
        return f"DeepLBackend({self.url!r}, key={self.key!r})"

    def problem(self) -> str | None:
        return None if self.key.get() else "no API key (DeepL needs one)"

    def build(self, texts: Sequence[str], source: str | None, target: str) -> _Request:
        body: dict[str, Any] = {"text": list(texts), "target_lang": deepl_target(target)}
        base = _base(source)
        if base:
            body["source_lang"] = base.upper()  # source languages carry no variant
        headers = _json_headers()
        headers["Authorization"] = f"DeepL-Auth-Key {self.key.get() or ''}"
        return _Request(self.url, headers, body)

    def parse(self, body: Any, count: int, source: str | None) -> BatchResult:
        if not isinstance(body, dict) or not isinstance(body.get("translations"), list):
            raise ValueError("the answer has no translations list")
        items = body["translations"]
        if len(items) != count:
            raise ValueError("translations does not hold one translation per text")
        texts: list[str] = []
        detected: str | None = None
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise ValueError("a translation without text")
            texts.append(item["text"])
            lang = item.get("detected_source_language")
            if detected is None and isinstance(lang, str):
                detected = _base(lang)
        return BatchResult(tuple(texts), detected or _base(source))

    def error_message(self, body: Any) -> str:
        if isinstance(body, dict):
            return str(body.get("message") or body.get("detail") or "")
        return ""


_OPENAI_INSTRUCTION = (
    "You are a translation engine. The user message is a JSON array of strings "
    "from a news article: its title first, then sentences of its summary. "
    "Translate every string into {language} ({code}). "
    "Answer with only a JSON array of strings: exactly {count} translations, "
    "in the same order, one for each string, with nothing before or after it. "
    "Keep names, numbers and quotes; do not explain, merge, split or omit strings."
)


class OpenAIBackend:
    """Any OpenAI-compatible chat-completions endpoint, asked for a JSON array."""

    name = "openai"
    sends_source = False

    def __init__(self, url: str | None, api_key: str | None, model: str | None) -> None:
        self.key = _Secret(api_key)
        self.model = model or ""
        self.url = _join(
            url or "https://api.openai.com/v1",
            ("/v1/chat/completions", "/chat/completions", "/v1"),
            "/v1/chat/completions",
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.url!r}, model={self.model!r}, key={self.key!r})"

    def problem(self) -> str | None:
        return None if self.model else "no model (write translate: model: …)"

    def build(self, texts: Sequence[str], source: str | None, target: str) -> _Request:
        base = _base(target) or target
        instruction = _OPENAI_INSTRUCTION.format(
            language=_LANGUAGE_NAMES.get(base, target), code=target, count=len(texts)
        )
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": instruction},
                {"role": "user", "content": json.dumps(list(texts), ensure_ascii=False)},
            ],
        }
        headers = _json_headers()
        if self.key.get():  # a local server (Ollama, vLLM) may need none
            headers["Authorization"] = f"Bearer {self.key.get()}"
        return _Request(self.url, headers, body)

    def parse(self, body: Any, count: int, source: str | None) -> BatchResult:
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise ValueError("the answer has no choices")
        if not body["choices"] or not isinstance(body["choices"][0], dict):
            raise ValueError("the answer has no choice")
        choice = body["choices"][0]
        if choice.get("finish_reason") in ("length", "content_filter"):
            raise ValueError(f"the model stopped early ({str(choice.get('finish_reason'))[:20]})")
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise ValueError("the model gave no text (refused?)")
        return BatchResult(parse_model_array(content, count), _base(source))

    def error_message(self, body: Any) -> str:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"].get("message") or "")
        return ""


def parse_model_array(content: str, count: int) -> tuple[str, ...]:
    """A model's answer as exactly ``count`` strings; ``ValueError`` for anything else.

    One Markdown code fence around the array is accepted (models add it often),
    as is a leading ``<think>…</think>`` block (reasoning models); any other
    text before or after, a wrong length or a non-string is refused.
    """
    text = _THINK_RE.sub("", content, count=1).strip()
    fenced = _FENCE_RE.match(text)
    if fenced is not None:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("the model's answer is not a JSON array") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("the model's answer is not an array of strings")
    if len(value) != count:
        raise ValueError(f"the model answered {len(value)} strings for {count}")
    return tuple(value)


def build_translator(
    settings: TranslateSettings,
    env: Mapping[str, str],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Translator:
    """The translator the configuration describes; never raises for a missing key.

    A missing key is reported by ``Translator.problem`` (for ``monitor check`` and
    ``monitor channels``) and makes every call fail fast, so the rest runs.
    """
    key = env.get(settings.api_key_env) if settings.api_key_env else None
    backend: Backend
    if settings.backend == "libretranslate":
        backend = LibreTranslateBackend(settings.url or "http://127.0.0.1:5000", key)
    elif settings.backend == "deepl":
        backend = DeepLBackend(settings.url, key)
    elif settings.backend == "openai":
        backend = OpenAIBackend(settings.url, key, settings.model)
    else:
        raise ValueError(f"unknown translate backend {settings.backend!r}")
    return Translator(backend, timeout=settings.timeout.total_seconds(), clock=clock)


# ------------------------------------------------------------------- translator


_Key = tuple[str, str, str]  # (target, source or "", text)


class _Cache:
    """Texts already translated: LRU-bounded, each entry good for ``ttl`` seconds."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size, self.ttl = size, ttl
        self._data: OrderedDict[_Key, tuple[float, str, str | None]] = OrderedDict()

    def get(self, key: _Key, now: float) -> tuple[str, str | None] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if now - entry[0] >= self.ttl:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry[1], entry[2]

    def put(self, key: _Key, value: tuple[str, str | None], now: float) -> None:
        self._data[key] = (now, value[0], value[1])
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class _Breaker:
    """Circuit breaker state; times are on the translator's clock."""

    open_until: float = 0.0
    failures_in_row: int = 0
    probing: bool = False


@dataclass
class _Counters:
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    fast_failures: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    same_language: int = 0
    last_error: str = ""


class Translator:
    """One per worker and backend: the HTTP session, the cache and the breaker.

    ``clock`` (monotonic seconds) is injectable so tests move time explicitly;
    it drives the cache's day and the breaker's open period, not the timeout.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = CACHE_SIZE,
        cache_ttl: float = CACHE_TTL,
        open_period: float = OPEN_PERIOD,
        max_open_period: float = MAX_OPEN_PERIOD,
    ) -> None:
        if not timeout > 0 or not math.isfinite(timeout):
            raise ValueError("translate_timeout must be a positive number of seconds")
        self.backend = backend
        self.timeout = timeout
        self._clock = clock
        self._cache = _Cache(cache_size, cache_ttl)
        self._open_period = open_period
        self._max_open_period = max_open_period
        self._breaker = _Breaker()
        self._inflight: dict[_Key, asyncio.Future[tuple[str, str | None]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters = _Counters()

    def __repr__(self) -> str:
        return f"Translator({self.backend!r}, timeout={self.timeout:g})"

    async def __aenter__(self) -> Translator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (reopened by the next call)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def problem(self) -> str | None:
        """Why this translator cannot work at all (configuration), or None."""
        return self.backend.problem()

    def stats(self) -> TranslateStats:
        """Counters and breaker state now."""
        c, now = self.counters, self._clock()
        if self._breaker.open_until > now:
            state: Literal["closed", "open", "half-open"] = "open"
        elif self._breaker.failures_in_row:
            state = "half-open"
        else:
            state = "closed"
        return TranslateStats(
            backend=self.backend.name,
            state=state,
            open_for=max(0.0, self._breaker.open_until - now),
            requests=c.requests,
            failures=dict(c.failures),
            fast_failures=c.fast_failures,
            cache_hits=c.cache_hits,
            cache_misses=c.cache_misses,
            same_language=c.same_language,
            last_error=c.last_error,
        )

    # -- public --------------------------------------------------------------------

    async def translate_alert_text(
        self, title: str, sentences: Sequence[str], source_lang: str | None, target: str
    ) -> Translation:
        """The title and summary sentences in ``target``, in one request, aligned.

        Raises ``TranslateError`` (within ``timeout``) when no translation can be
        had; the caller then sends the alert untranslated.
        """
        try:
            target = normalize_language(target)
        except ValueError as exc:
            raise TranslateError(str(exc), backend=self.backend.name) from None
        originals = [title, *sentences]
        whole = " ".join(originals)
        source = effective_language(whole, source_lang)
        if source is not None and source == _base(target):
            self.counters.same_language += 1
            return Translation(
                title, tuple(sentences), target, source, self.backend.name, translated=False
            )
        cleaned = [_clean(t) for t in originals]
        if sum(len(t) for t in cleaned) > MAX_INPUT_CHARS or len(cleaned) > MAX_PIECES:
            self.counters.failures["too_long"] = self.counters.failures.get("too_long", 0) + 1
            raise TranslateError("text too long to translate", backend=self.backend.name)
        wanted = [i for i, t in enumerate(cleaned) if t]
        results = await self.translate_texts([cleaned[i] for i in wanted], source, target)
        out = list(cleaned)
        detected: str | None = None
        for i, (text, lang) in zip(wanted, results, strict=True):
            out[i] = text
            detected = detected or lang
        return Translation(out[0], tuple(out[1:]), target, detected or source, self.backend.name)

    async def translate_texts(
        self, texts: Sequence[str], source: str | None, target: str
    ) -> list[tuple[str, str | None]]:
        """Each text's translation and detected language, from the cache or one request.

        The texts go as given: ``translate_alert_text`` cleans and caps them first.
        """
        deadline = asyncio.get_running_loop().time() + self.timeout
        now = self._clock()
        target = normalize_language(target)
        source = _base(source)
        results: dict[int, tuple[str, str | None]] = {}
        waits: dict[int, asyncio.Future[tuple[str, str | None]]] = {}
        mine: dict[_Key, asyncio.Future[tuple[str, str | None]]] = {}
        for i, text in enumerate(texts):
            key = (target, source or "", text)
            hit = self._cache.get(key, now)
            if hit is not None:
                results[i] = hit
                self.counters.cache_hits += 1
            elif key in self._inflight:  # another alert is translating this text now
                waits[i] = self._inflight[key]
                self.counters.cache_hits += 1
            elif key in mine:
                waits[i] = mine[key]
            else:
                if not mine:
                    self._admit()  # breaker: raises without a request while open
                fut: asyncio.Future[tuple[str, str | None]] = (
                    asyncio.get_running_loop().create_future()
                )
                mine[key] = self._inflight[key] = waits[i] = fut
        if mine:
            self.counters.cache_misses += len(mine)
            await self._run(mine, source, target, deadline)
        try:
            async with asyncio.timeout_at(deadline):
                for i, waiting in waits.items():
                    results[i] = await asyncio.shield(waiting)
        except TimeoutError:
            raise TranslateError(
                f"timed out after {self.timeout:g} s", backend=self.backend.name
            ) from None
        return [results[i] for i in range(len(texts))]

    # -- breaker ----------------------------------------------------------------------

    def _admit(self) -> None:
        """Let a request through, or refuse fast while the breaker is open."""
        b, now = self._breaker, self._clock()
        problem = self.backend.problem()
        if problem:
            self.counters.fast_failures += 1
            raise TranslateError(problem, backend=self.backend.name)
        if b.open_until > now or (b.failures_in_row and b.probing):
            self.counters.fast_failures += 1
            wait = max(0.0, b.open_until - now)
            raise TranslateError(
                f"paused after a failure ({self.counters.last_error}); next try in {wait:.0f} s",
                backend=self.backend.name,
                backend_down=True,
            )
        if b.failures_in_row:
            b.probing = True  # half-open: this request is the one probe

    def _succeeded(self) -> None:
        self._breaker = _Breaker()

    def _failed(self, kind: str, error: TranslateError) -> None:
        c, b = self.counters, self._breaker
        c.failures[kind] = c.failures.get(kind, 0) + 1
        c.last_error = error.reason
        b.probing = False
        if not error.backend_down:
            log.info("translation by %s failed: %s", self.backend.name, error.reason)
            return
        now = self._clock()
        if b.open_until > now:  # a call sent before the breaker opened: same outage
            if error.retry_after is not None:
                b.open_until = max(b.open_until, now + min(error.retry_after, MAX_RETRY_AFTER))
            return
        period = min(self._max_open_period, self._open_period * 2**b.failures_in_row)
        if error.retry_after is not None:
            period = max(period, min(error.retry_after, MAX_RETRY_AFTER))
        b.failures_in_row += 1
        b.open_until = now + period
        log.warning(
            "translation backend %s failing (%s); pausing it for %.0f s",
            self.backend.name,
            error.reason,
            period,
        )

    # -- I/O --------------------------------------------------------------------------

    async def _run(
        self,
        mine: dict[_Key, asyncio.Future[tuple[str, str | None]]],
        source: str | None,
        target: str,
        deadline: float,
    ) -> None:
        """Send ``mine`` in one request; resolve their futures whatever happens."""
        texts = [key[2] for key in mine]
        error: BaseException | None = None
        try:
            batch = await self._request(texts, source, target, deadline)
            now = self._clock()
            for (key, fut), text in zip(mine.items(), batch.texts, strict=True):
                value = (text, batch.detected)
                self._cache.put(key, value, now)
                fut.set_result(value)
        except BaseException as exc:
            error = exc
            raise
        finally:
            for key, fut in mine.items():
                if self._inflight.get(key) is fut:
                    del self._inflight[key]
                if not fut.done():
                    shared = error if isinstance(error, TranslateError) else None
                    fut.set_exception(
                        shared or TranslateError("cancelled", backend=self.backend.name)
                    )
                    fut.exception()  # mark retrieved: waiters re-raise it, nobody else must

    async def _request(
        self, texts: list[str], source: str | None, target: str, deadline: float
    ) -> BatchResult:
        """One request (plus one retry with detection when the source is refused)."""
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    result = await self._post(texts, source, target)
                except TranslateError as exc:
                    if exc.status != 400 or source is None or not self.backend.sends_source:
                        raise
                    # the service may not know the declared language: let it detect
                    result = await self._post(texts, None, target)
        except TimeoutError:
            error = TranslateError(
                f"timed out after {self.timeout:g} s", backend=self.backend.name, backend_down=True
            )
            self._failed("timeout", error)
            raise error from None
        except TranslateError as exc:
            self._failed(_kind(exc), exc)
            raise
        except asyncio.CancelledError:
            self._breaker.probing = False  # the caller gave up; the next call may probe
            raise
        self._succeeded()
        return result

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop  # a session (and its pool) belongs to one event loop
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def _post(self, texts: list[str], source: str | None, target: str) -> BatchResult:
        backend, name = self.backend, self.backend.name
        request = backend.build(texts, source, target)
        self.counters.requests += 1
        try:
            async with self._client().post(
                request.url, json=request.body, headers=dict(request.headers), allow_redirects=False
            ) as response:
                raw = await _read_capped(response)
                status, headers = response.status, response.headers
        except TimeoutError:
            raise  # aiohttp's own timeout: reported by the caller as a timeout
        except aiohttp.ClientResponseError as exc:  # carries the request headers: drop it
            raise TranslateError(
                f"bad response ({exc.status})", backend=name, backend_down=True
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = backend.key.redact(f"cannot reach the service ({type(exc).__name__})")
            raise TranslateError(reason, backend=name, backend_down=True) from exc
        body: Any = None
        if len(raw) <= MAX_RESPONSE_BYTES:
            try:
                body = json.loads(raw.decode("utf-8", "replace")) if raw else None
            except (ValueError, RecursionError):
                body = None
        if status != 200:
            raise _http_error(backend, status, body, headers.get("Retry-After"))
        if body is None:
            raise TranslateError("malformed answer (not JSON or too large)", backend=name)
        try:
            return backend.parse(body, len(texts), source)
        except ValueError as exc:
            raise TranslateError(f"malformed answer: {exc}", backend=name) from None


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The body, or its first ``MAX_RESPONSE_BYTES + 1`` bytes when it is larger."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)


def _http_error(
    backend: Backend, status: int, body: Any, retry_after_header: str | None
) -> TranslateError:
    """A status and error body as a short, key-free ``TranslateError``."""
    said = backend.key.redact(" ".join(backend.error_message(body).split()))
    if len(said) > _REASON_MAX:
        said = said[: _REASON_MAX - 1] + "…"
    if status == 429:
        what, down = "too many requests", True
    elif status == 456:
        what, down = "quota exceeded", True
    elif status in (401, 403):
        what, down = "the API key was refused", True
    elif status >= 500:
        what, down = f"server error {status}", True
    else:
        what, down = f"request refused ({status})", False
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(retry_after_header, datetime.now(UTC))
    reason = f"{what}: {said}" if said else what
    return TranslateError(
        reason, backend=backend.name, status=status, retry_after=retry_after, backend_down=down
    )


def _kind(error: TranslateError) -> str:
    """The failure counter an error goes to."""
    status = error.status
    if status is None:
        return "connect" if error.backend_down else "malformed"
    if status == 429:
        return "rate_limited"
    if status == 456:
        return "quota"
    if status in (401, 403):
        return "auth"
    if status >= 500:
        return "http_5xx"
    return "bad_request"
