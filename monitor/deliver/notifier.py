"""Where alerts go: Telegram through python-telegram-bot, or the console.

A notifier sends one rendered alert and answers with a ``Delivery``; it never
decides about retries (the sender does) and never raises for an expected
Telegram answer — flood control, a kicked bot, a missing chat are data.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Protocol, TextIO

from monitor.exceptions import NotifyError
from monitor.models import Channel, Delivery
from monitor.render.telegram_text import retry_after_seconds

if TYPE_CHECKING:
    from telegram.error import TelegramError

# python-telegram-bot (and httpx under it) is imported where a token is used: a
# console run or `run --once` without a token does not pay for it at start-up.

# httpx logs every request URL at INFO, and a Bot API URL carries the token.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

log = logging.getLogger(__name__)

#: Bad requests that mean the chat itself is unusable, not just this message.
_BROKEN_CHAT = ("chat not found", "chat_write_forbidden", "not enough rights", "have no rights")


_redacted_tokens: set[str] = set()


def redact_token_in_logs(token: str) -> None:
    """Hide ``token`` in every log record from now on, whoever logs it.

    python-telegram-bot logs its token-bearing file URL at DEBUG and httpx logs
    request URLs at INFO; a record factory catches them all, whatever handler
    (ours, pytest's, an embedding application's) ends up writing the record.
    """
    if not token or token in _redacted_tokens:
        return
    _redacted_tokens.add(token)
    make_record = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call is not ours to fix here
            return record
        if token in message:
            record.msg, record.args = message.replace(token, "<token>"), None
        return record

    logging.setLogRecordFactory(factory)


class Notifier(Protocol):
    """Delivers one alert to one channel."""

    async def start(self) -> None: ...

    async def send(
        self, alert_id: int, html: str, text: str, channel: Channel, silent: bool = False
    ) -> Delivery: ...

    async def close(self) -> None: ...


class ConsoleNotifier:
    """The embedded default without a token: readable alerts on standard output."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.count = 0

    async def start(self) -> None:
        return None

    async def send(
        self, alert_id: int, html: str, text: str, channel: Channel, silent: bool = False
    ) -> Delivery:
        stream = self.stream or sys.stdout
        self.count += 1
        rule = "─" * 72
        print(f"{rule}\n[{channel.name} → {channel.chat}]\n{text}", file=stream, flush=True)
        return Delivery(alert_id=alert_id, ok=True, message_id=self.count)

    async def close(self) -> None:
        return None


class TelegramNotifier:
    """Sends Telegram HTML through python-telegram-bot's ``Bot`` (``base_url`` configurable)."""

    def __init__(self, token: str, api_url: str, timeout: float = 20.0) -> None:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        redact_token_in_logs(token)
        request = HTTPXRequest(
            connection_pool_size=16,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            pool_timeout=timeout,
        )
        self.bot = Bot(token=token, base_url=f"{api_url.rstrip('/')}/bot", request=request)
        self._started = False

    async def start(self) -> None:
        """Check the token with getMe. A refused token is fatal (NotifyError); an
        unreachable API is not — alerts wait in the outbox and sends retry it."""
        from telegram.error import InvalidToken, NetworkError, TimedOut

        if self._started:
            return
        try:
            await self.bot.initialize()
        except InvalidToken:
            raise NotifyError(
                "TELEGRAM_BOT_TOKEN was rejected by Telegram (Unauthorized); check the token "
                "@BotFather gave you",
                permanent=True,
            ) from None
        except (NetworkError, TimedOut) as exc:
            log.warning("Telegram is unreachable for now (%s); alerts wait in the outbox", exc)
            return
        self._started = True

    async def send(
        self, alert_id: int, html: str, text: str, channel: Channel, silent: bool = False
    ) -> Delivery:
        from telegram import LinkPreviewOptions
        from telegram.constants import ParseMode
        from telegram.error import TelegramError

        if not self._started:
            try:
                await self.start()
            except NotifyError as exc:
                return Delivery(alert_id, ok=False, error=str(exc))
            if not self._started:
                return Delivery(alert_id, ok=False, error="network: Telegram is unreachable")
        try:
            message = await self.bot.send_message(
                chat_id=_chat_id(channel.chat),
                text=html,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=not channel.link_preview),
                message_thread_id=channel.thread_id,
                disable_notification=silent,
            )
        except TelegramError as exc:
            return delivery_from_error(alert_id, channel, exc)
        return Delivery(alert_id=alert_id, ok=True, message_id=message.message_id)

    async def close(self) -> None:
        if self._started:
            await self.bot.shutdown()
            self._started = False


def delivery_from_error(alert_id: int, channel: Channel, exc: TelegramError) -> Delivery:
    """Classify a Telegram error: flood wait, broken chat, bad message, or transient."""
    from telegram.error import (
        BadRequest,
        ChatMigrated,
        Forbidden,
        InvalidToken,
        NetworkError,
        RetryAfter,
        TimedOut,
    )

    where = f"channel {channel.name!r} ({channel.chat})"
    if isinstance(exc, RetryAfter):
        seconds = retry_after_seconds(exc)
        return Delivery(
            alert_id,
            ok=False,
            error=f"flood control: retry after {seconds:g}s",
            retry_after=seconds,
        )
    if isinstance(exc, ChatMigrated):
        return Delivery(
            alert_id,
            ok=False,
            error=f"{where}: the group became a supergroup; set chat to {exc.new_chat_id}",
            permanent=True,
            channel_broken=True,
        )
    if isinstance(exc, Forbidden):
        return Delivery(
            alert_id,
            ok=False,
            error=f"{where}: Telegram refused: {exc.message} — add the bot to the chat "
            "as an administrator allowed to post",
            permanent=True,
            channel_broken=True,
        )
    if isinstance(exc, InvalidToken):
        return Delivery(
            alert_id, ok=False, error="TELEGRAM_BOT_TOKEN was rejected by Telegram (Unauthorized)"
        )
    if isinstance(exc, BadRequest):
        broken = any(s in exc.message.lower() for s in _BROKEN_CHAT)
        return Delivery(
            alert_id,
            ok=False,
            error=f"{where}: Telegram refused: {exc.message}",
            permanent=True,
            channel_broken=broken,
        )
    if isinstance(exc, TimedOut | NetworkError):
        return Delivery(alert_id, ok=False, error=f"network: {exc.message}")
    return Delivery(alert_id, ok=False, error=f"Telegram error: {exc.message}")


def _chat_id(chat: str) -> str | int:
    return int(chat) if chat.lstrip("-").isdigit() else chat
