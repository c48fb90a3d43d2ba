"""The bot's own Telegram commands: see and steer a running worker from a chat.

    /start, /help           what the bot does, this chat's id, your user id   (everyone)
    /status                 feeds ok/failing, last poll/alert, outbox, uptime (admins)
    /feeds                  failing feeds with their last error               (admins)
    /rules                  rules, their channels, alerts in the last 24 h    (admins)
    /test TEXT              which rules match TEXT and why, hits in bold      (admins)
    /recent [RULE]          the last alerts, optionally of one rule           (admins)
    /mute TARGET DURATION   silence a rule or a channel for a while           (admins)
    /unmute TARGET          lift a mute                                       (admins)
    /search QUERY           archived articles of the last 7 days that match   (admins)
    /backtest RULE [7d]     what a rule would have alerted on the archive     (admins)

Why it is built this way:

* It runs inside the worker's event loop (``running_bot``), with long polling,
  so it needs no public URL and shares the process's configuration. Rules and
  settings are read through callables on every command, so a hot reload is
  seen at once.
* Every database call runs in a thread (``asyncio.to_thread``) and updates are
  processed concurrently, so a command answers in a moment even while the
  worker is busy polling feeds.
* Replies are Telegram HTML built by the pure ``render_*`` functions: every
  piece of outside text (feed titles, errors, rule terms, the user's own text)
  is escaped, and long lists are cut to fit 4096 characters with
  "… and N more". The HTML string is measured, which is never shorter than
  the text Telegram counts after parsing.
* Only user ids in ``telegram.admins`` may use the commands that reveal or
  change anything; the list is read from the current settings, so adding an
  admin takes effect on reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import html
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from telegram import BotCommand, LinkPreviewOptions, Message, Update
from telegram.constants import MessageEntityType, MessageLimit, ParseMode
from telegram.error import InvalidToken, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes, filters

from monitor.archive import QueryError, RuleBacktest, SearchResult, snippet_pieces
from monitor.archive import backtest as archive_backtest
from monitor.archive import search as archive_search
from monitor.config import Settings, parse_duration
from monitor.exceptions import NotifyError, StorageError
from monitor.models import (
    FIELDS,
    AlertStatus,
    Article,
    Channel,
    FeedSource,
    FeedState,
    Match,
    MuteKind,
    MuteTarget,
    Rule,
    utc_now,
)
from monitor.pipeline import Ruleset
from monitor.render.telegram_text import (
    cut_before,
    esc,
    format_utc,
    href_attr,
    merge_spans,
    retry_after_seconds,
    safe_link,
    truncate,
)
from monitor.storage import OutboxAlert, Store
from monitor.text import guess_language

__all__ = [
    "COMMANDS",
    "MAX_REPLY",
    "BotContext",
    "Command",
    "build_application",
    "render_backtest",
    "render_feeds",
    "render_help",
    "render_mutes",
    "render_recent",
    "render_rules",
    "render_search",
    "render_status",
    "render_test",
    "resolve_target",
    "running_bot",
]

log = logging.getLogger(__name__)

#: Longest reply, in characters of HTML source (≥ what Telegram counts after parsing).
MAX_REPLY = MessageLimit.MAX_TEXT_LENGTH
#: Longest mute a user may set (a longer one is surely a typo).
MAX_MUTE = timedelta(days=365)
RECENT_LIMIT = 10
POLL_TIMEOUT = timedelta(seconds=10)  # getUpdates long-poll; stop() cuts it short
_ITEM_MAX = 600  # one list item (a feed error, an alert title) at most
_TEST_TEXT_MAX = 1200  # HTML of each echoed /test field at most
_NAMES_MAX = 40  # names listed in a "did you mean" answer at most
_REPLY_ATTEMPTS = 3
_REPLY_MAX_WAIT = 10.0  # seconds; a longer 429 wait drops the answer (logged)


@dataclass(frozen=True)
class Command:
    """One bot command as registered with setMyCommands."""

    name: str
    description: str
    admin: bool  # reveals or changes something: only telegram.admins may use it
    usage: str = ""


COMMANDS: tuple[Command, ...] = (
    Command("start", "What this bot does and this chat's id", False),
    Command("help", "What this bot does and this chat's id", False),
    Command("status", "Feeds, last poll and alert, outbox, uptime", True),
    Command("feeds", "Failing feeds and their errors", True),
    Command("rules", "Rules, their channels and alerts in 24 h", True),
    Command("test", "Which rules match a text, and why", True, "<text>"),
    Command("recent", "The last alerts (optionally of one rule)", True, "[rule]"),
    Command("mute", "Silence a rule or channel for a while", True, "<rule|channel> <duration>"),
    Command("unmute", "Lift a mute", True, "<rule|channel>"),
    Command("search", "Archived articles that match a query", True, "<query>"),
    Command("backtest", "What a rule would have alerted (archive)", True, "<rule> [7d]"),
    Command("trend", "A rule's matches per hour, as a chart", True, "<rule> [7d]"),
)


@dataclass
class BotContext:
    """What the commands read: the store, the current rules and settings, the clock."""

    store: Store
    get_ruleset: Callable[[], Ruleset]  # the current rules (swapped on reload)
    get_settings: Callable[[], Settings]  # the current settings
    started_at: datetime
    clock: Callable[[], datetime] = field(default=utc_now)


# --------------------------------------------------------------------------- lifecycle


def build_application(token: str, api_url: str, ctx: BotContext) -> Application:
    """A PTB Application with every command and the error handler, not yet started."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the token
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_url.rstrip('/')}/bot")
        .job_queue(None)  # the worker has its own scheduler
        .concurrent_updates(True)  # a slow /recent never holds up /status
        .connect_timeout(10)
        .read_timeout(15)
        .write_timeout(15)
        .get_updates_connect_timeout(10)
        .get_updates_read_timeout(10)  # added to the long-poll timeout by PTB
        .build()
    )
    handlers = _Handlers(ctx)
    everyone = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
    for command in COMMANDS:
        callback = getattr(handlers, command.name)
        if command.admin:
            callback = handlers.admin_only(command.name, callback)
        application.add_handler(
            CommandHandler(
                command.name,
                callback,
                filters=filters.UpdateType.MESSAGE if command.admin else everyone,
            )
        )
    application.add_error_handler(_on_error)
    return application


@asynccontextmanager
async def running_bot(token: str, api_url: str, ctx: BotContext) -> AsyncIterator[Application]:
    """Answer commands (long polling in the running loop) while the ``async with`` body runs.

    Raises ``NotifyError`` when Telegram refuses the token or cannot be reached
    at start; a failing setMyCommands is only logged (commands still work).
    """
    application = build_application(token, api_url, ctx)
    try:
        await application.initialize()
    except TelegramError as exc:
        with contextlib.suppress(Exception):
            await application.bot.shutdown()  # close the HTTP clients initialize opened
        if isinstance(exc, InvalidToken):  # PTB's message repeats the token: drop the cause
            raise NotifyError(
                "Telegram refused the bot token (check TELEGRAM_BOT_TOKEN)", permanent=True
            ) from None
        raise NotifyError(f"cannot reach the Telegram Bot API to start the bot: {exc}") from exc
    try:
        await _register_commands(application)
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(
            timeout=POLL_TIMEOUT,
            allowed_updates=["message", "channel_post"],
            error_callback=_on_poll_error,
        )
        log.info("bot commands: answering as @%s", application.bot.username)
        yield application
    finally:
        await _stop(application)


async def _register_commands(application: Application) -> None:
    commands = [BotCommand(c.name, c.description) for c in COMMANDS]
    try:
        await application.bot.set_my_commands(commands)
    except TelegramError as exc:
        log.warning("could not register the bot's command list (setMyCommands): %s", exc)


class _ShutdownCleanupNote(logging.Filter):
    """PTB's last getUpdates on stop may find its one connection still held by the
    long poll it just cancelled; it logs that with a traceback, though nothing is
    lost (the updates come again on the next start). Keep it as a one-line warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Error while calling `get_updates` one more time"):
            reason = record.exc_info[1] if record.exc_info else None
            record.msg, record.args = f"bot: last getUpdates on stop failed: {reason}", None
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


logging.getLogger("telegram.ext.Updater").addFilter(_ShutdownCleanupNote())


async def _stop(application: Application) -> None:
    """Stop polling, then the application, then shut down; each step even if one fails."""
    steps: list[Callable[[], Awaitable[Any]]] = []
    if application.updater is not None and application.updater.running:
        steps.append(application.updater.stop)
    if application.running:
        steps.append(application.stop)
    steps.append(application.shutdown)
    for step in steps:
        try:
            await asyncio.wait_for(step(), timeout=5)
        except (TelegramError, TimeoutError) as exc:
            # expected now and then: the updater's last getUpdates finds the pool still
            # held by the long poll it just cancelled; nothing is lost, so no traceback
            log.warning("bot: %s did not finish cleanly: %s", step.__qualname__, exc)
        except Exception:  # shutting down: report and keep going
            log.warning("bot: %s did not finish cleanly", step.__qualname__, exc_info=True)


def _on_poll_error(exc: TelegramError) -> None:
    """getUpdates failed (network, or another instance polls): PTB retries with back-off."""
    log.warning("bot: fetching commands from Telegram failed, retrying: %s", exc)


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log any handler error and tell the user briefly; never raise."""
    error = context.error
    if isinstance(error, TelegramError):  # the answer itself failed: nobody to tell
        log.warning("bot: could not answer a command: %s", error)
        return
    if isinstance(error, StorageError):
        log.warning("bot command failed: the database did not answer: %s", error)
        answer = "Sorry, the state database did not answer. Please try again in a moment."
    else:
        log.error("bot command failed", exc_info=error)
        answer = "Sorry, that command failed; the error is in the worker's log."
    message = update.effective_message if isinstance(update, Update) else None
    if message is not None:
        with contextlib.suppress(Exception):
            await message.reply_text(answer)


# --------------------------------------------------------------------------- handlers

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]


class _Handlers:
    """The command callbacks, bound to one BotContext."""

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    def admin_only(self, name: str, callback: Handler) -> Handler:
        """Wrap ``callback`` so only ``telegram.admins`` reach it; others get a polite no."""

        async def guarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            user = update.effective_user
            if user is None or user.id not in self.ctx.get_settings().telegram.admins:
                log.info("bot: /%s refused for user %s", name, user.id if user else "?")
                who = f" Your user id is <code>{user.id}</code>." if user else ""
                await _reply(
                    update,
                    f"Sorry, /{name} is only for this bot's administrators.{who}",
                )
                return
            await callback(update, context)

        guarded.__doc__ = callback.__doc__
        return guarded

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """What the bot does, and the ids users need for the configuration."""
        await self.help(update, context)

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """What the bot does, and the ids users need for the configuration."""
        chat = update.effective_chat
        user = update.effective_user
        admins = self.ctx.get_settings().telegram.admins
        await _reply(
            update,
            render_help(
                chat.id if chat else None,
                user.id if user else None,
                is_admin=bool(user and user.id in admins),
            ),
        )

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Feeds ok/failing, last poll, last alert, outbox depth, mutes, uptime, version."""
        store, now = self.ctx.store, self.ctx.clock()
        states, pending, last_alert, mutes = await asyncio.gather(
            asyncio.to_thread(store.feed_states),
            asyncio.to_thread(store.pending_count),
            asyncio.to_thread(store.last_alert_at),
            asyncio.to_thread(store.active_mutes, now),
        )
        settings = self.ctx.get_settings()
        await _reply(
            update,
            render_status(
                settings.feeds,
                states,
                pending=pending,
                last_alert=last_alert,
                mutes=mutes,
                started_at=self.ctx.started_at,
                version=settings.version,
                now=now,
            ),
        )

    async def feeds(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Failing feeds with their last error."""
        states = await asyncio.to_thread(self.ctx.store.feed_states)
        await _reply(update, render_feeds(self.ctx.get_settings().feeds, states, self.ctx.clock()))

    async def rules(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Rules with their channels and how many alerts each made in the last 24 hours."""
        now = self.ctx.clock()
        counts, mutes = await asyncio.gather(
            asyncio.to_thread(self.ctx.store.rule_alert_counts, now - timedelta(hours=24)),
            asyncio.to_thread(self.ctx.store.active_mutes, now),
        )
        await _reply(update, render_rules(self.ctx.get_ruleset(), counts, mutes, now))

    async def test(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Which rules match the given text (or the replied-to message), with hits bolded."""
        message = update.effective_message
        text = _command_text(message) if message else ""
        if not text and message and message.reply_to_message:
            replied = message.reply_to_message
            text = replied.text or replied.caption or ""
        if not text.strip():
            await _reply(
                update,
                "Usage: <code>/test some article text</code> — the first line counts as the "
                "title when there are several. Or reply <code>/test</code> to a message.",
            )
            return
        ruleset = self.ctx.get_ruleset()
        settings = self.ctx.get_settings()
        article = _test_article(text)
        everywhere = tuple(_feed_ids_and_tags(settings.feeds))
        matches = await asyncio.to_thread(ruleset.matcher.match, article, everywhere)
        await _reply(update, render_test(article, matches, ruleset))

    async def recent(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The last alerts, newest first; ``/recent RULE`` only that rule's."""
        args = context.args or []
        rule = args[0] if args else None
        ruleset = self.ctx.get_ruleset()
        alerts = await asyncio.to_thread(self.ctx.store.recent_alerts, RECENT_LIMIT, rule)
        await _reply(update, render_recent(alerts, rule, ruleset, self.ctx.clock()))

    async def trend(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/trend RULE [7d]``: the rule's hourly matches as the surge chart (a photo)."""
        from monitor.storage.surges import COUNT_RETENTION
        from monitor.trends import trend_chart

        args = context.args or []
        ruleset = self.ctx.get_ruleset()
        if not args:
            await _reply(update, "Usage: /trend &lt;rule&gt; [7d]")
            return
        if args[0] not in ruleset.rules:
            await _reply(update, f"There is no rule named <code>{esc(args[0][:100])}</code>.")
            return
        try:
            since = parse_duration(args[1]) if len(args) > 1 else timedelta(days=7)
        except ValueError as exc:
            await _reply(update, esc(str(exc)))
            return
        since = min(max(since, timedelta(hours=1)), COUNT_RETENTION)
        now = self.ctx.clock()
        found, png = await asyncio.to_thread(trend_chart, self.ctx.store, args[0], now, since)
        message = update.effective_message
        if message is None:
            return
        await message.reply_photo(
            png, caption=found.caption(now), parse_mode=ParseMode.HTML, do_quote=False
        )

    async def mute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/mute NAME DURATION``: no alerts from that rule, or to that channel, until then."""
        args = context.args or []
        now = self.ctx.clock()
        ruleset = self.ctx.get_ruleset()
        if not args:
            mutes = await asyncio.to_thread(self.ctx.store.active_mutes, now)
            await _reply(update, render_mutes(mutes, now, usage=True))
            return
        if len(args) < 2:
            await _reply(update, _MUTE_USAGE)
            return
        target, problem = resolve_target(args[0], ruleset.rules, ruleset.channels)
        if target is None:
            await _reply(update, problem)
            return
        try:
            duration = parse_duration("".join(args[1:]))  # "1h 30m" as well as "1h30m"
        except ValueError as exc:
            await _reply(update, f"{esc(str(exc))}\n\n{_MUTE_USAGE}")
            return
        if duration <= timedelta(0) or duration > MAX_MUTE:
            await _reply(update, "The duration must be more than 0 and at most 365d.")
            return
        until = now + duration
        user = update.effective_user
        by = _who(user.id, user.username) if user else None
        await asyncio.to_thread(self.ctx.store.set_mute, target, until, by)
        log.info("bot: %s muted until %s by %s", target, until.isoformat(), by)
        muted = _target(target)
        if muted.kind == MuteKind.RULE:
            effect = "its matches make no alerts"
        else:
            effect = "no alerts are queued for it"
        await _reply(
            update,
            f"🔇 Muted {muted.kind} <b>{esc(muted.name)}</b> "
            f"until {_when(until)} ({_span(duration)}): "
            f"{effect} until then (articles seen meanwhile are not alerted later). "
            f"Undo with <code>/unmute {esc(args[0])}</code>.",
        )

    async def unmute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/unmute NAME``: lift a mute now."""
        args = context.args or []
        if len(args) != 1:
            await _reply(update, "Usage: <code>/unmute &lt;rule|channel&gt;</code>")
            return
        now = self.ctx.clock()
        ruleset = self.ctx.get_ruleset()
        mutes = await asyncio.to_thread(self.ctx.store.active_mutes, now)
        target, problem = resolve_target(args[0], ruleset.rules, ruleset.channels, mutes)
        if target is None:
            await _reply(update, problem)
            return
        cleared = await asyncio.to_thread(self.ctx.store.clear_mute, target)
        was_active = target in mutes
        muted = _target(target)
        if cleared and was_active:
            log.info("bot: %s unmuted", target)
            await _reply(update, f"🔔 Unmuted {muted.kind} <b>{esc(muted.name)}</b>.")
        else:
            await _reply(update, f"The {muted.kind} <b>{esc(muted.name)}</b> was not muted.")

    async def search(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/search QUERY``: archived articles of the last 7 days that match, newest first."""
        message = update.effective_message
        query = _command_text(message) if message else ""
        if not query.strip():
            await _reply(update, _SEARCH_USAGE)
            return
        try:
            result = await asyncio.to_thread(
                archive_search,
                self.ctx.store,
                query,
                now=self.ctx.clock(),
                since=SEARCH_WINDOW,
                limit=SEARCH_LIMIT,
            )
        except QueryError as exc:
            await _reply(update, f"Bad query: {esc(_cap(str(exc), 300))}\n\n{_SEARCH_USAGE}")
            return
        await _reply(update, render_search(query, result, SEARCH_WINDOW))

    async def backtest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/backtest RULE [DURATION]``: what the rule would have alerted on the archive."""
        args = context.args or []
        ruleset = self.ctx.get_ruleset()
        if not args:
            await _reply(update, _BACKTEST_USAGE + "\n" + _names_hint("Rules", ruleset.rules, ""))
            return
        rule = ruleset.rules.get(args[0])
        if rule is None:
            await _reply(
                update,
                f"No rule named <b>{esc(_cap(args[0], 80))}</b>. "
                + _names_hint("Rules", ruleset.rules, args[0]),
            )
            return
        since = SEARCH_WINDOW
        if len(args) > 1:
            try:
                since = parse_duration("".join(args[1:]))
            except ValueError as exc:
                await _reply(update, f"{esc(str(exc))}\n\n{_BACKTEST_USAGE}")
                return
            if since <= timedelta(0):
                await _reply(update, f"The duration must be more than 0.\n\n{_BACKTEST_USAGE}")
                return
        (result,) = await asyncio.to_thread(
            archive_backtest,
            self.ctx.store,
            [rule],
            now=self.ctx.clock(),
            since=since,
            feed_tags=ruleset.feed_tags,
            limit=BACKTEST_LIMIT,
        )
        await _reply(update, render_backtest(result, since))


SEARCH_WINDOW = timedelta(days=7)
SEARCH_LIMIT = 10
BACKTEST_LIMIT = 20
_SEARCH_USAGE = (
    "Usage: <code>/search &lt;query&gt;</code>, e.g. <code>/search Astana AND talks</code> or "
    '<code>/search "وقف إطلاق النار" NOT football</code>: the archive of the last 7 days, '
    "with the rules' semantics (word forms, Arabic clitics, phrases, AND/OR/NOT)."
)
_BACKTEST_USAGE = (
    "Usage: <code>/backtest &lt;rule&gt; [duration]</code>, e.g. <code>/backtest astana 3d</code> "
    "(default 7d): the archived articles the rule would have alerted."
)


_MUTE_USAGE = (
    "Usage: <code>/mute &lt;rule|channel&gt; &lt;duration&gt;</code>, e.g. "
    "<code>/mute astana 2h</code>. Durations: 30m, 2h, 1d, 1w, 1h30m. "
    "Write <code>rule:NAME</code> or <code>channel:NAME</code> when a rule and a "
    "channel share a name."
)


async def _reply(update: Update, text: str) -> None:
    """Answer in the same chat (and forum topic), HTML, without link previews."""
    message = update.effective_message
    if message is None:
        return
    text = _fit_text(text)
    for attempt in range(_REPLY_ATTEMPTS):
        try:
            await message.reply_text(
                text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                do_quote=False,
            )
            return
        except RetryAfter as exc:  # a human typing fast into a private chat: wait briefly
            wait = retry_after_seconds(exc)
            if attempt + 1 == _REPLY_ATTEMPTS or wait > _REPLY_MAX_WAIT:
                raise
            await asyncio.sleep(wait)


def _command_text(message: Message) -> str:
    """The text after ``/command`` (newlines kept, unlike ``context.args``)."""
    text = message.text or ""
    for entity in message.entities:
        if entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
            return text[len(message.parse_entity(entity)) :].strip()
    return ""


# --------------------------------------------------------------------------- queries


# --------------------------------------------------------------------------- rendering


def render_help(chat_id: int | None, user_id: int | None, *, is_admin: bool) -> str:
    """The /start and /help answer."""
    lines = [
        "<b>monitor</b> watches news feeds and posts an alert to Telegram channels when a "
        "new article matches one of its watch rules.",
        "",
    ]
    if chat_id is not None:
        lines.append(
            f"This chat's id: <code>{chat_id}</code> — use it as a channel's "
            "<code>chat:</code> or as <code>telegram.admin_chat</code> in the configuration."
        )
    if user_id is not None:
        lines.append(
            f"Your user id: <code>{user_id}</code>"
            + (
                " (you are an administrator)."
                if is_admin
                else " — add it to <code>telegram.admins</code> to use the commands below."
            )
        )
    lines += ["", "<b>Commands</b>"]
    for command in COMMANDS:
        if command.name == "start":
            continue
        usage = f" {esc(command.usage)}" if command.usage else ""
        note = " (admins)" if command.admin else ""
        lines.append(f"/{command.name}{usage} — {esc(command.description)}{note}")
    return "\n".join(lines)


def render_status(
    feeds: Sequence[FeedSource],
    states: Mapping[str, FeedState],
    *,
    pending: int,
    last_alert: datetime | None,
    mutes: Mapping[str, datetime],
    started_at: datetime,
    version: str,
    now: datetime,
) -> str:
    """The /status answer."""
    ok, failing, never = _feed_counts(feeds, states)
    polls = [s.last_poll for f in feeds if (s := states.get(f.id)) and s.last_poll]
    last_poll = max(polls) if polls else None
    feed_line = f"Feeds: {ok} ok, {failing} failing"
    if never:
        feed_line += f", {never} not polled yet"
    feed_line += f" (of {len(feeds)})"
    if failing:
        feed_line += " — see /feeds"
    lines = [
        f"<b>Status</b> · config version <code>{esc(version or '?')}</code>",
        ("❌ " if failing else "✅ ") + feed_line,
        f"Last poll: {_ago(last_poll, now)}",
        f"Last alert sent: {_ago(last_alert, now)}",
        f"Outbox: {pending} alert{'s' if pending != 1 else ''} waiting to be sent",
    ]
    if mutes:
        muted = ", ".join(esc(t) for t in sorted(mutes))
        lines.append(f"Muted: {muted}")
    lines.append(f"Uptime: {_span(now - started_at)} (since {_when(started_at)})")
    return _fit(lines, [])


def render_feeds(
    feeds: Sequence[FeedSource], states: Mapping[str, FeedState], now: datetime
) -> str:
    """The /feeds answer: the failing feeds, each with its last error."""
    ok, failing, never = _feed_counts(feeds, states)
    head = [f"<b>Feeds</b>: {ok} ok, {failing} failing, {never} not polled yet"]
    items = []
    for feed in feeds:
        state = states.get(feed.id)
        if state is None or not state.errors:
            continue
        status = f" · HTTP {state.http_status}" if state.http_status else ""
        items.append(
            f"❌ <b>{esc(feed.id)}</b> — {state.errors} failed poll"
            f"{'s' if state.errors != 1 else ''} in a row{status}\n"
            f"   last try {_ago(state.last_poll, now)}, next {_ago(state.next_poll, now)}\n"
            f"   <i>{esc(_cap(state.last_error or 'no error text', _ITEM_MAX))}</i>"
        )
    if not items:
        head.append("All polled feeds are OK." if ok else "No feed has failed.")
    return _fit(head, items)


def render_rules(
    ruleset: Ruleset, counts: Mapping[str, int], mutes: Mapping[str, datetime], now: datetime
) -> str:
    """The /rules answer: each rule with its channels and its alerts over 24 hours."""
    head = [f"<b>Rules</b> ({len(ruleset.rules)}) · alerts in the last 24 h"]
    items = []
    for name, rule in ruleset.rules.items():
        count = counts.get(name, 0)
        channels = []
        for channel in rule.notify:
            until = mutes.get(str(MuteTarget.channel(channel)))
            channels.append(esc(channel) + (f" 🔇 until {_when(until)}" if until else ""))
        line = (
            f"• <b>{esc(name)}</b> → {', '.join(channels) or '(no channel)'} — "
            f"{count} alert{'s' if count != 1 else ''}"
        )
        until = mutes.get(str(MuteTarget.rule(name)))
        if until:
            line += f" · 🔇 muted until {_when(until)}"
        items.append(_cap_html_line(line, name))
    if not items:
        head.append("No rules are configured.")
    return _fit(head, items)


def render_test(article: Article, matches: Sequence[Match], ruleset: Ruleset) -> str:
    """The /test answer: the rules that match, their hits, and the text with hits bolded."""
    language = article.language or "?"
    if not matches:
        head = [
            f"No rule matches this text (language: {esc(language)}; "
            f"{len(ruleset.rules)} rules checked)."
        ]
        return _fit([*head, "", *_highlighted(article, ())], [])
    head = [
        f"<b>{len(matches)} rule{'s' if len(matches) != 1 else ''} match</b> "
        f"(language: {esc(language)}):"
    ]
    items = []
    for match in matches:
        rule = ruleset.rules.get(match.rule)
        items.append(_explain(match, rule))
    shown = "\n\n" + "\n".join(_highlighted(article, matches))
    return _fit(head, items, limit=MAX_REPLY - len(shown)) + shown


def render_recent(
    alerts: Sequence[OutboxAlert], rule: str | None, ruleset: Ruleset, now: datetime
) -> str:
    """The /recent answer: the last alerts, newest first."""
    if not alerts:
        if rule is not None and rule not in ruleset.rules:
            return f"No alerts from a rule named <b>{esc(rule)}</b>. " + _names_hint(
                "Rules", ruleset.rules, rule
            )
        scope = f" from rule <b>{esc(rule)}</b>" if rule else ""
        return f"No alerts{scope} yet."
    scope = f" of rule <b>{esc(rule)}</b>" if rule else ""
    head = [f"<b>Last {len(alerts)} alert{'s' if len(alerts) != 1 else ''}</b>{scope}"]
    items = []
    for alert in alerts:
        title = esc(_cap(alert.title or "(untitled)", 200))
        href = safe_link(alert.link)
        linked = f'<a href="{href_attr(href)}">{title}</a>' if href else title
        status = _STATUS.get(alert.status, esc(alert.status))
        when = alert.sent_at or alert.created_at
        rules = ", ".join(esc(_cap(r, 60)) for r in alert.rules[:5])
        if len(alert.rules) > 5:
            rules += f" +{len(alert.rules) - 5}"
        items.append(
            f"• {_when(when)} · {esc(_cap(alert.channel, 60))} · {rules} · {status}\n   {linked}"
        )
    return _fit(head, items)


_STATUS: dict[str, str] = {
    AlertStatus.SENT: "✅ sent",
    AlertStatus.PENDING: "⏳ pending",
    AlertStatus.FAILED: "❌ failed",
    AlertStatus.HELD: "⏸ held for a digest",
    AlertStatus.DIGESTED: "📋 sent in a digest",
}


def render_mutes(mutes: Mapping[str, datetime], now: datetime, *, usage: bool = False) -> str:
    """The active mutes (``/mute`` without arguments)."""
    head = ["<b>Active mutes</b>" if mutes else "Nothing is muted."]
    items = [
        f"• {esc(target)} until {_when(until)} ({_span(until - now)} left)"
        for target, until in sorted(mutes.items(), key=lambda kv: kv[1])
    ]
    tail = f"\n\n{_MUTE_USAGE}" if usage else ""
    return _fit(head, items, limit=MAX_REPLY - len(tail)) + tail


def resolve_target(
    name: str,
    rules: Mapping[str, Rule],
    channels: Mapping[str, Channel],
    mutes: Mapping[str, datetime] | None = None,
) -> tuple[str | None, str]:
    """A mute target "rule:NAME" or "channel:NAME" for what the user typed, or (None, why).

    ``mutes`` (for /unmute) also accepts a muted name no longer in the configuration.
    """
    mutes = mutes or {}
    typed = MuteTarget.parse(name)
    if typed is not None:
        pool: Mapping[str, object] = rules if typed.kind == MuteKind.RULE else channels
        if typed.name in pool or str(typed) in mutes:
            return str(typed), ""
        return None, f"No {typed.kind} named <b>{esc(typed.name)}</b>. " + _names_hint(
            "Rules" if typed.kind == MuteKind.RULE else "Channels", pool, typed.name
        )
    found = [
        str(target)
        for target, pool in ((MuteTarget.rule(name), rules), (MuteTarget.channel(name), channels))
        if name in pool or str(target) in mutes
    ]
    if len(found) == 1:
        return found[0], ""
    if len(found) > 1:
        return None, (
            f"<b>{esc(name)}</b> is both a rule and a channel: write "
            f"<code>rule:{esc(name)}</code> or <code>channel:{esc(name)}</code>."
        )
    return None, (
        f"No rule or channel named <b>{esc(name)}</b>. "
        + _names_hint("Rules", rules, name)
        + "\n"
        + _names_hint("Channels", channels, name)
    )


# --------------------------------------------------------------------------- helpers


def _test_article(text: str) -> Article:
    """The /test text as an article: first line the title when there are several."""
    text = text.strip()
    title, _, body = text.partition("\n")
    if not body.strip():
        title, body = "", text
    language = guess_language(f"{title}\n{body}")
    return Article(
        key="bot-test", feed_id="", title=title.strip(), content=body.strip(), language=language
    )


def _feed_ids_and_tags(feeds: Sequence[FeedSource]) -> list[str]:
    """Every feed id and tag, so rules limited to some feeds are still tested."""
    out: dict[str, None] = {}
    for feed in feeds:
        out[feed.id] = None
        out.update(dict.fromkeys(feed.tags))
    return list(out)


def _explain(match: Match, rule: Rule | None) -> str:
    """Why a rule matched: its channels, its limits and each distinct hit."""
    name = esc(_cap(match.rule, 80))
    channels = ", ".join(esc(c) for c in rule.notify) if rule else "?"
    lines = [f"✅ <b>{name}</b> → {channels or '(no channel)'}"]
    if rule is not None:
        limits = []
        if rule.feeds:
            limits.append("only feeds " + ", ".join(esc(f) for f in rule.feeds[:5]))
        if rule.languages:
            limits.append("languages " + ", ".join(esc(x) for x in rule.languages))
        if rule.query:
            limits.append(f"query <code>{esc(_cap(rule.query, 200))}</code>")
        if limits:
            lines.append("   " + "; ".join(limits))
    seen: dict[tuple[str, str, str], int] = {}
    for hit in match.hits:
        key = (hit.term, hit.text, hit.field)
        seen[key] = seen.get(key, 0) + 1
    shown = list(seen.items())
    for (term, text, field_name), times in shown[:8]:
        repeat = f" ×{times}" if times > 1 else ""
        lines.append(
            f"   “{esc(_cap(term, 80))}” hit “<b>{esc(_cap(text, 80))}</b>” in "
            f"{esc(field_name)}{repeat}"
        )
    if len(shown) > 8:
        lines.append(f"   … and {len(shown) - 8} more hits")
    if not match.hits:
        lines.append("   (no term hits: the rule holds by its exclusions or query alone)")
    return "\n".join(lines)


def _highlighted(article: Article, matches: Sequence[Match]) -> list[str]:
    """Each non-empty field of the test text, escaped, with every hit in <b>."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for match in matches:
        for hit in match.hits:
            spans.setdefault(hit.field, []).append((hit.start, hit.end))
    lines = []
    for name in FIELDS:
        text = article.field_text(name)
        if not text:
            continue
        body = _bold_spans(text, spans.get(name, []), _TEST_TEXT_MAX)
        label = "Title" if name == "title" else "Text"
        lines.append(f"<i>{label}:</i> {body}")
    return lines


def _bold_spans(text: str, spans: Sequence[tuple[int, int]], limit: int) -> str:
    """``text`` escaped with merged ``spans`` bolded, cut so the HTML fits ``limit``."""
    merged = merge_spans(spans)
    keep = min(len(text), limit)
    for _ in range(12):  # escaping can grow the text up to 5×: shrink until it fits
        shown = text[: cut_before(text, keep)]  # never inside a grapheme
        rendered = _render_spans(shown, merged) + ("…" if len(shown) < len(text) else "")
        if len(rendered) <= limit:
            return rendered
        keep = keep * 2 // 3
    return "…"


def _render_spans(visible: str, merged: Sequence[tuple[int, int]]) -> str:
    out, pos = [], 0
    for start, end in merged:
        if start >= len(visible):
            break
        end = min(end, len(visible))
        out.append(esc(visible[pos:start]))
        out.append(f"<b>{esc(visible[start:end])}</b>")
        pos = end
    out.append(esc(visible[pos:]))
    return "".join(out)


def _feed_counts(
    feeds: Sequence[FeedSource], states: Mapping[str, FeedState]
) -> tuple[int, int, int]:
    """(ok, failing, never polled) among the configured feeds."""
    ok = failing = never = 0
    for feed in feeds:
        state = states.get(feed.id)
        if state is None or state.last_poll is None:
            never += 1
        elif state.errors:
            failing += 1
        else:
            ok += 1
    return ok, failing, never


def _names_hint(label: str, names: Mapping[str, Any], typed: str) -> str:
    """'Did you mean …? Rules: a, b, c' — capped so the answer stays short."""
    if not names:
        return f"{label}: none configured."
    close = difflib.get_close_matches(typed, list(names), n=3, cutoff=0.6)
    hint = ""
    if close:
        hint = "Did you mean " + " or ".join(f"<b>{esc(c)}</b>" for c in close) + "? "
    listed = [esc(_cap(n, 60)) for n in list(names)[:_NAMES_MAX]]
    more = f" … and {len(names) - _NAMES_MAX} more" if len(names) > _NAMES_MAX else ""
    return f"{hint}{label}: {', '.join(listed)}{more}"


def _fit(head: Sequence[str], items: Sequence[str], *, limit: int = MAX_REPLY) -> str:
    """``head`` and as many ``items`` as fit in ``limit``, then "… and N more".

    Lengths are of the HTML source, which Telegram's parsed text never exceeds.
    """
    text = "\n".join(head)
    reserve = len("\n… and 100000 more")
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        room = limit - (reserve if rest else 0)
        if len(text) + 1 + len(item) > room:
            return text + f"\n… and {len(items) - i} more"
        text += "\n" + item
    return text


def _fit_text(text: str) -> str:
    """Last guard: a reply that is still too long loses its end (tags closed by escaping)."""
    if len(text) <= MAX_REPLY:
        return text
    log.warning("bot reply of %d characters cut to fit", len(text))
    return esc(_cap(html.unescape(_strip_tags(text)), MAX_REPLY - 10))


def _strip_tags(text: str) -> str:
    return re.sub(r"<[^>]*>", "", text)


def _who(user_id: int, username: str | None) -> str:
    return f"{user_id} @{username}" if username else str(user_id)


def _cap_html_line(line: str, name: str) -> str:
    if len(line) <= _ITEM_MAX:
        return line
    return f"• <b>{esc(_cap(name, 80))}</b> (details too long to show)"


def _target(text: str) -> MuteTarget:
    """A target ``resolve_target`` returned (always ``kind:name``) as a ``MuteTarget``."""
    target = MuteTarget.parse(text)
    if target is None:  # pragma: no cover - resolve_target only returns typed targets
        raise ValueError(f"not a mute target: {text!r}")
    return target


def _cap(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, cut at a word (never inside a grapheme)."""
    return truncate(" ".join(text.split()) if "\n" in text else text, limit)


def _when(moment: datetime | None) -> str:
    return format_utc(moment)


def _ago(moment: datetime | None, now: datetime) -> str:
    """'2026-11-28 12:00 UTC (5m ago)', or 'in 3m' for the future, or 'never'."""
    if moment is None:
        return "never"
    delta = now - moment
    relative = f"{_span(delta)} ago" if delta >= timedelta(0) else f"in {_span(-delta)}"
    return f"{_when(moment)} ({relative})"


def _span(delta: timedelta) -> str:
    """A short human duration: '45s', '5m', '2h 5m', '3d 4h'."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


# --------------------------------------------------------------------------- archive


def render_search(query: str, result: SearchResult, since: timedelta) -> str:
    """The /search answer: the newest matches with their hits in bold, then "+N more"."""
    window = _span(since)
    if not result.results:
        return (
            f"No archived article of the last {window} matches "
            f"<code>{esc(_cap(query, 200))}</code> ({result.examined} checked)."
        )
    noun = "article matches" if result.total == 1 else "articles match"
    head = (
        f"<b>{result.total}</b> {noun} <code>{esc(_cap(query, 200))}</code> "
        f"(last {window}), newest first:"
    )
    items = []
    for found in result.results:
        pieces = snippet_pieces(found.article, found.hits)
        quoted = "".join(
            f"<b>{esc(_cap(text, 200))}</b>" if hit else esc(_cap(text, 200))
            for text, hit in pieces
        )
        items.append(f"{_archive_line(found.ref)}\n   {quoted}")
    return _fit_counted(head, items, result.total)


def render_backtest(result: RuleBacktest, since: timedelta) -> str:
    """The /backtest answer: how many articles the rule would have alerted, the newest."""
    window = _span(since)
    name = esc(_cap(result.rule, 80))
    if not result.count:
        return f"Rule <b>{name}</b> would have alerted nothing in the last {window}."
    noun = "article" if result.count == 1 else "articles"
    head = (
        f"Rule <b>{name}</b> would have alerted <b>{result.count}</b> {noun} "
        f"in the last {window}, newest first:"
    )
    return _fit_counted(head, [_archive_line(a) for a in result.articles], result.count)


def _archive_line(ref: Any) -> str:
    title = esc(_cap(ref.title or "(untitled)", 200))
    href = safe_link(ref.link)
    linked = f'<a href="{href_attr(href)}">{title}</a>' if href else title
    source = esc(_cap(ref.source or ref.feed, 60))
    return f"• {_when(ref.at)} · {source} · {linked}"


def _fit_counted(head: str, items: Sequence[str], total: int) -> str:
    """``head`` and the items that fit, then "+N more" for the rest of ``total``."""
    text, shown = head, 0
    room = MAX_REPLY - len("\n+1000000000 more")
    for item in items:
        if len(text) + 1 + len(item) > room:
            break
        text += "\n" + item
        shown += 1
    if total > shown:
        text += f"\n+{total - shown} more"
    return text
