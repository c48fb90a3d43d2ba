"""A strict Telegram Bot API stand-in on 127.0.0.1, for tests and manual checks.

python-telegram-bot talks to it unchanged: ``Bot(token, base_url=server.base_url)``
(PTB builds ``base_url + token + "/" + method``).  It answers the way the real
Bot API server does where our code can go wrong: the JSON envelope, exact error
descriptions, Telegram's own HTML parser (:mod:`tests.fakes.telegram_html`),
clean-up and code-point length limits, the order of checks, per-chat and global
pace with 429 + ``retry_after`` + ``Retry-After``, 401/404 for bad tokens and
methods, getUpdates long polling with 409 conflicts.

Choices where Telegram documents nothing (stated, not hidden):

* pace windows are sliding and count only accepted messages; channels, groups
  and supergroups allow 20 per 60 s; private chats allow a burst of 3 in any 1 s
  and 12 in any 10 s (``Pace.strict()``: exactly 1 per 1 s); 30 per 1 s across
  all chats; ``retry_after`` is the whole seconds until the window has room (≥ 1);
  edits are not paced;
* Markdown/MarkdownV2 are accepted unvalidated (length after a rough strip);
  auto-detected entities (URLs, mentions) are not added to returned messages;
* getChat for a chat the bot is not a member of answers 403 like sendMessage;
  a channel in state ``not_admin`` refuses posts with 400 "need administrator
  rights in the channel chat" at the chat-access step.

sendPhoto follows the Bot API docs: ``photo`` is an HTTP URL (String) that the
server fetches, or a multipart upload; ``caption`` is 0–1024 characters after
entity parsing ("message caption is too long"); a ``photo`` that is not a URL
nor a known file_id is "wrong file identifier/HTTP URL specified", a URL that
cannot be fetched is "failed to get HTTP URL content", content that is not an
image is "wrong type of the web page content" (URL) or "IMAGE_PROCESS_FAILED"
(upload). Choices: the stand-in fetches only loopback URLs (anything else
"cannot be fetched" here, as there is no internet), recognises PNG, JPEG, GIF
and WebP by their magic bytes, and reports every photo as one 320×240 size.

Methods: getMe, sendMessage, sendPhoto, editMessageText, deleteMessage, getUpdates,
setWebhook, deleteWebhook, getWebhookInfo, getChat, getChatMember,
setMyCommands, getMyCommands, deleteMyCommands, logOut, close.  Anything else
is 404 like an unknown method.  ``/_fake/messages``, ``/_fake/rejected``,
``/_fake/chats`` and ``/_fake/push?user_id=…&text=…`` help manual checks.

Run by hand: ``python -m tests.fakes.botapi --port 8081 --token T --chat @c``.
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.telegram_html import (
    TEXT_LENGTH_MAX,
    TelegramHTMLError,
    clean_text,
    parse_telegram_html,
    utf16_length,
)

__all__ = [
    "DEFAULT_TOKEN",
    "AcceptedMessage",
    "ApiError",
    "FakeBotApi",
    "FakeChat",
    "Pace",
    "RejectedRequest",
]

DEFAULT_TOKEN = "123456789:TEST-fake-token_for-tests"
TEXT_BYTES_MAX = 1 << 15
CAPTION_LENGTH_MAX = 1024
PHOTO_BYTES_MAX = 10 * 1024 * 1024
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
LONG_POLL_MAX_TIMEOUT = 50.0
BOT_COMMANDS_MAX = 100

_TOKEN_FORMAT = re.compile(r"\d+:[A-Za-z0-9_-]+")
_COMMAND_CHARS = re.compile(r"[a-z0-9_]+")
_BOT_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")
_GROUP_TYPES = ("channel", "group", "supergroup")


class ApiError(Exception):
    """A Bot API failure: HTTP status = ``error_code``, exact ``description``."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class Pace:
    """Sliding-window limits as (max messages, window seconds) pairs."""

    group_limits: tuple[tuple[int, float], ...] = ((20, 60.0),)
    private_limits: tuple[tuple[int, float], ...] = ((3, 1.0), (12, 10.0))
    global_limits: tuple[tuple[int, float], ...] = ((30, 1.0),)
    enabled: bool = True

    @classmethod
    def strict(cls) -> Pace:
        """Private chats exactly 1 message per second, no burst."""
        return cls(private_limits=((1, 1.0),))

    @classmethod
    def off(cls) -> Pace:
        """No 429s at all (for tests that are about something else)."""
        return cls(enabled=False)


@dataclass
class FakeChat:
    """A chat the fake knows; ``state``: ok, kicked, not_member, not_admin, blocked."""

    id: int
    type: str = "channel"
    username: str | None = None
    title: str | None = None
    state: str = "ok"
    is_forum: bool = False
    topics: set[int] = field(default_factory=set)
    next_message_id: int = 1
    messages: dict[int, dict] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``Chat`` object as the Bot API embeds it in messages."""
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            data["first_name"] = self.title or f"User {self.id}"
        else:
            data["title"] = self.title or (self.username or f"Chat {self.id}")
        if self.username:
            data["username"] = self.username
        if self.is_forum:
            data["is_forum"] = True
        return data


@dataclass(frozen=True)
class AcceptedMessage:
    """A message the fake accepted (sent or edited), as the bot asked for it."""

    method: str
    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    entities: tuple[dict, ...]
    plain_text: str
    message_thread_id: int | None
    link_preview_options: dict | None
    disable_notification: bool
    reply_markup: Any
    date: int
    params: dict[str, Any]


@dataclass(frozen=True)
class RejectedRequest:
    """A request the fake refused, with the exact answer it gave."""

    method: str
    params: dict[str, Any]
    status: int | str
    description: str
    retry_after: int | None
    at: float


@dataclass
class _Failure:
    method: str
    status: int | str
    times: int
    description: str | None
    delay: float


class _Limiter:
    """Sliding windows over accepted-message times."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self.per_chat: dict[int, deque[float]] = {}
        self.all: deque[float] = deque()

    @staticmethod
    def _wait(times: deque[float], limits: Iterable[tuple[int, float]], now: float) -> float:
        wait = 0.0
        for limit, window in limits:
            recent = [t for t in times if t > now - window]
            if len(recent) >= limit:
                oldest_blocking = recent[len(recent) - limit]
                wait = max(wait, oldest_blocking + window - now)
        return wait

    def retry_after(self, chat: FakeChat, now: float) -> int | None:
        """Seconds to wait (≥ 1) if one more message now would exceed a window, else None."""
        if not self.pace.enabled:
            return None
        limits = self.pace.private_limits if chat.type == "private" else self.pace.group_limits
        times = self.per_chat.get(chat.id, deque())
        wait = max(
            self._wait(times, limits, now), self._wait(self.all, self.pace.global_limits, now)
        )
        if wait <= 0:
            return None
        return max(1, math.ceil(wait))

    def record(self, chat: FakeChat, now: float) -> None:
        horizon = max(w for _, w in (*self.pace.group_limits, *self.pace.private_limits))
        times = self.per_chat.setdefault(chat.id, deque())
        for q, keep in ((times, horizon), (self.all, max(w for _, w in self.pace.global_limits))):
            q.append(now)
            while q and q[0] <= now - keep:
                q.popleft()


def _as_int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f"invalid {name} specified") from None


def _as_json(value: Any) -> Any:
    """Form parameters carry objects as JSON strings; JSON bodies carry them natively."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _is_image(data: bytes) -> bool:
    return data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _fetch_photo(url: str) -> bytes:
    """What the Bot API server does with a photo given as an HTTP URL (loopback only here)."""
    import urllib.error
    import urllib.request

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad("wrong file identifier/HTTP URL specified")
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise _bad("failed to get HTTP URL content")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            data = response.read(PHOTO_BYTES_MAX + 1)
    except (urllib.error.URLError, OSError, ValueError):
        raise _bad("failed to get HTTP URL content") from None
    if len(data) > PHOTO_BYTES_MAX or not _is_image(data):
        raise _bad("wrong type of the web page content")
    return data


def _rough_markdown_strip(text: str) -> str:
    """Plain text of Markdown for the length check only (not validated, see module doc)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\\(.)", r"\1", text)
    return re.sub(r"[*_~|`]", "", text)


class FakeBotApi:
    """The stand-in server; start() binds an ephemeral port and serves from a thread.

    Everything a test inspects is guarded by one lock; read it through the
    accessor methods, which return copies.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pace: Pace | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        length_unit: str = "code_points",
        max_poll_timeout: float = LONG_POLL_MAX_TIMEOUT,
        bot_username: str = "test_monitor_bot",
    ) -> None:
        if length_unit not in ("code_points", "utf16"):
            raise ValueError("length_unit must be 'code_points' or 'utf16'")
        self.token = token
        self.host = host
        self.port = port
        self.pace = pace or Pace()
        self.clock = clock
        self.wall_clock = wall_clock
        self.length_unit = length_unit
        self.max_poll_timeout = max_poll_timeout
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.bot_username = bot_username
        self._lock = threading.RLock()
        self._updates_changed = threading.Condition(self._lock)
        self._chats: dict[int, FakeChat] = {}
        self._usernames: dict[str, int] = {}
        self._next_chat_id = 1_000_000_001
        self._limiter = _Limiter(self.pace)
        self._accepted: list[AcceptedMessage] = []
        self._rejected: list[RejectedRequest] = []
        self._requests: list[tuple[str, dict[str, Any]]] = []
        self._failures: list[_Failure] = []
        self._updates: list[dict] = []
        self._next_update_id = 1
        self._poll_generation = 0
        self._webhook_url = ""
        self._commands: dict[str, list[dict]] = {}
        self._count_429 = 0
        # Unexpected exceptions inside the fake (answered as 500); should stay empty.
        self.bugs: list[str] = []
        self._stopping = False
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeBotApi:
        """Bind and serve from a daemon thread; returns self."""
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-botapi-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release waiting long polls."""
        with self._lock:
            self._stopping = True
            self._updates_changed.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (what TELEGRAM_API_URL-style settings want)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as PTB's ``base_url``: ``{url}/bot``."""
        return f"{self.url}/bot"

    def bot(self, **kwargs: Any) -> Any:
        """A ``telegram.Bot`` pointed at this server (not initialised)."""
        from telegram import Bot

        return Bot(self.token, base_url=self.base_url, **kwargs)

    # ------------------------------------------------------------------- chats

    def add_chat(
        self,
        chat: str | int,
        type: str = "channel",
        state: str = "ok",
        *,
        title: str | None = None,
        chat_id: int | None = None,
        is_forum: bool = False,
        topics: Iterable[int] = (),
    ) -> FakeChat:
        """Register a chat by ``@username`` or numeric id; returns it (id assigned if needed)."""
        if type not in ("channel", "group", "supergroup", "private"):
            raise ValueError(f"unknown chat type {type!r}")
        if state not in ("ok", "kicked", "not_member", "not_admin", "blocked"):
            raise ValueError(f"unknown chat state {state!r}")
        username = None
        if isinstance(chat, str) and chat.startswith("@"):
            username = chat[1:]
        elif chat_id is None:
            chat_id = int(chat)
        with self._lock:
            if chat_id is None and username and username.lower() in self._usernames:
                chat_id = self._usernames[username.lower()]
            if chat_id is None:
                serial = self._next_chat_id
                self._next_chat_id += 1
                chat_id = {
                    "channel": -1_000_000_000_000 - serial,
                    "supergroup": -1_000_000_000_000 - serial,
                    "group": -serial,
                    "private": serial,
                }[type]
            existing = self._chats.get(chat_id)
            fake = FakeChat(
                id=chat_id,
                type=type,
                username=username or (existing.username if existing else None),
                title=title,
                state=state,
                is_forum=is_forum,
                topics=set(topics),
                next_message_id=existing.next_message_id if existing else 1,
                messages=existing.messages if existing else {},
            )
            self._chats[chat_id] = fake
            if fake.username:
                self._usernames[fake.username.lower()] = chat_id
            return fake

    register_chat = add_chat

    def set_chat_state(self, chat: str | int, state: str) -> None:
        """Change a chat's state (e.g. kick the bot mid-test)."""
        with self._lock:
            self._lookup(chat).state = state

    def chat(self, chat: str | int) -> FakeChat:
        """The registered chat for ``@username`` or id (KeyError if unknown)."""
        with self._lock:
            return self._lookup(chat)

    def _lookup(self, chat: str | int) -> FakeChat:
        if isinstance(chat, str) and chat.startswith("@"):
            return self._chats[self._usernames[chat[1:].lower()]]
        return self._chats[int(chat)]

    # ----------------------------------------------------------- fault hooks

    def fail_next(
        self,
        method: str,
        status: int | str = 500,
        *,
        times: int = 1,
        description: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail.

        ``status``: an HTTP status (5xx answered with a JSON error envelope),
        ``"drop"`` (the connection is closed without an answer) or ``"hang"``
        (hold the request ``delay`` seconds, then drop it — for client timeouts).
        ``method`` may be ``"*"`` for any method.
        """
        if not (isinstance(status, int) or status in ("drop", "hang")):
            raise ValueError("status must be an int, 'drop' or 'hang'")
        with self._lock:
            self._failures.append(_Failure(method.lower(), status, times, description, delay))

    def _take_failure(self, method: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.method in (method.lower(), "*"):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    # ---------------------------------------------------------- observations

    def messages(self, chat: str | int | None = None) -> list[AcceptedMessage]:
        """Accepted sendMessage/editMessageText calls, in order (optionally one chat)."""
        with self._lock:
            if chat is None:
                return list(self._accepted)
            chat_id = self._lookup(chat).id
            return [m for m in self._accepted if m.chat_id == chat_id]

    def sent(self, chat: str | int | None = None) -> list[AcceptedMessage]:
        """Accepted sendMessage calls only."""
        return [m for m in self.messages(chat) if m.method == "sendmessage"]

    def photos(self, chat: str | int | None = None) -> list[AcceptedMessage]:
        """Accepted sendPhoto calls (``text``/``plain_text`` hold the caption; the photo,
        a URL string or the uploaded bytes, is ``params["photo"]``)."""
        return [m for m in self.messages(chat) if m.method == "sendphoto"]

    def rejected(self, method: str | None = None) -> list[RejectedRequest]:
        """Every refused request with its answer, in order."""
        with self._lock:
            return [r for r in self._rejected if method is None or r.method == method.lower()]

    def requests(self) -> list[tuple[str, dict[str, Any]]]:
        """Every request that reached a method (method name lower-cased, params)."""
        with self._lock:
            return list(self._requests)

    @property
    def count_429(self) -> int:
        """How many 429 answers were sent."""
        with self._lock:
            return self._count_429

    def wait_for_messages(
        self, count: int, timeout: float = 10.0, chat: str | int | None = None
    ) -> list[AcceptedMessage]:
        """Block until ``count`` messages were sent (bounded by ``timeout``); returns them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.sent(chat)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)

    def commands(self, scope: dict | None = None, language_code: str = "") -> list[dict]:
        """Commands last set with setMyCommands for that scope and language."""
        with self._lock:
            return list(self._commands.get(self._commands_key(scope, language_code), []))

    # ---------------------------------------------------------------- updates

    def push_update(self, update: dict) -> int:
        """Queue a raw update (``update_id`` assigned); returns its id."""
        with self._lock:
            update = {**update, "update_id": self._next_update_id}
            self._next_update_id += 1
            self._updates.append(update)
            self._updates_changed.notify_all()
            return update["update_id"]

    def push_message(
        self,
        chat_id: int | str,
        user_id: int,
        text: str,
        *,
        first_name: str = "Tester",
        username: str | None = None,
    ) -> int:
        """Queue an incoming text message from ``user_id`` in ``chat_id``; returns update_id.

        A private chat is registered for the user if needed.  Leading ``/commands``
        get their ``bot_command`` entity, as Telegram adds it and PTB's
        CommandHandler needs it.
        """
        with self._lock:
            try:
                chat = self._lookup(chat_id)
            except (KeyError, ValueError):
                chat = self.add_chat(int(chat_id), "private", title=first_name)
            user = {"id": user_id, "is_bot": False, "first_name": first_name}
            if username:
                user["username"] = username
            message_id = chat.next_message_id
            chat.next_message_id += 1
            message: dict[str, Any] = {
                "message_id": message_id,
                "from": user,
                "chat": chat.to_json(),
                "date": int(self.wall_clock()),
                "text": text,
            }
            match = _BOT_COMMAND.match(text)
            if match:
                message["entities"] = [
                    {"type": "bot_command", "offset": 0, "length": utf16_length(match.group())}
                ]
            chat.messages[message_id] = {
                "message_id": message_id,
                "date": message["date"],
                "text": text,
                "plain": text,
                "entities": message.get("entities", []),
                "incoming": True,
            }
            return self.push_update({"message": message})

    def pending_updates(self) -> list[dict]:
        """Updates not yet confirmed by a getUpdates offset."""
        with self._lock:
            return list(self._updates)

    # ------------------------------------------------------------ dispatching

    def handle(self, method: str, params: dict[str, Any]) -> tuple[Any, str | None]:
        """Run one method: (result, description) or raise ApiError."""
        name = method.lower()
        handler = getattr(self, f"_m_{name}", None)
        if handler is None:
            raise ApiError(404, "Not Found")
        with self._lock:
            self._requests.append((name, dict(params)))
        try:
            return handler(params)
        except ApiError as err:
            with self._lock:
                if err.status == 429:
                    self._count_429 += 1
                self._rejected.append(
                    RejectedRequest(
                        name,
                        dict(params),
                        err.status,
                        err.description,
                        err.retry_after,
                        self.clock(),
                    )
                )
            raise

    def record_bug(self, method: str, params: dict, exc: BaseException) -> None:
        with self._lock:
            self.bugs.append(f"{method}: {exc!r}")

    def record_failure(self, method: str, params: dict, failure: _Failure, text: str) -> None:
        with self._lock:
            self._rejected.append(
                RejectedRequest(
                    method.lower(), dict(params), failure.status, text, None, self.clock()
                )
            )

    # ----------------------------------------------------------------- methods

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Monitor Test Bot",
            "username": self.bot_username,
        }

    def _m_getme(self, params: dict) -> tuple[Any, None]:
        user = {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        return user, None

    def _m_logout(self, params: dict) -> tuple[Any, None]:
        return True, None

    def _m_close(self, params: dict) -> tuple[Any, None]:
        return True, None

    def _m_deletewebhook(self, params: dict) -> tuple[Any, str]:
        with self._lock:
            was_set = bool(self._webhook_url)
            self._webhook_url = ""
            if _as_bool(params.get("drop_pending_updates", False)):
                self._updates.clear()
        return True, "Webhook was deleted" if was_set else "Webhook is already deleted"

    def _m_setwebhook(self, params: dict) -> tuple[Any, str]:
        url = str(params.get("url") or "")
        with self._lock:
            self._webhook_url = url
            self._poll_generation += 1
            self._updates_changed.notify_all()
        return True, "Webhook was set" if url else "Webhook was deleted"

    def _m_getwebhookinfo(self, params: dict) -> tuple[Any, None]:
        with self._lock:
            return {
                "url": self._webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }, None

    def _m_getupdates(self, params: dict) -> tuple[Any, None]:
        offset = _as_int(params.get("offset"), "offset") or 0
        limit = _as_int(params.get("limit"), "limit") or 100
        limit = min(max(limit, 1), 100)
        try:
            timeout = float(params.get("timeout") or 0)
        except (TypeError, ValueError):
            raise _bad("invalid timeout specified") from None
        timeout = min(max(timeout, 0.0), self.max_poll_timeout)
        with self._lock:
            if self._webhook_url:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            self._poll_generation += 1
            generation = self._poll_generation
            self._updates_changed.notify_all()  # an older poll is terminated
            if offset < 0:
                self._updates = self._updates[offset:]
            elif offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            deadline = time.monotonic() + timeout
            while not self._updates and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._updates_changed.wait(min(remaining, 0.5))
                if self._poll_generation != generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that "
                        "only one bot instance is running",
                    )
            return [dict(u) for u in self._updates[:limit]], None

    def _m_getchat(self, params: dict) -> tuple[Any, None]:
        chat = self._resolve_chat(params.get("chat_id"), reading=True)
        info = {
            **chat.to_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        return info, None

    def _resolve_chat(self, chat_id: Any, *, reading: bool = False) -> FakeChat:
        """Chat resolution and access, with the Bot API's 400/403 answers."""
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        with self._lock:
            try:
                chat = self._lookup(str(chat_id).strip())
            except (KeyError, ValueError):
                raise _bad("chat not found") from None
        kind = "the group chat" if chat.type == "group" else f"the {chat.type} chat"
        if chat.state == "kicked":
            if chat.type == "private":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, f"Forbidden: bot was kicked from {kind}")
        if chat.state == "not_member":
            raise ApiError(403, f"Forbidden: bot is not a member of {kind}")
        if chat.state == "blocked" and not reading:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat.state == "not_admin" and chat.type == "channel" and not reading:
            raise _bad("need administrator rights in the channel chat")
        return chat

    def _m_getchatmember(self, params: dict) -> tuple[Any, None]:
        chat = self._resolve_chat(params.get("chat_id"), reading=True)
        user_id = _as_int(params.get("user_id"), "user identifier")
        if not user_id:
            raise _bad("invalid user_id specified")
        if user_id != self.bot_id:
            user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
            return {"status": "member", "user": user}, None
        if chat.state == "not_admin" or chat.type == "private":
            return {"status": "member", "user": self._bot_user()}, None
        rights = dict.fromkeys(
            [
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
                "can_post_messages",
                "can_edit_messages",
                "can_pin_messages",
            ],
            True,
        )
        admin = {
            "status": "administrator",
            "user": self._bot_user(),
            "can_be_edited": False,
            "is_anonymous": False,
            "can_promote_members": False,
            **rights,
        }
        return admin, None

    def _formatted_text(self, params: dict, field_name: str = "text") -> tuple[str, list[dict]]:
        """Checks before chat resolution: empty text, size, parse_mode, the HTML parse."""
        text = params.get(field_name)
        if text is None or text == "":
            raise _bad("message text is empty")
        text = str(text)
        if len(text.encode("utf-8", "surrogatepass")) > TEXT_BYTES_MAX:
            raise _bad("text is too long")
        parse_mode = str(params.get("parse_mode") or "").lower()
        if parse_mode == "html":
            try:
                return parse_telegram_html(text)
            except TelegramHTMLError as err:
                raise _bad(f"can't parse entities: {err.message}") from None
        if parse_mode in ("markdown", "markdownv2"):
            return clean_text(_rough_markdown_strip(text), [])
        if parse_mode:
            raise _bad("unsupported parse_mode")
        entities = _as_json(params.get("entities"))
        if not isinstance(entities, list):
            entities = []
        total = utf16_length(text)
        valid = [
            e
            for e in entities
            if isinstance(e, dict)
            and isinstance(e.get("offset"), int)
            and isinstance(e.get("length"), int)
            and 0 <= e["offset"] < e["offset"] + e["length"] <= total
        ]
        return clean_text(text, valid)

    def _check_length(self, plain: str) -> None:
        if not plain.strip(" \n"):
            raise _bad("text must be non-empty")
        size = utf16_length(plain) if self.length_unit == "utf16" else len(plain)
        if size > TEXT_LENGTH_MAX:
            raise _bad("message is too long")

    def _message_json(self, chat: FakeChat, stored: dict) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": stored["message_id"],
            "date": stored["date"],
            "chat": chat.to_json(),
            "text": stored["plain"],
        }
        if chat.type == "channel":
            message["sender_chat"] = chat.to_json()
        else:
            message["from"] = self._bot_user()
        if stored["entities"]:
            message["entities"] = stored["entities"]
        if stored.get("thread"):
            message["message_thread_id"] = stored["thread"]
            message["is_topic_message"] = True
        if stored.get("link_preview_options"):
            message["link_preview_options"] = stored["link_preview_options"]
        if stored.get("edit_date"):
            message["edit_date"] = stored["edit_date"]
        if isinstance(stored.get("reply_markup"), dict) and stored["reply_markup"].get(
            "inline_keyboard"
        ):
            message["reply_markup"] = stored["reply_markup"]
        return message

    def _m_sendmessage(self, params: dict) -> tuple[Any, None]:
        plain, entities = self._formatted_text(params)
        reply_markup = _as_json(params.get("reply_markup"))
        if params.get("reply_markup") is not None and not isinstance(reply_markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        chat = self._resolve_chat(params.get("chat_id"))
        self._check_length(plain)
        thread = _as_int(params.get("message_thread_id"), "message thread identifier")
        if thread and chat.is_forum and thread not in chat.topics and thread != 1:
            raise _bad("message thread not found")
        reply = _as_json(params.get("reply_parameters"))
        reply_to = _as_int(params.get("reply_to_message_id"), "reply message identifier")
        if isinstance(reply, dict):
            reply_to = _as_int(reply.get("message_id"), "reply message identifier")
        allow_missing = isinstance(reply, dict) and reply.get("allow_sending_without_reply")
        if reply_to and reply_to not in chat.messages and not allow_missing:
            raise _bad("message to be replied not found")
        link_preview = _as_json(params.get("link_preview_options"))
        with self._lock:
            now = self.clock()
            wait = self._limiter.retry_after(chat, now)
            if wait is not None:
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
            self._limiter.record(chat, now)
            message_id = chat.next_message_id
            chat.next_message_id += 1
            stored = {
                "message_id": message_id,
                "date": int(self.wall_clock()),
                "text": str(params.get("text")),
                "plain": plain,
                "entities": entities,
                "thread": thread if chat.is_forum else None,
                "link_preview_options": link_preview if isinstance(link_preview, dict) else None,
                "reply_markup": reply_markup,
            }
            chat.messages[message_id] = stored
            self._accepted.append(self._record("sendmessage", chat, stored, params))
            return self._message_json(chat, stored), None

    def _m_sendphoto(self, params: dict) -> tuple[Any, None]:
        caption = params.get("caption")
        plain, entities = "", []
        if caption not in (None, ""):
            plain, entities = self._formatted_text(params, "caption")
        chat = self._resolve_chat(params.get("chat_id"))
        if len(plain) > CAPTION_LENGTH_MAX:
            raise _bad("message caption is too long")
        photo = params.get("photo")
        if photo is None or photo == "":
            raise _bad("there is no photo in the request")
        if isinstance(photo, bytes):
            if len(photo) > PHOTO_BYTES_MAX or not _is_image(photo):
                raise _bad("IMAGE_PROCESS_FAILED")
            size = len(photo)
        else:
            size = len(_fetch_photo(str(photo)))
        thread = _as_int(params.get("message_thread_id"), "message thread identifier")
        with self._lock:
            now = self.clock()
            wait = self._limiter.retry_after(chat, now)
            if wait is not None:
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
            self._limiter.record(chat, now)
            message_id = chat.next_message_id
            chat.next_message_id += 1
            stored = {
                "message_id": message_id,
                "date": int(self.wall_clock()),
                "text": str(caption or ""),
                "plain": plain,
                "entities": entities,
                "thread": thread if chat.is_forum else None,
            }
            chat.messages[message_id] = stored
            self._accepted.append(self._record("sendphoto", chat, stored, params))
            message = self._message_json(chat, stored)
            del message["text"]
            message.pop("entities", None)
            message["photo"] = [
                {
                    "file_id": f"photo-{chat.id}-{message_id}",
                    "file_unique_id": f"u{chat.id}x{message_id}",
                    "width": 320,
                    "height": 240,
                    "file_size": size,
                }
            ]
            if plain:
                message["caption"] = plain
            if entities:
                message["caption_entities"] = entities
            return message, None

    def _record(self, method: str, chat: FakeChat, stored: dict, params: dict) -> AcceptedMessage:
        link_preview = stored.get("link_preview_options")
        return AcceptedMessage(
            method=method,
            chat_id=chat.id,
            message_id=stored["message_id"],
            text=stored["text"],
            parse_mode=str(params["parse_mode"]) if params.get("parse_mode") else None,
            entities=tuple(stored["entities"]),
            plain_text=stored["plain"],
            message_thread_id=_as_int(params.get("message_thread_id"), "message thread"),
            link_preview_options=link_preview,
            disable_notification=_as_bool(params.get("disable_notification", False)),
            reply_markup=stored.get("reply_markup"),
            date=stored.get("edit_date") or stored["date"],
            params=dict(params),
        )

    def _m_editmessagetext(self, params: dict) -> tuple[Any, None]:
        if params.get("inline_message_id"):
            plain, _ = self._formatted_text(params)
            self._check_length(plain)
            return True, None
        plain, entities = self._formatted_text(params)
        chat = self._resolve_chat(params.get("chat_id"))
        message_id = _as_int(params.get("message_id"), "message identifier")
        if not message_id:
            raise _bad("message identifier is not specified")
        with self._lock:
            stored = chat.messages.get(message_id)
            if stored is None:
                raise _bad("message to edit not found")
            self._check_length(plain)
            reply_markup = _as_json(params.get("reply_markup"))
            if (
                stored["plain"] == plain
                and stored["entities"] == entities
                and stored.get("reply_markup") == reply_markup
            ):
                raise _bad(
                    "message is not modified: specified new message content and reply markup "
                    "are exactly the same as a current content and reply markup of the message"
                )
            link_preview = _as_json(params.get("link_preview_options"))
            stored.update(
                text=str(params.get("text")),
                plain=plain,
                entities=entities,
                reply_markup=reply_markup,
                edit_date=int(self.wall_clock()),
            )
            if isinstance(link_preview, dict):
                stored["link_preview_options"] = link_preview
            self._accepted.append(self._record("editmessagetext", chat, stored, params))
            return self._message_json(chat, stored), None

    def _m_deletemessage(self, params: dict) -> tuple[Any, None]:
        chat = self._resolve_chat(params.get("chat_id"))
        message_id = _as_int(params.get("message_id"), "message identifier")
        with self._lock:
            if not message_id or chat.messages.pop(message_id, None) is None:
                raise _bad("message to delete not found")
        return True, None

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> str:
        scope = _as_json(scope) if scope else {"type": "default"}
        return json.dumps(scope, sort_keys=True) + "|" + str(language_code or "")

    def _m_setmycommands(self, params: dict) -> tuple[Any, None]:
        raw = params.get("commands")
        commands = _as_json(raw) if raw is not None else None
        if raw is None or (isinstance(raw, str) and commands is raw):
            raise _bad("can't parse commands JSON object")
        if not isinstance(commands, list):
            raise _bad("expected an Array of BotCommand")
        if len(commands) > BOT_COMMANDS_MAX:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        cleaned = []
        for item in commands:
            if not isinstance(item, dict):
                raise _bad("expected BotCommand")
            command = str(item.get("command") or "").strip().removeprefix("/").strip()
            description = str(item.get("description") or "").strip()
            if not command:
                raise _bad("command must be non-empty")
            if len(command) > 32:
                raise _bad("command length must not exceed 32")
            if not description:
                raise _bad("command description must be non-empty")
            if len(description) > 256:
                raise _bad("command description length must not exceed 256")
            if not _COMMAND_CHARS.fullmatch(command):
                raise _bad("BOT_COMMAND_INVALID")
            cleaned.append({"command": command, "description": description})
        with self._lock:
            key = self._commands_key(params.get("scope"), params.get("language_code"))
            self._commands[key] = cleaned
        return True, None

    def _m_getmycommands(self, params: dict) -> tuple[Any, None]:
        with self._lock:
            key = self._commands_key(params.get("scope"), params.get("language_code"))
            return list(self._commands.get(key, [])), None

    def _m_deletemycommands(self, params: dict) -> tuple[Any, None]:
        with self._lock:
            key = self._commands_key(params.get("scope"), params.get("language_code"))
            self._commands.pop(key, None)
        return True, None

    # ------------------------------------------------------------ fake admin

    def admin(self, path: str, params: dict[str, Any]) -> Any:
        """``/_fake/...`` endpoints for manual checks (messages, push, chats)."""
        if path == "messages":
            return [
                {
                    "chat_id": m.chat_id,
                    "message_id": m.message_id,
                    "method": m.method,
                    "text": m.text,
                    "parse_mode": m.parse_mode,
                    "date": m.date,
                }
                for m in self.messages()
            ]
        if path == "rejected":
            return [
                {"method": r.method, "status": r.status, "description": r.description}
                for r in self.rejected()
            ]
        if path == "push":
            return self.push_message(
                params.get("chat_id") or params["user_id"],
                int(params["user_id"]),
                str(params.get("text", "")),
            )
        if path == "chats":
            with self._lock:
                return [c.to_json() | {"state": c.state} for c in self._chats.values()]
        raise ApiError(404, "Not Found")


class _Handler(BaseHTTPRequestHandler):
    """HTTP front: URL → (token, method), body → params, envelope out."""

    fake: FakeBotApi
    protocol_version = "HTTP/1.1"
    server_version = "telegram-bot-api-fake"
    wbufsize = 1 << 16  # headers and body leave in one write (no Nagle/delayed-ACK stall)

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_params(self) -> dict[str, Any]:
        split = urlsplit(self.path)
        params: dict[str, Any] = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "").lower()
        if not body:
            return params
        if ctype.startswith("application/json"):
            try:
                data = json.loads(body)
            except ValueError:
                raise _bad("can't parse JSON encoded request body") from None
            if not isinstance(data, dict):
                raise _bad("can't parse JSON encoded request body")
            params.update(data)
        elif ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
            )
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if not name:
                    continue
                payload = part.get_payload(decode=True) or b""
                if part.get_filename():
                    params[name] = payload
                else:
                    params[name] = payload.decode("utf-8", "surrogateescape")
        else:
            params.update(
                parse_qsl(body.decode("utf-8", "surrogateescape"), keep_blank_values=True)
            )
        return params

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_error(self, err: ApiError) -> None:
        payload: dict[str, Any] = {
            "ok": False,
            "error_code": err.status,
            "description": err.description,
        }
        headers = {}
        if err.retry_after is not None:
            payload["parameters"] = {"retry_after": err.retry_after}
            headers["Retry-After"] = str(err.retry_after)
        self._send(err.status, payload, headers)

    def _serve(self) -> None:
        fake = self.fake
        path = urlsplit(self.path).path
        try:
            params = self._read_params()
        except ApiError as err:
            self._send_error(err)
            return
        if path.startswith("/_fake/"):
            try:
                self._send(200, {"ok": True, "result": fake.admin(path[7:], params)})
            except ApiError as err:
                self._send_error(err)
            return
        match = re.fullmatch(r"/bot([^/]*)/([^/]*)/?", path)
        if not match:
            self._send_error(ApiError(404, "Not Found"))
            return
        token, method = match.groups()
        if not _TOKEN_FORMAT.fullmatch(token):
            self._send_error(ApiError(404, "Not Found"))
            return
        if token != fake.token:
            self._send_error(ApiError(401, "Unauthorized"))
            return
        failure = fake._take_failure(method)
        if failure is not None:
            self._inject(method, params, failure)
            return
        try:
            result, description = fake.handle(method, params)
        except ApiError as err:
            self._send_error(err)
            return
        except Exception as exc:  # a bug in the fake: answer loudly, keep serving
            fake.record_bug(method, params, exc)
            self._send_error(ApiError(500, f"Internal Server Error: fake Bot API bug: {exc!r}"))
            return
        payload = {"ok": True, "result": result}
        if description:
            payload["description"] = description
        self._send(200, payload)

    def _inject(self, method: str, params: dict, failure: _Failure) -> None:
        fake = self.fake
        if failure.status in ("drop", "hang"):
            fake.record_failure(method, params, failure, f"connection {failure.status}")
            if failure.status == "hang" and failure.delay > 0:
                time.sleep(failure.delay)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        status = int(failure.status)
        reason = {
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }.get(status, "Internal Server Error")
        description = failure.description or reason
        fake.record_failure(method, params, failure, description)
        if failure.delay > 0:
            time.sleep(failure.delay)
        self._send(status, {"ok": False, "error_code": status, "description": description})


def _parse_chat_arg(value: str) -> tuple[str, str, str]:
    """``@name[:type[:state]]`` or ``-100123[:type[:state]]`` from the command line."""
    name, *rest = value.split(":")
    chat_type = rest[0] if rest and rest[0] else "channel"
    state = rest[1] if len(rest) > 1 else "ok"
    return name, chat_type, state


def main(argv: list[str] | None = None) -> None:
    """Serve a fake Bot API until Ctrl-C (manual end-to-end checks of ``monitor run``)."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.botapi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument(
        "--chat",
        action="append",
        default=[],
        help="@name[:type[:state]] (type channel|group|supergroup|private, "
        "state ok|kicked|not_member|not_admin|blocked); repeatable",
    )
    parser.add_argument("--strict-rate", action="store_true", help="private chats 1/s, no burst")
    parser.add_argument("--no-pace", action="store_true", help="never answer 429")
    parser.add_argument("--length-unit", choices=("code_points", "utf16"), default="code_points")
    args = parser.parse_args(argv)
    pace = Pace.off() if args.no_pace else (Pace.strict() if args.strict_rate else Pace())
    server = FakeBotApi(
        args.token, host=args.host, port=args.port, pace=pace, length_unit=args.length_unit
    )
    for chat in args.chat or ["@test_channel"]:
        name, chat_type, state = _parse_chat_arg(chat)
        created = server.add_chat(name, chat_type, state)
        print(f"chat {name} id={created.id} type={chat_type} state={state}", flush=True)
    server.start()
    print(f"fake Bot API at {server.url} (PTB base_url {server.base_url}), token {args.token}")
    print(
        f"inspect: {server.url}/_fake/messages  "
        f"inject: {server.url}/_fake/push?user_id=1&text=/start"
    )
    print("Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
