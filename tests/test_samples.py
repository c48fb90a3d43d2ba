"""The bundled sample feeds: well-formed, as documented, and alerting on exactly what they should.

``config/monitor.yaml`` watches these files so that the README's first command
prints real alerts offline. ``EXPECTED`` is the contract between the samples and
the rule semantics of SPEC.md: which of the three demo rules each entry must
trigger. Entries mapped to an empty set are the traps (a fragment of a longer
word, a derived word that shares a stem, a football truce, another country).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
import yaml

from monitor.models import FeedSource, Rule

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "config" / "samples"
REAL_SOURCES = ROOT / "config" / "examples" / "real-sources.yaml"

#: file → (feedparser version, language prefix, number of entries)
FEEDS: dict[str, tuple[str, str, int]] = {
    "sample-ar.xml": ("rss20", "ar", 8),
    "sample-ru.xml": ("atom10", "ru", 6),
    "sample-en.xml": ("rss20", "en", 6),
}

#: The Telegram channel preview the demo reads with ``kind: telegram``: post id → rules.
CHANNEL = "sample-channel.html"
CHANNEL_EXPECTED: dict[int, set[str]] = {
    101: {"astana", "ceasefire"},
    102: set(),
    103: {"lavrov"},  # Лавров
    104: set(),
}

#: The demo rules of config/monitor.yaml, as the README shows them.
RULES: tuple[Rule, ...] = (
    Rule(name="astana", any=("Astana", "أستانا", "Астана"), notify=("console",)),
    Rule(
        name="ceasefire",
        any=(
            "ceasefire",
            "truce",
            "وقف إطلاق النار",
            "وقف الأعمال القتالية",
            "هدنة",
            "перемирие",
        ),
        none=("football",),
        notify=("console",),
    ),
    Rule(name="lavrov", any=("Lavrov", "لافروف", "Лавров"), notify=("console",)),
)

A, C, L = "astana", "ceasefire", "lavrov"

#: guid/id → the rules that entry must trigger (and no others).
EXPECTED: dict[str, set[str]] = {
    # Arabic, RSS 2.0
    "sample-ar-001": {A, C, L},  # لافروف + أستانا + وقف إطلاق النار
    "sample-ar-002": {A, C},  # استانا without hamza, ووقف الأعمال القتالية; لافرنتييف ≠ لافروف
    "sample-ar-003": {A},  # أسـتانا (tatweel), لأستانا, بأستانا
    "sample-ar-004": {C},  # هدنة, الهدنةَ (tashkeel), لوقف إطلاق النار, ٧٢ digits
    "sample-ar-005": set(),  # economy
    "sample-ar-006": set(),  # football league, كرة القدم, no ceasefire word
    "sample-ar-007": set(),  # الآستانة = Ottoman Istanbul: a different word from أستانا
    "sample-ar-008": {A, L},  # لافْرُوف (tashkeel), وأستانا
    # Russian, Atom 1.0
    "urn:example:monitor:sample-ru-001": {A, C, L},  # Лавров, в Астане, перемирия
    "urn:example:monitor:sample-ru-002": {A},  # в Астану, из Астаны; Лаврентьев ≠ Лавров
    "urn:example:monitor:sample-ru-003": {C},  # о перемирии, перемирия
    "urn:example:monitor:sample-ru-004": {L},  # Лаврова (genitive)
    "urn:example:monitor:sample-ru-005": set(),  # лаврового листа (bay leaf), Казахстана
    "urn:example:monitor:sample-ru-006": set(),  # Астраханский, Астрахани, на лаврах (laurels)
    # English, RSS 2.0
    "sample-en-001": {A, C},  # Astana, Astana's, ceasefires
    "sample-en-002": {C, L},  # Lavrov, cease-fire, Genève
    "sample-en-003": {C},  # truce, cease fire
    "sample-en-004": set(),  # Astanabad is not Astana
    "sample-en-005": set(),  # a truce, but about football: `none` vetoes it
    "sample-en-006": set(),  # Ukraine, grain
}

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def _parse(name: str) -> Any:
    # a stream, never bare bytes: feedparser tries bare bytes as a file path first
    return feedparser.parse(io.BytesIO((SAMPLES / name).read_bytes()))


def _entry_id(entry: Any) -> str:
    return entry.get("id") or ""


# --------------------------------------------------------------------------- format


@pytest.mark.parametrize(("name", "spec"), FEEDS.items(), ids=list(FEEDS))
def test_sample_parses_cleanly_in_the_stated_format(name: str, spec: tuple[str, str, int]) -> None:
    version, language, count = spec
    d = _parse(name)
    assert not d.bozo, f"{name}: {d.get('bozo_exception')}"
    assert d.version == version
    assert d.encoding.lower() == "utf-8"
    assert (d.feed.get("language") or "").lower().startswith(language)
    assert len(d.entries) == count


def test_samples_cover_both_rss_and_atom() -> None:
    versions = {_parse(name).version for name in FEEDS}
    assert "atom10" in versions
    assert "rss20" in versions


def test_samples_directory_holds_only_documented_files() -> None:
    present = {p.name for p in SAMPLES.iterdir() if not p.name.startswith(".")}
    assert present == {*FEEDS, CHANNEL, "README.md"}


@pytest.mark.parametrize("name", FEEDS)
def test_every_entry_has_id_title_link_and_a_past_november_date(name: str) -> None:
    for entry in _parse(name).entries:
        ident = _entry_id(entry)
        assert ident, f"{name}: entry without guid/id"
        assert entry.get("title", "").strip(), ident
        assert entry.get("link", "").startswith("https://example.org/"), ident
        published = entry.get("published_parsed")
        assert published is not None, ident
        when = datetime(*published[:6], tzinfo=UTC)
        assert datetime(2026, 11, 1, tzinfo=UTC) <= when < NOW, ident
        words = len(re.findall(r"\w+", entry.get("summary", "") + " " + entry.get("title", "")))
        assert 40 <= words <= 400, f"{ident}: {words} words"


def test_ids_and_links_are_unique_across_all_samples() -> None:
    entries = [e for name in FEEDS for e in _parse(name).entries]
    ids = Counter(_entry_id(e) for e in entries)
    links = Counter(e.get("link") for e in entries)
    assert [i for i, n in ids.items() if n > 1] == []
    assert [u for u, n in links.items() if n > 1] == []


def test_arabic_sample_carries_html_entities_and_full_content() -> None:
    raw = (SAMPLES / "sample-ar.xml").read_text(encoding="utf-8")
    d = _parse("sample-ar.xml")
    summaries = [e.summary for e in d.entries]
    assert all("<p>" in s for s in summaries)
    assert sum("<a href=" in s for s in summaries) >= 3
    assert sum("&amp;" in s for s in summaries) >= 3  # HTML entity inside the HTML
    with_content = [e for e in d.entries if e.get("content")]
    assert len(with_content) >= 2
    assert all(len(e.content[0].value) > len(e.summary) for e in with_content)
    assert "&lt;p&gt;" in raw  # one description is entity-escaped rather than CDATA


@pytest.mark.parametrize(
    ("name", "variants"),
    [
        (
            "sample-ar.xml",
            [
                "أستانا",
                "في استانا",
                "وأستانا",
                "بأستانا",
                "لأستانا",
                "أسـتانا",  # tatweel
                "الآستانة",
                "وقف إطلاق النار",
                "لوقف إطلاق النار",
                "ووقف الأعمال القتالية",
                "هدنة",
                "الهدنةَ",  # fatha
                "لافروف",
                "لافْرُوف",  # sukun + damma
                "لافرنتييف",
                "ايران",
                "إيران",
                "علي أن",
                "٧٢",
            ],
        ),
        (
            "sample-ru.xml",
            [
                "в Астане",
                "в Астану",
                "из Астаны",
                "перемирия",
                "о перемирии",
                "Лавров",
                "Лаврова",
                "Лаврентьев",
                "лаврового",
                "Астрахани",
                "на лаврах",
                "ещё",
            ],
        ),
        (
            "sample-en.xml",
            [
                "Astana",
                "Astana's",
                "Astanabad",
                "ceasefires",
                "cease-fire",
                "cease fire",
                "truce",
                "football",
                "Genève",
                "Ukraine",
                "Lavrov",
            ],
        ),
    ],
    ids=list(FEEDS),
)
def test_sample_keeps_the_spelling_variation_the_rules_are_tested_on(
    name: str, variants: list[str]
) -> None:
    text = (SAMPLES / name).read_text(encoding="utf-8")
    assert [v for v in variants if v not in text] == []


def test_readme_says_what_the_samples_are() -> None:
    lines = [ln for ln in (SAMPLES / "README.md").read_text(encoding="utf-8").splitlines() if ln]
    assert len(lines) == 2
    assert "written for this project" in lines[1]


# --------------------------------------------------------------------------- the table


def test_expected_table_lists_every_sample_entry() -> None:
    ids = {_entry_id(e) for name in FEEDS for e in _parse(name).entries}
    assert set(EXPECTED) == ids


@pytest.mark.parametrize("name", FEEDS)
def test_each_sample_has_hits_for_every_rule_and_at_least_two_traps(name: str) -> None:
    ids = [_entry_id(e) for e in _parse(name).entries]
    fired = set().union(*(EXPECTED[i] for i in ids))
    assert fired == {r.name for r in RULES}
    assert sum(not EXPECTED[i] for i in ids) >= 2


@pytest.fixture(scope="module")
def articles() -> dict[str, Any]:
    """Every sample entry as the pipeline sees it: parser → articles, keyed by GUID."""
    parser = pytest.importorskip("monitor.parse", reason="monitor.parse is not written yet")
    normalizer = pytest.importorskip(
        "monitor.articles", reason="monitor.articles is not written yet"
    )
    out: dict[str, Any] = {}
    for name in FEEDS:
        path = SAMPLES / name
        feed = FeedSource(id=path.stem, url=str(path))
        parsed = parser.parse_bytes(path.read_bytes(), feed_id=feed.id, url=feed.url)
        assert parsed.warning is None
        for article in normalizer.to_articles(feed, parsed, NOW):
            out[article.guid or article.key] = article
    return out


@pytest.fixture(scope="module")
def match_names() -> Any:
    """A function Article → set of matched rule names, using the real compiled rules."""
    matcher = pytest.importorskip("monitor.match", reason="monitor.match is not written yet")
    compiled = matcher.compile_rules(RULES)
    return lambda article: {m.rule for m in compiled.match(article)}


@pytest.mark.parametrize(("guid", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_sample_entry_triggers_exactly_the_expected_rules(
    guid: str, expected: set[str], articles: dict[str, Any], match_names: Any
) -> None:
    article = articles[guid]
    assert match_names(article) == expected, f"{guid}: {article.title}"


def test_samples_produce_alerts_for_the_readme_demo(
    articles: dict[str, Any], match_names: Any
) -> None:
    alerting = [g for g, a in articles.items() if match_names(a)]
    assert len(alerting) == sum(bool(v) for v in EXPECTED.values()) == 12


# --------------------------------------------------------------------------- real sources


_FEED_KEYS = {"id", "url", "interval", "backfill", "language", "name", "tags", "user_agent"}
_FEED_KEYS |= {"headers"}


def test_real_sources_example_is_a_valid_feed_list() -> None:
    data = yaml.safe_load(REAL_SOURCES.read_text(encoding="utf-8"))
    assert set(data) == {"feeds"}
    feeds = data["feeds"]
    assert len({f["id"] for f in feeds}) == len(feeds) >= 4
    for feed in feeds:
        assert set(feed) <= _FEED_KEYS, feed["id"]
        assert feed["url"].startswith("https://"), feed["id"]
        assert feed["language"] in {"ar", "en", "ru"}, feed["id"]
        assert re.fullmatch(r"\d+[smhd]", feed["interval"]), feed["id"]
    urls = {f["url"] for f in feeds}
    assert {"https://sana.sy/feed/", "https://sana.sy/en/feed/"} <= urls


def test_real_sources_example_loads_with_the_config_loader() -> None:
    pytest.importorskip("monitor.match", reason="monitor.config checks rules with the matcher")
    config = pytest.importorskip("monitor.config")
    settings = config.load_settings(REAL_SOURCES, env={})
    by_id = {f.id: f for f in settings.feeds}
    assert by_id["sana-ar"].language == "ar"
    assert by_id["sana-ar"].interval.total_seconds() == 180
    assert by_id["bbc-russian"].url == "https://feeds.bbci.co.uk/russian/rss.xml"
    assert settings.rules == ()


def test_demo_config_watches_the_samples_with_these_rules() -> None:
    """Keeps ``EXPECTED`` honest: the README demo must run exactly the rules tested here."""
    config = pytest.importorskip("monitor.config")
    settings = config.load_settings(ROOT / "config" / "monitor.yaml", env={})
    assert [(r.name, r.any, r.all, r.none) for r in settings.rules] == [
        (r.name, r.any, r.all, r.none) for r in RULES
    ]
    samples = {Path(f.url).name: f for f in settings.feeds if "samples" in f.url}
    assert set(samples) == {*FEEDS, CHANNEL}
    assert all(f.backfill is None for f in samples.values())  # "all": the first run alerts
    assert samples[CHANNEL].kind == "telegram"


def test_sample_channel_posts_trigger_exactly_the_expected_rules(match_names: Any) -> None:
    from monitor.articles import to_articles
    from monitor.sources.telegram import parse_channel_page

    page = parse_channel_page((SAMPLES / CHANNEL).read_bytes(), "sample")
    assert page.available and page.title
    feed = FeedSource(id="sample-channel", url=str(SAMPLES / CHANNEL))
    found = {
        int(a.key.rsplit("/", 1)[1]): match_names(a) for a in to_articles(feed, page.feed(), NOW)
    }
    assert found == CHANNEL_EXPECTED
