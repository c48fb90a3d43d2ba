"""OPML import (Feedly, Inoreader, Miniflux, FreshRSS shapes) → YAML the config loads; export."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from monitor.config import load_settings
from monitor.models import FeedSource
from monitor.sources.opml import (
    MAX_DEPTH,
    OpmlError,
    export_opml,
    feed_id,
    import_opml,
)
from tests.conftest import run_monitor

DATA = Path(__file__).parent / "data" / "opml"
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # monitor.config's feed id rule


def feeds_of(name: str) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    result = import_opml((DATA / name).read_bytes())
    return [(f.id, f.url, f.name, f.tags) for f in result.feeds]


EXPECTED = {
    "feedly.opml": [
        (
            "akhbar-alsham-alywmya",
            "https://sham-daily.example/ar/rss.xml",
            "أخبار الشام اليومية",
            ("Middle East",),
        ),
        (
            "levant-wire-analysis",
            "https://levant-wire.example/feed/?lang=en&section=all",
            "Levant Wire & Analysis",
            ("Middle East",),
        ),
        ("vesti-kratko", "https://vesti-kratko.example/rss", "Вести кратко", ("Россия",)),
        (
            "novosti-sankt-peterburga",
            "https://spb-news.example/export/rss2/index.xml",
            "Новости Санкт-Петербурга",
            ("Россия",),
        ),
        ("open-source-notes", "https://oss-notes.example/atom.xml", "Open Source Notes", ("Tech",)),
    ],
    "inoreader.xml": [
        (
            "port-example-news",
            "https://port-example.org/en/news/rss",
            "Port Example News",
            ("Agencies",),
        ),
        (
            "wkala-alanba-almhlya",
            "https://local-agency.example/ar/feed",
            "وكالة الأنباء المحلية",
            ("Agencies",),
        ),
        (
            "gorodskaya-sluzhba",
            "https://city-service.example/news.rss",
            "Городская служба",
            ("Agencies", "Regional"),
        ),
        ("weather-roads", "https://roads.example/feed.xml", "Weather & Roads", ()),
    ],
    "miniflux.opml": [
        (
            "sham-daily-english",
            "https://sham-daily.example/en/rss.xml",
            "Sham Daily (English)",
            ("All",),
        ),
        ("sham-daily", "https://sham-daily.example/ar/rss.xml?x=1", "Sham Daily", ("All",)),
        ("sham-daily-2", "https://sham-daily.example/fr/rss.xml", "Sham Daily", ("All",)),
        (
            "rynki-i-stavki",
            "https://markets.example/ru/rss",
            "Рынки и ставки",
            ("Economy & Markets",),
        ),
        (
            "alaqtsad-alywm",
            "http://economy-today.example/ar/feed",
            "الاقتصاد اليوم",
            ("Economy & Markets",),
        ),
    ],
    "freshrss.opml.xml": [
        (
            "open-source-notes",
            "https://oss-notes.example/atom.xml",
            "Open Source Notes",
            ("Uncategorized",),
        ),
        (
            "swrya-alan",
            "https://syria-now.example/rss",
            "سوريا الآن",
            ("Uncategorized", "Syria", "Breaking news"),
        ),
        (
            "city-hall-announcements",
            "https://cityhall.example/announcements",
            "City hall announcements",
            ("Scraped",),
        ),
        ("novosti-rayona", "https://district.example/rss.xml", "Новости района", ("Scraped",)),
    ],
}

NOTES = {
    "feedly.opml": ["line 17: https://LEVANT-WIRE.example/", "listed twice"],
    "inoreader.xml": ["listed twice", "outline 'Saved web pages' has no xmlUrl: skipped"],
    "miniflux.opml": ["'javascript:alert(1)' is not an http(s) URL: skipped"],
    "freshrss.opml.xml": [],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_import_shapes(name):
    assert feeds_of(name) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(NOTES))
def test_import_notes(name):
    notes = "\n".join(import_opml((DATA / name).read_bytes()).notes)
    for expected in NOTES[name]:
        assert expected in notes
    assert bool(notes) is bool(NOTES[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_imported_yaml_loads_in_the_configuration(tmp_path, name):
    existing = "sham-daily"  # an id the configuration already has
    result = import_opml((DATA / name).read_bytes(), taken_ids=[existing])
    (tmp_path / "imported.yaml").write_text(result.yaml, encoding="utf-8")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "feeds:\n"
        f"  - id: {existing}\n"
        "    url: https://already.example/rss\n"
        "include: imported.yaml\n",
        encoding="utf-8",
    )
    loaded = load_settings(config, env={})
    ids = [f.id for f in loaded.feeds]
    assert len(ids) == len(set(ids)) == len(result.feeds) + 1
    assert [f.url for f in loaded.feeds[1:]] == [f.url for f in result.feeds]
    assert [f.name for f in loaded.feeds[1:]] == [f.name for f in result.feeds]
    assert [f.tags for f in loaded.feeds[1:]] == [f.tags for f in result.feeds]
    assert all(ID_PATTERN.match(i) for i in ids)


def test_monitor_check_accepts_an_imported_list(tmp_path):
    result = import_opml((DATA / "feedly.opml").read_bytes())
    (tmp_path / "feeds.yaml").write_text(result.yaml, encoding="utf-8")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "channels:\n  desk:\n    chat: '@desk_example'\n"
        "include: feeds.yaml\n"
        "rules:\n  - name: bridges\n    any: [bridge]\n    feeds: [Россия, Middle East]\n"
        "    notify: [desk]\n",
        encoding="utf-8",
    )
    checked = run_monitor("check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_malformed_opml_is_one_line_error():
    with pytest.raises(OpmlError) as caught:
        import_opml((DATA / "malformed.opml").read_bytes())
    message = str(caught.value)
    assert "\n" not in message
    assert "line 8" in message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<rss version='2.0'><channel/></rss>", "root element is <rss>"),
        (b"<opml version='2.0'><head/></opml>", "no <body>"),
        (b"not xml at all", "not valid OPML"),
        (b"<opml><body><outline text='a\x00b'/></body></opml>", "not valid OPML"),
        (b"\xff\xfe\x00<", "not valid OPML"),
        (b"<opml>" + b"<x>" * 100_000, "not valid OPML"),
    ],
)
def test_bad_input_is_an_opml_error(data, fragment):
    with pytest.raises(OpmlError, match=re.escape(fragment)) as caught:
        import_opml(data)
    assert "\n" not in str(caught.value)


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        b'<!ENTITY %s "%s">' % (bytes([c]), (b"&%s;" % bytes([c - 1])) * 10)
        for c in range(ord("b"), ord("i"))
    )
    + b']><opml version="2.0"><body><outline text="&h;" xmlUrl="https://a.example/rss"/>'
    + b"</body></opml>"
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    b'<opml version="2.0"><body><outline text="x&secret;y" xmlUrl="https://b.example/rss"/>'
    b"</body></opml>"
)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(LAUGHS, "amplification"), (EXTERNAL, "external entity")],
)
def test_entities_are_never_expanded_without_bound_or_fetched(data, fragment):
    with pytest.raises(OpmlError, match=fragment):
        import_opml(data)


def test_nesting_is_bounded_with_a_note():
    deep = (
        "<opml version='2.0'><body>"
        + "".join(f"<outline text='level {i}'>" for i in range(MAX_DEPTH + 5))
        + "<outline text='Deep feed' xmlUrl='https://deep.example/rss'/>"
        + "</outline>" * (MAX_DEPTH + 5)
        + "<outline text='Shallow' xmlUrl='https://shallow.example/rss'/></body></opml>"
    ).encode()
    result = import_opml(deep)
    assert [f.url for f in result.feeds] == ["https://shallow.example/rss"]
    assert any("nested deeper" in note for note in result.notes)


def test_a_large_list_is_linear_and_unique():
    outlines = "".join(
        f"<outline text='Same title' xmlUrl='https://feeds.example/{i}.xml'/>" for i in range(3000)
    )
    result = import_opml(f"<opml version='2.0'><body>{outlines}</body></opml>".encode())
    ids = [f.id for f in result.feeds]
    assert len(ids) == len(set(ids)) == 3000
    assert ids[:3] == ["same-title", "same-title-2", "same-title-3"]


@pytest.mark.parametrize(
    ("title", "url", "taken", "expected"),
    [
        ("Levant Wire & Analysis", "https://x.example/rss", (), "levant-wire-analysis"),
        ("Вести кратко", "https://x.example/rss", (), "vesti-kratko"),
        ("Съезд объёмный", "https://x.example/rss", (), "sezd-obemnyy"),
        ("الجزيرة نت", "https://x.example/rss", (), "aljzyra-nt"),
        ("عَرَبِيّ", "https://x.example/rss", (), "arby"),
        ("Café Société", "https://x.example/rss", (), "cafe-societe"),
        ("新闻", "https://www.news-cn.example/rss", (), "news-cn-example"),
        ("🔥🔥", "https://www.hot.example/rss", (), "hot-example"),
        ("", "not a url", (), "feed"),
        ("News", "https://x.example/rss", ("news", "NEWS-2"), "news-3"),
        ("x" * 100, "https://x.example/rss", (), "x" * 40),
        ("-- leading dashes --", "https://x.example/rss", (), "leading-dashes"),
    ],
)
def test_feed_id(title, url, taken, expected):
    assert feed_id(title, url, taken) == expected


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80), st.lists(st.text(max_size=20), max_size=5))
def test_feed_ids_are_always_valid_and_unique(title, taken):
    ident = feed_id(title, "https://example.org/rss", taken)
    assert ID_PATTERN.match(ident)
    assert ident.isascii()
    assert ident.lower() not in {t.lower() for t in taken}


# ---- export


FEEDS = [
    FeedSource(
        id="sham",
        url="https://sham-daily.example/ar/rss.xml",
        name="أخبار الشام",
        tags=("Middle East", "ar"),
    ),
    FeedSource(
        id="vesti", url="https://vesti-kratko.example/rss?a=1&b=2", name="Вести & co", tags=("ru",)
    ),
    FeedSource(id="bare", url="https://bare.example/feed"),
    FeedSource(
        id="bad-chars",
        url="https://odd.example/rss",
        name="Odd\x00name\ud800 with\x07controls",
        tags=("Middle East",),
    ),
    FeedSource(id="tg", url="https://t.me/s/sham_brief", name="Sham on Telegram"),
]


def test_export_is_opml_2_and_round_trips():
    data = export_opml(FEEDS, now=datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    root = etree.fromstring(data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/dateCreated") == "Mon, 07 Dec 2026 12:00:00 GMT"
    back = import_opml(data)
    # feeds are grouped in a folder per first tag: the same set, folder by folder
    assert sorted(f.url for f in back.feeds) == sorted(f.url for f in FEEDS)
    assert back.notes == ()
    by_url = {f.url: f for f in back.feeds}
    assert by_url["https://sham-daily.example/ar/rss.xml"].name == "أخبار الشام"
    assert by_url["https://sham-daily.example/ar/rss.xml"].tags == ("Middle East", "ar")
    assert by_url["https://vesti-kratko.example/rss?a=1&b=2"].name == "Вести & co"
    assert by_url["https://bare.example/feed"].name == "bare"
    odd = by_url["https://odd.example/rss"].name or ""
    assert "\x00" not in odd and "\x07" not in odd and odd.startswith("Odd")


def test_export_of_nothing_is_still_opml():
    back = import_opml(export_opml([]))
    assert back.feeds == ()
    assert yaml.safe_load(back.yaml) == {"feeds": []}


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(max_size=30), st.lists(st.text(min_size=1, max_size=10), max_size=3)),
        max_size=8,
    )
)
def test_any_names_and_tags_round_trip_urls(items):
    feeds = [
        FeedSource(
            id=f"f{i}", url=f"https://feeds.example/{i}.xml", name=name or None, tags=tuple(tags)
        )
        for i, (name, tags) in enumerate(items)
    ]
    back = import_opml(export_opml(feeds))
    assert sorted(f.url for f in back.feeds) == sorted(f.url for f in feeds)
    loaded = yaml.safe_load(back.yaml)
    assert [item["url"] for item in loaded["feeds"]] == [f.url for f in back.feeds]
    assert len({item["id"] for item in loaded["feeds"]}) == len(feeds)
