"""The outbox sender: drains stored alerts to their channels within Telegram's limits.

An alert row is marked sent only after the notifier reports Telegram accepted
it. Each chat is drained by its own task, so a flood wait (429) or a broken
channel holds up that chat only. Pacing is decided by ``Pacer`` from an
explicit clock: per chat at most one message a second, groups and channels at
most 20 a minute, and at most 30 a second across all chats.

Stories: after a chat's alerts, the sender shows the later sources of stories
already alerted there (``Store.due_story_updates``): ``stories: edit`` edits the
first alert to add the "Also:" line, ``reply`` answers it with a short reply.
Edits count against the same per-chat pace as messages (Telegram counts them
alike), a 429 is obeyed the same way, and one message is edited (or replied to)
at most once per ``STORY_UPDATE_SPACING``. An edit that fails because the
message is gone or too old is dropped with a log line, never resent as an alert.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor import metrics
from monitor.deliver.notifier import Notifier
from monitor.exceptions import StorageError
from monitor.models import Channel, Decision, Delivery, StoryMode, stored_kind, utc_now
from monitor.outage import OutageLog
from monitor.render import operator_alerts as operator
from monitor.render.digest import delivery_decision
from monitor.render.operator_alerts import OPERATOR_CHANNEL
from monitor.render.stories import edited_alert, story_reply
from monitor.storage import OutboxAlert, Store, StoryUpdate

log = logging.getLogger(__name__)

PER_CHAT_SPACING = 1.0  # seconds between two messages to one chat
GROUP_WINDOW, GROUP_LIMIT = 60.0, 20  # channels and groups: 20 a minute
GLOBAL_WINDOW, GLOBAL_LIMIT = 1.0, 30  # the whole bot: 30 a second
RETRY_BASE, RETRY_CAP = 2.0, 3600.0  # transient failures back off 2 s … 1 h
BROKEN_RECHECK = timedelta(minutes=10)  # how often a broken channel is tried again
CHANNEL_LEASE = timedelta(seconds=30)  # > a send's timeout; a dead worker's channels pass on
STORY_UPDATE_SPACING = timedelta(minutes=1)  # at most one edit (or reply) per story a minute


def is_group_chat(chat: str) -> bool:
    """Channels (@name, -100…) and groups (negative ids) share the 20-a-minute limit."""
    return chat.startswith("@") or chat.startswith("-")


@dataclass
class Pacer:
    """Decides how long a chat must wait before its next message; time is an argument.

    Telegram counts a message when it accepts it, not when we send it, and never
    counts a refused one. So a message in flight holds its slot at "now" until
    its answer arrives (``start`` … ``answered``), and is then recorded at the
    answer's time — an upper bound of when Telegram counted it — or not at all
    if Telegram refused it. Recording at request time instead tripped 429s
    whenever requests bunched up on the way (bench/deliver.py measured 3.3× the
    minimum time and ~40 429s for 600 alerts; answer-time pacing: 1.08×, none).
    """

    sent: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    overall: deque[float] = field(default_factory=deque)
    blocked_until: dict[str, float] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def delay(self, chat: str, now: float) -> float:
        """Seconds to wait before ``chat`` may receive a message at ``now`` (0 = go)."""
        flying = self.in_flight[chat]
        history = [*self.sent[chat], *([now] * flying)]
        waits = [self.blocked_until.get(chat, 0.0) - now]
        if history:
            waits.append(history[-1] + PER_CHAT_SPACING - now)
            if is_group_chat(chat):
                recent = [t for t in history if t > now - GROUP_WINDOW]
                if len(recent) >= GROUP_LIMIT:
                    waits.append(recent[-GROUP_LIMIT] + GROUP_WINDOW - now)
        recent_all = [t for t in self.overall if t > now - GLOBAL_WINDOW]
        recent_all += [now] * sum(self.in_flight.values())
        if len(recent_all) >= GLOBAL_LIMIT:
            waits.append(recent_all[-GLOBAL_LIMIT] + GLOBAL_WINDOW - now)
        return max(0.0, *waits)

    def start(self, chat: str) -> None:
        """A message to ``chat`` is on its way."""
        self.in_flight[chat] += 1

    def answered(self, chat: str, now: float, accepted: bool) -> None:
        """Its answer arrived at ``now``; only an accepted message counts against the pace."""
        self.in_flight[chat] = max(0, self.in_flight[chat] - 1)
        if accepted:
            self.record(chat, now)

    def record(self, chat: str, now: float) -> None:
        """Count a message Telegram accepted at ``now``."""
        history = self.sent[chat]
        history.append(now)
        while history and history[0] <= now - GROUP_WINDOW:
            history.popleft()
        self.overall.append(now)
        while self.overall and self.overall[0] <= now - GLOBAL_WINDOW:
            self.overall.popleft()

    def block(self, chat: str, until: float) -> None:
        """Obey a 429: nothing more to this chat before ``until``."""
        self.blocked_until[chat] = max(self.blocked_until.get(chat, 0.0), until)


def retry_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Exponential back-off with jitter for a transient failure (attempts ≥ 1)."""
    base = min(RETRY_CAP, RETRY_BASE * 2 ** max(0, attempts - 1))
    return base * (0.5 + (rng or random).random() / 2)


@dataclass
class SendStats:
    """What one drain achieved, for logs and `--once` summaries."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0  # kept for a digest
    edited: int = 0  # story edits and replies Telegram accepted


class Sender:
    """Drains the outbox through a notifier, one paced task per chat."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        channels: Mapping[str, Channel],
        *,
        grace: timedelta = timedelta(hours=24),
        paced: bool = True,
        owner: str = "local",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.owner = owner
        self.notifier = notifier
        self.channels = channels
        self.grace = grace
        self.paced = paced
        self.clock = clock
        self.pacer = Pacer()
        self.stats = SendStats()
        self._broken_logged: set[str] = set()
        self._owned: set[str] = set()  # channels whose pace history this sender knows
        self.outage = OutageLog()  # the worker shares its own, so an outage is logged once

    async def drain(self, until: datetime | None = None) -> SendStats:
        """Send everything due now; keep going for retries due before ``until``."""
        while True:
            now = self.clock()
            mine = await asyncio.to_thread(
                self.store.claim_channels, self.owner, now, CHANNEL_LEASE, list(self.channels)
            )
            due = await asyncio.to_thread(self.store.due_alerts, now, 500, mine) if mine else []
            updates = (
                await asyncio.to_thread(self.store.due_story_updates, now, mine) if mine else []
            )
            if due or updates:
                await self._seed_pacer(mine, now)
                await self._send_batch(due, updates)
                continue
            orphans = await asyncio.to_thread(self.store.due_alerts, now, 50)
            for alert in orphans:
                if alert.channel not in self.channels:
                    await asyncio.to_thread(self._not_configured, alert)
            upcoming = await asyncio.to_thread(self.store.next_due)
            story_next = await asyncio.to_thread(
                self.store.next_story_update, list(self.channels)
            )
            if story_next is not None:
                upcoming = story_next if upcoming is None else min(upcoming, story_next)
            if upcoming is None or until is None or upcoming > until:
                return self.stats
            await asyncio.sleep(min(max(0.0, (upcoming - now).total_seconds()), 60.0))

    async def run_forever(
        self, stop: asyncio.Event, wake: asyncio.Event, idle: float = 5.0
    ) -> None:
        """The worker's sender loop: drain, then wait for new alerts or a timer."""
        while not stop.is_set():
            try:
                await self.drain()
            except StorageError as exc:  # an outage: logged once, retried on the next wake
                self.outage.failed(exc, "sender")
            except Exception:  # a bug must not end the loop either
                log.exception("sender: unexpected error; retrying shortly")
            else:
                self.outage.ok()
            wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
            await asyncio.wait(waiters, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def release(self) -> None:
        """Give up channel leases (shutdown), so another worker can take over at once."""
        await asyncio.to_thread(self.store.release_channels, self.owner)
        self._owned.clear()

    async def _seed_pacer(self, channels: list[str], now: datetime) -> None:
        """A channel new to this sender may have been paced by another worker: start
        from what the database says was sent to it in the last minute."""
        loop_now = asyncio.get_running_loop().time()
        for name in channels:
            if name in self._owned:
                continue
            self._owned.add(name)
            since = now - timedelta(seconds=GROUP_WINDOW)
            for sent_at in await asyncio.to_thread(self.store.recent_sends, name, since):
                chat = self.channels[name].chat
                self.pacer.record(chat, loop_now - (now - sent_at).total_seconds())

    async def _send_batch(
        self, due: list[OutboxAlert], updates: list[StoryUpdate] | None = None
    ) -> None:
        by_chat: dict[str, list[OutboxAlert]] = defaultdict(list)
        for alert in due:
            channel = self.channels.get(alert.channel)
            if channel is None:
                await asyncio.to_thread(self._not_configured, alert)
                continue
            by_chat[channel.chat].append(alert)
        story_chat: dict[str, list[StoryUpdate]] = defaultdict(list)
        for update in updates or ():
            if update.channel in self.channels:
                story_chat[self.channels[update.channel].chat].append(update)
        chats = list(dict.fromkeys([*by_chat, *story_chat]))
        await asyncio.gather(
            *(
                self._serve_chat(chat, by_chat.get(chat, []), story_chat.get(chat, []))
                for chat in chats
            )
        )

    async def _serve_chat(
        self, chat: str, alerts: list[OutboxAlert], updates: list[StoryUpdate]
    ) -> None:
        """A chat's due alerts first, then its stories' edits or replies."""
        if alerts:
            await self._send_chat(chat, alerts)
        if updates:
            await self._update_stories(chat, updates)

    async def _update_stories(self, chat: str, updates: list[StoryUpdate]) -> None:
        """Edit (or reply to) each story's first alert to show its later sources."""
        for update in updates:
            channel = self.channels.get(update.channel)
            if channel is None:
                continue
            mode = channel.stories
            if mode == StoryMode.EDIT and update.photo:
                mode = StoryMode.REPLY  # a photo's caption is not text editMessageText can edit
            rendered = None
            if mode == StoryMode.EDIT:
                rendered = edited_alert(
                    update.html, update.text, update.sources, update.source_count, channel.language
                )
            elif mode == StoryMode.REPLY:
                unshown = update.source_count - update.shown
                rendered = story_reply(update.unshown, unshown, channel.language)
            if rendered is None:  # stories turned off since, or nothing fits: nothing to send
                now = self.clock()
                await asyncio.to_thread(
                    self.store.story_updated, update.id, update.source_count, now, now
                )
                continue
            html, text = rendered
            if mode == StoryMode.EDIT:
                call = functools.partial(
                    self.notifier.edit, update.alert_id, update.message_id, html, text, channel
                )
            else:
                call = functools.partial(
                    self.notifier.send,
                    update.alert_id,
                    html,
                    text,
                    channel,
                    silent=True,
                    reply_to=update.message_id,
                )
            answer = await self._paced_call(chat, channel, call)
            if answer is None:
                return
            await self._story_outcome(chat, channel, update, answer, mode)

    async def _paced_call(
        self, chat: str, channel: Channel, call: Callable[[], Awaitable[Delivery]]
    ) -> Delivery | None:
        """Wait for the chat's pace, renew the channel's lease, then make ``call``.

        The lease is renewed right before the call, so it outlives it (the send
        timeout is shorter than the lease). None: the lease lapsed and another
        worker has taken the channel over, so nothing was sent.
        """
        loop = asyncio.get_running_loop()
        if self.paced:
            while (wait := self.pacer.delay(chat, loop.time())) > 0:
                await asyncio.sleep(wait)
        renewed = await asyncio.to_thread(
            self.store.renew_channel, self.owner, channel.name, self.clock(), CHANNEL_LEASE
        )
        if not renewed:
            self._owned.discard(channel.name)
            return None
        answer: Delivery | None = None
        if self.paced:
            self.pacer.start(chat)
        try:
            answer = await call()
        finally:
            if self.paced:
                self.pacer.answered(chat, loop.time(), answer is not None and answer.ok)
        return answer

    async def _story_outcome(
        self, chat: str, channel: Channel, update: StoryUpdate, answer: Delivery, mode: StoryMode
    ) -> None:
        now = self.clock()
        what = "edit" if mode == StoryMode.EDIT else "reply"
        if answer.ok:
            await asyncio.to_thread(
                self.store.story_updated,
                update.id,
                update.source_count,
                now,
                now + STORY_UPDATE_SPACING,
            )
            self.stats.edited += 1
            return
        error = answer.error or "failed"
        if answer.retry_after is not None:
            metrics.TELEGRAM_429.inc()
            self.pacer.block(chat, asyncio.get_running_loop().time() + answer.retry_after)
            log.warning("channel %s: story %s: %s", channel.name, what, error)
            retry_at = now + max(timedelta(seconds=answer.retry_after), STORY_UPDATE_SPACING)
        elif answer.channel_broken:
            log.warning("channel %s: story %s held: %s", channel.name, what, error)
            retry_at = now + BROKEN_RECHECK
        elif answer.permanent:
            log.warning(
                "channel %s: %s of message %s dropped (the message is gone or too old?): %s",
                channel.name,
                what,
                update.message_id,
                error,
            )
            await asyncio.to_thread(self.store.story_gone, update.id, error)
            return
        else:
            retry_at = now + timedelta(seconds=retry_delay(update.attempts + 1))
            log.warning("channel %s: story %s failed: %s; retrying", channel.name, what, error)
        await asyncio.to_thread(self.store.story_retry, update.id, error, retry_at)

    async def _send_chat(self, chat: str, alerts: list[OutboxAlert]) -> None:
        loop = asyncio.get_running_loop()
        first = self.channels[alerts[0].channel]
        hour_ago = self.clock() - timedelta(hours=1)
        sent_last_hour = len(
            await asyncio.to_thread(self.store.recent_sends, first.name, hour_ago, True)
        )
        for index, alert in enumerate(alerts):
            channel = self.channels[alert.channel]
            kind, priority = stored_kind(alert.priority)
            decision = delivery_decision(channel, priority, self.clock(), sent_last_hour, kind)
            if decision == Decision.HOLD:  # digest channel, hourly cap or quiet hours: next digest
                await asyncio.to_thread(self.store.hold_alert, alert.id)
                self.stats.held += 1
                continue
            silent = decision == Decision.SEND_SILENT
            delivery = await self._paced_call(
                chat, channel, functools.partial(self._deliver, alert, channel, silent)
            )
            if delivery is None:
                return
            now = self.clock()
            if delivery.ok:
                await asyncio.to_thread(self.store.mark_sent, alert.id, now, delivery.message_id)
                self.stats.sent += 1
                sent_last_hour += 1
                metrics.ALERTS_SENT.inc()
                self._broken_logged.discard(channel.name)
                continue
            if delivery.retry_after is not None:
                metrics.TELEGRAM_429.inc()
                self.pacer.block(chat, loop.time() + delivery.retry_after)
                log.warning("channel %s: %s", channel.name, delivery.error)
                await asyncio.to_thread(
                    self.store.mark_retry,
                    alert.id,
                    delivery.error or "",
                    now + timedelta(seconds=delivery.retry_after),
                )
                self.stats.retried += 1
                continue
            if delivery.channel_broken:
                await asyncio.to_thread(
                    self._channel_broken, channel, alerts[index:], delivery.error or "", now
                )
                return
            if delivery.permanent:
                log.error("alert %s to %s failed: %s", alert.id, channel.name, delivery.error)
                await asyncio.to_thread(
                    self.store.mark_failed, alert.id, delivery.error or "permanent failure"
                )
                self.stats.failed += 1
                metrics.ALERTS_FAILED.inc()
                continue
            delay = retry_delay(alert.attempts + 1)
            log.warning("channel %s: %s; retrying in %.0fs", channel.name, delivery.error, delay)
            retry_at = now + timedelta(seconds=delay)
            await asyncio.to_thread(self.store.mark_retry, alert.id, delivery.error or "", retry_at)
            self.stats.retried += 1

    async def _deliver(self, alert: OutboxAlert, channel: Channel, silent: bool) -> Delivery:
        """Send one row: as a photo with its caption when it has one, else as text.

        A photo Telegram refuses (it could not fetch the image, the caption is
        too long …) is sent as text at once: a refused request was not posted,
        so the alert is neither lost nor doubled.
        """
        has_photo = alert.photo_url is not None or alert.photo_png is not None
        if has_photo and alert.caption:
            answer = await self.notifier.send_photo(
                alert.id,
                alert.caption,
                alert.text,
                channel,
                photo_url=alert.photo_url,
                photo_png=alert.photo_png,
                silent=silent,
            )
            if answer.ok or not answer.permanent or answer.channel_broken:
                return answer
            metrics.PHOTO_FALLBACKS.inc()
            log.info(
                "channel %s: the photo was refused (%s); sending alert %s as text",
                channel.name,
                answer.error,
                alert.id,
            )
        return await self.notifier.send(alert.id, alert.html, alert.text, channel, silent=silent)

    def _channel_broken(
        self, channel: Channel, waiting: list[OutboxAlert], error: str, now: datetime
    ) -> None:
        """Report once; hold its alerts for the operator, fail those older than the grace.

        Runs in a thread (it only talks to the database)."""
        newly_broken = self.store.mark_channel_broken(channel.name, now, error)
        if newly_broken or channel.name not in self._broken_logged:
            log.error(
                "channel %s is broken: %s (alerts are held for %s)", channel.name, error, self.grace
            )
        if newly_broken and OPERATOR_CHANNEL in self.channels and channel.name != OPERATOR_CHANNEL:
            message = operator.channel_broken(channel.name, channel.chat, error, now)
            self.store.queue_alert(message, now)
        self._broken_logged.add(channel.name)
        for alert in waiting:
            if now - alert.created_at > self.grace:
                self.store.mark_failed(alert.id, f"{error} (held longer than {self.grace})")
                self.stats.failed += 1
                metrics.ALERTS_FAILED.inc()
            else:
                self.store.mark_retry(alert.id, error, now + BROKEN_RECHECK)
                self.stats.retried += 1

    def _not_configured(self, alert: OutboxAlert) -> None:
        now = self.clock()
        error = f"channel {alert.channel!r} is no longer in the configuration"
        if now - alert.created_at > self.grace:
            self.store.mark_failed(alert.id, error)
        else:
            self.store.mark_retry(alert.id, error, now + BROKEN_RECHECK)
        if alert.channel not in self._broken_logged:
            log.error("%s; its alerts are held for %s", error, self.grace)
            self._broken_logged.add(alert.channel)
