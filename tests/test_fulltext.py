"""Full article text over real loopback HTTP: snippet feeds linking to article pages.

A feed of one-sentence snippets links to pages in ``tests/data/pages`` (each
with site furniture around one article). A mention in the article's body
alerts; a mention only in the furniture does not; a page that fails never
loses its entry and is counted; ``auto`` leaves long entries alone; pages are
fetched politely (per-host slots and pacing, a cap per poll).
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from monitor import cli
from monitor.config import Settings, load_settings
from monitor.deliver.notifier import ConsoleNotifier
from monitor.extract import PageText
from monitor.fetch import Fetcher, FetchSettings, IPAddress, is_public_address
from monitor.fulltext import (
    AUTO_MIN_CHARS,
    PageFetcher,
    PagePolicy,
    new_paragraphs,
    wants_page,
    with_page,
)
from monitor.models import Article, FeedKind, FeedSource, FullText
from monitor.pipeline import PollOutcome, Ruleset, known_max_post, poll_feed
from monitor.storage import Store
from monitor.worker import run_once
from tests.fakes.feedserver import FeedServer, Item, rss_feed

PAGES = Path(__file__).parent / "data" / "pages"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

RULES = """
channels:
  desk: {chat: "@desk"}
rules:
  - name: astana
    any: [Astana, Астана, أستانا]
    notify: [desk]
"""

# page → whether its article's own text names Astana (else only its furniture does)
PAGE_CASES = [
    ("en-energy-talks", True),
    ("ru-gas-pipeline", True),
    ("ru-bridge-repair", True),
    ("ar-water-talks", True),
    ("en-tram-line", False),  # a related-stories link
    ("en-wheat-harvest", False),  # a reader's comment
    ("en-port-strike", False),  # the footer of a table-layout site
    ("en-ferry-service", False),  # a read-also box inside the body
    ("ru-metro-line", False),
    ("ru-harvest", False),
    ("ar-tram-line", False),
    ("ar-bread-prices", False),  # comments without a comment class
]
BOLD_STEMS = ("<b>Astana", "<b>Астан", "<b>أستانا")


@pytest.fixture(scope="module")
def site() -> Iterator[FeedServer]:
    """A server of our own, so its in-flight counter sees only this module's requests."""
    with FeedServer() as server:
        yield server


def settings_for(write_config, feed_lines: str) -> Settings:
    return load_settings(write_config(RULES + "feeds:\n" + feed_lines))


async def poll(
    settings: Settings,
    store: Store,
    *,
    now: datetime = NOW,
    policy: PagePolicy | None = None,
    timeout: float = 5.0,
    max_bytes: int = 1024 * 1024,
    is_public: Callable[[IPAddress], bool] = is_public_address,
) -> list[PollOutcome]:
    ruleset = Ruleset.from_settings(settings)
    limits = FetchSettings(timeout=timeout, max_bytes=max_bytes, is_public=is_public)
    async with Fetcher(limits) as fetcher:
        pages = PageFetcher(fetcher, policy or PagePolicy(interval=0.0))
        return [
            await poll_feed(
                feed, store=store, fetcher=fetcher, ruleset=lambda: ruleset, now=now, pages=pages
            )
            for feed in settings.feeds
        ]


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    store = Store(sqlite_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


def snippet(n: int, link: str, text: str = "A short wire item; the full story is online.") -> Item:
    return Item(f"Wire item number {n}", f"<p>{text}</p>", link, f"item-{n}")


async def test_a_mention_only_in_the_article_body_alerts_and_furniture_does_not(
    site: FeedServer, write_config, store: Store
) -> None:
    prefix = f"/{uuid.uuid4().hex}"
    items = []
    for n, (name, _) in enumerate(PAGE_CASES):
        link = site.add(
            f"{prefix}/{name}.html",
            (PAGES / f"{name}.html").read_bytes(),
            content_type="text/html; charset=utf-8",
        )
        items.append(snippet(n, link))
    feed = site.add(f"{prefix}/feed.xml", rss_feed("Snippets", items))
    settings = settings_for(
        write_config, f"  - {{id: wire, url: '{feed}', backfill: all, full_text: always}}\n"
    )

    (outcome,) = await poll(settings, store)

    assert outcome.ok and outcome.new_entries == len(PAGE_CASES)
    assert outcome.pages == len(PAGE_CASES) and outcome.page_errors == 0
    alerts = {a.link: a for a in store.recent_alerts(limit=50)}
    alerted = {link.rsplit("/", 1)[1].removesuffix(".html") for link in alerts if link}
    assert alerted == {name for name, in_body in PAGE_CASES if in_body}
    for alert in alerts.values():  # the page's hit sentence is quoted with the hit in bold
        assert any(stem in alert.html for stem in BOLD_STEMS), alert.html
        assert "A short wire item" in alert.text  # the feed's own lead stays first
    for name, _ in PAGE_CASES:
        assert len(site.requests_to(f"{prefix}/{name}.html")) == 1


async def test_the_page_field_in_hits_queries_and_fields(write_config) -> None:
    settings = load_settings(
        write_config(
            RULES
            + """
  - name: in-text
    query: 'text:Astana'
  - name: title-only
    any: [Astana]
    fields: [title]
"""
        )
    )
    ruleset = Ruleset.from_settings(settings)
    bare = Article(key="k", feed_id="f", title="Talks", summary="Short wire item.")
    page = PageText("Ministers met in Astana on Monday.", "Talks", None, "en")
    feed = FeedSource(id="f", url="https://example.org/rss", full_text=FullText.ALWAYS)
    assert ruleset.matcher.match(bare) == []
    matches = {m.rule: m for m in ruleset.matcher.match(with_page(feed, bare, page))}
    assert set(matches) == {"astana", "in-text"}
    assert {h.field for h in matches["astana"].hits} == {"page"}
    assert matches["astana"].hits[0].text == "Astana"


def test_the_pages_image_title_and_language_fill_only_what_the_entry_lacks() -> None:
    page = PageText("Text.", "The page's headline", "https://img.example/a.jpg", "ru")
    rss = FeedSource(id="f", url="https://example.org/rss", full_text=FullText.ALWAYS)
    listing = FeedSource(id="p", url="https://example.org/news/", kind=FeedKind.PAGE)
    bare = Article(key="k", feed_id="f", title="", summary="", language="en")
    own = Article(key="k", feed_id="f", title="Own", image="https://img.example/own.jpg")
    assert with_page(rss, bare, page).image == "https://img.example/a.jpg"
    assert with_page(rss, own, page).image == "https://img.example/own.jpg"
    assert (with_page(rss, bare, page).title, with_page(rss, bare, page).language) == ("", "en")
    got = with_page(listing, bare, page)
    assert (got.title, got.language, got.page) == ("The page's headline", "ru", "Text.")


async def test_every_failing_page_keeps_its_entry_and_counts(
    site: FeedServer, write_config, store: Store, sqlite_url: str, monkeypatch, capsys
) -> None:
    prefix = f"/{uuid.uuid4().hex}"
    failing = {
        "404": site.url("/status/404"),
        "hang": site.url("/hang"),
        "too big": site.url("/huge"),
        "not html": site.add(
            f"{prefix}/report.pdf",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
            content_type="application/pdf",
        ),
        "empty": site.add(f"{prefix}/empty.html", b"", content_type="text/html"),
        "no text": site.add(
            f"{prefix}/blank.html",
            b"<html><head><title>Gallery</title></head><body><img src=a.jpg></body></html>",
            content_type="text/html",
        ),
    }
    items = [
        snippet(n, link, f"Ministers met in Astana ({why}).")
        for n, (why, link) in enumerate(failing.items())
    ]
    path = f"{prefix}/feed.xml"
    feed = site.add(path, rss_feed("Snippets", items))
    settings = settings_for(
        write_config, f"  - {{id: wire, url: '{feed}', backfill: all, full_text: always}}\n"
    )

    (outcome,) = await poll(settings, store, timeout=1.5)

    assert outcome.ok and outcome.new_entries == len(failing)
    assert outcome.page_errors == len(failing) and outcome.pages == 0
    assert len(store.recent_alerts(limit=50)) == len(failing)  # matched on the feed's text
    state = store.feed_state("wire")
    assert state is not None and state.page_errors == len(failing) and state.errors == 0

    # a changed feed is read again: only its new entry's page is fetched
    fresh = site.add(
        f"{prefix}/fresh.html",
        (PAGES / "en-energy-talks.html").read_bytes(),
        content_type="text/html",
    )
    site.add(path, rss_feed("Snippets", [snippet(99, fresh), *items]))
    before = {
        why: len(site.requests_to(link.split(str(site.port), 1)[1]))
        for why, link in failing.items()
    }
    (outcome,) = await poll(settings, store, timeout=1.5)
    assert outcome.new_entries == 1 and outcome.pages == 1 and outcome.page_errors == 0
    after = {
        why: len(site.requests_to(link.split(str(site.port), 1)[1]))
        for why, link in failing.items()
    }
    assert after == before

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert cli.main(["feeds", "--json", "--config", str(settings.path)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["page_errors"] == len(failing) and row["kind"] == "rss"


async def test_a_public_feeds_links_to_private_addresses_are_not_fetched(
    site: FeedServer, write_config, store: Store, caplog
) -> None:
    """The redirect guard's rule, for links: 127.0.0.1 plays a public site here."""
    prefix = f"/{uuid.uuid4().hex}"
    body = (PAGES / "en-energy-talks.html").read_bytes()
    public = site.add(f"{prefix}/public.html", body, content_type="text/html")
    private = [
        public.replace("127.0.0.1", "127.0.0.2"),
        "http://10.1.2.3/admin",
        "http://[::1]:9/x",
        "http://169.254.169.254/latest/meta-data/",
    ]
    items = [snippet(0, public)] + [snippet(n + 1, u) for n, u in enumerate(private)]
    feed = site.add(f"{prefix}/feed.xml", rss_feed("Wire", items))
    settings = settings_for(
        write_config, f"  - {{id: pub, url: '{feed}', backfill: all, full_text: always}}\n"
    )
    caplog.set_level("INFO", logger="monitor.pipeline")
    (outcome,) = await poll(settings, store, is_public=lambda ip: ip == IPv4Address("127.0.0.1"))
    refused = [m for m in caplog.messages if "refused: a public feed" in m]
    assert len(refused) == 4 and all(any(u in m for m in refused) for u in private)
    assert outcome.ok and outcome.new_entries == 5
    assert outcome.pages == 1 and outcome.page_errors == 4
    assert len(site.requests_to(f"{prefix}/public.html")) == 1


@pytest.mark.parametrize(
    "link",
    [
        "http://[::1",
        "http://a.example:99999/x",
        "https:///no-host",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://exa mple.com/" + "a" * 5000,
        "http://%zz/",
        "//relative.example/x",
    ],
)
async def test_malformed_links_never_break_a_poll(
    site: FeedServer, write_config, store: Store, link: str
) -> None:
    prefix = f"/{uuid.uuid4().hex}"
    feed = site.add(
        f"{prefix}/feed.xml",
        rss_feed("Odd", [snippet(1, link, "Ministers met in Astana."), snippet(2, link)]),
    )
    settings = settings_for(
        write_config, f"  - {{id: odd, url: '{feed}', backfill: all, full_text: always}}\n"
    )
    (outcome,) = await poll(settings, store, timeout=2.0)
    assert outcome.ok, outcome.error
    assert outcome.alerts == 1 and outcome.pages == 0


async def test_auto_fetches_only_for_entries_with_little_text(
    site: FeedServer, write_config, store: Store
) -> None:
    prefix = f"/{uuid.uuid4().hex}"
    body = (PAGES / "en-energy-talks.html").read_bytes()
    short_page = site.add(f"{prefix}/short.html", body, content_type="text/html")
    long_page = site.add(f"{prefix}/long.html", body, content_type="text/html")
    long_text = " ".join(["Energy ministers met for a second day of talks on prices."] * 12)
    assert len(long_text) >= AUTO_MIN_CHARS
    items = [snippet(1, short_page), Item("A long one", f"<p>{long_text}</p>", long_page, "long")]
    feed = site.add(f"{prefix}/feed.xml", rss_feed("Mixed", items))
    settings = settings_for(
        write_config, f"  - {{id: mixed, url: '{feed}', backfill: all, full_text: auto}}\n"
    )
    (outcome,) = await poll(settings, store)
    assert outcome.ok and outcome.new_entries == 2
    assert len(site.requests_to(f"{prefix}/short.html")) == 1
    assert site.requests_to(f"{prefix}/long.html") == []


async def test_first_poll_fetches_no_pages_outside_backfill_then_only_new_entries(
    site: FeedServer, write_config, store: Store
) -> None:
    prefix = f"/{uuid.uuid4().hex}"
    body = (PAGES / "en-energy-talks.html").read_bytes()
    old = site.add(f"{prefix}/old.html", body, content_type="text/html")
    path = f"{prefix}/feed.xml"
    feed = site.add(path, rss_feed("Wire", [snippet(1, old)]))
    settings = settings_for(write_config, f"  - {{id: w, url: '{feed}', full_text: always}}\n")
    (outcome,) = await poll(settings, store)
    assert outcome.new_entries == 1 and outcome.alerts == 0
    assert site.requests_to(f"{prefix}/old.html") == []

    new = site.add(f"{prefix}/new.html", body, content_type="text/html")
    site.add(path, rss_feed("Wire", [snippet(2, new), snippet(1, old)]))
    (outcome,) = await poll(settings, store)
    assert outcome.new_entries == 1 and outcome.alerts == 1
    assert len(site.requests_to(f"{prefix}/new.html")) == 1
    assert site.requests_to(f"{prefix}/old.html") == []


async def test_at_most_per_host_pages_in_flight(
    site: FeedServer, write_config, store: Store
) -> None:
    prefix = f"/{uuid.uuid4().hex}"
    body = (PAGES / "en-tram-line.html").read_bytes()
    links = [
        site.add(f"{prefix}/p{n}.html", body, content_type="text/html", delay=0.3) for n in range(6)
    ]
    feed = site.add(
        f"{prefix}/feed.xml", rss_feed("Busy", [snippet(n, u) for n, u in enumerate(links)])
    )
    settings = settings_for(
        write_config, f"  - {{id: busy, url: '{feed}', backfill: all, full_text: always}}\n"
    )
    site.reset_in_flight()
    (outcome,) = await poll(settings, store, policy=PagePolicy(per_host=2, interval=0.0))
    assert outcome.pages == 6 and outcome.page_errors == 0
    assert 1 <= site.max_in_flight <= 2  # the fetcher alone would allow 4 per host


async def test_page_requests_to_one_host_are_paced(
    site: FeedServer, write_config, store: Store
) -> None:
    prefix = f"/{uuid.uuid4().hex}"
    body = (PAGES / "en-tram-line.html").read_bytes()
    links = [site.add(f"{prefix}/q{n}.html", body, content_type="text/html") for n in range(4)]
    feed = site.add(
        f"{prefix}/feed.xml", rss_feed("Busy", [snippet(n, u) for n, u in enumerate(links)])
    )
    settings = settings_for(
        write_config, f"  - {{id: paced, url: '{feed}', backfill: all, full_text: always}}\n"
    )
    (outcome,) = await poll(settings, store, policy=PagePolicy(per_host=4, interval=0.25))
    assert outcome.pages == 4
    starts = sorted(s.at for n in range(4) for s in site.requests_to(f"{prefix}/q{n}.html"))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 3 and min(gaps) >= 0.2, gaps


async def test_pages_per_poll_are_capped_and_the_rest_match_on_feed_text(
    site: FeedServer, write_config, store: Store
) -> None:
    prefix = f"/{uuid.uuid4().hex}"
    body = (PAGES / "en-tram-line.html").read_bytes()
    links = [site.add(f"{prefix}/c{n}.html", body, content_type="text/html") for n in range(4)]
    items = [snippet(n, u, f"Item {n} on talks held in Astana.") for n, u in enumerate(links)]
    feed = site.add(f"{prefix}/feed.xml", rss_feed("Many", items))
    settings = settings_for(
        write_config, f"  - {{id: many, url: '{feed}', backfill: all, full_text: always}}\n"
    )
    (outcome,) = await poll(settings, store, policy=PagePolicy(interval=0.0, max_per_poll=2))
    assert outcome.new_entries == 4 and outcome.pages == 2
    assert sum(len(site.requests_to(f"{prefix}/c{n}.html")) for n in range(4)) == 2


@pytest.mark.parametrize(
    ("kind", "full_text", "link", "summary", "expected"),
    [
        (FeedKind.RSS, FullText.NEVER, "https://a.example/1", "", False),
        (FeedKind.RSS, FullText.ALWAYS, "https://a.example/1", "x" * 5000, True),
        (FeedKind.RSS, FullText.AUTO, "https://a.example/1", "x" * (AUTO_MIN_CHARS - 1), True),
        (FeedKind.RSS, FullText.AUTO, "https://a.example/1", "x" * AUTO_MIN_CHARS, False),
        (FeedKind.RSS, FullText.ALWAYS, None, "", False),
        (FeedKind.RSS, FullText.ALWAYS, "file:///etc/passwd", "", False),
        (FeedKind.RSS, FullText.ALWAYS, "/etc/passwd", "", False),
        (FeedKind.RSS, FullText.ALWAYS, "http://[::1", "", False),
        (FeedKind.RSS, FullText.ALWAYS, "http://a.example:99999/x", "", False),
        (FeedKind.RSS, FullText.ALWAYS, "https:///no-host", "", False),
        (FeedKind.RSS, FullText.ALWAYS, "javascript:alert(1)", "", False),
        (FeedKind.PAGE, FullText.ALWAYS, "http://a.example/2026/12/07/story", "", True),
    ],
)
def test_wants_page(kind, full_text, link, summary, expected) -> None:
    feed = FeedSource(id="f", url="https://a.example/", kind=kind, full_text=full_text)
    article = Article(key="k", feed_id="f", title="t", summary=summary, link=link)
    assert wants_page(feed, article) is expected


async def test_run_once_reads_linked_pages_and_says_so(
    site: FeedServer, write_config, sqlite_url: str, monkeypatch
) -> None:
    """The worker's path (one shared page fetcher, default politeness) end to end."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    prefix = f"/{uuid.uuid4().hex}"
    good = site.add(
        f"{prefix}/story.html",
        (PAGES / "en-energy-talks.html").read_bytes(),
        content_type="text/html",
    )
    items = [snippet(1, good), snippet(2, site.url("/status/404"))]
    feed = site.add(f"{prefix}/feed.xml", rss_feed("Wire", items))
    settings = settings_for(
        write_config, f"  - {{id: wire, url: '{feed}', backfill: all, full_text: always}}\n"
    )
    out = io.StringIO()
    report = await run_once(settings, ConsoleNotifier(out))
    assert report.sent.sent == 1
    assert "1 linked pages read, 1 failed" in report.summary()
    assert "Astana" in out.getvalue() and "Wire item number 1" in out.getvalue()


async def test_extraction_waits_for_the_cpu_slot(site: FeedServer) -> None:
    """A page is extracted only while holding the CPU slot it was given."""
    link = site.add(
        f"/{uuid.uuid4().hex}/slot.html",
        (PAGES / "en-energy-talks.html").read_bytes(),
        content_type="text/html",
    )
    feed = FeedSource(id="f", url=site.url("/feed.xml"), full_text=FullText.ALWAYS)
    lock = threading.Lock()
    async with Fetcher(FetchSettings(timeout=5.0)) as fetcher:
        pages = PageFetcher(fetcher, PagePolicy(interval=0.0), cpu_lock=lock)
        with lock:  # another feed's CPU work holds the slot
            held = await pages.fetch_pages(feed, [("k", link)], budget=0.5)
        free = await pages.fetch_pages(feed, [("k", link)], budget=5.0)
    assert held["k"].page is None and "timed out" in (held["k"].error or "")
    assert free["k"].page is not None and "Astana" in free["k"].page.text


@pytest.mark.parametrize(
    ("text", "known", "expected"),
    [
        ("Lead.\n\nMore.", "", "Lead.\n\nMore."),
        (
            "Ministers met in Astana.\n\nThe talks go on.",
            "ministers  met in ASTANA.",
            "The talks go on.",
        ),
        ("A.\n \nB.\n\n\nC.", "Intro. B. Outro.", "A.\n\nC."),
        ("Only the lead.", "Only the lead. And a second sentence.", ""),
        ("Line one\nline two\n\nOther.", "line one", "Line one\nline two\n\nOther."),
    ],
)
def test_new_paragraphs(text, known, expected) -> None:
    assert new_paragraphs(text, known) == expected


def test_a_lead_the_page_repeats_is_not_counted_twice(write_config) -> None:
    settings = load_settings(
        write_config(RULES + "  - {name: twice, any: [Astana], min_hits: 2, notify: [desk]}\n")
    )
    ruleset = Ruleset.from_settings(settings)
    feed = FeedSource(id="f", url="https://example.org/rss", full_text=FullText.ALWAYS)
    bare = Article(key="k", feed_id="f", title="Talks", summary="Ministers met in Astana.")
    once = PageText("Ministers met in Astana.\n\nThe talks go on.", "Talks", None, "en")
    twice = PageText("Ministers met in Astana.\n\nAstana hosts them again.", "Talks", None, "en")
    assert [m.rule for m in ruleset.matcher.match(with_page(feed, bare, once))] == ["astana"]
    assert [m.rule for m in ruleset.matcher.match(with_page(feed, bare, twice))] == [
        "astana",
        "twice",
    ]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ([], None),
        (["https://t.me/chan_name/12", "https://t.me/chan_name/9"], 12),
        (["https://t.me/chan_name/12", "https://example.org/99", "sha256:ab"], 12),
        (["https://t.me/chan_name/12/extra", "https://t.me/chan_name/x"], None),
    ],
)
def test_known_max_post(keys, expected) -> None:
    assert known_max_post(keys) == expected
