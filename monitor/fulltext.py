"""Full article text: which new entries need their linked page, and fetching those pages politely.

Many agency feeds carry one sentence and the mention sits in paragraph six, so
a feed with ``full_text: always`` (or ``auto``), and every page source
(``kind: page``), has the linked article fetched and its main text given to
the matcher as the field ``page``.

- Which entries (``wants_page``): only NEW entries that may alert (not already
  known, within ``backfill`` on a first poll), with an http(s) link; ``auto``
  only when the feed's own text (summary and content) is shorter than
  ``AUTO_MIN_CHARS``.
- How: the worker's one ``Fetcher`` (wall-clock timeout, size cap while
  streaming, redirects and their guard, User-Agent, global and per-host
  concurrency); no conditional GET. The guard's rule holds for the link too: a
  public feed's link to a private or loopback address is not fetched. The
  feed's own ``headers`` go only to pages on the feed's host (a cookie for one
  site is not sent to every site it links to).
- Politeness, on top of the fetcher's limits and shared by every feed of a
  worker: at most ``PagePolicy.per_host`` page requests in flight per host and
  one request started per ``PagePolicy.interval`` seconds per host, so one feed
  with 50 new entries does not hammer its site; at most
  ``PagePolicy.max_per_poll`` pages per poll, and the pages of one poll get one
  budget of time (the fetcher's timeout) so a poll stays within its lease.
- Extraction (``monitor.extract``) runs in a thread, never on the event loop,
  holding the pipeline's CPU slot (one CPU-bound task at a time).
- A page that fails (HTTP error, hang, too big, not HTML, no text) is a
  ``PageResult`` with an ``error``, never an exception: the entry is matched on
  what the feed carried and the failure counted per feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from monitor.exceptions import FetchError
from monitor.fetch import Fetcher
from monitor.models import Article, FeedKind, FeedSource, FullText

if TYPE_CHECKING:  # monitor.extract (lxml.html, trafilatura) loads with the first page
    from monitor.extract import PageText

__all__ = [
    "AUTO_MIN_CHARS",
    "PAGE_ACCEPT",
    "PageFetcher",
    "PagePolicy",
    "PageResult",
    "new_paragraphs",
    "wants_page",
    "with_page",
]

log = logging.getLogger(__name__)

#: ``full_text: auto`` fetches the page when the feed's text is shorter than this.
AUTO_MIN_CHARS = 500
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
#: Hosts whose pacing state is kept; idle ones are forgotten beyond this.
_MAX_GATES = 1000


@dataclass(frozen=True)
class PagePolicy:
    """How gently article pages are fetched (documented in the README)."""

    per_host: int = 2  # page requests in flight per host
    interval: float = 1.0  # seconds between the starts of two page requests to one host
    max_per_poll: int = 20  # pages one poll of one feed fetches at most


@dataclass(frozen=True)
class PageResult:
    """One linked page: its text, or why there is none."""

    link: str
    page: PageText | None = None
    error: str | None = None


def wants_page(feed: FeedSource, article: Article) -> bool:
    """Whether this (new, may-alert) entry's linked page is fetched for its text."""
    if not article.link or _http_host(article.link) is None:
        return False
    if feed.kind is FeedKind.PAGE or feed.full_text is FullText.ALWAYS:
        return True
    if feed.full_text is FullText.AUTO:
        return len(article.summary) + len(article.content) < AUTO_MIN_CHARS
    return False


def with_page(feed: FeedSource, article: Article, page: PageText) -> Article:
    """The article with its page's text as the field ``page`` (and the page's image,
    title and language where the entry has none).

    Paragraphs the feed already carried (the lead a snippet repeats) are left
    out, so one mention is not counted twice for ``min_hits``.
    """
    changes: dict[str, object] = {
        "page": new_paragraphs(page.text, f"{article.summary}\n{article.content}")
    }
    if page.image and not article.image:
        changes["image"] = page.image
    if feed.kind is FeedKind.PAGE:  # the entry is only a link and its text
        if page.title and not article.title:
            changes["title"] = page.title
        if page.language and not feed.language:
            changes["language"] = page.language
    return dataclasses.replace(article, **changes)  # type: ignore[arg-type]


def _http_host(link: str) -> str | None:
    """The lower-case host of an http(s) link; None for anything else or a malformed one."""
    try:
        parts = urlsplit(link)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return host.lower()


_PARAGRAPHS = re.compile(r"\n[^\S\n]*\n\s*")


def new_paragraphs(text: str, known: str) -> str:
    """``text``'s paragraphs (split by blank lines) that ``known`` does not already hold
    (compared with spaces folded and case ignored)."""
    seen = _squash(known)
    if not seen:
        return text
    kept = [p for p in _PARAGRAPHS.split(text) if (q := _squash(p)) and q not in seen]
    return "\n\n".join(kept)


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass
class _Gate:
    """One host's pacing: a slot count and when the next request may start."""

    slots: asyncio.Semaphore
    next_start: float = 0.0
    users: int = 0


class PageFetcher:
    """One per worker (shared by its polls, so limits hold across feeds of one site)."""

    def __init__(
        self,
        fetcher: Fetcher,
        policy: PagePolicy | None = None,
        cpu_lock: threading.Lock | None = None,
    ) -> None:
        """``cpu_lock`` is held while a page is extracted (the pipeline's ``CPU_LOCK``:
        one CPU-bound task at a time, so the event loop is not starved of the GIL)."""
        self.fetcher = fetcher
        self.policy = policy or PagePolicy()
        self.cpu_lock = cpu_lock
        self._gates: dict[str, _Gate] = {}

    async def fetch_pages(
        self, feed: FeedSource, links: Iterable[tuple[str, str]], budget: float | None = None
    ) -> dict[str, PageResult]:
        """Fetch and extract ``(key, link)`` pages concurrently (within the politeness
        limits) and return a result per key; pages unfinished when ``budget`` seconds
        (default: the fetcher's timeout) are up fail as timed out."""
        wanted = list(links)[: self.policy.max_per_poll]
        if not wanted:
            return {}
        budget = self.fetcher.settings.timeout if budget is None else budget
        tasks = {key: asyncio.create_task(self.fetch_page(feed, link)) for key, link in wanted}
        try:
            _, pending = await asyncio.wait(tasks.values(), timeout=budget)
        finally:  # the budget is up, or the poll itself is cancelled (shutdown)
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        out: dict[str, PageResult] = {}
        for key, link in wanted:
            task = tasks[key]
            if task in pending or task.cancelled():
                out[key] = PageResult(link, error=f"timed out ({budget:g} s for this poll's pages)")
            else:
                out[key] = task.result()
        return out

    async def fetch_page(self, feed: FeedSource, link: str) -> PageResult:
        """One page's text, or the reason it has none; never raises for the page's fault."""
        host = _http_host(link)
        if host is None:
            return PageResult(link, error="not an http(s) link")
        headers = {"Accept": PAGE_ACCEPT}
        if host == _http_host(feed.url):
            headers = {**headers, **feed.headers}
        source = FeedSource(id=feed.id, url=link, user_agent=feed.user_agent, headers=headers)
        try:
            if await self.fetcher.refuses_link(feed.url, link):
                return PageResult(link, error="refused: a public feed's link to a private address")
            async with self._slot(host):
                result = await self.fetcher.fetch(source, None)
        except FetchError as exc:
            return PageResult(link, error=str(exc))
        from monitor.extract import PageError

        try:
            page = await asyncio.to_thread(
                self._extract, result.content, result.url, result.headers.get("content-type")
            )
        except PageError as exc:
            return PageResult(link, error=str(exc))
        except Exception:  # a bug in extraction must not lose the entry
            log.exception("feed %s: extracting %s failed (a bug; please report)", feed.id, link)
            return PageResult(link, error="extraction failed")
        if not page.text.strip():
            return PageResult(link, page=None, error="no article text on the page")
        return PageResult(link, page=page)

    def _extract(self, body: bytes, url: str, content_type: str | None) -> PageText:
        """``extract_page`` in a worker thread, holding the CPU slot when there is one."""
        from monitor.extract import extract_page

        if self.cpu_lock is None:
            return extract_page(body, url, content_type)
        with self.cpu_lock:
            return extract_page(body, url, content_type)

    @contextlib.asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[None]:
        """Wait for one of the host's slots and for its next start time."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(host)
        if gate is None:
            if len(self._gates) >= _MAX_GATES:
                self._forget_idle(loop.time())
            gate = self._gates[host] = _Gate(asyncio.Semaphore(self.policy.per_host))
        gate.users += 1
        try:
            async with gate.slots:
                now = loop.time()
                start = max(now, gate.next_start)
                gate.next_start = start + self.policy.interval
                if start > now:
                    await asyncio.sleep(start - now)
                yield
        finally:
            gate.users -= 1

    def _forget_idle(self, now: float) -> None:
        for host in [h for h, g in self._gates.items() if not g.users and g.next_start <= now]:
            del self._gates[host]
