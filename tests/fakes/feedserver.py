"""A hostile feed server on 127.0.0.1, run in a background thread, for tests.

It serves well-behaved feeds (with ETag/Last-Modified and 304s) beside every way
a real publisher goes wrong: hanging, trickling, a 200 MB body, a gzip bomb,
500/404/410, 429/503 with Retry-After, redirect loops, compressed bodies, an
HTML page or an empty 200 instead of a feed, Arabic in windows-1256 declared
only in the XML declaration, Russian in koi8-r declared only in the header, an
XXE entity pointing at a local secret file, and a billion-laughs expansion.

Every request is logged (path and headers) so tests can check what the client
sent. Slow endpoints are bounded in time, so a broken client cannot keep the
server (or the test session) alive forever.

    with FeedServer() as server:
        server.add("/mine.xml", rss_feed("Mine", items))
        url = server.url("/mine.xml")

The ``feed_server`` pytest fixture (session scope) yields a started server.
"""

from __future__ import annotations

import asyncio
import gzip
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import brotli
import pytest
from aiohttp import web

__all__ = [
    "ARABIC_ITEMS",
    "RUSSIAN_ITEMS",
    "FeedServer",
    "Item",
    "billion_laughs_feed",
    "feed_server",
    "rss_feed",
    "xxe_feed",
]

#: How long a hanging or trickling endpoint keeps a connection before giving up.
SLOW_LIMIT_SECONDS = 60.0
HUGE_BYTES = 200 * 1024 * 1024
SECRET_MARKER = "TOP-SECRET-4b1d-LOCAL-FILE-CONTENT"


@dataclass(frozen=True)
class Item:
    """One RSS item to serve."""

    title: str
    description: str = ""
    link: str = ""
    guid: str | None = None
    pub_date: str | None = "Tue, 10 Feb 2026 09:30:00 GMT"


ARABIC_ITEMS = (
    Item(
        "لافروف يصل إلى أستانا لبحث وقف إطلاق النار في سوريا",
        "<p>وصل وزير الخارجية الروسي سيرغي <b>لافروف</b> إلى أستانا صباح اليوم.</p>"
        "<p>ومن المنتظر أن يلتقي نظيره الكازاخي لبحث ترتيبات الجولة المقبلة.</p>",
        "https://news.example/ar/1?utm_source=rss",
        "ar-1",
    ),
    Item(
        "الأمم المتحدة تدعو إلى تسهيل وصول المساعدات الإنسانية",
        "<p>دعت الأمم المتحدة جميع الأطراف إلى فتح الممرات أمام قوافل الإغاثة.</p>",
        "https://news.example/ar/2",
        "ar-2",
    ),
)

RUSSIAN_ITEMS = (
    Item(
        "Лавров прибыл в Астану на переговоры о прекращении огня",
        "<p>Министр иностранных дел России Сергей Лавров прибыл в Астану.</p>",
        "https://news.example/ru/1",
        "ru-1",
    ),
    Item(
        "Переговоры в Астане продолжатся в среду",
        "<p>Делегации согласовали повестку следующего раунда встречи.</p>",
        "https://news.example/ru/2",
        "ru-2",
    ),
)

ENGLISH_ITEMS = (
    Item(
        "Ceasefire talks resume in Astana",
        "<p>Delegations met on Tuesday to discuss a <em>cease-fire</em> plan.</p>",
        "https://news.example/en/1",
        "en-1",
    ),
)


def rss_feed(
    title: str,
    items: tuple[Item, ...] | list[Item],
    *,
    encoding: str = "utf-8",
    declare: bool = True,
    language: str | None = None,
    doctype: str = "",
) -> bytes:
    """An RSS 2.0 document in ``encoding``; ``declare=False`` leaves out the XML declaration."""
    parts = []
    if declare:
        parts.append(f'<?xml version="1.0" encoding="{encoding}"?>\n')
    parts.append(doctype)
    parts.append('<rss version="2.0"><channel>\n')
    parts.append(f"<title>{escape(title)}</title><link>https://news.example/</link>\n")
    if language:
        parts.append(f"<language>{language}</language>\n")
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title>")
        if item.link:
            parts.append(f"<link>{escape(item.link)}</link>")
        if item.guid:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.pub_date:
            parts.append(f"<pubDate>{item.pub_date}</pubDate>")
        if item.description:
            parts.append(f"<description>{escape(item.description)}</description>")
        parts.append("</item>\n")
    parts.append("</channel></rss>\n")
    return "".join(parts).encode(encoding)


def xxe_feed(secret_path: Path) -> bytes:
    """A feed whose title and description pull a local file in through an external entity."""
    doctype = (
        f'<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "{secret_path.as_uri()}">\n'
        f'<!ENTITY % remote SYSTEM "{secret_path.as_uri()}">\n]>\n'
    )
    body = rss_feed(
        "XXE &xxe;",
        [Item("Leak: &xxe;", "before &xxe; after", "https://news.example/x", "xxe-1")],
        doctype=doctype,
    )
    # escape() above turned "&xxe;" into "&amp;xxe;": put the live reference back.
    return body.replace(b"&amp;xxe;", b"&xxe;")


def billion_laughs_feed(levels: int = 10) -> bytes:
    """The classic entity expansion: 10 levels of 10 × the previous one."""
    lines = ['<!ENTITY lol0 "lol">']
    for i in range(1, levels):
        refs = f"&lol{i - 1};" * 10
        lines.append(f'<!ENTITY lol{i} "{refs}">')
    doctype = "<!DOCTYPE rss [\n" + "\n".join(lines) + "\n]>\n"
    body = rss_feed(
        "Laughs",
        [Item(f"Laugh &lol{levels - 1};", "", "https://news.example/lol", "lol-1")],
        doctype=doctype,
    )
    return body.replace(f"&amp;lol{levels - 1};".encode(), f"&lol{levels - 1};".encode())


@dataclass(frozen=True)
class Doc:
    """A registered document and how to answer for it."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0  # seconds before answering (overlapping requests are counted)


@dataclass(frozen=True)
class Seen:
    """One logged request."""

    path: str
    headers: Mapping[str, str]
    query: str = ""  # the raw query string
    at: float = 0.0  # time.monotonic() when it arrived


class FeedServer:
    """An aiohttp server on 127.0.0.1 in its own thread and event loop."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="feedserver-")
        self.secret_path = Path(self._tmp.name) / "secret.txt"
        # A feed in its own right, so a parser tricked into reading it would show it.
        self.secret_path.write_text(
            f'<rss version="2.0"><channel><title>{SECRET_MARKER}</title><item>'
            f"<title>{SECRET_MARKER}</title><guid>secret</guid></item></channel></rss>\n",
            encoding="utf-8",
        )
        self.port = 0
        self._bomb: bytes | None = None
        self._add_builtins()

    # -- public -----------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml",
        headers: Mapping[str, str] | None = None,
        status: int = 200,
        etag: str | None = None,
        last_modified: str | None = None,
        delay: float = 0.0,
    ) -> str:
        """Serve ``body`` at ``path`` (with 304s when validators are given); returns its URL.

        A ``path`` with a query (``/s/name?before=10``) answers only that query; the
        bare path answers every other one. ``delay`` holds the answer that long, and
        overlapping delayed requests are counted in ``max_in_flight``.
        """
        merged = {"Content-Type": content_type, **(headers or {})}
        with self._lock:
            self.docs[path] = Doc(body, merged, status, etag, last_modified, delay)
        return self.url(path)

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def start(self) -> FeedServer:
        self._thread = threading.Thread(target=self._run, name="feedserver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("feed server did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)
        self._tmp.cleanup()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- server thread ------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        with self._lock:
            self.seen.append(
                Seen(path, dict(request.headers), request.query_string, time.monotonic())
            )
            doc = self.docs.get(request.path_qs) if request.query_string else None
            doc = doc or self.docs.get(path)
        if doc is not None:
            if doc.delay:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    await asyncio.sleep(min(doc.delay, SLOW_LIMIT_SECONDS))
                finally:
                    self.in_flight -= 1
            return _serve_doc(request, doc)
        for prefix, handler in self._dynamic:
            if path.startswith(prefix):
                return await handler(request, path[len(prefix) :])
        return web.Response(status=404, text="no such feed")

    # -- hostile endpoints ------------------------------------------------------------------
    def _add_builtins(self) -> None:
        good = rss_feed("Good wire", ARABIC_ITEMS + RUSSIAN_ITEMS + ENGLISH_ITEMS, language="")
        self.add("/good.xml", good)
        self.add(
            "/etag.xml",
            good,
            etag='"v1"',
            last_modified="Tue, 10 Feb 2026 09:30:00 GMT",
            headers={"Cache-Control": "max-age=600"},
        )
        self.add("/no-validators.xml", good)
        self.add("/gzip.xml", gzip.compress(good), headers={"Content-Encoding": "gzip"})
        self.add("/deflate.xml", zlib.compress(good), headers={"Content-Encoding": "deflate"})
        self.add("/brotli.xml", brotli.compress(good), headers={"Content-Encoding": "br"})
        self.add(
            "/html",
            b"<!DOCTYPE html><html><head><title>Welcome</title></head>"
            b"<body><h1>Our news site</h1><p>Subscribe to our newsletter.</p></body></html>",
            content_type="text/html; charset=utf-8",
        )
        self.add("/empty", b"", content_type="application/rss+xml")
        self.add(
            "/win1256.xml",
            rss_feed("أخبار", ARABIC_ITEMS, encoding="windows-1256"),
            content_type="application/rss+xml",
        )
        self.add(
            "/koi8r.xml",
            rss_feed("Новости", RUSSIAN_ITEMS, encoding="koi8-r", declare=False),
            content_type="text/xml; charset=koi8-r",
        )
        self.add("/xxe.xml", xxe_feed(self.secret_path))
        self.add("/billion-laughs.xml", billion_laughs_feed())
        # a body that is just a local path: a parser given bytes must not open it
        self.add("/path-body", str(self.secret_path).encode())
        self.add("/status/500", b"oops", status=500, content_type="text/plain")
        self.add("/status/404", b"not here", status=404, content_type="text/plain")
        self.add("/status/410", b"gone", status=410, content_type="text/plain")
        self.add(
            "/retry-after/429",
            b"slow down",
            status=429,
            content_type="text/plain",
            headers={"Retry-After": "120"},
        )
        self.add(
            "/retry-after/503-date",
            b"maintenance",
            status=503,
            content_type="text/plain",
            headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"},
        )
        self._dynamic = [
            ("/hang", self._hang),
            ("/trickle", self._trickle),
            ("/huge-chunked", self._huge_chunked),
            ("/huge", self._huge),
            ("/gzip-bomb", self._gzip_bomb),
            ("/redirect-loop/", self._redirect_loop),
            ("/redirect/", self._redirect_chain),
            ("/redirect-to-file", self._redirect_to_file),
            ("/slow/", self._slow),
        ]
        self.in_flight = 0
        self.max_in_flight = 0

    async def _hang(self, request: web.Request, _: str) -> web.StreamResponse:
        await asyncio.sleep(SLOW_LIMIT_SECONDS)
        return web.Response(status=504, text="hung")

    async def _trickle(self, request: web.Request, _: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        await resp.prepare(request)
        await resp.write(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SLOW_LIMIT_SECONDS
        while loop.time() < deadline:
            await resp.write(b"a")
            await asyncio.sleep(0.1)
        return resp

    async def _stream(self, request: web.Request, with_length: bool) -> web.StreamResponse:
        headers = {"Content-Type": "application/rss+xml"}
        if with_length:
            headers["Content-Length"] = str(HUGE_BYTES)
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        chunk = (b"<!-- " + b"x" * 1013 + b" -->\n") * 1024  # 1 MiB
        head = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Huge</title>\n'
        await resp.write(head + chunk[len(head) :])
        for _ in range(HUGE_BYTES // len(chunk) - 1):
            await resp.write(chunk)
        return resp

    async def _huge(self, request: web.Request, _: str) -> web.StreamResponse:
        return await self._stream(request, with_length=True)

    async def _huge_chunked(self, request: web.Request, _: str) -> web.StreamResponse:
        return await self._stream(request, with_length=False)

    async def _gzip_bomb(self, request: web.Request, _: str) -> web.StreamResponse:
        if self._bomb is None:
            packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip wrapper
            block = b"\0" * (1024 * 1024)
            out = [packer.compress(block) for _ in range(HUGE_BYTES // len(block))]
            out.append(packer.flush())
            self._bomb = b"".join(out)
        return web.Response(
            body=self._bomb,
            headers={"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"},
        )

    async def _redirect_loop(self, request: web.Request, rest: str) -> web.StreamResponse:
        n = int(rest) if rest.isdigit() else 0
        raise web.HTTPFound(f"/redirect-loop/{(n + 1) % 3}")

    async def _slow(self, request: web.Request, rest: str) -> web.StreamResponse:
        """A good feed after a short pause, counting how many such requests overlap."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.2)
        finally:
            self.in_flight -= 1
        return _serve_doc(request, self.docs["/good.xml"])

    def reset_in_flight(self) -> None:
        self.max_in_flight = 0

    async def _redirect_to_file(self, request: web.Request, _: str) -> web.StreamResponse:
        raise web.HTTPFound(self.secret_path.as_uri())

    async def _redirect_chain(self, request: web.Request, rest: str) -> web.StreamResponse:
        n = int(rest) if rest.isdigit() else 0
        if n <= 0:
            raise web.HTTPFound("/good.xml")
        raise web.HTTPMovedPermanently(f"/redirect/{n - 1}")


def _serve_doc(request: web.Request, doc: Doc) -> web.StreamResponse:
    headers = dict(doc.headers)
    if doc.etag:
        headers["ETag"] = doc.etag
    if doc.last_modified:
        headers["Last-Modified"] = doc.last_modified
    if doc.status == 200 and (doc.etag or doc.last_modified):
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if (doc.etag and inm == doc.etag) or (
            not inm and doc.last_modified and ims == doc.last_modified
        ):
            return web.Response(status=304, headers=headers)
    return web.Response(status=doc.status, body=doc.body, headers=headers)


def http_date(when: datetime) -> str:
    """An RFC 7231 date, as servers write Last-Modified and Retry-After."""
    return format_datetime(when, usegmt=True)


@pytest.fixture(scope="session")
def feed_server() -> Iterator[FeedServer]:
    """A started hostile feed server for the whole test session."""
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()
