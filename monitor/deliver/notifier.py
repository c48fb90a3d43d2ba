"""Where alerts go: Telegram through python-telegram-bot, or the console.

A notifier sends one rendered alert and answers with a ``Delivery``; it never
decides about retries (the sender does) and never raises for an expected
Telegram answer — flood control, a kicked bot, a missing chat are data.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
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
        self,
        alert_id: int,
        html: str,
        text: str,
        channel: Channel,
        silent: bool = False,
        reply_to: int | None = None,
    ) -> Delivery: ...

    async def edit(
        self, alert_id: int, message_id: int, html: str, text: str, channel: Channel
    ) -> Delivery:
        """Replace the text of a message sent before (a story's first alert)."""
        ...

    async def send_photo(
        self,
        alert_id: int,
        caption: str,
        text: str,
        channel: Channel,
        *,
        photo_url: str | None = None,
        photo_png: bytes | None = None,
        silent: bool = False,
    ) -> Delivery:
        """Send a photo (by URL, else PNG bytes) with the alert as its HTML ``caption``.

        A refusal (the image could not be fetched, the caption is too long) is a
        permanent, not channel-broken ``Delivery``: the sender then sends ``html``.
        """
        ...

    async def close(self) -> None: ...


def media_dir() -> Path:
    """Where the console saves PNG images: ``$MONITOR_MEDIA_DIR``, else a temp folder."""
    folder = os.environ.get("MONITOR_MEDIA_DIR") or os.path.join(
        tempfile.gettempdir(), "monitor-media"
    )
    return Path(folder)


class ConsoleNotifier:
    """The embedded default without a token: readable alerts on standard output."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.count = 0

    async def start(self) -> None:
        return None

    async def send(
        self,
        alert_id: int,
        html: str,
        text: str,
        channel: Channel,
        silent: bool = False,
        reply_to: int | None = None,
    ) -> Delivery:
        stream = self.stream or sys.stdout
        self.count += 1
        rule = "─" * 72
        where = f"{channel.name} → {channel.chat}"
        if reply_to is not None:
            where += f", reply to message {reply_to}"
        print(f"{rule}\n[{where}]\n{text}", file=stream, flush=True)
        return Delivery(alert_id=alert_id, ok=True, message_id=self.count)

    async def edit(
        self, alert_id: int, message_id: int, html: str, text: str, channel: Channel
    ) -> Delivery:
        stream = self.stream or sys.stdout
        rule = "─" * 72
        where = f"{channel.name} → {channel.chat}, message {message_id} edited"
        print(f"{rule}\n[{where}]\n{text}", file=stream, flush=True)
        return Delivery(alert_id=alert_id, ok=True, message_id=message_id)

    async def send_photo(
        self,
        alert_id: int,
        caption: str,
        text: str,
        channel: Channel,
        *,
        photo_url: str | None = None,
        photo_png: bytes | None = None,
        silent: bool = False,
    ) -> Delivery:
        """Print the image's URL, or save the PNG and print its path, then the alert."""
        if photo_url:
            where = photo_url
        elif photo_png is not None:
            folder = media_dir()
            try:
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"alert-{alert_id}.png"
                path.write_bytes(photo_png)
            except OSError as exc:
                return Delivery(
                    alert_id,
                    ok=False,
                    error=f"cannot save the image: {exc.strerror}",
                    permanent=True,
                )
            where = str(path)
        else:
            return await self.send(alert_id, caption, text, channel, silent)
        return await self.send(alert_id, caption, f"🖼 {where}\n{text}", channel, silent)

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

    async def _ready(self, alert_id: int) -> Delivery | None:
        """None when the bot is started; else the failed delivery to report."""
        if self._started:
            return None
        try:
            await self.start()
        except NotifyError as exc:
            return Delivery(alert_id, ok=False, error=str(exc))
        if not self._started:
            return Delivery(alert_id, ok=False, error="network: Telegram is unreachable")
        return None

    async def send(
        self,
        alert_id: int,
        html: str,
        text: str,
        channel: Channel,
        silent: bool = False,
        reply_to: int | None = None,
    ) -> Delivery:
        from telegram import LinkPreviewOptions, ReplyParameters
        from telegram.constants import ParseMode
        from telegram.error import TelegramError

        if (failed := await self._ready(alert_id)) is not None:
            return failed
        reply = None
        if reply_to is not None:  # the reply still goes if the first alert was deleted
            reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
        try:
            message = await self.bot.send_message(
                chat_id=_chat_id(channel.chat),
                text=html,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=not channel.link_preview),
                message_thread_id=channel.thread_id,
                disable_notification=silent,
                reply_parameters=reply,
            )
        except TelegramError as exc:
            return delivery_from_error(alert_id, channel, exc)
        return Delivery(alert_id=alert_id, ok=True, message_id=message.message_id)

    async def edit(
        self, alert_id: int, message_id: int, html: str, text: str, channel: Channel
    ) -> Delivery:
        """editMessageText; "message is not modified" counts as done (it already says so)."""
        from telegram import LinkPreviewOptions
        from telegram.constants import ParseMode
        from telegram.error import BadRequest, TelegramError

        if (failed := await self._ready(alert_id)) is not None:
            return failed
        try:
            await self.bot.edit_message_text(
                chat_id=_chat_id(channel.chat),
                message_id=message_id,
                text=html,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=not channel.link_preview),
            )
        except BadRequest as exc:
            if "message is not modified" in exc.message.lower():
                return Delivery(alert_id=alert_id, ok=True, message_id=message_id)
            return delivery_from_error(alert_id, channel, exc)
        except TelegramError as exc:
            return delivery_from_error(alert_id, channel, exc)
        return Delivery(alert_id=alert_id, ok=True, message_id=message_id)

    async def send_photo(
        self,
        alert_id: int,
        caption: str,
        text: str,
        channel: Channel,
        *,
        photo_url: str | None = None,
        photo_png: bytes | None = None,
        silent: bool = False,
    ) -> Delivery:
        """sendPhoto: by URL (Telegram fetches it) or a multipart upload of the PNG."""
        from telegram import InputFile
        from telegram.constants import ParseMode
        from telegram.error import TelegramError

        if not self._started:
            try:
                await self.start()
            except NotifyError as exc:
                return Delivery(alert_id, ok=False, error=str(exc))
            if not self._started:
                return Delivery(alert_id, ok=False, error="network: Telegram is unreachable")
        photo: str | InputFile
        if photo_url:
            photo = photo_url
        elif photo_png is not None:
            photo = InputFile(photo_png, filename="image.png")
        else:
            return Delivery(alert_id, ok=False, error="no image to send", permanent=True)
        try:
            message = await self.bot.send_photo(
                chat_id=_chat_id(channel.chat),
                photo=photo,
                caption=caption,
                parse_mode=ParseMode.HTML,
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
