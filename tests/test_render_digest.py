"""Digests, caps and quiet hours: explicit clocks across time zones, DST and midnight.

Every rendered digest message is checked with ``tests.fakes.telegram_html``,
a re-implementation of Telegram's own HTML parser: it must parse, stay within
4096 code points and 32768 bytes, and every item must appear exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.models import Channel
from monitor.render.alert import MAX_HTML_BYTES, MAX_MESSAGE_LENGTH
from monitor.render.digest import (
    GRID_ORIGIN,
    DigestItem,
    QuietHours,
    delivery_decision,
    digest_due,
    in_quiet_hours,
    next_digest_at,
    parse_quiet_hours,
    quiet_ends_at,
    render_digest,
)
from tests.fakes.telegram_html import message_length, parse_telegram_html

FSI, LRI, PDI = "\u2068", "\u2066", "\u2069"


def utc(text: str) -> datetime:
    """``"2026-03-29 00:30"`` → aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def channel(**kw) -> Channel:
    return Channel(name=kw.pop("name", "desk"), chat=kw.pop("chat", "@desk"), **kw)


def parse_all(messages: list[tuple[str, str]]) -> list[tuple[str, list[dict]]]:
    """Telegram's view of every part; fails on anything Telegram would refuse."""
    out = []
    for html_text, console in messages:
        assert len(html_text.encode("utf-8")) <= MAX_HTML_BYTES
        plain, entities = parse_telegram_html(html_text)
        assert plain.strip()
        assert message_length(plain) <= MAX_MESSAGE_LENGTH
        assert "<" not in console or "<" in plain  # console text carries no markup of ours
        out.append((plain, entities))
    return out


def entity_text(plain: str, entity: dict) -> str:
    units = plain.encode("utf-16-le")
    start, length = entity["offset"] * 2, entity["length"] * 2
    return units[start : start + length].decode("utf-16-le")


# ---------------------------------------------------------------------------
# quiet hours


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("23:00-07:00", time(23), time(7)),
        (" 9:30 - 17:45 ", time(9, 30), time(17, 45)),
        ("22:00-24:00", time(22), time(0)),
        ("00:00-06:00", time(0), time(6)),
        ("23:30–06:15", time(23, 30), time(6, 15)),  # an en dash, as word processors write it
    ],
)
def test_parse_quiet_hours(text, start, end):
    assert parse_quiet_hours(text) == QuietHours(start, end)


@pytest.mark.parametrize(
    "text", ["23-07", "25:00-07:00", "23:60-07:00", "23:00-23:00", "", "23:00", "11pm-7am", None]
)
def test_parse_quiet_hours_rejects_with_a_usable_message(text):
    with pytest.raises(ValueError, match="quiet_hours must look like 23:00-07:00"):
        parse_quiet_hours(text)


@pytest.mark.parametrize(
    ("window", "local", "inside"),
    [
        ("23:00-07:00", time(22, 59), False),
        ("23:00-07:00", time(23, 0), True),
        ("23:00-07:00", time(0, 0), True),
        ("23:00-07:00", time(6, 59, 59), True),
        ("23:00-07:00", time(7, 0), False),
        ("23:00-07:00", time(12, 0), False),
        ("09:00-17:00", time(8, 59), False),
        ("09:00-17:00", time(9, 0), True),
        ("09:00-17:00", time(17, 0), False),
        ("22:00-24:00", time(23, 59), True),
        ("22:00-24:00", time(0, 0), False),
    ],
)
def test_quiet_hours_contains(window, local, inside):
    assert parse_quiet_hours(window).contains(local) is inside


@pytest.mark.parametrize(
    ("zone", "window", "now", "inside"),
    [
        ("UTC", "23:00-07:00", "2026-11-28 22:59", False),
        ("UTC", "23:00-07:00", "2026-11-28 23:00", True),
        # Damascus is UTC+3 all year: 20:30 UTC is 23:30 there
        ("Asia/Damascus", "23:00-07:00", "2026-11-28 20:30", True),
        ("Asia/Damascus", "23:00-07:00", "2026-11-28 19:59", False),
        ("Asia/Damascus", "23:00-07:00", "2026-11-29 03:59", True),
        ("Asia/Damascus", "23:00-07:00", "2026-11-29 04:00", False),
        # Kolkata is UTC+5:30: 17:30 UTC is 23:00 there
        ("Asia/Kolkata", "23:00-07:00", "2026-11-28 17:29", False),
        ("Asia/Kolkata", "23:00-07:00", "2026-11-28 17:30", True),
        # Moscow UTC+3, a daytime window that does not wrap
        ("Europe/Moscow", "09:00-17:00", "2026-11-28 06:00", True),
        ("Europe/Moscow", "09:00-17:00", "2026-11-28 14:00", False),
        # New York: the same 23:00 local is 04:00 UTC in winter, 03:00 UTC in summer
        ("America/New_York", "23:00-07:00", "2026-01-15 03:59", False),
        ("America/New_York", "23:00-07:00", "2026-01-15 04:00", True),
        ("America/New_York", "23:00-07:00", "2026-07-15 03:00", True),
        ("America/New_York", "23:00-07:00", "2026-07-15 11:00", False),
    ],
)
def test_in_quiet_hours_reads_the_channel_zone(zone, window, now, inside):
    ch = channel(timezone=zone, quiet_hours=window)
    assert in_quiet_hours(ch, utc(now)) is inside


def test_no_quiet_hours_is_never_quiet():
    assert in_quiet_hours(channel(), utc("2026-11-28 03:00")) is False
    now = utc("2026-11-28 03:00")
    assert quiet_ends_at(channel(), now) == now


@pytest.mark.parametrize(
    ("zone", "window", "now", "ends"),
    [
        ("UTC", "23:00-07:00", "2026-11-28 23:30", "2026-11-29 07:00"),
        ("UTC", "23:00-07:00", "2026-11-29 03:00", "2026-11-29 07:00"),
        ("UTC", "23:00-07:00", "2026-11-29 08:00", "2026-11-29 08:00"),  # not quiet: now
        ("Asia/Damascus", "23:00-07:00", "2026-11-28 21:00", "2026-11-29 04:00"),
        ("Asia/Kolkata", "23:00-07:00", "2026-11-28 18:00", "2026-11-29 01:30"),
        ("America/New_York", "23:00-07:00", "2026-01-15 05:00", "2026-01-15 12:00"),
        # Berlin springs forward on 2026-03-29 at 02:00 CET → 03:00 CEST (01:00 UTC):
        # the night starts in CET (23:00 = 22:00 UTC) and ends in CEST (07:00 = 05:00 UTC)
        ("Europe/Berlin", "23:00-07:00", "2026-03-28 22:00", "2026-03-29 05:00"),
        # an end the clock skips (02:30 does not exist that night): quiet ends at the jump
        ("Europe/Berlin", "01:00-02:30", "2026-03-29 00:30", "2026-03-29 01:00"),
        # Berlin falls back on 2026-10-25 at 03:00 CEST → 02:00 CET (01:00 UTC)
        ("Europe/Berlin", "23:00-07:00", "2026-10-24 22:00", "2026-10-25 06:00"),
        # an end the clock shows twice: the first 02:30 (CEST) ends it
        ("Europe/Berlin", "01:00-02:30", "2026-10-24 23:30", "2026-10-25 00:30"),
        # New York springs forward on 2026-03-08 at 02:00 EST → 03:00 EDT
        ("America/New_York", "22:00-06:00", "2026-03-08 04:00", "2026-03-08 10:00"),
        ("America/New_York", "22:00-06:00", "2026-03-07 04:00", "2026-03-07 11:00"),
    ],
)
def test_quiet_ends_at(zone, window, now, ends):
    ch = channel(timezone=zone, quiet_hours=window)
    got = quiet_ends_at(ch, utc(now))
    assert got == utc(ends)
    assert got.utcoffset() == timedelta(0)
    assert not in_quiet_hours(ch, got)
    if got > utc(now):
        assert in_quiet_hours(ch, got - timedelta(seconds=1))


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(
        ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
    ),
    start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    end=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    now=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)),
)
def test_quiet_ends_at_is_the_first_moment_outside(zone, start, end, now):
    if start == end:
        return
    ch = channel(timezone=zone, quiet_hours=f"{start:%H:%M}-{end:%H:%M}")
    now = now.replace(tzinfo=UTC)
    got = quiet_ends_at(ch, now)
    assert got >= now
    assert not in_quiet_hours(ch, got)
    assert got - now <= timedelta(days=1)
    if got > now:  # quiet right up to the answer
        assert in_quiet_hours(ch, max(now, got - timedelta(seconds=30)))


# ---------------------------------------------------------------------------
# digest periods


@pytest.mark.parametrize(
    ("last", "every", "now", "expected"),
    [
        ("2026-11-29 10:17", timedelta(hours=1), "2026-11-29 10:20", "2026-11-29 11:00"),
        ("2026-11-29 11:00", timedelta(hours=1), "2026-11-29 11:00", "2026-11-29 12:00"),
        (None, timedelta(hours=1), "2026-11-29 10:17", "2026-11-29 11:00"),
        ("2026-11-29 07:00:03", timedelta(days=1), "2026-11-29 08:00", "2026-11-30 00:00"),
        ("2026-11-29 10:17", timedelta(minutes=15), "2026-11-29 10:18", "2026-11-29 10:30"),
        ("2026-11-29 10:17", timedelta(minutes=90), "2026-11-29 10:18", "2026-11-29 10:30"),
        # missed while the worker was down: due (in the past), still on the grid
        ("2026-11-29 10:17", timedelta(hours=1), "2026-11-29 15:42", "2026-11-29 11:00"),
        ("2026-11-29 10:17", timedelta(days=7), "2026-11-29 10:18", "2026-11-30 00:00"),  # Mon
        # DST in some zone changes nothing: the grid is UTC
        ("2026-03-29 00:30", timedelta(hours=1), "2026-03-29 00:31", "2026-03-29 01:00"),
    ],
)
def test_next_digest_at(last, every, now, expected):
    got = next_digest_at(utc(last) if last else None, every, utc(now))
    assert got == utc(expected)


def test_next_digest_at_treats_naive_as_utc_and_rejects_zero():
    assert next_digest_at(
        datetime(2026, 11, 29, 10, 17), timedelta(hours=1), utc("2026-11-29 10:20")
    ) == utc("2026-11-29 11:00")
    with pytest.raises(ValueError, match="every"):
        next_digest_at(None, timedelta(0), utc("2026-11-29 10:20"))


@given(
    last=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    minutes=st.integers(1, 7 * 24 * 60),
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
)
def test_next_digest_at_is_on_the_grid_whatever_the_clock(last, minutes, later):
    every = timedelta(minutes=minutes)
    last = last.replace(tzinfo=UTC)
    got = next_digest_at(last, every, last + later)
    assert last < got <= last + every
    assert (got - GRID_ORIGIN) % every == timedelta(0)
    # a restart (a different "now") does not move it
    assert got == next_digest_at(last, every, last + later + timedelta(hours=5))


# ---------------------------------------------------------------------------
# decisions

NIGHT = "2026-11-29 02:00"  # inside 23:00-07:00 in UTC
DAY = "2026-11-29 12:00"


@pytest.mark.parametrize(
    ("settings_", "priority", "now", "sent_last_hour", "expected"),
    [
        ({}, "normal", DAY, 0, "send"),
        ({}, "normal", NIGHT, 500, "send"),  # no cap, no quiet hours
        ({"mode": "digest"}, "normal", DAY, 0, "hold"),
        ({"mode": "digest"}, "high", DAY, 0, "send"),
        ({"mode": "digest", "quiet_hours": "23:00-07:00"}, "high", NIGHT, 0, "send_silent"),
        ({"quiet_hours": "23:00-07:00"}, "normal", NIGHT, 0, "send_silent"),
        ({"quiet_hours": "23:00-07:00"}, "normal", DAY, 0, "send"),
        ({"quiet_hours": "23:00-07:00", "quiet": "hold"}, "normal", NIGHT, 0, "hold"),
        ({"quiet_hours": "23:00-07:00", "quiet": "hold"}, "normal", DAY, 0, "send"),
        ({"quiet_hours": "23:00-07:00", "quiet": "hold"}, "high", NIGHT, 0, "send_silent"),
        ({"max_per_hour": 3}, "normal", DAY, 2, "send"),
        ({"max_per_hour": 3}, "normal", DAY, 3, "hold"),
        ({"max_per_hour": 3}, "high", DAY, 30, "send"),
        ({"max_per_hour": 0}, "normal", DAY, 0, "hold"),
        ({"max_per_hour": 3, "quiet_hours": "23:00-07:00"}, "normal", NIGHT, 3, "hold"),
        ({"max_per_hour": 3, "quiet_hours": "23:00-07:00"}, "normal", NIGHT, 1, "send_silent"),
        # 02:00 UTC is 05:00 in Damascus (quiet) but 21:00 in New York (not)
        (
            {"quiet_hours": "23:00-07:00", "timezone": "Asia/Damascus"},
            "normal",
            NIGHT,
            0,
            "send_silent",
        ),
        (
            {"quiet_hours": "23:00-07:00", "timezone": "America/New_York"},
            "normal",
            NIGHT,
            0,
            "send",
        ),
    ],
)
def test_delivery_decision(settings_, priority, now, sent_last_hour, expected):
    assert delivery_decision(channel(**settings_), priority, utc(now), sent_last_hour) == expected


HOURLY = timedelta(hours=1)
DAILY = timedelta(days=1)


@pytest.mark.parametrize(
    ("settings_", "last", "now", "has_held", "due"),
    [
        ({"mode": "digest"}, "2026-11-29 10:17", "2026-11-29 10:59", True, False),
        ({"mode": "digest"}, "2026-11-29 10:17", "2026-11-29 11:00", True, True),
        ({"mode": "digest"}, "2026-11-29 10:17", "2026-11-29 11:00", False, False),
        ({"mode": "digest"}, None, "2026-11-29 10:17", True, True),
        (
            {"mode": "digest", "every": DAILY},
            "2026-11-28 00:00:02",
            "2026-11-28 23:59",
            True,
            False,
        ),
        ({"mode": "digest", "every": DAILY}, "2026-11-28 00:00:02", "2026-11-29 00:00", True, True),
        # instant channel with overflow from max_per_hour: flushed on the hourly grid
        ({"max_per_hour": 5}, "2026-11-29 09:00", "2026-11-29 09:40", True, False),
        ({"max_per_hour": 5}, "2026-11-29 09:00", "2026-11-29 10:00", True, True),
        # daily digest whose boundary (midnight UTC) falls inside hold-quiet hours:
        # nothing during the night, the digest as soon as the night ends
        (
            {"mode": "digest", "every": DAILY, "quiet_hours": "23:00-07:00", "quiet": "hold"},
            "2026-11-28 07:00:05",
            "2026-11-29 00:00",
            True,
            False,
        ),
        (
            {"mode": "digest", "every": DAILY, "quiet_hours": "23:00-07:00", "quiet": "hold"},
            "2026-11-28 07:00:05",
            "2026-11-29 06:59",
            True,
            False,
        ),
        (
            {"mode": "digest", "every": DAILY, "quiet_hours": "23:00-07:00", "quiet": "hold"},
            "2026-11-28 07:00:05",
            "2026-11-29 07:00",
            True,
            True,
        ),
        # quiet=silent does not stop a digest (the worker sends it without sound)
        (
            {"mode": "digest", "every": DAILY, "quiet_hours": "23:00-07:00"},
            "2026-11-28 07:00:05",
            "2026-11-29 00:00",
            True,
            True,
        ),
        # alerts held overnight on an instant channel go out when the night ends
        (
            {"quiet_hours": "23:00-07:00", "quiet": "hold", "timezone": "Europe/Moscow"},
            "2026-11-28 12:00",
            "2026-11-29 03:59",
            True,
            False,
        ),
        (
            {"quiet_hours": "23:00-07:00", "quiet": "hold", "timezone": "Europe/Moscow"},
            "2026-11-28 12:00",
            "2026-11-29 04:00",
            True,
            True,
        ),
        ({"quiet_hours": "23:00-07:00", "quiet": "hold"}, None, NIGHT, True, False),
    ],
)
def test_digest_due(settings_, last, now, has_held, due):
    ch = channel(**settings_)
    assert digest_due(ch, utc(last) if last else None, utc(now), has_held) is due


def test_an_overnight_hold_is_due_exactly_when_quiet_ends_across_dst():
    ch = channel(
        mode="digest",
        every=DAILY,
        quiet_hours="23:00-07:00",
        quiet="hold",
        timezone="Europe/Berlin",
    )
    last = utc("2026-03-28 06:00:01")  # 07:00 CET, the morning before the switch
    ends = quiet_ends_at(ch, utc("2026-03-29 00:00"))
    assert ends == utc("2026-03-29 05:00")  # 07:00 CEST
    assert not digest_due(ch, last, ends - timedelta(minutes=1), True)
    assert digest_due(ch, last, ends, True)


# ---------------------------------------------------------------------------
# rendering

START, END = utc("2026-11-29 10:00"), utc("2026-11-29 11:00")


def item(n: int = 0, **kw) -> DigestItem:
    base = dict(
        title=f"Lavrov arrives in Astana {n}",
        link=f"https://example.org/news/{n}?a=1&b=2",
        rules=("astana",),
        source="Reuters",
        published=START,
    )
    base.update(kw)
    return DigestItem(**base)


def test_empty_digest_is_no_message():
    assert render_digest([], channel(), START, END) == []


@pytest.mark.parametrize(
    ("language", "zone", "count", "header"),
    [
        (
            "en",
            "Europe/London",
            2,
            f"🗞 Digest · {LRI}2026-11-29 10:00–11:00 GMT{PDI} · 2 articles",
        ),
        ("en", "UTC", 1, f"🗞 Digest · {LRI}2026-11-29 10:00–11:00 UTC{PDI} · 1 article"),
        (
            "ru",
            "Europe/Moscow",
            2,
            f"🗞 Дайджест · {LRI}2026-11-29 13:00–14:00 MSK{PDI} · 2 статьи",
        ),
        (
            "ar",
            "Asia/Damascus",
            3,
            f"🗞 الموجز · {LRI}2026-11-29 13:00–14:00 UTC+03{PDI} · عدد المقالات: 3",
        ),
        (
            "ar-SY",
            "Asia/Kolkata",
            1,
            f"🗞 الموجز · {LRI}2026-11-29 15:30–16:30 IST{PDI} · عدد المقالات: 1",
        ),
    ],
)
def test_header_in_each_language(language, zone, count, header):
    ch = channel(language=language, timezone=zone)
    ((html_text, console),) = render_digest([item(n) for n in range(count)], ch, START, END)
    (plain, entities), *_ = parse_all([(html_text, console)])
    assert plain.split("\n")[0] == header
    assert console.split("\n")[0] == header.replace(LRI, "").replace(PDI, "")
    bold = entities[0]
    assert bold["type"] == "bold" and entity_text(plain, bold) == header.split(" ")[1]


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "1 статья"),
        (2, "2 статьи"),
        (4, "4 статьи"),
        (5, "5 статей"),
        (11, "11 статей"),
        (12, "12 статей"),
        (21, "21 статья"),
        (22, "22 статьи"),
        (111, "111 статей"),
    ],
)
def test_russian_count_agrees_with_the_number(n, words):
    ch = channel(language="ru")
    messages = render_digest([item(i) for i in range(n)], ch, START, END)
    assert all(
        html_text.split("\n")[0].endswith(words) or f"{words} · " in html_text
        for html_text, _ in messages
    )


@pytest.mark.parametrize(
    ("zone", "start", "end", "period"),
    [
        ("UTC", "2026-11-28 23:00", "2026-11-29 00:00", "2026-11-28 23:00 – 2026-11-29 00:00 UTC"),
        (
            "Europe/Berlin",
            "2026-03-29 00:00",
            "2026-03-29 02:00",
            "2026-03-29 01:00 CET – 2026-03-29 04:00 CEST",
        ),
        (
            "Europe/Moscow",
            "2026-11-28 00:00",
            "2026-11-29 00:00",
            "2026-11-28 03:00 – 2026-11-29 03:00 MSK",
        ),
    ],
)
def test_period_across_midnight_and_dst(zone, start, end, period):
    ((html_text, _),) = render_digest([item()], channel(timezone=zone), utc(start), utc(end))
    assert f"{LRI}{period}{PDI}" in parse_telegram_html(html_text)[0]


def test_item_line_escapes_links_and_isolates():
    items = [
        item(title='Profits <up> & costs "down" <b>', link='https://e.org/?q=<x>&r="y"'),
        item(title="وصل لافروف إلى أستانا", source="سانا", rules=("astana", "وقف-النار")),
        item(title="Evil \u202eoverride\u2066 title", link="javascript:alert(1)"),
        item(title="   ", link=None, source=""),
    ]
    ((html_text, console),) = render_digest(items, channel(), START, END)
    (plain, entities), *_ = parse_all([(html_text, console)])
    lines = plain.split("\n")
    assert lines[1].startswith('• Profits <up> & costs "down" <b> · 🔔 ')
    assert (
        lines[2]
        == f"• وصل لافروف إلى أستانا · 🔔 {FSI}astana{PDI}, {FSI}وقف-النار{PDI} · 📰 {FSI}سانا{PDI}"
        f" · {LRI}10:00{PDI}"
    )
    assert lines[3].startswith("• Evil override title · ")  # the feed's bidi controls are gone
    assert lines[4] == f"• (untitled) · 🔔 {FSI}astana{PDI} · {LRI}10:00{PDI}"
    for line in lines:
        assert line.count(FSI) + line.count(LRI) == line.count(PDI)
    links = [e for e in entities if e["type"] == "text_link"]
    assert [entity_text(plain, e) for e in links] == [
        'Profits <up> & costs "down" <b>',
        "وصل لافروف إلى أستانا",
    ]
    assert links[0]["url"] == "https://e.org/?q=%3Cx%3E&r=%22y%22"
    assert "javascript" not in html_text
    assert "https://e.org/?q=%3Cx%3E&r=%22y%22" in console
    assert "<a" not in console


@pytest.mark.parametrize(
    ("zone", "published", "end", "shown"),
    [
        ("Europe/Moscow", "2026-11-29 07:42", "2026-11-29 11:00", f" · {LRI}10:42{PDI}"),
        ("Europe/Moscow", "2026-11-28 22:05", "2026-11-30 11:00", f" · {LRI}11-29 01:05{PDI}"),
        ("Asia/Kolkata", "2026-11-29 10:00", "2026-11-29 11:00", f" · {LRI}15:30{PDI}"),
        ("UTC", None, "2026-11-29 11:00", f" · 📰 {FSI}Reuters{PDI}"),
    ],
)
def test_item_time_in_the_channel_zone(zone, published, end, shown):
    one = item(published=utc(published) if published else None)
    ((html_text, console),) = render_digest([one], channel(timezone=zone), START, utc(end))
    (plain, _), *_ = parse_all([(html_text, console)])
    assert plain.split("\n")[1].endswith(shown)
    assert console.split("\n")[1].endswith(shown.replace(LRI, "").replace(PDI, "").replace(FSI, ""))


def test_long_digest_is_split_into_numbered_parts_without_cutting_items():
    items = [item(n, title=f"Headline number {n} " + "word " * 30) for n in range(200)]
    messages = render_digest(items, channel(language="en"), START, END)
    assert len(messages) > 2
    parsed = parse_all(messages)
    seen = []
    for number, (plain, entities) in enumerate(parsed, 1):
        assert plain.split("\n")[0].endswith(
            f"· 200 articles · {LRI}({number}/{len(messages)}){PDI}"
        )
        seen += [e["url"] for e in entities if e["type"] == "text_link"]
        # every line after the header is a whole item
        assert all(line.startswith("• Headline number ") for line in plain.split("\n")[1:])
    assert seen == [i.link for i in items]
    # packed: each part but the last could not take the next item
    assert message_length(parsed[0][0]) > MAX_MESSAGE_LENGTH - 300


def test_byte_limit_splits_even_when_the_length_limit_would_not():
    # '&' is 1 code point for Telegram but 5 bytes as "&amp;": 2048-char links of '&'
    link = "https://example.org/?" + "&" * 2000
    items = [item(n, link=f"{link}{n}", title=f"T{n}") for n in range(40)]
    messages = render_digest(items, channel(), START, END)
    assert len(messages) >= 2
    parse_all(messages)
    assert all(len(h.encode("utf-8")) <= MAX_HTML_BYTES for h, _ in messages)


def test_thousands_of_items_each_appear_exactly_once():
    items = [item(n, title=f"خبر رقم {n} 🇸🇾 <&> " + "كلمة " * (n % 40)) for n in range(3000)]
    messages = render_digest(items, channel(language="ar"), START, END)
    urls = []
    for _plain, entities in parse_all(messages):
        urls += [e["url"] for e in entities if e["type"] == "text_link"]
    assert urls == [i.link for i in items]


TEXT = st.lists(
    st.one_of(
        st.sampled_from(list("<>&\"';/=abc xyz\n\t")),
        st.sampled_from(["\u200f", "\u200e", "\u202e", "\u2066", "\u2069", "\u061f", "ـ"]),
        st.sampled_from(["😀", "🇸🇾", "👍🏽", "\u0301", "\ufeff", "\x00", "\r", "&amp;", "</a>"]),
        st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
        st.characters(min_codepoint=0x0400, max_codepoint=0x04FF),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=2000,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    titles=st.lists(TEXT, min_size=1, max_size=40),
    rules=st.lists(TEXT.map(lambda t: t[:80]), min_size=0, max_size=4),
    source=TEXT,
    language=st.sampled_from(["en", "ar", "ru", "fr"]),
    zone=st.sampled_from(["UTC", "Asia/Damascus", "Europe/Berlin", "No/Such_Zone"]),
)
def test_any_items_render_valid_complete_messages(titles, rules, source, language, zone):
    items = [
        DigestItem(
            title=t,
            link=f"https://example.org/{n}?x=<&>",
            rules=tuple(rules),
            source=source,
            published=None,
        )
        for n, t in enumerate(titles)
    ]
    messages = render_digest(items, channel(language=language, timezone=zone), START, END)
    urls = []
    for plain, entities in parse_all(messages):
        urls += [e["url"] for e in entities if e["type"] == "text_link"]
        assert len(plain.split("\n")) >= 2  # never a header alone
    assert urls == [f"https://example.org/{n}?x=%3C&%3E" for n in range(len(items))]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 2500),
    title=TEXT.map(lambda t: t[:300]),
)
def test_many_items_with_any_title_fit_and_appear_once(count, title):
    items = [item(n, title=title) for n in range(count)]
    messages = render_digest(items, channel(language="ru"), START, END)
    urls = []
    for _plain, entities in parse_all(messages):
        urls += [e["url"] for e in entities if e["type"] == "text_link"]
    assert urls == [i.link for i in items]
    if len(messages) > 1:
        assert all(f"/{len(messages)})" in h.split("\n")[0] for h, _ in messages)
