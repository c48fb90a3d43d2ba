"""Search and backtest over the archive: the index narrows, the matcher decides.

A search query is compiled as a rule (``query:`` in Lucene syntax), so it has
exactly the rule semantics: Arabic clitics, word forms, compounds, phrases,
NOT. ``monitor.match.index_query`` turns the rule into the keys an article must
hold; the store returns the archived articles whose index holds them (newest
first, within the time window), and each one is confirmed by ``Matcher.match``.
A rule the index cannot serve (only ``re:``, wildcard, fuzzy or NOT terms) is
checked against every article in the window instead: a scan, which reports
progress.

Pure apart from the ``Store`` calls; ``now`` is always passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.exceptions import ConfigError, MonitorError
from monitor.match import (
    KeyExpr,
    Matcher,
    article_index_keys,
    check_rule,
    compile_rules,
    index_query,
)
from monitor.models import Article, Hit, Rule
from monitor.storage import ArchivedArticle, ArchiveEntry, Store

#: How much text a search query may have (a longer one is a mistake, and deep
#: nesting would exhaust the query compiler).
MAX_QUERY = 2000
#: Archived articles fetched and matched per round trip.
BATCH = 200
_QUERY_RULE = "search"
RULES_PER_LOOKUP = 50  # rules whose index queries one candidate lookup ORs together

#: ``progress(done, total)`` after each batch of a long look through the archive.
Progress = Callable[[int, int], None]


class QueryError(MonitorError, ValueError):
    """A search query that cannot be compiled; the message is one line for the user."""


@dataclass(frozen=True)
class ArticleRef:
    """What a search or backtest lists about one archived article."""

    id: int
    title: str
    link: str | None
    feed: str
    source: str
    published: datetime | None
    at: datetime  # publication time, else first seen: the order and the window


@dataclass(frozen=True)
class Found:
    """One search result: the article and the query's hits in it."""

    ref: ArticleRef
    article: Article
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class SearchResult:
    """Results newest first (at most the limit), how many matched, how they were found."""

    results: tuple[Found, ...]
    total: int
    examined: int  # articles checked by the matcher
    scanned: bool  # True when the index could not serve the query


@dataclass(frozen=True)
class RuleBacktest:
    """What one rule would have alerted in the window, newest first."""

    rule: str
    count: int
    articles: tuple[ArticleRef, ...]


def archive_entries(
    articles: Sequence[Article], now: datetime, keep: timedelta
) -> list[ArchiveEntry]:
    """The articles worth keeping for ``keep`` (none when it is 0), with their index keys.

    CPU work (tokens, lemmas): call it outside the storage transaction.
    """
    return [
        ArchiveEntry(a, article_index_keys(a)) for a in articles if kept(a.published, now, keep)
    ]


def kept(published: datetime | None, now: datetime, keep: timedelta) -> bool:
    """Whether an entry published then goes into the archive (kept for ``keep``; 0: none)."""
    return keep > timedelta(0) and (published is None or published >= now - keep)


def compile_query(query: str) -> Matcher:
    """A search query as a one-rule matcher; ``QueryError`` says what is wrong."""
    query = query.strip()
    if not query:
        raise QueryError("empty query")
    if len(query) > MAX_QUERY:
        raise QueryError(f"query too long ({len(query)} characters; at most {MAX_QUERY})")
    rule = Rule(name=_QUERY_RULE, query=query)
    try:
        problems = check_rule(rule)
        if problems:
            raise QueryError(" ".join(problems[0].message.split()))
        return compile_rules([rule])
    except RecursionError:
        raise QueryError("query nested too deeply") from None
    except ConfigError as exc:  # pragma: no cover - check_rule reports the same first
        raise QueryError(" ".join(str(exc).split())) from None


def ref(archived: ArchivedArticle) -> ArticleRef:
    a = archived.article
    return ArticleRef(
        id=archived.id,
        title=a.title,
        link=a.link,
        feed=a.feed_id,
        source=a.source,
        published=a.published,
        at=archived.at,
    )


def _batches(
    store: Store, ids: Sequence[int], progress: Progress | None
) -> Iterator[ArchivedArticle]:
    """The archived articles of ``ids`` in order, fetched in batches, with progress."""
    for start in range(0, len(ids), BATCH):
        yield from store.archived_articles(ids[start : start + BATCH])
        if progress is not None:
            progress(min(start + BATCH, len(ids)), len(ids))


def iter_archive(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> Iterator[ArchivedArticle]:
    """Every archived article with ``since <= at < until``, newest first, in batches."""
    yield from _batches(store, store.search_candidates(None, since, until), progress)


def search(
    store: Store,
    query: str,
    *,
    now: datetime,
    since: timedelta | None = timedelta(days=7),
    limit: int = 20,
    progress: Progress | None = None,
    on_scan: Callable[[int], None] | None = None,
) -> SearchResult:
    """Archived articles in the window that the query matches, newest first.

    ``since`` None searches the whole archive. ``on_scan(n)`` is told before a
    scan of ``n`` articles starts (the query has nothing the index can look up).
    """
    matcher = compile_query(query)
    expr = index_query(matcher, _QUERY_RULE)
    ids = store.search_candidates(expr, now - since if since is not None else None)
    if expr is None and on_scan is not None:
        on_scan(len(ids))
    found: list[Found] = []
    total = 0
    for archived in _batches(store, ids, progress):
        matches = matcher.match(archived.article)
        if not matches:
            continue
        total += 1
        if len(found) < limit:
            found.append(Found(ref(archived), archived.article, matches[0].hits))
    return SearchResult(tuple(found), total, len(ids), expr is None)


def backtest(
    store: Store,
    rules: Sequence[Rule],
    *,
    now: datetime,
    since: timedelta | None = timedelta(days=7),
    feed_tags: Mapping[str, Collection[str]] | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    on_scan: Callable[[int], None] | None = None,
) -> list[RuleBacktest]:
    """What each rule would have alerted in the window, in rule order.

    The candidates are the union of every rule's index candidates (or the whole
    window when a rule needs a scan); one ``Matcher`` of all rules then decides
    for each candidate at once, so the cost does not grow with the rule count.
    ``limit`` caps the articles listed per rule (``count`` is always the total).
    """
    if not rules:
        return []
    matcher = compile_rules(rules)  # ConfigError names a bad rule
    start = now - since if since is not None else None
    exprs = [index_query(matcher, r.name) for r in rules]
    if any(e is None for e in exprs):
        ids = store.search_candidates(None, start)
        if on_scan is not None:
            on_scan(len(ids))
    else:
        union: set[int] = set()
        present = [e for e in exprs if e is not None]
        for group in range(0, len(present), RULES_PER_LOOKUP):  # a few big ORs, not one per rule
            either: KeyExpr = ("or", tuple(present[group : group + RULES_PER_LOOKUP]))
            union.update(store.search_candidates(either, start))
        ids = sorted(union)
    tags = feed_tags or {}
    hits: dict[str, list[ArticleRef]] = {r.name: [] for r in rules}
    for archived in _batches(store, ids, progress):
        a = archived.article
        for match in matcher.match(a, tuple(tags.get(a.feed_id, ()))):
            hits[match.rule].append(ref(archived))
    out = []
    for rule in rules:
        found = sorted(hits[rule.name], key=lambda r: (r.at, r.id), reverse=True)
        shown = found if limit is None else found[:limit]
        out.append(RuleBacktest(rule.name, len(found), tuple(shown)))
    return out


def snippet(article: Article, hits: Sequence[Hit], on: str, off: str, width: int = 60) -> str:
    """One line around the first hit, every hit in that window between ``on`` and ``off``.

    The markers are those of ``monitor match``'s human output (bold red on a
    terminal, «…» otherwise); callers escape the pieces if they need to.
    """
    return "".join(
        on + piece + off if marked else piece
        for piece, marked in snippet_pieces(article, hits, width)
    )


def snippet_pieces(
    article: Article, hits: Sequence[Hit], width: int = 60
) -> list[tuple[str, bool]]:
    """The pieces of ``snippet`` as (text, is a hit), for renderers that escape."""
    if not hits:
        text = " ".join((article.title or article.summary or article.content).split())
        return [(text[: 2 * width] + ("…" if len(text) > 2 * width else ""), False)]
    first = hits[0]
    text = getattr(article, first.field, "") or ""
    lo = max(0, first.start - width)
    hi = min(len(text), first.end + width)
    spans = sorted(
        {
            (max(h.start, lo), min(h.end, hi))
            for h in hits
            if h.field == first.field and h.start < hi and h.end > lo
        }
    )
    pieces: list[tuple[str, bool]] = [("…" if lo > 0 else "", False)]
    pos = lo
    for a, b in spans:
        if a < pos:  # overlapping hits: extend the last one
            a = pos
        if b <= a:
            continue
        pieces.append((_flat(text[pos:a]), False))
        pieces.append((_flat(text[a:b]), True))
        pos = b
    pieces.append((_flat(text[pos:hi]) + ("…" if hi < len(text) else ""), False))
    return [(t, m) for t, m in pieces if t]


def _flat(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")
