"""Operator alerts: one message to ``telegram.admin_chat`` per state change.

A feed going down (after ``feed_down_after`` failed polls in a row) and
recovering, a channel breaking, a configuration reload failing: each is one
outbox row, so operator alerts share the outbox's guarantees (stored before
sending, paced, retried) and never become a stream.
"""

from __future__ import annotations

from datetime import datetime

from monitor.models import Alert, AlertKind
from monitor.render.telegram_text import bold, esc

OPERATOR_CHANNEL = "_operator"  # config names start with a letter or digit: no clash
MAX_DETAIL = 3000


def operator_alert(change: str, subject: str, title: str, detail: str, now: datetime) -> Alert:
    """An alert row for the operator; its story key makes each state change unique."""
    detail = detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 1] + "…"
    story = f"operator:{change}:{subject}:{now.isoformat()}"
    return Alert(
        article_key=story,
        feed_id="",
        channel=OPERATOR_CHANNEL,
        rules=(),
        html=f"⚠️ {bold(title)}\n{esc(detail)}",
        text=f"⚠️ {title}\n{detail}",
        title=title,
        kind=AlertKind.OPERATOR,
        story=story,
    )


def feed_down(feed_id: str, errors: int, error: str, now: datetime) -> Alert:
    return operator_alert(
        "feed-down",
        feed_id,
        f"monitor: feed {feed_id} is down",
        f"{errors} failed polls in a row; last error: {error}\n"
        "monitor keeps retrying with back-off; `monitor feeds` shows its state.",
        now,
    )


def feed_recovered(feed_id: str, errors: int, now: datetime) -> Alert:
    return operator_alert(
        "feed-up",
        feed_id,
        f"monitor: feed {feed_id} recovered",
        f"It answered again after {errors} failed polls.",
        now,
    )


def channel_broken(name: str, chat: str, error: str, now: datetime) -> Alert:
    return operator_alert(
        "channel-broken",
        name,
        f"monitor: channel {name} ({chat}) cannot receive alerts",
        f"{error}\nIts alerts are held in the outbox until the bot may post again.",
        now,
    )


def reload_failed(problems: str, now: datetime) -> Alert:
    return operator_alert(
        "reload-failed",
        "config",
        "monitor: configuration reload failed",
        f"{problems}\nThe previous configuration keeps running.",
        now,
    )


def translation_down(backend: str, error: str, now: datetime) -> Alert:
    return operator_alert(
        "translate-down",
        backend,
        f"monitor: translation by {backend} is failing",
        f"Last error: {error or 'unknown'}\nAlerts go out untranslated (marked so) "
        "until it answers again; `monitor channels` and /metrics show the failures.",
        now,
    )


def translation_recovered(backend: str, now: datetime) -> Alert:
    return operator_alert(
        "translate-up",
        backend,
        f"monitor: translation by {backend} works again",
        "New alerts are translated again.",
        now,
    )


def regex_timeout(term: str, seconds: float, now: datetime) -> Alert:
    """A ``re:`` term hit the time limit: it finds nothing in such articles until fixed."""
    return operator_alert(
        "regex-timeout",
        term,
        "monitor: a rule's regular expression is too slow",
        f"The term {term} took longer than {seconds:g} s on one article and was skipped "
        "for it (and will be for any like it). `monitor check` flags nested quantifiers "
        "such as (\\w+\\s?)+; simplify the expression.",
        now,
    )
