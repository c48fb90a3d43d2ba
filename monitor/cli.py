"""The ``monitor`` command: run | check | match | feeds [import|export] | channels |
send-test | migrate | search | backtest | trend.

Exit codes: 0 ok, 1 user error (bad config, bad input, a refused send), 2 usage
error. A user's mistake is one clear line (or one line per located problem),
never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO

from monitor import __version__, paused_gc
from monitor.config import Settings, config_path, load_settings
from monitor.exceptions import ConfigError, MonitorError
from monitor.sanitize import clean

log = logging.getLogger("monitor")


def main(argv: Sequence[str] | None = None) -> int:
    with paused_gc():  # the parser's imports
        parser = build_parser()
        args = parser.parse_args(argv)
    setup_logging(verbose=getattr(args, "verbose", False), command=args.command)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except MonitorError as exc:
        print(f"monitor: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `monitor match --jsonl … | head`
        sys.stderr.close()
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Media-monitoring alert bot: news feeds → watch rules → Telegram alerts.",
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--config",
            metavar="PATH",
            help="configuration file (default: $MONITOR_CONFIG, else config/monitor.yaml)",
        )
        p.add_argument("-v", "--verbose", action="store_true", help="log more detail")
        p.set_defaults(handler=handler)
        return p

    run = command("run", "poll feeds on schedule, match rules, deliver alerts", cmd_run)
    run.add_argument("--once", action="store_true", help="poll every feed once, deliver, exit")

    command("check", "validate the configuration", cmd_check)

    match = command("match", "dry-run: which rules match an article", cmd_match)
    match.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="article body")
    match.add_argument("--title", default="", help="article title")
    match.add_argument("--language", default=None, metavar="CODE", help="article language")
    fmt = match.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--jsonl", action="store_true", help="input and output are JSON Lines")

    feeds = command(
        "feeds",
        "feeds and their health; `feeds import FILE.opml` prints YAML feeds: entries, "
        "`feeds export` prints the configured feeds as OPML 2.0",
        cmd_feeds,
    )
    feeds.add_argument(
        "action", nargs="?", choices=("import", "export"), help="OPML in (to YAML) or out"
    )
    feeds.add_argument("file", nargs="?", metavar="FILE.opml", help="the OPML file to import")
    feeds.add_argument("--json", action="store_true", help="print JSON (health listing)")

    channels = command("channels", "channels and their delivery health", cmd_channels)
    channels.add_argument("--json", action="store_true", help="print JSON")

    send = command("send-test", "send a sample alert to a channel", cmd_send_test)
    send.add_argument("--channel", metavar="NAME", help="channel name (default: the first)")

    command("migrate", "apply database migrations", cmd_migrate)

    from monitor.archive_cli import add_arguments

    search = command("search", "archived articles that match a query, newest first", cmd_search)
    add_arguments(search, query=True)
    backtest = command("backtest", "what each rule would have alerted on the archive", cmd_backtest)
    add_arguments(backtest, query=False)

    trend = command("trend", "a rule's matches per hour, and its chart", cmd_trend)
    trend.add_argument("rule", metavar="RULE", help="rule name")
    trend.add_argument("--since", default="7d", help="how far back the table goes (default 7d)")
    trend.add_argument("--png", metavar="FILE", help="write the chart (last 48 hours) as PNG")
    return parser


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(verbose: bool, command: str | None) -> None:
    level = logging.DEBUG if verbose else logging.INFO if command == "run" else logging.WARNING
    level = getattr(logging, os.environ.get("LOG_LEVEL", "").upper(), level)
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    token = os.environ.get("TELEGRAM_BOT_TOKEN")
    if token:
        from monitor.deliver.notifier import redact_token_in_logs

        redact_token_in_logs(token)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "telegram", "aiohttp", "pymorphy3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(config_path(args.config))
    for warning in settings.warnings:
        print(warning, file=sys.stderr)
    return settings


# --------------------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print(settings.summary())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    with paused_gc():  # start-up imports
        from monitor.worker import Worker, run_once

    settings = _settings(args)
    if args.once:
        report = asyncio.run(run_once(settings))
        print(report.summary(), file=sys.stderr)
        return 0
    asyncio.run(Worker(settings).run())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from monitor.storage import Store

    settings = _settings(args)
    store = Store(settings.database_url)
    try:
        version = store.migrate()
    finally:
        store.close()
    print(f"database schema at version {version}")
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from monitor.match import compile_rules

    settings = _settings(args)
    matcher = compile_rules(settings.rules)
    # a one-shot process: the index lives until exit, so the cyclic collector need
    # never walk its ~10^5 containers again (saves ~7% of `--jsonl` at 10,000 rules)
    gc.freeze()
    tags = {feed.id: feed.tags for feed in settings.feeds}
    if args.file == "-":
        sys.stdin.reconfigure(errors="replace")  # type: ignore[union-attr]  # bad UTF-8 is text too
        stream, name = sys.stdin, "<stdin>"
    else:
        stream, name = _open_input(args.file), args.file
    with stream:
        if args.jsonl:
            return _match_jsonl(matcher, tags, stream, sys.stdout, name)
        text = stream.read()
    article = _article("input", args.title, text, args.language, "")
    matches = matcher.match(article)
    if args.json:
        print(_dumps({"matches": [_match_json(m) for m in matches]}))
    else:
        print(clean(_match_human(article, matches, color=sys.stdout.isatty())))
    return 0


def _open_input(path: str) -> TextIO:
    try:
        return open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise MonitorError(f"cannot read {path}: {exc.strerror}") from exc


def _article(
    key: str, title: str, text: str, language: str | None, feed: str, detect: bool = True
) -> Any:
    from monitor.models import Article
    from monitor.text import guess_language

    if detect:
        language = language or guess_language(f"{title}\n{text}")
    return Article(key=key, feed_id=feed, title=title, content=text, language=language)


def _match_json(match: Any) -> dict[str, Any]:
    return {
        "rule": match.rule,
        "hits": [
            {"term": h.term, "text": h.text, "field": h.field, "start": h.start, "end": h.end}
            for h in match.hits
        ],
    }


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# built once: json.loads with hooks builds a new decoder per call
_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)
_ID_JSON = json.JSONEncoder(ensure_ascii=False).encode


def _loads(line: str) -> Any:
    """One JSON value, with only finite numbers (``1e999`` and ``NaN`` are bad input)."""
    if line.startswith("\ufeff"):  # a byte-order mark from a Windows tool
        line = line[1:]
    try:
        return _DECODER.decode(line)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _dumps(record: Any) -> str:
    """One JSON line; strings that cannot be UTF-8 (lone surrogates) are \\u-escaped."""
    text = json.dumps(record, ensure_ascii=False)
    if clean(text) is not text:  # a surrogate or control character: escape them all
        text = json.dumps(record, ensure_ascii=True)
    return text


def _match_jsonl(
    matcher: Any, tags: dict[str, Any], stream: TextIO, out: TextIO, name: str = "<stdin>"
) -> int:
    bad = 0
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            item = _loads(line)
            if not isinstance(item, dict):
                raise ValueError("expected a JSON object")
            if item.get("id") is not None and not isinstance(item["id"], (str, int, float)):
                raise ValueError("'id' must be a string or a number")
            for key in ("title", "text", "language", "feed"):
                if item.get(key) is not None and not isinstance(item[key], str):
                    raise ValueError(f"{key!r} must be a string")
        except ValueError as exc:
            bad += 1
            message = " ".join(str(exc).split())[:300]
            print(f"{name}:{number}: {message}", file=sys.stderr)
            out.write(_dumps({"id": None, "line": number, "error": message}) + "\n")
            continue
        feed = item.get("feed") or ""
        article = _article(
            str(item.get("id")),
            item.get("title") or "",
            item.get("text") or "",
            item.get("language"),
            feed,
            detect=matcher.needs_language,  # only a `languages:` filter reads it
        )
        # the record json.dumps({"id": …, "matches": […]}) would give, hits written
        # straight from the matcher's raw places (no Match/Hit/dict per hit)
        found = matcher.match_json(article, tags.get(feed, ()))
        ident = _ID_JSON(item.get("id"))
        _write(out, f'{{"id": {ident}, "matches": {found}}}\n')
    out.flush()
    return 1 if bad else 0


def _write(out: TextIO, line: str) -> None:
    """One output line; text that cannot be encoded (a lone surrogate from a
    ``\\ud800`` escape in the input) is written escaped rather than crashing the run."""
    try:
        out.write(line)
    except UnicodeEncodeError:
        out.write(line.encode("utf-8", "backslashreplace").decode("utf-8"))


def _match_human(article: Any, matches: Iterable[Any], color: bool) -> str:
    matches = list(matches)
    if not matches:
        return "no rule matches"
    on, off = ("\033[1;31m", "\033[0m") if color else ("«", "»")
    lines = []
    for match in matches:
        lines.append(f"✔ {match.rule}")
        for hit in match.hits:
            text = article.field_text(hit.field)
            before = text[max(0, hit.start - 40) : hit.start].replace("\n", " ")
            after = text[hit.end : hit.end + 40].replace("\n", " ")
            lines.append(
                f"    {hit.term!r} in {hit.field} [{hit.start}:{hit.end}]: "
                f"…{before}{on}{hit.text}{off}{after}…"
            )
    return "\n".join(lines)


def cmd_feeds(args: argparse.Namespace) -> int:
    from monitor.storage import Store

    if args.action == "import":
        return _feeds_import(args)
    if args.file is not None:
        raise MonitorError(f"unexpected argument {args.file!r} (did you mean `feeds import`?)")
    settings = _settings(args)
    if args.action == "export":
        from monitor.sources.opml import export_opml

        sys.stdout.buffer.write(export_opml(settings.feeds))
        sys.stdout.flush()
        return 0
    states = _read_store(settings, Store.feed_states)
    rows = []
    for feed in settings.feeds:
        state = states.get(feed.id)
        rows.append(
            {
                "id": feed.id,
                "url": feed.url,
                "last_poll": _iso(state.last_poll) if state else None,
                "http_status": state.http_status if state else None,
                "entries_seen": state.entries_seen if state else 0,
                "errors": state.errors if state else 0,
                "last_error": state.last_error if state else None,
                "next_poll": _iso(state.next_poll) if state else None,
                "kind": str(feed.kind),
                "page_errors": state.page_errors if state else 0,
            }
        )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    columns = (
        "id",
        "last_poll",
        "http_status",
        "entries_seen",
        "errors",
        "page_errors",
        "next_poll",
        "last_error",
    )
    print(_table(rows, columns))
    return 0


def _feeds_import(args: argparse.Namespace) -> int:
    """YAML ``feeds:`` entries for an OPML file on stdout, notes on stderr; ids avoid the
    configured ones when a configuration is there."""
    from monitor.sources.opml import import_opml

    if args.file is None:
        raise MonitorError("feeds import needs an OPML file: monitor feeds import FILE.opml")
    try:
        with open(args.file, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise MonitorError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    taken: list[str] = []
    path = config_path(args.config)
    if path.exists():  # a broken configuration does not stop an import (ids may then clash)
        with contextlib.suppress(ConfigError):
            taken = [feed.id for feed in load_settings(path).feeds]
    result = import_opml(data, taken)  # OpmlError: one line, exit 1
    for note in result.notes:
        print(f"{args.file}: {note}", file=sys.stderr)
    sys.stdout.write(result.yaml)
    return 0


def cmd_channels(args: argparse.Namespace) -> int:
    from monitor.models import AlertStatus
    from monitor.storage import Store

    settings = _settings(args)
    health = _read_store(settings, Store.channel_health)
    problem = _translate_problem(settings)
    rows = []
    for name, channel in settings.channels.items():
        h = health.get(name, {})
        translate = channel.translate_to
        if translate and problem:
            translate = f"{translate} (failing: {problem})"
        rows.append(
            {
                "name": name,
                "chat": channel.chat,
                "translate_to": translate,
                "images": channel.images,
                "pending": h.get(AlertStatus.PENDING, 0),
                "sent": h.get(AlertStatus.SENT, 0),
                "failed": h.get(AlertStatus.FAILED, 0),
                "broken_since": _iso(h.get("broken_since")),
                "last_error": h.get("last_error"),
            }
        )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    columns: tuple[str, ...] = (
        "name",
        "chat",
        "pending",
        "sent",
        "failed",
        "broken_since",
        "last_error",
    )
    if any(c.translate_to or c.images for c in settings.channels.values()):
        columns = (*columns[:2], "translate_to", "images", *columns[2:])
    print(_table(rows, columns))
    return 0


def _translate_problem(settings: Settings) -> str | None:
    """Why translation cannot work at all (no key in the environment …), or None.

    Failures while running (timeouts, outages) are counted in /metrics
    (``monitor_translate_failures_total``) and reported to the operator.
    """
    if settings.translate is None:
        return None
    from monitor.translate import build_translator

    return build_translator(settings.translate, os.environ).problem


def cmd_send_test(args: argparse.Namespace) -> int:
    from monitor.render.alert import render_sample_alert
    from monitor.worker import make_notifier

    settings = _settings(args)
    if not settings.channels:
        raise MonitorError("no channels are configured; add one under 'channels:'")
    name = args.channel or next(iter(settings.channels))
    channel = settings.channels.get(name)
    if channel is None:
        raise MonitorError(f"unknown channel {name!r}; channels: {', '.join(settings.channels)}")
    alert = render_sample_alert(channel)
    notifier = make_notifier(settings)

    async def send() -> Any:
        await notifier.start()
        try:
            return await notifier.send(0, alert.html, alert.text, channel)
        finally:
            await notifier.close()

    try:
        delivery = asyncio.run(send())
    except Exception as exc:  # e.g. an unreachable API or a rejected token at getMe
        raise MonitorError(f"could not reach Telegram: {exc}") from exc
    target = "the console" if not settings.telegram.token else f"Telegram chat {channel.chat}"
    if delivery.ok:
        print(
            f"sent a sample alert to {target} (channel {name!r}, message id {delivery.message_id})"
        )
        return 0
    print(
        f"Telegram refused the sample alert for channel {name!r}: {delivery.error}", file=sys.stderr
    )
    return 1


def cmd_search(args: argparse.Namespace) -> int:
    from monitor.archive_cli import run_search

    return run_search(args, _settings(args))


def cmd_backtest(args: argparse.Namespace) -> int:
    from monitor.archive_cli import run_backtest

    return run_backtest(args, _settings(args))


# --------------------------------------------------------------------------- output helpers


def cmd_trend(args: argparse.Namespace) -> int:
    """Print a rule's hourly match counts (by publication time); ``--png`` draws the chart."""
    from monitor.config import parse_duration
    from monitor.models import utc_now
    from monitor.storage.surges import COUNT_RETENTION
    from monitor.trends import trend, trend_chart

    settings = _settings(args)
    if args.rule not in {rule.name for rule in settings.rules}:
        names = ", ".join(rule.name for rule in settings.rules) or "none"
        print(f"monitor: error: no rule named {args.rule!r} (rules: {names})", file=sys.stderr)
        return 1
    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        print(f"monitor: error: --since: {exc}", file=sys.stderr)
        return 2
    since = min(max(since, timedelta(hours=1)), COUNT_RETENTION)
    now = utc_now()
    if args.png:
        found, png = _read_store(settings, lambda s: trend_chart(s, args.rule, now, since))
        try:
            with open(args.png, "wb") as out:
                out.write(png)
        except OSError as exc:
            print(f"monitor: error: cannot write {args.png}: {exc.strerror}", file=sys.stderr)
            return 1
    else:
        found = _read_store(settings, lambda s: trend(s, args.rule, now, since))
    print(found.table())
    if args.png:
        print(f"chart written to {args.png}")
    return 0


def _read_store(settings: Settings, query: Any) -> Any:
    """Open the state database (migrating it if new), run one query, close it."""
    from monitor.storage import Store

    store = Store(settings.database_url)
    try:
        store.migrate()
        return query(store)
    finally:
        store.close()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        text = "-" if value is None else str(value)
        return text if len(text) <= 60 else text[:59] + "…"

    widths = {c: max([len(c)] + [len(cell(r[c])) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(cell(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
