"""Real-world and feedparser test corpora through loopback fetch → parse → normalise.

The corpora live beside the repository in ``../shared/corpora`` (override with
``MONITOR_SHARED_DIR``); the tests skip with a reason when they are absent.
Every document is served by the test feed server and fetched over HTTP, as a
user's feed would be.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from monitor.articles import to_articles
from monitor.exceptions import ParseError
from monitor.fetch import Fetcher, FetchSettings
from monitor.models import FeedSource
from monitor.parse import _fast_eligible, parse_bytes, parse_feed
from tests.fakes.feedserver import FeedServer

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SHARED = Path(
    os.environ.get("MONITOR_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared"
)
CORPORA = SHARED / "corpora"
REALFEEDS = CORPORA / "realfeeds"
FEEDPARSER = CORPORA / "feedparser"
NEWSRU = [
    "chardet__chardet/KOI8-R/newsru.com.xml",
    "chardet__chardet/windows-1251-russian/newsru.com.xml",
    "chardet__chardet/IBM866/newsru.com.xml",
    "chardet__chardet/iso-8859-5-russian/newsru.com.xml",
    "chardet__chardet/MacCyrillic/newsru.com.xml",
]
SETTINGS = FetchSettings(timeout=20.0, concurrency=16, per_host=16)


def _need(path: Path) -> None:
    if not path.is_dir():
        pytest.skip(f"corpus {path} is absent (set MONITOR_SHARED_DIR to the shared folder)")


def _expected() -> dict[str, dict]:
    path = REALFEEDS / "expected.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _fold(text: str | None) -> str:
    return " ".join((text or "").split())


async def _fetch_all(server: FeedServer, root: Path, names: list[str], prefix: str):
    """Serve ``names`` under ``prefix`` and fetch them all with one fetcher."""
    for name in names:
        server.add(f"{prefix}/{name}", (root / name).read_bytes(), content_type="application/xml")
    async with Fetcher(SETTINGS) as fetcher:

        async def one(name: str):
            source = FeedSource(id=name, url=server.url(f"{prefix}/{name}"))
            return source, await fetcher.fetch(source)

        return await asyncio.wait_for(asyncio.gather(*(one(n) for n in names)), 300)


@pytest.fixture(scope="module")
def realfeeds(feed_server: FeedServer):
    _need(REALFEEDS)
    names = sorted(_expected())
    fetched = asyncio.run(_fetch_all(feed_server, REALFEEDS, names, "/realfeeds"))
    return {source.id: (source, result) for source, result in fetched}


@pytest.mark.parametrize("name", sorted(_expected()) or ["(absent)"])
def test_realfeed_matches_expected(realfeeds, name: str) -> None:
    expected = _expected()[name]
    source, result = realfeeds[name]
    assert result.content == (REALFEEDS / name).read_bytes()
    parsed = parse_feed(result)
    articles = to_articles(source, parsed, NOW)
    assert len(parsed.entries) == expected["entries"]
    if expected["entries"]:
        assert articles[0].title == _fold(expected["first_entry_title"])
    keys = [a.key for a in articles]
    assert len(keys) == len(set(keys))
    for article in articles:
        assert article.published is not None and article.published.tzinfo is UTC
        assert article.published <= NOW


def test_newsru_encodings_give_identical_titles(realfeeds) -> None:
    titles = []
    for name in NEWSRU:
        source, result = realfeeds[name]
        articles = to_articles(source, parse_feed(result), NOW)
        titles.append([a.title for a in articles])
    assert len(titles[0]) == 30
    assert all(t == titles[0] for t in titles[1:])
    assert titles[0][0].startswith("В Турции")
    assert all(a.language == "ru" for a in to_articles(*_pair(realfeeds, NEWSRU[0])))


def _pair(realfeeds, name: str):
    source, result = realfeeds[name]
    return source, parse_feed(result), NOW


def test_feedparser_corpus_never_crashes(feed_server: FeedServer) -> None:
    """All ~2,100 documents: either articles, or a ParseError where feedparser finds no feed."""
    _need(FEEDPARSER)
    names = sorted(
        str(p.relative_to(FEEDPARSER))
        for p in FEEDPARSER.rglob("*")
        if p.is_file() and p.suffix in (".xml", ".rdf", ".json")
    )
    assert len(names) > 2000
    fetched = asyncio.run(_fetch_all(feed_server, FEEDPARSER, names, "/feedparser"))
    refused: list[str] = []
    articles_total = 0
    for source, result in fetched:
        try:
            parsed = parse_feed(result)
        except ParseError:
            reference = feedparser.parse(io.BytesIO((FEEDPARSER / source.id).read_bytes()))
            assert not reference.get("version") and not reference.get("entries"), source.id
            refused.append(source.id)
            continue
        articles = to_articles(source, parsed, NOW)
        articles_total += len(articles)
        for article in articles:
            assert article.key
            assert isinstance(article.title, str)
            assert article.published is not None and article.published <= NOW
    print(f"{len(names)} documents, {articles_total} articles, {len(refused)} refused")
    assert articles_total > 1000
    assert len(refused) < len(names) // 20, refused[:20]


def _outcome(content: bytes, headers: dict[str, str], fast: bool):
    try:
        return parse_bytes(content, headers, url="https://corpus.example/feed.xml", fast=fast)
    except ParseError as exc:
        return ("ParseError", str(exc))


def test_fast_path_equals_feedparser_on_every_corpus_document() -> None:
    """The lxml fast path is only an optimisation: same ParsedFeed as feedparser, always."""
    _need(REALFEEDS)
    _need(FEEDPARSER)
    paths = sorted(
        p
        for root in (REALFEEDS, FEEDPARSER)
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".xml", ".rdf", ".rss", ".atom")
    )
    fast_used = 0
    for path in paths:
        content = path.read_bytes()
        for content_type in ("application/xml", "application/rss+xml; charset=utf-8"):
            headers = {"content-type": content_type}
            passed = {**headers, "content-location": "https://corpus.example/feed.xml"}
            fast_used += _fast_eligible(content, passed)
            fast = _outcome(content, headers, True)
            assert fast == _outcome(content, headers, False), (path, content_type)
    assert fast_used > 40
