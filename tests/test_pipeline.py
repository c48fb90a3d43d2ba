"""The pipeline end to end: a feed server on 127.0.0.1 → storage → console alerts."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor import metrics
from monitor.config import load_settings
from monitor.deliver.notifier import ConsoleNotifier
from monitor.pipeline import in_backfill
from monitor.storage import Store
from monitor.worker import run_once
from tests.fakes.feedserver import ARABIC_ITEMS, ENGLISH_ITEMS, RUSSIAN_ITEMS, Item, rss_feed

RULES = """
channels:
  desk: {chat: "@desk"}
rules:
  - name: astana
    any: [Astana, أستانا, Астана]
    notify: [desk]
  - name: ceasefire
    any: [ceasefire, "وقف إطلاق النار", перемирие]
    notify: [desk]
"""


def feeds_yaml(*feeds: tuple[str, str, str]) -> str:
    lines = ["feeds:"]
    for feed_id, url, backfill in feeds:
        lines.append(f"  - {{id: {feed_id}, url: '{url}', backfill: {backfill}}}")
    return "\n".join(lines) + "\n"


def serve(feed_server, items, **kwargs) -> str:
    return feed_server.add(f"/{uuid.uuid4().hex}.xml", rss_feed("Wire", items, **kwargs))


async def once(settings):
    out = io.StringIO()
    report = await run_once(settings, ConsoleNotifier(out))
    return report, out.getvalue().replace("*", "")  # the console stars hits; compare words


async def test_first_run_alerts_second_run_sends_nothing(
    feed_server, write_config, sqlite_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    url = serve(feed_server, ARABIC_ITEMS + RUSSIAN_ITEMS + ENGLISH_ITEMS)
    settings = load_settings(write_config(RULES + feeds_yaml(("wire", url, "all"))))

    report, printed = await once(settings)
    # Lavrov reaching Astana in Arabic and in Russian is one story: one message, then
    # an edit naming the other report; plus one more ru and one en item
    assert report.sent.sent == 3, printed
    assert printed.count("[desk → @desk]") == 3
    assert report.sent.edited == 1 and printed.count("[desk → @desk, message 1 edited]") == 1
    assert printed.rstrip().endswith("Also: Wire")
    assert "لافروف يصل إلى أستانا" in printed
    assert "Переговоры в Астане продолжатся в среду" in printed
    assert "الأمم المتحدة تدعو" not in printed  # matches no rule
    assert report.pending == 0 and all(o.ok for o in report.outcomes)

    report, printed = await once(settings)
    assert printed == "" and report.sent.sent == 0
    assert sum(o.new_entries for o in report.outcomes) == 0


async def test_one_alert_lists_every_matched_rule(
    feed_server, write_config, sqlite_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    url = serve(feed_server, ENGLISH_ITEMS)  # "Ceasefire talks resume in Astana"
    settings = load_settings(write_config(RULES + feeds_yaml(("en", url, "all"))))
    report, _ = await once(settings)
    assert report.sent.sent == 1
    store = Store(sqlite_url)
    (sent,) = store.recent_alerts()
    store.close()
    assert sent.rules == ("astana", "ceasefire") and sent.status == "sent"


async def test_backfill_zero_is_quiet_on_first_poll_then_alerts_new_entries(
    feed_server, write_config, sqlite_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    path = f"/{uuid.uuid4().hex}.xml"
    url = feed_server.add(path, rss_feed("Wire", ENGLISH_ITEMS))
    settings = load_settings(write_config(RULES + feeds_yaml(("en", url, 0))))
    report, printed = await once(settings)
    assert printed == "" and report.outcomes[0].new_entries == 1

    fresh = Item(
        "Astana hosts a new round", "<p>Talks in Astana.</p>", "https://news.example/9", "en-9"
    )
    feed_server.add(path, rss_feed("Wire", (fresh, *ENGLISH_ITEMS)))
    report, printed = await once(settings)
    assert report.sent.sent == 1 and "Astana hosts a new round" in printed
    assert "Ceasefire talks resume" not in printed


async def test_backfill_window_on_first_poll(feed_server, write_config, sqlite_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    now = datetime.now(UTC)
    recent = Item(
        "Astana: recent",
        "x",
        "https://news.example/r",
        "r",
        format_datetime(now - timedelta(hours=1), usegmt=True),
    )
    old = Item(
        "Astana: old",
        "x",
        "https://news.example/o",
        "o",
        format_datetime(now - timedelta(days=2), usegmt=True),
    )
    url = serve(feed_server, (recent, old))
    settings = load_settings(write_config(RULES + feeds_yaml(("en", url, "6h"))))
    report, printed = await once(settings)
    assert "Astana: recent" in printed and "Astana: old" not in printed
    assert report.outcomes[0].new_entries == 2  # both remembered, only one alerted


async def test_first_poll_history_is_matched_only_where_it_counts(
    feed_server, write_config, sqlite_url, monkeypatch
):
    """Outside backfill, a new entry is matched for the surge counters while they count
    it (``COUNT_RETENTION``) and archived within ``keep_text``; an older one is only
    stored (neither read nor matched), and none of them alerts."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    now = datetime.now(UTC)

    def item(key: str, age: timedelta) -> Item:
        date = format_datetime(now - age, usegmt=True)
        return Item(
            f"Astana: {key}", "<p>Talks in Astana.</p>", f"https://n.example/{key}", key, date
        )

    ages = {"fresh": timedelta(hours=2), "month": timedelta(days=32), "old": timedelta(days=99)}
    url = serve(feed_server, [item(key, age) for key, age in ages.items()])
    settings = load_settings(write_config(RULES + feeds_yaml(("en", url, 0))))

    def astana_matches() -> float:
        value = metrics.REGISTRY.get_sample_value("monitor_matches_total", {"rule": "astana"})
        return value or 0.0

    before = astana_matches()
    report, printed = await once(settings)
    assert printed == "" and report.outcomes[0].new_entries == 3
    assert astana_matches() - before == 2  # "old" was not matched
    store = Store(sqlite_url)
    try:
        assert store.known_keys("en", list(ages)) == set(ages)  # all stored
        counts = store.hourly_counts("astana", now - timedelta(days=40))
        assert sum(counts.values()) == 2 and len(counts) == 2  # fresh and month
        assert store.archive_count() == 1  # fresh only (keep_text: 30 days)
    finally:
        store.close()


async def test_broken_feeds_are_recorded_and_do_not_stop_good_ones(
    feed_server, write_config, sqlite_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    good = serve(feed_server, ENGLISH_ITEMS)
    settings = load_settings(
        write_config(
            RULES
            + feeds_yaml(
                ("good", good, "all"),
                ("err500", feed_server.url("/status/500"), "all"),
                ("html", feed_server.url("/html"), "all"),
                ("refused", "http://127.0.0.1:9/feed.xml", "all"),
                ("nofile", "does-not-exist.xml", "all"),
            )
        )
    )
    report, printed = await once(settings)
    assert report.sent.sent == 1 and "Ceasefire talks resume in Astana" in printed
    failing = {o.feed_id: o for o in report.outcomes if not o.ok}
    assert set(failing) == {"err500", "html", "refused", "nofile"}
    assert "500" in failing["err500"].error
    store = Store(sqlite_url)
    states = store.feed_states()
    store.close()
    assert states["err500"].errors == 1 and states["err500"].http_status == 500
    assert states["err500"].next_poll > states["good"].last_poll
    assert states["good"].errors == 0 and states["good"].entries_seen == 1
    assert "feed err500" in report.summary()


@pytest.mark.parametrize(
    ("backfill", "age", "expected"),
    [
        (None, timedelta(days=999), True),
        (timedelta(0), timedelta(0), False),
        (timedelta(hours=6), timedelta(hours=5), True),
        (timedelta(hours=6), timedelta(hours=7), False),
    ],
)
def test_in_backfill(now, backfill, age, expected):
    from monitor.models import Article

    article = Article(key="k", feed_id="f", title="t", published=now - age)
    assert in_backfill(article, backfill, now) is expected


async def test_the_same_story_from_two_feeds_is_alerted_once(
    feed_server, write_config, sqlite_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    wire = Item(
        "Lavrov: next Astana round to focus on the ceasefire",
        "<p>Talks.</p>",
        "https://agency.example/1",
        "a-1",
    )
    copy = Item(
        "Lavrov: Next Astana Round To Focus On The Ceasefire!",
        "<p>Talks again.</p>",
        "https://paper.example/world/77",
        "p-77",
    )
    other = Item(
        "Astana round ends without a statement",
        "<p>No deal.</p>",
        "https://paper.example/world/78",
        "p-78",
    )
    first = serve(feed_server, [wire])
    second = serve(feed_server, [copy, other])
    settings = load_settings(
        write_config(RULES + feeds_yaml(("agency", first, "all"), ("paper", second, "all")))
    )
    report, printed = await once(settings)
    assert report.sent.sent == 2, printed
    assert printed.count("Astana round ends without a statement") >= 1
    assert (printed.count("https://agency.example/1") > 0) != (
        printed.count("https://paper.example/world/77") > 0
    )


@pytest.mark.parametrize(
    ("title", "seen", "same"),
    [
        (
            "Lavrov: next Astana round to focus on the ceasefire",
            ["lavrov next astana round to focus on ceasefire"],
            True,
        ),
        (
            "لافروف: جولة أستانا المقبلة ستركز على وقف إطلاق النار",
            ["لافروف جولة استانا المقبله ستركز علي وقف اطلاق النار"],
            True,
        ),
        (
            "Lavrov: next Astana round to focus on the ceasefire",
            ["lavrov next geneva round to focus on humanitarian aid"],
            False,
        ),
        ("Breaking news", ["breaking news"], True),
        ("Astana round 3: delegations arrive", ["astana round 4 delegations arrive"], False),
        ("Astana round 3: delegations arrive", ["astana round 3 delegations arrived"], True),
        ("Breaking news", ["breaking newz"], False),  # short titles must be identical
    ],
)
def test_same_story(title, seen, same):
    from monitor.stories import is_same_story, title_key

    assert is_same_story(title_key(title), [title_key(s) for s in seen]) is same


async def test_muted_rules_and_channels_make_no_alerts(
    feed_server, write_config, sqlite_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    url = serve(feed_server, ARABIC_ITEMS + RUSSIAN_ITEMS + ENGLISH_ITEMS)
    settings = load_settings(write_config(RULES + feeds_yaml(("wire", url, "all"))))
    store = Store(sqlite_url)
    store.migrate()
    now = datetime.now(UTC)
    store.set_mute("rule:astana", now + timedelta(hours=1))
    store.set_mute("rule:ceasefire", now - timedelta(minutes=1))  # already expired
    store.close()
    report, printed = await once(settings)
    # only the ceasefire rule may fire: ar-1 (وقف إطلاق النار) and en-1 (cease-fire)
    assert report.sent.sent == 2, printed
    assert "Matched: astana" not in printed and printed.count("Matched: ceasefire") == 2


async def test_hostile_feeds_beside_good_ones(feed_server, write_config, tmp_path, monkeypatch):
    """Every hostile endpoint ends within its limits and the good feeds are still alerted."""
    from tests.fakes.feedserver import SECRET_MARKER

    database = tmp_path / "hostile.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    hostile = [
        "/hang",
        "/trickle",
        "/huge",
        "/huge-chunked",
        "/gzip-bomb",
        "/status/500",
        "/status/410",
        "/retry-after/429",
        "/html",
        "/empty",
        "/xxe.xml",
        "/billion-laughs.xml",
        "/path-body",
        "/redirect-loop/x",
    ]
    good = serve(feed_server, ENGLISH_ITEMS)
    feeds = [
        ("good", good, "all"),
        ("win1256", feed_server.url("/win1256.xml"), "all"),
        ("koi8r", feed_server.url("/koi8r.xml"), "all"),
    ]
    feeds += [(f"h{n}", feed_server.url(path), "all") for n, path in enumerate(hostile)]
    config = RULES.replace("channels:", "defaults:\n  timeout: 3s\nchannels:", 1)
    # every decoded article shows as its own alert (the ar and ru feeds report one story)
    config = config.replace('{chat: "@desk"}', '{chat: "@desk", stories: off}')
    settings = load_settings(write_config(config + feeds_yaml(*feeds)))

    # bounded: each hostile request ends at its 3 s cap, so the poll cannot hang
    report, printed = await asyncio.wait_for(once(settings), 60)

    assert "Ceasefire talks resume in Astana" in printed  # the good feed
    assert "لافروف يصل إلى أستانا" in printed  # windows-1256, charset only in the XML declaration
    assert (
        "Переговоры в Астане продолжатся в среду" in printed
    )  # koi8-r, charset only in the header
    outcomes = {o.feed_id: o for o in report.outcomes}
    failing = {feed_id for feed_id, o in outcomes.items() if not o.ok}
    assert {
        f"h{hostile.index(p)}"
        for p in [
            "/hang",
            "/trickle",
            "/huge",
            "/gzip-bomb",
            "/status/500",
            "/status/410",
            "/retry-after/429",
            "/html",
            "/empty",
            "/redirect-loop/x",
        ]
    } <= failing
    assert all(outcomes[f].error for f in failing)
    files = [database, database.with_name(database.name + "-wal")]
    stored = [f.read_bytes().decode("utf-8", "replace") for f in files if f.exists()]
    for text in (printed, *stored):
        assert SECRET_MARKER not in text
    assert "more than 5 redirects" in outcomes[f"h{hostile.index('/redirect-loop/x')}"].error
