"""The archive: search and backtest with exactly the rule semantics, on SQLite and PostgreSQL.

A known archive of a few hundred articles in Arabic, Russian and English across
ten days (filler news in our own words around a handful of target articles).
The central check is that the index changes nothing but speed: for every
query, the index-served search returns exactly what the matcher finds when it
reads every article in the window, in the same order.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.archive import (
    QueryError,
    SearchResult,
    archive_entries,
    backtest,
    compile_query,
    iter_archive,
    search,
    snippet,
)
from monitor.config import load_draft_rules, load_settings
from monitor.exceptions import ConfigError
from monitor.match import KeyExpr, article_index_keys, compile_rules, index_query
from monitor.models import Article, Rule
from monitor.storage import ArchiveEntry, Store
from monitor.storage import archive as archive_storage
from monitor.storage.schema import SCHEMA_VERSION, metadata, schema_table
from tests.conftest import run_monitor
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feedserver import FeedServer
from tests.test_bot import Harness

WriteConfig = Callable[..., Path]
CliDb = tuple[Path, dict[str, str]]

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

# ------------------------------------------------------------------ the archive

FILLER = {
    "en": (
        "markets closed higher after a quiet week the city council approved a new bridge "
        "over the river farmers expect a good harvest despite heavy rain the minister "
        "visited a school and a hospital budget report weather"
    ),
    "ru": (
        "рынки закрылись ростом после тихой недели городской совет утвердил новый мост "
        "через реку фермеры ждут хорошего урожая несмотря на дожди министр посетил школу "
        "и больницу бюджет доклад погода"
    ),
    "ar": (
        "أغلقت الأسواق على ارتفاع بعد أسبوع هادئ ووافق المجلس البلدي على جسر جديد فوق "
        "النهر ويتوقع المزارعون حصادا جيدا رغم الأمطار الغزيرة وزار الوزير مدرسة ومستشفى "
        "الميزانية التقرير الطقس"
    ),
}


@dataclass(frozen=True)
class Target:
    key: str
    language: str
    days: float | None  # age by publication; None: undated (first seen 4 days ago)
    title: str
    content: str


TARGETS = (
    Target("ar-clitic", "ar", 2, "وصول الوفود", "وصل الوفد وبأستانا بدأت جولة جديدة من المحادثات"),
    Target("ar-bare", "ar", 6, "محادثات أستانا تستأنف", "تستأنف المحادثات الأسبوع المقبل"),
    Target("ar-truce", "ar", 1, "هدوء حذر", "قال شهود إن ووقف إطلاق النار صامد في الشمال"),
    Target("ru-loc", "ru", 1, "Переговоры в Астане продолжатся", "Стороны встретятся в среду."),
    Target("ru-gen", "ru", 8, "Делегация вылетела", "Делегация вылетела из Астаны утром."),
    Target("ru-nom", "ru", 3.5, "Астана примет новый раунд", "Даты пока не названы."),
    Target("en-astana", "en", 4, "Talks in Astana resume", "Envoys arrived on Monday."),
    Target("en-astanabad", "en", 5, "Festival in Astanabad", "Crowds filled the square."),
    Target("en-ceasefire", "en", 0.2, "The ceasefire holds", "Calm returned to the north."),
    Target(
        "en-football", "en", 2.5, "A cease-fire before the final", "The football final went on."
    ),
    Target("en-split", "en", 6.5, "Sides meet", "Both sides said the cease fire would last."),
    Target("en-plural", "en", 9, "Ceasefires rarely last", "Analysts were doubtful."),
    Target("en-ukraine", "en", 3, "Ukraine grain deal", "Ships left port."),
    Target("en-undated", "en", None, "Astana hosts envoys", "An undated wire item."),
)


@dataclass(frozen=True)
class Stored:
    article: Article
    seen_at: datetime

    @property
    def at(self) -> datetime:
        return archive_storage.sort_time(self.article.published, self.seen_at)


@cache
def corpus(now: datetime = NOW, fillers: int = 300) -> tuple[Stored, ...]:
    """Targets plus filler articles over ten days; every article a distinct time."""
    rng = random.Random(7)
    out = []
    for i, t in enumerate(TARGETS):
        published = None if t.days is None else now - timedelta(days=t.days, minutes=i)
        seen = now - timedelta(days=4, minutes=30) if t.days is None else now
        article = Article(
            key=t.key,
            feed_id=f"wire-{t.language}",
            title=t.title,
            content=t.content,
            link=f"https://news.example/{t.key}",
            published=published,
            language=t.language,
            source=f"Wire {t.language.upper()}",
        )
        out.append(Stored(article, seen))
    for i in range(fillers):
        lang = ("ar", "ru", "en")[i % 3]
        words = FILLER[lang].split(" ")
        title = " ".join(rng.choice(words) for _ in range(5))
        content = " ".join(rng.choice(words) for _ in range(rng.randint(20, 60)))
        published = now - timedelta(days=10) + timedelta(minutes=47 * i + 13)
        article = Article(
            key=f"filler-{i}",
            feed_id=f"wire-{lang}",
            title=title,
            content=content + ".",
            link=f"https://news.example/f/{i}",
            published=published,
            language=lang,
            source=f"Wire {lang.upper()}",
        )
        out.append(Stored(article, now))
    return tuple(out)


@cache
def entries(now: datetime = NOW) -> tuple[tuple[ArchiveEntry, datetime], ...]:
    return tuple(
        (ArchiveEntry(s.article, article_index_keys(s.article)), s.seen_at) for s in corpus(now)
    )


def fill(store: Store, now: datetime = NOW) -> None:
    by_seen: dict[datetime, list[ArchiveEntry]] = {}
    for entry, seen in entries(now):
        by_seen.setdefault(seen, []).append(entry)
    for seen, group in by_seen.items():
        assert store.archive_articles(group, seen) == len(group)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    fill(store)
    yield store
    store.close()


def brute_force(query: str, since: timedelta | None, now: datetime = NOW) -> list[str]:
    """The reference: the matcher over every article in the window, newest first."""
    matcher = compile_query(query)
    start = None if since is None else now - since
    found = [
        s for s in corpus(now) if (start is None or s.at >= start) and matcher.match(s.article)
    ]
    return [s.article.key for s in sorted(found, key=lambda s: s.at, reverse=True)]


def keys(result: SearchResult) -> list[str]:
    return [f.article.key for f in result.results]


# ------------------------------------------------------------------ search


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("أستانا", {"ar-clitic", "ar-bare"}),  # وبأستانا found by أستانا
        ("Астана", {"ru-loc", "ru-gen", "ru-nom"}),  # Астане, Астаны
        ("Astana", {"en-astana", "en-undated"}),  # not Astanabad
        ("ceasefire", {"en-ceasefire", "en-football", "en-split", "en-plural"}),
        ("ceasefire NOT football", {"en-ceasefire", "en-split", "en-plural"}),
        ('"وقف إطلاق النار"', {"ar-truce"}),  # ووقف إطلاق النار
        ('"talks in Astana"', {"en-astana"}),
        ("title:Астана", {"ru-loc", "ru-nom"}),
        ("Iran", set()),  # never a fragment: not Ukraine
        ("Астана AND NOT Делегация", {"ru-loc", "ru-nom"}),
    ],
)
def test_search_finds_exactly_the_rule_semantics(
    store: Store, query: str, expected: set[str]
) -> None:
    result = search(store, query, now=NOW, since=None, limit=1000)
    assert set(keys(result)) == expected
    assert result.total == len(expected)
    assert not result.scanned


QUERIES = [
    "أستانا",
    "Астана",
    "Astana",
    "ceasefire",
    "cease-fire",
    "ceasefire NOT football",
    '"وقف إطلاق النار"',
    '"talks in Astana"',
    '"cease fire"~2',
    "Астана OR أستانا OR Astana",
    "(министр AND школу) OR الوزير",
    "title:(мост OR bridge)",
    "=Астана",
    "Астан*",  # wildcard: a scan
    "/astana.*/",  # regex: a scan
    "NOT rain",  # nothing to look up: a scan
    "harvest~",  # fuzzy: a scan
    "rain AND NOT (harvest OR budget)",
]


@pytest.mark.parametrize("since", [None, timedelta(days=3), timedelta(hours=30)])
@pytest.mark.parametrize("query", QUERIES)
def test_index_changes_nothing_but_speed(store: Store, query: str, since: timedelta | None) -> None:
    result = search(store, query, now=NOW, since=since, limit=10_000)
    assert keys(result) == brute_force(query, since)
    assert result.total == len(result.results)


def test_since_and_newest_first_go_by_publication_then_first_seen(store: Store) -> None:
    query = "Астана OR أستانا OR Astana"
    week = search(store, query, now=NOW, since=timedelta(days=7), limit=100)
    assert keys(week) == ["ru-loc", "ar-clitic", "ru-nom", "en-astana", "en-undated", "ar-bare"]
    ats = [f.ref.at for f in week.results]
    assert ats == sorted(ats, reverse=True)
    three = search(store, query, now=NOW, since=timedelta(days=3), limit=100)
    assert keys(three) == ["ru-loc", "ar-clitic"]  # the undated one was first seen 4 days ago
    undated = next(f for f in week.results if f.article.key == "en-undated")
    assert undated.ref.published is None and undated.ref.at == NOW - timedelta(days=4, minutes=30)


def test_iterating_a_time_window(store: Store) -> None:
    start, end = NOW - timedelta(days=3), NOW - timedelta(days=1)
    got = [a.article.key for a in iter_archive(store, since=start, until=end)]
    expected = sorted((s for s in corpus() if start <= s.at < end), key=lambda s: s.at)
    assert got == [s.article.key for s in reversed(expected)] and len(got) > 50


def test_limit_keeps_the_newest_and_counts_all(store: Store) -> None:
    result = search(store, "ceasefire", now=NOW, since=None, limit=2)
    assert keys(result) == ["en-ceasefire", "en-football"]
    assert result.total == 4


@pytest.mark.parametrize(
    "query", ["", "   ", "a AND (", "foo:bar", "/[/", '"unclosed', "x" * 5000, "(" * 3000]
)
def test_a_bad_query_is_one_clear_error(store: Store, query: str) -> None:
    with pytest.raises(QueryError) as info:
        search(store, query, now=NOW)
    assert "\n" not in str(info.value) and str(info.value)


def test_a_scan_reports_progress(store: Store) -> None:
    seen: list[tuple[int, int]] = []
    scans: list[int] = []
    result = search(
        store,
        "/Astana/",
        now=NOW,
        since=None,
        progress=lambda d, t: seen.append((d, t)),
        on_scan=scans.append,
    )
    assert result.scanned and scans == [len(corpus())]
    assert seen[-1] == (len(corpus()), len(corpus())) and len(seen) >= 2
    indexed = search(store, "Astana", now=NOW, since=None, on_scan=scans.append)
    assert not indexed.scanned and indexed.examined < 10 and scans == [len(corpus())]


def test_snippet_highlights_every_hit_near_the_first(store: Store) -> None:
    (found,) = search(store, '"sides said" OR would', now=NOW, since=None).results
    assert snippet(found.article, found.hits, "«", "»") == (
        "Both «sides said» the cease fire «would» last."
    )
    (arabic,) = search(store, "جولة OR المحادثات", now=NOW, since=timedelta(days=3)).results
    assert snippet(arabic.article, arabic.hits, "[", "]") == (
        "وصل الوفد وبأستانا بدأت [جولة] جديدة من [المحادثات]"
    )


# ------------------------------------------------------------------ pruning, keep_text


def test_pruning_after_keep_text(store: Store) -> None:
    removed = store.prune_archive(NOW, timedelta(days=5))
    older = [s for s in corpus() if s.at < NOW - timedelta(days=5)]
    assert removed == len(older) > 0
    assert store.archive_count() == len(corpus()) - len(older)
    for query in ("Астана", "ceasefire", "/astana/"):  # the index forgot them too
        result = search(store, query, now=NOW, since=None, limit=1000)
        assert keys(result) == brute_force(query, timedelta(days=5))
    assert store.prune_archive(NOW, timedelta(days=5)) == 0
    assert store.prune_archive(NOW, timedelta(0)) == len(corpus()) - len(older)
    assert store.archive_count() == 0
    assert search(store, "Астана", now=NOW, since=None).total == 0


def test_keep_text_zero_keeps_nothing_and_old_articles_are_not_kept() -> None:
    articles = [s.article for s in corpus()[:20]]
    assert archive_entries(articles, NOW, timedelta(0)) == []
    kept = archive_entries(articles, NOW, timedelta(days=3))
    assert {e.article.key for e in kept} == {
        s.article.key
        for s in corpus()[:20]
        if s.article.published is None or s.article.published >= NOW - timedelta(days=3)
    }


def test_the_same_article_is_kept_once(store: Store) -> None:
    entry, seen = entries()[0]
    assert store.archive_articles([entry], seen) == 0
    assert search(store, "أستانا", now=NOW, since=None).total == 2


def test_an_article_with_too_many_keys_is_kept_unindexed_and_still_found(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive_storage, "MAX_INDEX_KEYS", 5)
    store = Store(database_url)
    store.migrate()
    try:
        big = Article(
            key="big",
            feed_id="f",
            title="A long wire",
            content="Envoys gathered in Astana where talks on the ceasefire continued.",
            published=NOW,
        )
        small = Article(key="small", feed_id="f", title="Astana", published=NOW)
        store.archive_articles(archive_entries([big, small], NOW, timedelta(days=1)), NOW)
        assert keys(search(store, "Astana", now=NOW, since=None)) == ["small", "big"]
        assert keys(search(store, "ceasefire", now=NOW, since=None)) == ["big"]
        assert store.prune_archive(NOW + timedelta(days=2), timedelta(days=1)) == 2
    finally:
        store.close()


def test_hostile_text_is_kept_and_searchable(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    try:
        text = "x\x00y \ud800 " + "أستانا " * 5 + "🙂" * 1000 + " Астане\u200f " + "z" * 100_000
        article = Article(
            key="k\x00", feed_id="f", title="\ud83d", content=text.replace("\x00", " ")
        )
        store.archive_articles(archive_entries([article], NOW, timedelta(days=1)), NOW)
        for query in ("أستانا", "Астана", "/z{5}/"):
            assert search(store, query, now=NOW, since=None).total == 1, query
    finally:
        store.close()


# ------------------------------------------------------------------ the index property

WORDS = [
    "أستانا", "وبأستانا", "للمفاوضات", "مفاوضات", "وقف", "إطلاق", "النار", "ووقف",
    "Астана", "Астане", "Астаны", "переговоры", "перемирие", "перемирия",
    "Astana", "Astanabad", "ceasefire", "cease", "fire", "ceasefires", "talks", "talk",
    "Iran", "Ukraine", "football",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "-", ", ", "\n", ". "]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=12),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    st.sampled_from(["any", "all", "phrase", "query-and", "query-or"]),
)
def test_every_match_satisfies_the_index_query(
    words: list[tuple[str, str]], terms: list[str], shape: str
) -> None:
    """Exact in the direction that matters: the index never hides a match."""
    text = "".join(w + s for w, s in words)
    if shape == "any":
        rule = Rule("r", any=tuple(terms))
    elif shape == "all":
        rule = Rule("r", all=tuple(terms))
    elif shape == "phrase":
        rule = Rule("r", any=(" ".join(terms),))
    elif shape == "query-and":
        rule = Rule("r", query=" AND ".join(terms))
    else:
        rule = Rule("r", query=" OR ".join(f'"{t}"' for t in terms))
    matcher = compile_rules([rule])
    article = Article(key="k", feed_id="f", title="", content=text)
    expr = index_query(matcher, "r")
    if matcher.match(article):
        assert expr is None or satisfied(expr, article_index_keys(article)), (text, rule)


def satisfied(expr: KeyExpr, keys: frozenset[str]) -> bool:
    if isinstance(expr, frozenset):
        return not expr.isdisjoint(keys)
    kids = [satisfied(e, keys) for e in expr[1]]
    return all(kids) if expr[0] == "and" else any(kids)


# ------------------------------------------------------------------ backtest

RULES = (
    Rule("astana", notify=("desk",), any=("Astana", "أستانا", "Астана")),
    Rule("ceasefire", notify=("desk",), any=("ceasefire", "وقف إطلاق النار"), none=("football",)),
    Rule("russian-only", any=("Астана",), feeds=("russian",)),
    Rule("never", any=("Iran",)),
)


def test_backtest_counts_each_rule_as_the_matcher_would(store: Store) -> None:
    tags = {"wire-ru": ("russian",)}
    results = backtest(store, RULES, now=NOW, since=timedelta(days=7), feed_tags=tags)
    got = {r.rule: [a.title for a in r.articles] for r in results}
    assert [r.rule for r in results] == [r.name for r in RULES]
    assert [r.count for r in results] == [6, 3, 2, 0]
    assert got["ceasefire"] == ["The ceasefire holds", "هدوء حذر", "Sides meet"]
    assert got["russian-only"] == ["Переговоры в Астане продолжатся", "Астана примет новый раунд"]
    limited = backtest(store, RULES[:1], now=NOW, since=timedelta(days=7), limit=2)
    assert limited[0].count == 6 and len(limited[0].articles) == 2


def test_backtest_with_a_scanned_rule_matches_the_indexed_answer(store: Store) -> None:
    scanned: list[int] = []
    rules = (*RULES, Rule("regex", any=("re:astan",)))
    mixed = backtest(store, rules, now=NOW, since=None, on_scan=scanned.append)
    plain = backtest(store, RULES, now=NOW, since=None)
    assert scanned == [len(corpus())]
    assert [(r.rule, r.count, r.articles) for r in mixed[:-1]] == [
        (r.rule, r.count, r.articles) for r in plain
    ]
    assert mixed[-1].count == 3  # Astana twice and, inside a word, Astanabad


def test_draft_rules_may_name_channels_that_do_not_exist(write_config: WriteConfig) -> None:
    path = write_config(
        """
        rules:
          - name: draft
            any: [Astana]
            notify: [channel-not-made-yet]
        """,
        "draft.yaml",
    )
    (rule,) = load_draft_rules(path, env={})
    assert rule.name == "draft" and rule.notify == ("channel-not-made-yet",)
    bad = write_config("rules:\n  - name: bad\n    query: 'a AND ('\n", "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_draft_rules(bad, env={})
    assert "bad.yaml:3:12" in str(info.value)


# ------------------------------------------------------------------ config and schema


def test_keep_text_is_a_default(write_config: WriteConfig) -> None:
    base = "channels: {c: {chat: '@c'}}\n"
    assert load_settings(write_config(base), env={}).defaults.keep_text == timedelta(days=30)
    zero = load_settings(write_config(base + "defaults: {keep_text: 0}\n"), env={})
    assert zero.defaults.keep_text == timedelta(0)
    week = load_settings(write_config(base + "defaults:\n  keep_text: 7d\n"), env={})
    assert week.defaults.keep_text == timedelta(days=7)
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(base + "defaults:\n  keep_text: forever\n"), env={})
    assert "monitor.yaml:3:14: bad duration 'forever'" in str(info.value)


def test_migration_4_adds_the_archive_to_a_version_2_database(database_url: str) -> None:
    v2 = sa.MetaData()
    for table in metadata.sorted_tables:
        if table.name != "archive":
            table.to_metadata(v2)
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        v2.create_all(conn)
        conn.execute(v2.tables["schema_version"].insert().values(version=2, applied_at=NOW))
    engine.dispose()
    store = Store(database_url)
    try:
        assert store.schema_version() == 2
        assert store.migrate() == SCHEMA_VERSION == 6  # 6: feeds.page_errors (full text)
        with store.engine.connect() as conn:
            versions = conn.execute(sa.select(schema_table.c.version)).scalars().all()
        assert sorted(versions) == [2, 3, 4, 5, 6]
        fill(store)
        assert keys(search(store, "أستانا", now=NOW, since=None)) == ["ar-clitic", "ar-bare"]
    finally:
        store.close()


# ------------------------------------------------------------------ the pipeline


FEED_CONFIG = """
defaults:
  keep_text: {keep}
channels:
  desk: {{chat: "@desk"}}
feeds:
  - {{id: wire, url: '{url}', backfill: all}}
rules:
  - name: astana
    any: [Astana, أستانا, Астана]
    notify: [desk]
"""


@pytest.mark.parametrize("keep", ["30d", "0"])
async def test_polls_keep_new_articles_text_unless_keep_text_is_zero(
    feed_server: FeedServer,
    write_config: WriteConfig,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    keep: str,
) -> None:
    import io
    import uuid
    from dataclasses import replace
    from email.utils import format_datetime

    from monitor.deliver.notifier import ConsoleNotifier
    from monitor.worker import run_once
    from tests.fakes.feedserver import ARABIC_ITEMS, ENGLISH_ITEMS, RUSSIAN_ITEMS, rss_feed

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    recent = format_datetime(datetime.now(UTC) - timedelta(hours=3), usegmt=True)
    items = [replace(i, pub_date=recent) for i in ARABIC_ITEMS + RUSSIAN_ITEMS + ENGLISH_ITEMS]
    old = replace(ENGLISH_ITEMS[0], guid="old", link="https://news.example/old")
    url = feed_server.add(f"/{uuid.uuid4().hex}.xml", rss_feed("Wire", [*items, old]))
    config = load_settings(write_config(FEED_CONFIG.format(keep=keep, url=url)))
    await run_once(config, ConsoleNotifier(io.StringIO()))
    await run_once(config, ConsoleNotifier(io.StringIO()))  # nothing new: nothing added
    store = Store(sqlite_url)
    try:
        if keep == "0":
            assert store.archive_count() == 0
            return
        assert store.archive_count() == len(items)  # not the one published in February
        now = datetime.now(UTC)
        titles = [f.article.title for f in search(store, "Астана OR أستانا", now=now).results]
        assert any("أستانا" in t for t in titles) and any("Астане" in t for t in titles)
    finally:
        store.close()


# ------------------------------------------------------------------ the command line

CLI_CONFIG = """
channels:
  desk: {chat: "@desk"}
feeds:
  - {id: wire-ru, url: 'https://news.example/ru.xml', tags: [russian]}
rules:
  - name: astana
    any: [Astana, أستانا, Астана]
    notify: [desk]
  - name: russian-only
    any: [Астана]
    feeds: [russian]
    notify: [desk]
"""


@pytest.fixture
def cli_db(tmp_path: Path, write_config: WriteConfig) -> tuple[Path, dict[str, str]]:
    """A filled SQLite archive dated around the real clock (the CLI reads it)."""
    now = datetime.now(UTC).replace(microsecond=0)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store(url)
    store.migrate()
    fill(store, now)
    store.close()
    return write_config(CLI_CONFIG), {"DATABASE_URL": url}


def test_cli_search_human_and_json(cli_db: CliDb) -> None:
    config, env = cli_db
    human = run_monitor("search", "--config", str(config), "Астана", env=env)
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert "Переговоры в «Астане» продолжатся" in human.stdout
    assert lines[0].endswith(" UTC · wire-ru (Wire RU) · Переговоры в Астане продолжатся")
    assert lines[1] == "    https://news.example/ru-loc"
    assert lines[-1] == "2 articles match, newest first, last 7d"  # Астаны is 8 days old
    out = run_monitor(
        "search", "--config", str(config), "أستانا", "--since", "all", "--json", env=env
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["link"] for r in rows] == [
        "https://news.example/ar-clitic",
        "https://news.example/ar-bare",
    ]
    assert rows[0]["hits"][0]["text"] == "وبأستانا" and rows[0]["feed"] == "wire-ar"
    assert "«وبأستانا»" in rows[0]["snippet"]
    limited = run_monitor("search", "--config", str(config), "ceasefire", "--limit", "1", env=env)
    assert "3 articles match (showing 1; raise --limit)" in limited.stdout


@pytest.mark.parametrize("query", ["a AND (", "foo:bar", ""])
def test_cli_bad_query_exits_1_with_one_line(cli_db: CliDb, query: str) -> None:
    config, env = cli_db
    result = run_monitor("search", "--config", str(config), query, env=env)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_cli_scan_shows_progress_on_stderr(cli_db: CliDb) -> None:
    config, env = cli_db
    result = run_monitor("search", "--config", str(config), "/astana/", "--json", env=env)
    assert result.returncode == 0
    assert "checking all" in result.stderr and "with the matcher" in result.stderr
    assert len(json.loads(result.stdout)) == 3  # in the last 7 days, inside words too


def test_cli_backtest_config_rules_and_a_draft(cli_db: CliDb, write_config: WriteConfig) -> None:
    config, env = cli_db
    out = run_monitor("backtest", "--config", str(config), "--json", env=env)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["rule"], r["count"]) for r in rows] == [("astana", 6), ("russian-only", 2)]
    assert set(rows[0]["articles"][0]) == {"id", "title", "link", "feed", "published"}
    draft = write_config(
        "rules:\n  - name: truce\n    any: [ceasefire]\n    notify: [nowhere-yet]\n", "d.yaml"
    )
    human = run_monitor(
        "backtest", "--config", str(config), "--rules", str(draft), "--since", "30d", env=env
    )
    assert human.returncode == 0, human.stderr
    assert human.stdout.splitlines()[0] == "truce: 4 articles (last 30d)"
    bad = run_monitor("backtest", "--config", str(config), "--since", "soon", env=env)
    assert bad.returncode == 2


# ------------------------------------------------------------------ the bot


@pytest.fixture
async def bot(botapi: FakeBotApi, database_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    from monitor.bot import BotContext, running_bot
    from monitor.pipeline import Ruleset
    from tests.test_bot import ADMIN, STRANGER, Clock, write_settings

    store = Store(database_url)
    store.migrate()
    fill(store)
    settings_ = write_settings(tmp_path)
    ruleset = Ruleset.from_settings(settings_)
    botapi.add_chat(ADMIN, "private", title="Admin")
    botapi.add_chat(STRANGER, "private", title="Stranger")
    ctx = BotContext(store, lambda: ruleset, lambda: settings_, NOW, clock=Clock(NOW))
    async with running_bot(botapi.token, botapi.url, ctx):
        yield Harness(botapi, store, settings_, ruleset, Clock(NOW))
    store.close()


async def test_bot_search_answers_with_bold_hits(bot: Harness) -> None:
    from tests.test_bot import ADMIN, STRANGER, bold_texts

    answer = await bot.ask(ADMIN, "/search Астана OR أستانا")
    text = answer.plain_text
    assert text.startswith("4 articles match Астана OR أستانا (last 7d), newest first:")
    assert text.index("Переговоры в Астане") < text.index("وصول الوفود")
    assert {"Астане", "وبأستانا", "Астана", "أستانا"} <= set(bold_texts(answer))
    refused = await bot.ask(STRANGER, "/search Астана")
    assert "only for this bot's administrators" in refused.plain_text
    bad = await bot.ask(ADMIN, "/search a AND (")
    assert bad.plain_text.startswith("Bad query: invalid query")
    usage = await bot.ask(ADMIN, "/search")
    assert "Usage: /search <query>" in usage.plain_text


async def test_bot_search_fits_telegram_with_n_more(bot: Harness) -> None:
    from tests.test_bot import ADMIN

    answer = await bot.ask(ADMIN, "/search rain OR дожди OR الأمطار")
    text = answer.plain_text
    total = int(text.split()[0])
    shown = sum(line.startswith("• ") for line in text.splitlines())
    assert total > shown > 0 and text.splitlines()[-1] == f"+{total - shown} more"
    assert len(answer.text) <= 4096


async def test_bot_backtest_a_rule(bot: Harness) -> None:
    from tests.test_bot import ADMIN

    answer = await bot.ask(ADMIN, "/backtest astana 30d")
    lines = answer.plain_text.splitlines()
    assert lines[0] == "Rule astana would have alerted 7 articles in the last 30d, newest first:"
    assert "Переговоры в Астане продолжатся" in lines[1]
    unknown = await bot.ask(ADMIN, "/backtest astan")
    assert "No rule named astan" in unknown.plain_text and "Did you mean astana" in (
        unknown.plain_text
    )
    week = await bot.ask(ADMIN, "/backtest ceasefire")
    assert week.plain_text.startswith("Rule ceasefire would have alerted 2 articles")


# ------------------------------------------------------------------ the worker's housekeeping


async def test_the_worker_prunes_the_archive_by_keep_text(
    write_config: WriteConfig, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.worker import Worker

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    config = load_settings(write_config("defaults:\n  keep_text: 5d\n" + CLI_CONFIG))
    worker = Worker(config, clock=lambda: NOW)
    worker.store = Store(sqlite_url)
    try:
        worker.store.migrate()
        fill(worker.store)
        await worker._prune()
        kept = [s for s in corpus() if s.at >= NOW - timedelta(days=5)]
        assert worker.store.archive_count() == len(kept) < len(corpus())
        assert keys(search(worker.store, "Астана", now=NOW, since=None)) == ["ru-loc", "ru-nom"]
    finally:
        worker.store.close()


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_index_token_is_the_lower_case_base32_of_the_digest(key: str) -> None:
    """Stored tokens must not change: an archive written before must stay searchable."""
    import base64

    expected = base64.b32encode(archive_storage._digest(key)).decode("ascii").lower()
    assert archive_storage.index_token(key) == expected
