"""Sources without a feed, wired end to end over loopback HTTP: Telegram channel
previews (with ``?before=`` paging), pages that list articles, OPML in and out,
and the configuration keys that choose them."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from monitor import cli
from monitor.config import Settings, load_settings
from monitor.exceptions import ConfigErrors
from monitor.fetch import Fetcher, FetchSettings
from monitor.fulltext import PageFetcher, PagePolicy
from monitor.models import FeedKind, FullText
from monitor.pipeline import PollOutcome, Ruleset, poll_feed
from monitor.sources.opml import import_opml
from monitor.storage import Store
from tests.fakes.feedserver import FeedServer

DATA = Path(__file__).parent / "data"
RULES = """
channels:
  desk: {chat: "@desk"}
rules:
  - name: watch
    any: [Astana, Астана, أستانا, ferry, ставку]
    notify: [desk]
"""


@pytest.fixture
def site() -> Iterator[FeedServer]:
    """A fresh server per test: page sources serve articles at the site's root."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    store = Store(sqlite_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


#: for page sources: link texts name ferries, only article bodies name Astana
PAGE_RULES = RULES.replace(", ferry, ставку", "")


def settings_for(write_config, feed_line: str, rules: str = RULES) -> Settings:
    return load_settings(write_config(rules + "feeds:\n  - " + feed_line + "\n"))


async def poll(
    settings: Settings, store: Store, now: datetime, policy: PagePolicy | None = None
) -> PollOutcome:
    ruleset = Ruleset.from_settings(settings)
    (feed,) = settings.feeds
    async with Fetcher(FetchSettings(timeout=5.0)) as fetcher:
        pages = PageFetcher(fetcher, policy or PagePolicy(interval=0.0))
        return await poll_feed(
            feed, store=store, fetcher=fetcher, ruleset=lambda: ruleset, now=now, pages=pages
        )


def alerted_links(store: Store) -> set[str]:
    return {a.link or "" for a in store.recent_alerts(limit=100)}


# ---- Telegram channels


def channel_html(name: str, posts: list[tuple[int, str, str]], before: int | None = None) -> bytes:
    """A channel preview page in t.me/s's markup: ``posts`` are (id, ISO time, text)."""
    more = (
        f'<div class="tgme_widget_message_centered js-messages_more_wrap">'
        f'<a href="/s/{name}?before={before}" class="tme_messages_more js-messages_more" '
        f'data-before="{before}"></a></div>'
        if before
        else ""
    )
    items = "".join(
        f'<div class="tgme_widget_message_wrap js-widget_message_wrap">'
        f'<div class="tgme_widget_message js-widget_message" data-post="{name}/{pid}">'
        f'<div class="tgme_widget_message_bubble">'
        f'<div class="tgme_widget_message_text js-message_text" dir="auto">'
        f"{html.escape(text)}</div>"
        f'<div class="tgme_widget_message_footer compact js-message_footer">'
        f'<div class="tgme_widget_message_info short js-message_info">'
        f'<span class="tgme_widget_message_meta"><a class="tgme_widget_message_date" '
        f'href="https://t.me/{name}/{pid}"><time datetime="{when}" class="time">{when[11:16]}'
        f"</time></a></span></div></div></div></div></div>"
        for pid, when, text in posts
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Channel</title></head>'
        '<body class="tgme_webpreview_body"><main class="tgme_main"><div class="tgme_container">'
        '<section class="tgme_channel_history js-message_history">'
        f"{more}{items}</section></div></main></body></html>"
    ).encode()


def neutral(pid: int) -> str:
    return f"Bulletin {pid}: nothing of note on the roads this hour."


async def test_channel_first_poll_keeps_to_backfill_then_alerts_only_new_posts(
    site: FeedServer, write_config, store: Store
) -> None:
    path = "/s/Vesti_Kratko"
    url = site.add(
        path, (DATA / "telegram" / "channel_ru.html").read_bytes(), content_type="text/html"
    )
    settings = settings_for(write_config, f"{{id: vk, kind: telegram, url: '{url}', backfill: 1h}}")
    assert settings.feeds[0].kind is FeedKind.TELEGRAM

    # 10:30: post 882 (09:30, the ferry) is within the hour; 880 (09:00, "ставку") is not
    outcome = await poll(settings, store, datetime(2026, 12, 7, 10, 30, tzinfo=UTC))
    assert outcome.ok and outcome.new_entries == 5 and outcome.alerts == 1
    assert alerted_links(store) == {"https://t.me/Vesti_Kratko/882"}

    posts = [
        (pid, f"2026-12-07T10:{pid - 870:02d}:00+00:00", neutral(pid)) for pid in (882, 883, 884)
    ]
    posts += [
        (885, "2026-12-07T10:40:00+00:00", "Ferry tickets go on sale online from today."),
        (886, "2026-12-07T10:50:00+00:00", neutral(886)),
    ]
    site.add(path, channel_html("Vesti_Kratko", posts, before=882), content_type="text/html")
    outcome = await poll(settings, store, datetime(2026, 12, 7, 11, 0, tzinfo=UTC))
    assert outcome.ok and outcome.new_entries == 2 and outcome.alerts == 1
    assert alerted_links(store) == {
        "https://t.me/Vesti_Kratko/882",
        "https://t.me/Vesti_Kratko/885",
    }
    assert [s.query for s in site.requests_to(path)] == ["", ""]  # one page was enough


MENTIONS = {
    102: "Talks on water sharing open in Astana.",
    107: "Astana airport adds two night flights.",
    118: "A chess final will be held in Astana in March.",
    123: "Astana hosts a conference of river engineers.",
}


def posts(first: int, last: int) -> list[tuple[int, str, str]]:
    return [
        (
            pid,
            f"2026-12-07T{pid // 60:02d}:{pid % 60:02d}:00+00:00",
            MENTIONS.get(pid, neutral(pid)),
        )
        for pid in range(first, last + 1)
    ]


async def test_more_than_a_page_of_new_posts_follows_before(
    site: FeedServer, write_config, store: Store
) -> None:
    path, name = "/s/chan_paging", "chan_paging"
    url = site.add(path, channel_html(name, posts(100, 104), before=100), content_type="text/html")
    settings = settings_for(
        write_config, f"{{id: paging, kind: telegram, url: '{url}', backfill: all}}"
    )
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    outcome = await poll(settings, store, now)
    assert outcome.new_entries == 5 and alerted_links(store) == {f"https://t.me/{name}/102"}

    site.add(path, channel_html(name, posts(120, 124), before=120), content_type="text/html")
    for cursor, (first, last) in {
        120: (115, 119),
        115: (110, 114),
        110: (105, 109),
        105: (100, 104),
    }.items():
        site.add(
            f"{path}?before={cursor}",
            channel_html(name, posts(first, last), before=first),
            content_type="text/html",
        )
    outcome = await poll(settings, store, now)
    assert outcome.ok and outcome.new_entries == 20
    assert [s.query for s in site.requests_to(path)] == [
        "",  # first poll
        "",
        "before=120",
        "before=115",
        "before=110",  # 105-109 reaches the known 104: no more pages
    ]
    assert alerted_links(store) == {f"https://t.me/{name}/{pid}" for pid in MENTIONS}


async def test_a_channel_without_preview_is_a_clear_feed_error(
    site: FeedServer, write_config, store: Store
) -> None:
    url = site.add(
        "/s/private_chan",
        b"<html><body><div class='tgme_page'>Join this channel in the app.</div></body></html>",
        content_type="text/html",
    )
    settings = settings_for(write_config, f"{{id: hidden, kind: telegram, url: '{url}'}}")
    outcome = await poll(settings, store, datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    assert not outcome.ok and "no public preview" in (outcome.error or "")
    state = store.feed_state("hidden")
    assert state is not None and state.errors == 1


# ---- pages without a feed

NAV = [  # menu, ticker, tag, most-read links: never fetched
    "/2026/12/07/this-link-sits-in-the-menu-and-is-not-news",
    "/2026/12/07/ticker-item-about-traffic-on-the-ring-road",
    "/2026/12/05/old-story-about-the-harbour-crane-collapse",
    "/2026/11/30/a-recipe-for-lentil-soup-readers-loved",
    "/2026/12/02/night-buses-return-to-the-old-town",
    "/tag/education",
    "/news/page/2",
]
V1 = [
    "/2026/12/07/city-council-approves-budget-for-new-schools",
    "/world/184532-ferry-line-to-the-islands-resumes-after-storm",
    "/ar/news/افتتاح-جسر-جديد-في-دمشق",
    "/ru/news/20261207/vstrecha-ministrov",
    "/article.php",
    "/sport/local-derby-ends-in-a-late-draw-at-the-old-stadium",
    "/world/how-we-cover-elections",
]
NEW_IN_V2 = "/2026/12/07/power-cuts-shortened-in-the-eastern-districts"


def serve_news_site(site: FeedServer) -> str:
    """The list page and its articles: the lead story and the one new in v2 name Astana
    in their body; every other article names it only in a related link. The menu and
    most-read targets name it in their body, so fetching one would alert."""
    pages = DATA / "pages"
    for path in [*V1, *NAV]:
        page = "en-energy-talks" if path in NAV else "en-tram-line"
        site.add(path, (pages / f"{page}.html").read_bytes(), content_type="text/html")
    site.add(V1[0], (pages / "en-energy-talks.html").read_bytes(), content_type="text/html")
    site.add(NEW_IN_V2, (pages / "ru-gas-pipeline.html").read_bytes(), content_type="text/html")
    return list_page(site, "news_v1.html")


def list_page(site: FeedServer, name: str) -> str:
    body = (DATA / "pages_list" / name).read_bytes()
    return site.add("/news/", body, content_type="text/html; charset=utf-8")


def fetched(site: FeedServer, paths: list[str]) -> dict[str, int]:
    return {p: len(site.requests_to(p)) for p in paths}


def article_url(site: FeedServer, path: str) -> str:
    return unquote(urlsplit(site.url(path)).path)


async def test_a_news_list_alerts_each_article_once_as_its_box_rotates(
    site: FeedServer, write_config, store: Store
) -> None:
    url = serve_news_site(site)
    settings = settings_for(
        write_config, f"{{id: daily, kind: page, url: '{url}', backfill: all}}", PAGE_RULES
    )
    feed = settings.feeds[0]
    assert feed.kind is FeedKind.PAGE and feed.full_text is FullText.ALWAYS
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    outcome = await poll(settings, store, now)
    assert outcome.ok and outcome.new_entries == len(V1) and outcome.pages == len(V1)
    assert {urlsplit(link).path for link in alerted_links(store)} == {V1[0]}

    list_page(site, "news_v2.html")  # a new lead story; the most-read box rotated
    outcome = await poll(settings, store, now)
    assert outcome.new_entries == 1 and outcome.alerts == 1
    list_page(site, "news_v1.html")  # and back
    outcome = await poll(settings, store, now)
    assert outcome.new_entries == 0 and outcome.alerts == 0

    assert {urlsplit(link).path for link in alerted_links(store)} == {V1[0], NEW_IN_V2}
    assert fetched(site, [*V1, NEW_IN_V2]) == dict.fromkeys([*V1, NEW_IN_V2], 1)
    assert fetched(site, NAV) == dict.fromkeys(NAV, 0)
    alert = next(a for a in store.recent_alerts() if NEW_IN_V2 in (a.link or ""))
    assert "<b>Астане</b>" in alert.html  # the page's hit sentence, quoted


async def test_a_new_page_source_does_not_alert_its_back_catalogue(
    site: FeedServer, write_config, store: Store
) -> None:
    url = serve_news_site(site)
    settings = settings_for(
        write_config, f"{{id: daily, kind: page, url: '{url}', backfill: 7d}}", PAGE_RULES
    )
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    outcome = await poll(settings, store, now)
    assert outcome.ok and outcome.new_entries == len(V1) and outcome.alerts == 0
    assert fetched(site, V1) == dict.fromkeys(V1, 0)  # no page fetched on the first poll

    list_page(site, "news_v2.html")
    outcome = await poll(settings, store, now)
    assert outcome.new_entries == 1 and outcome.alerts == 1
    assert fetched(site, [NEW_IN_V2, *V1]) == {NEW_IN_V2: 1, **dict.fromkeys(V1, 0)}


async def test_new_links_over_the_cap_wait_for_the_next_poll(
    site: FeedServer, write_config, store: Store
) -> None:
    url = serve_news_site(site)
    settings = settings_for(
        write_config, f"{{id: daily, kind: page, url: '{url}', backfill: all}}", PAGE_RULES
    )
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    capped = PagePolicy(interval=0.0, max_per_poll=3)
    news = [(await poll(settings, store, now, capped)).new_entries for _ in range(4)]
    assert news == [3, 3, 1, 0]
    assert fetched(site, V1) == dict.fromkeys(V1, 1)  # each fetched once, none lost
    assert {urlsplit(link).path for link in alerted_links(store)} == {V1[0]}


async def test_a_links_selector_takes_only_its_links(
    site: FeedServer, write_config, store: Store
) -> None:
    url = serve_news_site(site)
    settings = settings_for(
        write_config,
        f"{{id: daily, kind: page, url: '{url}', backfill: all, links: 'main article h2 a'}}",
        PAGE_RULES,
    )
    outcome = await poll(settings, store, datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    assert outcome.ok and 0 < outcome.new_entries < len(V1)
    assert fetched(site, NAV) == dict.fromkeys(NAV, 0)


# ---- configuration


@pytest.mark.parametrize(
    ("line", "kind", "url", "full_text"),
    [
        (
            "{id: a, url: 'https://t.me/vesti_kratko'}",
            "telegram",
            "https://t.me/s/vesti_kratko",
            "never",
        ),
        (
            "{id: a, url: 'https://t.me/s/vesti_kratko/880'}",
            "telegram",
            "https://t.me/s/vesti_kratko",
            "never",
        ),
        ("{id: a, telegram: '@sham_brief'}", "telegram", "https://t.me/s/sham_brief", "never"),
        (
            "{id: a, kind: telegram, url: 'https://t.me/sham_brief'}",
            "telegram",
            "https://t.me/s/sham_brief",
            "never",
        ),
        (
            "{id: a, kind: telegram, url: 'https://mirror.example/tg?c=sham'}",
            "telegram",
            "https://mirror.example/tg?c=sham",
            "never",
        ),
        (
            "{id: a, kind: rss, url: 'https://t.me/s/sham_brief'}",
            "rss",
            "https://t.me/s/sham_brief",
            "auto",
        ),
        (
            "{id: a, telegram: sham_brief, url: 'https://mirror.example/tg/sham_brief'}",
            "telegram",
            "https://mirror.example/tg/sham_brief",
            "never",
        ),
        ("{id: a, url: 'https://news.example/rss'}", "rss", "https://news.example/rss", "auto"),
        (
            "{id: a, url: 'https://news.example/rss', full_text: never}",
            "rss",
            "https://news.example/rss",
            "never",
        ),
        (
            "{id: a, url: 'https://news.example/', kind: page, links: '.list a'}",
            "page",
            "https://news.example/",
            "always",
        ),
    ],
)
def test_feed_kinds_in_the_configuration(write_config, line, kind, url, full_text) -> None:
    settings = load_settings(
        write_config(RULES + "defaults:\n  full_text: auto\nfeeds:\n  - " + line + "\n")
    )
    (feed,) = settings.feeds
    assert (feed.kind, feed.url, feed.full_text) == (kind, url, full_text)


@pytest.mark.parametrize(
    ("line", "at", "message"),
    [
        ("{id: a}", "{", "a feed needs 'url' (or 'telegram: NAME' for a channel)"),
        (
            "{id: a, url: x, full_text: sometimes}",
            "sometimes",
            "expected never or auto or always, not 'sometimes'",
        ),
        ("{id: a, url: x, kind: atom}", "atom", "expected rss or telegram or page, not 'atom'"),
        (
            "{id: a, telegram: 'no such name!'}",
            "'no",
            "'no such name!' is not a public channel username",
        ),
        (
            "{id: a, telegram: sham_brief, kind: rss}",
            "rss",
            "'telegram: sham_brief' reads a channel: kind must be telegram",
        ),
        (
            "{id: a, url: x, links: 'a'}",
            "'a'",
            "'links' (a CSS selector) applies to kind: page only",
        ),
        ("{id: a, url: x, kind: page, links: 'a[['}", "'a[['", "invalid CSS selector 'a[['"),
    ],
)
def test_located_errors_for_source_keys(write_config, line, at, message) -> None:
    text = RULES + "feeds:\n  - " + line + "\n"
    path = write_config(text)
    with pytest.raises(ConfigErrors) as caught:
        load_settings(path)
    row = path.read_text()[: path.read_text().index(line)].count("\n") + 1
    where = f"{path}:{row}:{len('  - ') + line.index(at) + 1}: "
    assert any(str(e).startswith(where + message) for e in caught.value.errors), [
        str(e) for e in caught.value.errors
    ]


def test_full_text_on_page_and_telegram_sources_is_a_warning(write_config) -> None:
    settings = load_settings(
        write_config(
            RULES
            + "feeds:\n"
            + "  - {id: a, telegram: sham_brief, full_text: always}\n"
            + "  - {id: b, url: 'https://n.example/', kind: page, full_text: never}\n"
        )
    )
    assert [f.full_text for f in settings.feeds] == [FullText.NEVER, FullText.ALWAYS]
    assert len(settings.warnings) == 2
    assert "full_text does not apply to Telegram channels" in settings.warnings[0]
    assert "a page source always fetches its links' text" in settings.warnings[1]


# ---- OPML


@pytest.mark.parametrize(
    "name", ["feedly.opml", "freshrss.opml.xml", "inoreader.xml", "miniflux.opml"]
)
def test_opml_import_gives_a_configuration_that_checks(
    name, write_config, tmp_path, capsys
) -> None:
    assert (
        cli.main(
            ["feeds", "import", str(DATA / "opml" / name), "--config", str(tmp_path / "none.yaml")]
        )
        == 0
    )
    out = capsys.readouterr().out
    config = write_config(RULES + out)
    assert cli.main(["check", "--config", str(config)]) == 0
    assert "OK" in capsys.readouterr().out
    feeds = load_settings(config).feeds
    expected = import_opml((DATA / "opml" / name).read_bytes()).feeds
    assert [f.url for f in feeds] == [f.url for f in expected]
    assert len({f.id for f in feeds}) == len(feeds) and len({f.url for f in feeds}) == len(feeds)


def test_opml_import_avoids_configured_ids(write_config, capsys) -> None:
    config = write_config(RULES + "feeds:\n  - {id: vesti-kratko, url: 'https://a.example/rss'}\n")
    assert (
        cli.main(["feeds", "import", str(DATA / "opml" / "feedly.opml"), "--config", str(config)])
        == 0
    )
    assert "id: vesti-kratko-2" in capsys.readouterr().out


def test_malformed_opml_is_one_line_and_exit_1(capsys) -> None:
    assert cli.main(["feeds", "import", str(DATA / "opml" / "malformed.opml")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err.startswith("monitor: error: not valid OPML") and captured.err.count("\n") == 1
    )


def test_opml_export_round_trips_urls(write_config, capsysbinary) -> None:
    config = write_config(
        RULES
        + "feeds:\n"
        + "  - {id: wire, url: 'https://wire.example/rss?lang=ar&x=1', tags: [Middle East]}\n"
        + "  - {id: vk, telegram: vesti_kratko, name: Вести кратко}\n"
        + "  - {id: daily, url: 'https://daily.example/news/', kind: page}\n"
    )
    assert cli.main(["feeds", "export", "--config", str(config)]) == 0
    out = capsysbinary.readouterr().out
    assert out.startswith(b"<?xml") and b'version="2.0"' in out
    back = import_opml(out)
    assert [f.url for f in back.feeds] == [f.url for f in load_settings(config).feeds]
    assert back.feeds[0].tags == ("Middle East",) and back.feeds[1].name == "Вести кратко"
