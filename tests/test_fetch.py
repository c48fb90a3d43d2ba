"""Fetcher against a real hostile server on 127.0.0.1 (tests/fakes/feedserver.py)."""

from __future__ import annotations

import asyncio
import tracemalloc
from datetime import UTC, datetime

import pytest

from monitor import __version__
from monitor.articles import to_articles
from monitor.exceptions import FetchError, ParseError
from monitor.fetch import (
    Fetcher,
    FetchSettings,
    content_hash,
    parse_max_age,
    parse_retry_after,
)
from monitor.models import FeedSource, FeedState
from monitor.parse import parse_feed
from tests.fakes.feedserver import SECRET_MARKER, FeedServer

NOW = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
#: Short limits so hostile endpoints are cut quickly; no test asserts on durations.
FAST = FetchSettings(timeout=2.0, connect_timeout=2.0, max_bytes=1024 * 1024)
GUARD = 30  # seconds: a test fails instead of hanging if a limit is broken


def feed(server: FeedServer, path: str, **kw: object) -> FeedSource:
    return FeedSource(id=path.strip("/").replace("/", "-") or "root", url=server.url(path), **kw)


async def fetch(server: FeedServer, path: str, settings: FetchSettings = FAST, **kw: object):
    async with Fetcher(settings) as fetcher:
        return await asyncio.wait_for(fetcher.fetch(feed(server, path, **kw)), GUARD)


async def fetch_error(server: FeedServer, path: str, settings: FetchSettings = FAST) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(server, path, settings)
    return info.value


async def test_good_feed_is_fetched_with_validators_and_hash(feed_server: FeedServer) -> None:
    result = await fetch(feed_server, "/etag.xml")
    assert result.status == 200
    assert not result.not_modified
    assert result.etag == '"v1"'
    assert result.last_modified == "Tue, 10 Feb 2026 09:30:00 GMT"
    assert result.content_hash == content_hash(result.content)
    assert result.max_age == 600
    assert result.headers["content-type"] == "application/rss+xml"
    assert "لافروف".encode() in result.content


async def test_default_user_agent_names_the_product(feed_server: FeedServer) -> None:
    await fetch(feed_server, "/good.xml")
    agent = feed_server.requests_to("/good.xml")[-1].headers["User-Agent"]
    assert agent.startswith(f"monitor/{__version__} ")
    assert "aiohttp" not in agent.lower()


async def test_feed_user_agent_and_headers_override(feed_server: FeedServer) -> None:
    path = "/ua-override.xml"
    feed_server.add(path, feed_server.docs["/good.xml"].body)
    await fetch(
        feed_server,
        path,
        user_agent="Mozilla/5.0 (compatible; NewsDesk)",
        headers={"X-Api-Key": "k-123", "Accept-Language": "ar"},
    )
    seen = feed_server.requests_to(path)[-1].headers
    assert seen["User-Agent"] == "Mozilla/5.0 (compatible; NewsDesk)"
    assert seen["X-Api-Key"] == "k-123"
    assert seen["Accept-Language"] == "ar"


async def test_conditional_get_gives_not_modified(feed_server: FeedServer) -> None:
    first = await fetch(feed_server, "/etag.xml")
    state = FeedState(
        feed_id="etag.xml",
        etag=first.etag,
        last_modified=first.last_modified,
        content_hash=first.content_hash,
    )
    async with Fetcher(FAST) as fetcher:
        second = await fetcher.fetch(feed(feed_server, "/etag.xml"), state)
    assert second.not_modified
    assert second.status == 304
    assert second.content == b""
    assert second.etag == '"v1"'
    assert second.content_hash == first.content_hash
    sent = feed_server.requests_to("/etag.xml")[-1].headers
    assert sent["If-None-Match"] == '"v1"'
    assert sent["If-Modified-Since"] == "Tue, 10 Feb 2026 09:30:00 GMT"


async def test_unchanged_body_without_validators_is_not_modified(feed_server: FeedServer) -> None:
    first = await fetch(feed_server, "/no-validators.xml")
    assert first.etag is None and first.last_modified is None
    state = FeedState(feed_id="x", content_hash=first.content_hash)
    async with Fetcher(FAST) as fetcher:
        again = await fetcher.fetch(feed(feed_server, "/no-validators.xml"), state)
        changed = await fetcher.fetch(
            feed(feed_server, "/no-validators.xml"), FeedState(feed_id="x", content_hash="0" * 64)
        )
    assert again.not_modified and again.status == 200 and again.content == b""
    assert not changed.not_modified and changed.content == first.content


@pytest.mark.parametrize("path", ["/gzip.xml", "/deflate.xml", "/brotli.xml"])
async def test_compressed_bodies_are_decoded(feed_server: FeedServer, path: str) -> None:
    result = await fetch(feed_server, path)
    assert result.content == feed_server.docs["/good.xml"].body
    accept = feed_server.requests_to(path)[-1].headers["Accept-Encoding"]
    assert "gzip" in accept and "br" in accept


@pytest.mark.parametrize("path", ["/hang", "/trickle"])
async def test_slow_servers_are_cut_by_the_wall_clock_cap(
    feed_server: FeedServer, path: str
) -> None:
    err = await fetch_error(feed_server, path, FetchSettings(timeout=1.0, max_bytes=1 << 20))
    assert "timed out" in str(err)
    assert err.feed_id == path.strip("/")


@pytest.mark.parametrize("path", ["/huge", "/huge-chunked", "/gzip-bomb"])
async def test_huge_bodies_are_aborted_with_bounded_memory(
    feed_server: FeedServer, path: str
) -> None:
    settings = FetchSettings(timeout=20.0, max_bytes=2 * 1024 * 1024)
    tracemalloc.start()
    try:
        err = await fetch_error(feed_server, path, settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "byte limit" in str(err)
    assert peak < 32 * 1024 * 1024  # the body is 200 MB (decoded); we keep at most ~2 MB


@pytest.mark.parametrize(
    ("path", "status", "gone", "retry_after"),
    [
        ("/status/500", 500, False, None),
        ("/status/404", 404, False, None),
        ("/status/410", 410, True, None),
        ("/retry-after/429", 429, False, 120.0),
    ],
)
async def test_http_errors_are_classified(
    feed_server: FeedServer, path: str, status: int, gone: bool, retry_after: float | None
) -> None:
    err = await fetch_error(feed_server, path)
    assert err.status == status
    assert err.gone is gone
    assert err.retry_after == retry_after
    assert str(status) in str(err)
    assert err.url == feed_server.url(path)


async def test_retry_after_http_date(feed_server: FeedServer) -> None:
    err = await fetch_error(feed_server, "/retry-after/503-date")
    assert err.status == 503
    assert err.retry_after is not None and err.retry_after > 365 * 86400


async def test_redirect_loop_is_cut(feed_server: FeedServer) -> None:
    err = await fetch_error(feed_server, "/redirect-loop/0")
    assert "redirect" in str(err)
    assert len(feed_server.requests_to("/redirect-loop/0")) >= 1


async def test_redirects_within_the_limit_are_followed(feed_server: FeedServer) -> None:
    result = await fetch(feed_server, "/redirect/3")
    assert result.url == feed_server.url("/good.xml")
    err = await fetch_error(feed_server, "/redirect/9", FetchSettings(max_redirects=5))
    assert "more than 5 redirects" in str(err)


async def test_connection_refused_is_a_fetch_error() -> None:
    with FeedServer() as gone:
        url = gone.url("/good.xml")
    async with Fetcher(FAST) as fetcher:
        with pytest.raises(FetchError, match=r"cannot connect|failed"):
            await asyncio.wait_for(fetcher.fetch(FeedSource(id="x", url=url)), GUARD)


@pytest.mark.parametrize(("path", "reason"), [("/html", "HTML page"), ("/empty", "empty")])
async def test_non_feeds_fetch_but_do_not_parse(
    feed_server: FeedServer, path: str, reason: str
) -> None:
    result = await fetch(feed_server, path)
    with pytest.raises(ParseError, match=reason):
        parse_feed(result)


@pytest.mark.parametrize(
    ("path", "title", "language"),
    [
        ("/win1256.xml", "لافروف يصل إلى أستانا لبحث وقف إطلاق النار في سوريا", "ar"),
        ("/koi8r.xml", "Лавров прибыл в Астану на переговоры о прекращении огня", "ru"),
    ],
)
async def test_legacy_charsets_decode(
    feed_server: FeedServer, path: str, title: str, language: str
) -> None:
    result = await fetch(feed_server, path)
    source = feed(feed_server, path)
    articles = to_articles(source, parse_feed(result), NOW)
    assert articles[0].title == title
    assert articles[0].language == language
    assert len(articles) == 2


async def test_xxe_does_not_leak_a_local_file(feed_server: FeedServer) -> None:
    result = await fetch(feed_server, "/xxe.xml")
    source = feed(feed_server, "/xxe.xml")
    parsed = parse_feed(result)
    articles = to_articles(source, parsed, NOW)
    assert articles, "the entry itself is still delivered"
    everything = repr(parsed) + repr(articles)
    assert SECRET_MARKER not in everything
    assert str(feed_server.secret_path) not in everything.replace("file://", "")


async def test_billion_laughs_is_not_expanded(feed_server: FeedServer) -> None:
    result = await fetch(feed_server, "/billion-laughs.xml")
    try:
        parsed = parse_feed(result)
    except ParseError:
        return  # refusing the document is fine; expanding it is not
    total = sum(len(e.title) + len(e.summary_html) for e in parsed.entries)
    assert total < 10_000
    assert "lol" * 100 not in repr(parsed)


async def test_local_path_and_file_url(tmp_path) -> None:
    doc = tmp_path / "local feed.xml"
    doc.write_bytes(
        b'<rss version="2.0"><channel><title>L</title><item><title>x</title>'
        b"<guid>g1</guid></item></channel></rss>"
    )
    async with Fetcher(FAST) as fetcher:
        by_path = await fetcher.fetch(FeedSource(id="p", url=str(doc)))
        by_url = await fetcher.fetch(FeedSource(id="u", url=doc.as_uri()))
        unchanged = await fetcher.fetch(
            FeedSource(id="p", url=str(doc)),
            FeedState(feed_id="p", content_hash=by_path.content_hash),
        )
        with pytest.raises(FetchError, match="file not found"):
            await fetcher.fetch(FeedSource(id="m", url=str(tmp_path / "missing.xml")))
    assert by_path.status is None and by_url.status is None
    assert by_path.content == by_url.content == doc.read_bytes()
    assert unchanged.not_modified


async def test_local_file_over_the_cap_is_refused(tmp_path) -> None:
    doc = tmp_path / "big.xml"
    doc.write_bytes(b"x" * 5000)
    async with Fetcher(FetchSettings(max_bytes=4096)) as fetcher:
        with pytest.raises(FetchError, match="4,096 byte limit"):
            await fetcher.fetch(FeedSource(id="big", url=str(doc)))


async def test_unsupported_scheme_is_refused() -> None:
    async with Fetcher(FAST) as fetcher:
        with pytest.raises(FetchError, match="unsupported URL scheme"):
            await fetcher.fetch(FeedSource(id="f", url="ftp://example.org/feed.xml"))


async def test_good_feeds_flow_beside_hostile_ones(feed_server: FeedServer) -> None:
    """One worker's fetcher: every hostile endpoint at once, the good feeds still arrive."""
    hostile = [
        "/hang", "/trickle", "/huge", "/status/500", "/status/404", "/status/410",
        "/retry-after/429", "/redirect-loop/0", "/html", "/empty", "/xxe.xml",
        "/billion-laughs.xml",
    ]  # fmt: skip
    good = ["/good.xml", "/gzip.xml", "/brotli.xml", "/win1256.xml", "/koi8r.xml"]
    settings = FetchSettings(timeout=2.0, max_bytes=1 << 20, per_host=4, concurrency=8)

    async def poll(fetcher: Fetcher, path: str) -> list[str] | Exception:
        source = feed(feed_server, path)
        try:
            return [
                a.title for a in to_articles(source, parse_feed(await fetcher.fetch(source)), NOW)
            ]
        except (FetchError, ParseError) as exc:
            return exc

    async with Fetcher(settings) as fetcher:
        results = await asyncio.wait_for(
            asyncio.gather(*(poll(fetcher, p) for p in hostile + good)), GUARD * 2
        )
    by_path = dict(zip(hostile + good, results, strict=True))
    for path in good:
        titles = by_path[path]
        assert isinstance(titles, list) and titles, f"{path}: {titles!r}"
    assert "Лавров прибыл в Астану на переговоры о прекращении огня" in by_path["/koi8r.xml"]
    for path in ["/hang", "/trickle", "/huge", "/status/500", "/redirect-loop/0", "/html"]:
        assert isinstance(by_path[path], FetchError | ParseError), path
    assert SECRET_MARKER not in repr(results)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Tue, 10 Feb 2026 12:05:00 GMT", 300.0),
        ("Tue, 10 Feb 2026 11:00:00 GMT", 0.0),  # a date in the past means "now"
        ("soon", None),
        ("", None),
        (None, None),
        ("-5", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=600", 600.0),
        ("public, max-age=300, must-revalidate", 300.0),
        ('s-maxage=60, max-age="90"', 90.0),
        ("no-cache", 0.0),
        ("private", None),
        (None, None),
    ],
)
def test_parse_max_age(value: str | None, expected: float | None) -> None:
    assert parse_max_age(value) == expected


async def test_a_body_that_names_a_local_file_is_not_opened(feed_server: FeedServer) -> None:
    result = await fetch(feed_server, "/path-body")
    assert result.content == str(feed_server.secret_path).encode()
    with pytest.raises(ParseError) as info:
        parse_feed(result)
    assert SECRET_MARKER not in str(info.value)


async def test_a_redirect_to_a_local_file_is_refused(feed_server: FeedServer) -> None:
    err = await fetch_error(feed_server, "/redirect-to-file")
    assert SECRET_MARKER not in str(err)
    assert "refused a redirect to a non-HTTP URL" in str(err)


@pytest.mark.parametrize(
    ("concurrency", "per_host", "limit"),
    [(50, 3, 3), (2, 10, 2)],
)
async def test_concurrency_limits_hold(
    feed_server: FeedServer, concurrency: int, per_host: int, limit: int
) -> None:
    settings = FetchSettings(timeout=10.0, concurrency=concurrency, per_host=per_host)
    feed_server.reset_in_flight()
    async with Fetcher(settings) as fetcher:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(fetcher.fetch(feed(feed_server, f"/slow/{limit}-{i}")) for i in range(12))
            ),
            GUARD,
        )
    assert all(r.status == 200 for r in results)
    assert feed_server.max_in_flight == limit  # reached, never passed
