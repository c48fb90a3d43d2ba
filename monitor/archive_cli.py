"""``monitor search`` and ``monitor backtest``: the archive from the command line.

Results go to stdout (human lines, or JSON with ``--json``); progress of a long
look through the archive goes to stderr, so ``--json | jq`` stays clean.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from monitor.archive import ArticleRef, Found, backtest, search, snippet
from monitor.config import Settings, load_draft_rules, parse_duration
from monitor.storage import Store

DEFAULT_SINCE = timedelta(days=7)
HUMAN_LIMIT = 10  # articles listed per rule by `backtest` without --limit


def since_arg(text: str) -> timedelta | None:
    """``--since``: a duration (7d, 12h), or ``all`` for the whole archive."""
    if text.strip().lower() == "all":
        return None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError("--since must be longer than 0 (or 'all')")
    return value


def limit_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--limit must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser, *, query: bool) -> None:
    if query:
        parser.add_argument("query", metavar="QUERY", help="Lucene query with the rule semantics")
    else:
        parser.add_argument(
            "--rules", metavar="FILE", help="a rules file being drafted (default: the config's)"
        )
    parser.add_argument(
        "--since",
        type=since_arg,
        default=DEFAULT_SINCE,
        metavar="DURATION",
        help="how far back, by publication time (default 7d; 'all' for the whole archive)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--limit",
        type=limit_arg,
        default=None,
        metavar="N",
        help="articles listed (search: default 20; backtest: per rule, default 10, all in JSON)",
    )


class ProgressLine:
    """Progress on stderr: rewritten in place on a terminal, a line every few seconds
    otherwise; quiet for work that ends quickly."""

    def __init__(self, what: str, stream: TextIO | None = None, every: float = 2.0) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.every = every
        self.started = time.monotonic()
        self.last = self.started
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every and done < total:
            return
        if now - self.started < self.every and not self.shown:
            return
        self.last = now
        self.shown = True
        tty = self.stream.isatty()
        line = f"{self.what}: {done}/{total} articles ({now - self.started:.0f}s)"
        self.stream.write(("\r" + line if tty else line + "\n") if done < total or not tty else "")
        if done >= total and tty:
            self.stream.write("\r" + line + "\n")
        self.stream.flush()

    def scanning(self, count: int) -> None:
        print(
            f"{self.what}: checking all {count} archived articles in the window with the "
            "matcher (the index cannot look up re:, wildcard, fuzzy or NOT-only terms)",
            file=self.stream,
        )


def run_search(args: argparse.Namespace, settings: Settings, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    _note_keep_text(settings)
    limit = args.limit or 20
    progress = ProgressLine("search")
    result = _with_store(
        settings,
        lambda store: search(
            store,
            args.query,
            now=now,
            since=args.since,
            limit=limit,
            progress=progress,
            on_scan=progress.scanning,
        ),
    )
    if args.json:
        rows = [_found_json(f) for f in result.results]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        if result.total > len(rows):
            print(f"{result.total - len(rows)} more (raise --limit)", file=sys.stderr)
        return 0
    color = sys.stdout.isatty()
    on, off = ("\033[1;31m", "\033[0m") if color else ("«", "»")  # as `monitor match`
    window = _window(args.since)
    if not result.results:
        print(f"no archived article matches ({window}; {result.examined} checked)")
        return 0
    for found in result.results:
        print(_ref_line(found.ref))
        if found.ref.link:
            print(f"    {found.ref.link}")
        print(f"    {snippet(found.article, found.hits, on, off)}")
    shown = len(result.results)
    more = f" (showing {shown}; raise --limit)" if result.total > shown else ""
    noun = "article matches" if result.total == 1 else "articles match"
    print(f"{result.total} {noun}{more}, newest first, {window}")
    return 0


def run_backtest(args: argparse.Namespace, settings: Settings, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    _note_keep_text(settings)
    rules = load_draft_rules(args.rules) if args.rules else settings.rules
    limit = args.limit if args.limit is not None else (None if args.json else HUMAN_LIMIT)
    tags = {feed.id: feed.tags for feed in settings.feeds}
    progress = ProgressLine("backtest")
    results = _with_store(
        settings,
        lambda store: backtest(
            store,
            rules,
            now=now,
            since=args.since,
            feed_tags=tags,
            limit=limit,
            progress=progress,
            on_scan=progress.scanning,
        ),
    )
    if args.json:
        rows = [
            {
                "rule": r.rule,
                "count": r.count,
                "articles": [
                    {
                        "id": a.id,
                        "title": a.title,
                        "link": a.link,
                        "feed": a.feed,
                        "published": _iso(a.at),
                    }
                    for a in r.articles
                ],
            }
            for r in results
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not results:
        print("no rules to test")
        return 0
    window = _window(args.since)
    for r in results:
        print(f"{r.rule}: {r.count} article{'s' if r.count != 1 else ''} ({window})")
        for a in r.articles:
            print("    " + _ref_line(a))
        if r.count > len(r.articles):
            print(f"    … and {r.count - len(r.articles)} more")
    return 0


def _with_store(settings: Settings, work: Callable[[Store], Any]) -> Any:
    store = Store(settings.database_url)
    try:
        store.migrate()
        return work(store)
    finally:
        store.close()


def _found_json(found: Found) -> dict[str, Any]:
    r = found.ref
    return {
        "id": r.id,
        "title": r.title,
        "link": r.link,
        "feed": r.feed,
        "published": _iso(r.at),
        "snippet": snippet(found.article, found.hits, "«", "»"),
        "hits": [
            {"term": h.term, "text": h.text, "field": h.field, "start": h.start, "end": h.end}
            for h in found.hits
        ],
    }


def _ref_line(r: ArticleRef) -> str:
    title = " ".join(r.title.split()) or "(untitled)"
    source = f"{r.feed} ({r.source})" if r.source and r.source != r.feed else r.feed
    return f"{r.at.astimezone(UTC):%Y-%m-%d %H:%M UTC} · {source} · {title}"


def _note_keep_text(settings: Settings) -> None:
    if settings.defaults.keep_text <= timedelta(0):
        print("note: defaults.keep_text is 0, so no article text is archived", file=sys.stderr)


def _window(since: timedelta | None) -> str:
    if since is None:
        return "whole archive"
    days, seconds = since.days, since.seconds
    if days and not seconds:
        return f"last {days}d"
    hours = since.total_seconds() / 3600
    return f"last {hours:g}h"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None
