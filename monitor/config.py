"""Configuration: YAML files + environment → one validated, immutable ``Settings``.

Validation walks PyYAML's node tree rather than plain dicts, so every problem
(unknown key, wrong type, bad duration, duplicate id, unknown channel, bad rule
term, missing include, YAML syntax) is reported at once as
``FILE:LINE:COL: message`` — the user fixes them all in one edit.

Relative feed paths and include globs are resolved against the folder of the
file that names them (feed paths fall back to the current directory).
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from monitor.exceptions import ConfigError, ConfigErrors
from monitor.models import FIELDS, Channel, FeedKind, FeedSource, FullText, Rule

DEFAULT_CONFIG = "config/monitor.yaml"
DEFAULT_DATABASE_URL = "sqlite:///monitor.db"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
LABEL_LANGUAGES = ("en", "ar", "ru")

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Defaults:
    """Values a feed or channel inherits unless it says otherwise."""

    interval: timedelta = timedelta(minutes=5)
    backfill: timedelta | None = timedelta(0)
    language: str | None = None
    user_agent: str | None = None
    timeout: timedelta = timedelta(seconds=30)
    max_bytes: int = 10 * 1024 * 1024
    timezone: str = "UTC"
    summary_length: int = 600
    full_text: FullText = FullText.NEVER


@dataclass(frozen=True)
class TelegramSettings:
    """Bot-wide settings; the token itself only ever comes from the environment."""

    token: str | None = None
    api_url: str = DEFAULT_TELEGRAM_API_URL
    admins: tuple[int, ...] = ()
    admin_chat: str | None = None
    feed_down_after: int = 3  # failed polls in a row before the operator hears of it
    commands: bool = True  # answer /status, /test … (needs a token)


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs, validated; ``files`` lists what to watch for reloads."""

    path: Path
    defaults: Defaults
    channels: Mapping[str, Channel]
    feeds: tuple[FeedSource, ...]
    rules: tuple[Rule, ...]
    telegram: TelegramSettings
    database_url: str
    files: tuple[Path, ...] = ()
    version: str = ""  # short hash of every file's bytes: tells reloads apart
    warnings: tuple[str, ...] = ()  # located remarks that did not stop loading

    def summary(self) -> str:
        """The one line `monitor check` prints."""
        return (
            f"{self.path}: OK — {len(self.feeds)} feeds, {len(self.rules)} rules, "
            f"{len(self.channels)} channels (version {self.version})"
        )


def config_path(cli_value: str | None = None) -> Path:
    """``--config`` if given, else ``$MONITOR_CONFIG``, else ``config/monitor.yaml``."""
    return Path(cli_value or os.environ.get("MONITOR_CONFIG") or DEFAULT_CONFIG)


def database_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """``DATABASE_URL`` as SQLAlchemy wants it (Heroku's ``postgres://`` accepted)."""
    env = os.environ if env is None else env
    url = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def parse_duration(text: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``1d``, ``1w`` or combinations such as ``1h30m``."""
    compact = str(text).strip().lower().replace(" ", "")
    if compact == "0":
        return timedelta(0)
    pos, seconds = 0, 0
    for m in _DURATION.finditer(compact):
        if m.start() != pos:
            break
        seconds += int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(compact) or not compact:
        raise ValueError(f"bad duration {text!r}: write a number and a unit, e.g. 30s, 5m, 2h, 1d")
    return timedelta(seconds=seconds)


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and resolve a configuration; raise ``ConfigErrors`` listing every problem."""
    env = os.environ if env is None else env
    return _Loader(Path(path), env).load()


# --------------------------------------------------------------------------- loader

_Node = yaml.Node
_TOP_KEYS = ("defaults", "telegram", "channels", "feeds", "rules", "include")
_INCLUDED_KEYS = ("channels", "feeds", "rules", "include")
_DEFAULT_KEYS = (
    "interval",
    "backfill",
    "language",
    "user_agent",
    "timeout",
    "max_bytes",
    "timezone",
    "summary_length",
    "full_text",
)
_TELEGRAM_KEYS = ("admins", "admin_chat", "feed_down_after", "commands")
_CHANNEL_KEYS = (
    "chat",
    "language",
    "timezone",
    "link_preview",
    "thread_id",
    "summary_length",
    "mode",
    "every",
    "max_per_hour",
    "quiet_hours",
    "quiet",
)
_FEED_KEYS = (
    "id",
    "url",
    "interval",
    "backfill",
    "language",
    "name",
    "tags",
    "user_agent",
    "headers",
    "kind",
    "telegram",
    "full_text",
    "links",
)
_KINDS = tuple(k.value for k in FeedKind)
_FULL_TEXT = tuple(f.value for f in FullText)
_RULE_KEYS = (
    "name",
    "any",
    "all",
    "none",
    "query",
    "fuzzy",
    "feeds",
    "languages",
    "fields",
    "min_hits",
    "priority",
    "notify",
)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class _Invalid(Exception):
    """Internal: a value was rejected and the problem already recorded."""


@dataclass
class _Loader:
    path: Path
    env: Mapping[str, str]
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[tuple[str, int, int, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    digest: Any = field(default_factory=hashlib.sha256)
    # where each rule, feed and channel was defined, for cross-checks
    feed_nodes: dict[str, _Node] = field(default_factory=dict)
    rule_nodes: dict[str, _Node] = field(default_factory=dict)

    # ---- reporting
    def warn(self, node: _Node | None, message: str) -> None:
        """A located remark that does not stop the configuration from loading."""
        mark = node.start_mark if node is not None else None
        where = (mark.name, mark.line + 1, mark.column + 1) if mark else (str(self.path), 1, 1)
        self.warnings.append((*where, message))

    def fail(self, node: _Node | None, message: str, file: Path | None = None) -> None:
        if node is None:
            self.errors.append(ConfigError(message, str(file or self.path), 1, 1))
            return
        mark = node.start_mark
        self.errors.append(ConfigError(message, mark.name, mark.line + 1, mark.column + 1))

    # ---- entry point
    def load(self) -> Settings:
        root = self.read_file(self.path, None)
        if root is None and self.errors:
            raise ConfigErrors(self.errors)
        docs: list[tuple[Path, _Node]] = []
        if root is not None:
            docs.append((self.path, root))
            self.collect_includes(self.path, root, docs, _TOP_KEYS, seen={self.path.resolve()})

        top = self.mapping_items(root, _TOP_KEYS) if root is not None else {}
        defaults = self.parse_defaults(top.get("defaults"))
        telegram = self.parse_telegram(top.get("telegram"))

        channels: dict[str, Channel] = {}
        feeds: list[FeedSource] = []
        rules: list[Rule] = []
        rule_locations: list[dict[tuple[str, int | None], _Node]] = []
        for file, doc in docs:
            items = top if file == self.path else self.mapping_items(doc, _INCLUDED_KEYS)
            self.parse_channels(items.get("channels"), defaults, channels)
            self.parse_feeds(file, items.get("feeds"), defaults, feeds)
            self.parse_rules(items.get("rules"), rules, rule_locations)

        self.cross_check(rules, rule_locations, channels, feeds)
        if self.errors:
            raise ConfigErrors(self.errors)
        return Settings(
            path=self.path,
            defaults=defaults,
            channels=channels,
            feeds=tuple(feeds),
            rules=tuple(rules),
            telegram=replace(
                telegram,
                token=self.env.get("TELEGRAM_BOT_TOKEN") or None,
                api_url=_api_base(self.env.get("TELEGRAM_API_URL") or DEFAULT_TELEGRAM_API_URL),
            ),
            database_url=database_url_from_env(self.env),
            files=tuple(self.files),
            version=self.digest.hexdigest()[:12],
            warnings=tuple(
                f"{p}:{line}:{col}: warning: {m}" for p, line, col, m in sorted(self.warnings)
            ),
        )

    # ---- files
    def read_file(self, file: Path, include_node: _Node | None) -> _Node | None:
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            self.fail(include_node, f"configuration file not found: {file}", file)
            return None
        except OSError as exc:
            self.fail(include_node, f"cannot read {file}: {exc.strerror}", file)
            return None
        self.files.append(file)
        self.digest.update(str(file).encode() + b"\0" + data)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.fail(None, f"not UTF-8 text (byte {exc.start})", file)
            return None
        try:
            node = yaml.compose(text, Loader=_NamedLoader.for_file(str(file)))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = " ".join(p for p in (exc.context, exc.problem) if p)
            self.errors.append(ConfigError(f"YAML syntax error: {problem}", str(file), line, col))
            return None
        except yaml.YAMLError as exc:
            self.fail(None, f"YAML error: {exc}", file)
            return None
        if node is None:
            return yaml.MappingNode("tag:yaml.org,2002:map", [])
        return node

    def collect_includes(
        self,
        file: Path,
        node: _Node,
        docs: list[tuple[Path, _Node]],
        allowed: tuple[str, ...],
        seen: set[Path],
    ) -> None:
        items = self.mapping_items(node, allowed, report=False)
        include = items.get("include")
        if include is None:
            return
        for pattern_node in self.sequence(include, allow_scalar=True):
            pattern = self.text(pattern_node)
            if pattern is None:
                continue
            full = pattern if os.path.isabs(pattern) else str(file.parent / pattern)
            matches = sorted(glob.glob(full, recursive=True))
            if not matches:
                self.fail(pattern_node, f"include {pattern!r} matches no file")
                continue
            for match in matches:
                included = Path(match)
                if included.resolve() in seen:
                    continue
                seen.add(included.resolve())
                child = self.read_file(included, pattern_node)
                if child is not None:
                    docs.append((included, child))
                    self.collect_includes(included, child, docs, _INCLUDED_KEYS, seen)

    # ---- node helpers
    def mapping_items(
        self, node: _Node | None, allowed: tuple[str, ...], report: bool = True
    ) -> dict[str, _Node]:
        """Key → value node; reports unknown and duplicate keys once (when ``report``)."""
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            if report:
                self.fail(node, f"expected a mapping of keys ({', '.join(allowed)})")
            return {}
        out: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in allowed:
                if report:
                    hint = difflib.get_close_matches(str(key), allowed, n=1)
                    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                    self.fail(
                        key_node, f"unknown key {key!r}{extra}; allowed: {', '.join(allowed)}"
                    )
                continue
            if key in out:
                if report:
                    self.fail(key_node, f"duplicate key {key!r}")
                continue
            out[key] = value_node
        return out

    def sequence(self, node: _Node, allow_scalar: bool = False) -> list[_Node]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if allow_scalar and isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
            return [node]
        self.fail(node, "expected a list")
        return []

    def text(self, node: _Node, what: str = "text") -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
            value = str(node.value)
            if value.strip():
                return value
            self.fail(node, f"expected {what}, got an empty value")
            return None
        self.fail(node, f"expected {what}")
        return None

    def text_list(self, node: _Node | None, what: str = "text") -> list[tuple[str, _Node]]:
        if node is None:
            return []
        out = []
        for item in self.sequence(node, allow_scalar=True):
            value = self.text(item, what)
            if value is not None:
                out.append((value, item))
        return out

    def integer(self, node: _Node, low: int | None = None, high: int | None = None) -> int | None:
        if not (isinstance(node, yaml.ScalarNode) and node.tag == _INT):
            self.fail(node, "expected a whole number")
            return None
        value = int(str(node.value).replace("_", ""), 0)
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.fail(node, f"expected a number {bounds}, got {value}")
            return None
        return value

    def boolean(self, node: _Node) -> bool | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
            return str(node.value).lower() in ("true", "yes", "on", "y")
        self.fail(node, "expected true or false")
        return None

    def duration(self, node: _Node, allow_zero: bool = True) -> timedelta | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            self.fail(node, "expected a duration such as 30s, 5m, 2h or 1d")
            return None
        try:
            value = parse_duration(node.value)
        except ValueError as exc:
            self.fail(node, str(exc))
            return None
        if not allow_zero and value <= timedelta(0):
            self.fail(node, "duration must be longer than zero")
            return None
        return value

    def backfill(self, node: _Node) -> timedelta | type[_Invalid] | None:
        if isinstance(node, yaml.ScalarNode) and str(node.value).strip().lower() == "all":
            return None
        value = self.duration(node)
        return _Invalid if value is None else value

    def timezone(self, node: _Node) -> str | None:
        name = self.text(node, "a time zone name such as UTC or Asia/Damascus")
        if name is None:
            return None
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(node, f"unknown time zone {name!r} (use an IANA name such as Europe/Moscow)")
            return None
        return name

    def label_language(self, node: _Node) -> str | None:
        value = self.text(node, "a language code")
        if value is not None and value not in LABEL_LANGUAGES:
            self.fail(node, f"alert labels exist in {', '.join(LABEL_LANGUAGES)}, not {value!r}")
            return None
        return value

    def first_definition(self, seen: dict[str, _Node], key: str, node: _Node, what: str) -> bool:
        """Record ``key``; a second definition is an error pointing at the first."""
        if key in seen:
            first = seen[key].start_mark
            self.fail(
                node,
                f"duplicate {what} {key!r} (first defined at "
                f"{first.name}:{first.line + 1}:{first.column + 1})",
            )
            return False
        seen[key] = node
        return True

    def choice(self, node: _Node, options: tuple[str, ...]) -> str | None:
        value = self.text(node, " or ".join(options))
        if value is not None and value not in options:
            self.fail(node, f"expected {' or '.join(options)}, not {value!r}")
            return None
        return value

    def quiet_hours(self, node: _Node) -> str | None:
        from monitor.render.digest import parse_quiet_hours

        value = self.text(node, 'a time range such as "23:00-07:00"')
        if value is None:
            return None
        try:
            parse_quiet_hours(value)
        except ValueError as exc:
            self.fail(node, str(exc))
            return None
        return value

    def identifier(self, node: _Node, what: str) -> str | None:
        value = self.text(node, f"a {what}")
        if value is not None and not _ID.match(value):
            self.fail(node, f"{what} {value!r} may hold only letters, digits, '_', '-' and '.'")
            return None
        return value

    def fields_of(
        self, items: dict[str, _Node], parsers: dict[str, Callable[[_Node], Any]]
    ) -> Iterator[tuple[str, Any]]:
        """Parse each present key; skip values whose parser recorded a problem."""
        for key, parse in parsers.items():
            if key in items:
                value = parse(items[key])
                if value is not None and value is not _Invalid:
                    yield key, value
                elif value is None and key == "backfill":
                    yield key, None

    # ---- sections
    def parse_defaults(self, node: _Node | None) -> Defaults:
        items = self.mapping_items(node, _DEFAULT_KEYS)
        values = dict(
            self.fields_of(
                items,
                {
                    "interval": lambda n: self.duration(n, allow_zero=False),
                    "backfill": self.backfill,
                    "language": lambda n: self.text(n, "a language code"),
                    "user_agent": self.text,
                    "timeout": lambda n: self.duration(n, allow_zero=False),
                    "max_bytes": lambda n: self.integer(n, low=1024),
                    "timezone": self.timezone,
                    "summary_length": lambda n: self.integer(n, low=100, high=3500),
                    "full_text": lambda n: self.choice(n, _FULL_TEXT),
                },
            )
        )
        return Defaults(**values)

    def parse_telegram(self, node: _Node | None) -> TelegramSettings:
        items = self.mapping_items(node, _TELEGRAM_KEYS)
        admins: list[int] = []
        if "admins" in items:
            for item in self.sequence(items["admins"], allow_scalar=True):
                value = self.integer(item)
                if value is not None:
                    admins.append(value)
        admin_chat = self.text(items["admin_chat"], "a chat") if "admin_chat" in items else None
        down_after = (
            self.integer(items["feed_down_after"], low=1) if "feed_down_after" in items else None
        )
        commands = self.boolean(items["commands"]) if "commands" in items else None
        return TelegramSettings(
            admins=tuple(admins),
            admin_chat=admin_chat,
            feed_down_after=down_after or 3,
            commands=commands is not False,
        )

    def parse_channels(
        self, node: _Node | None, defaults: Defaults, channels: dict[str, Channel]
    ) -> None:
        if node is None:
            return
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, "channels: expected a mapping of channel name → settings")
            return
        for key_node, value_node in node.value:
            name = self.identifier(key_node, "channel name")
            if name is None:
                continue
            if name in channels:
                self.fail(key_node, f"duplicate channel {name!r}")
                continue
            items = self.mapping_items(value_node, _CHANNEL_KEYS)
            if "chat" not in items:
                self.fail(value_node, f"channel {name!r} needs 'chat' (@username or numeric id)")
                continue
            values = dict(
                self.fields_of(
                    items,
                    {
                        "chat": lambda n: self.text(n, "@username or numeric chat id"),
                        "language": self.label_language,
                        "timezone": self.timezone,
                        "link_preview": self.boolean,
                        "thread_id": lambda n: self.integer(n, low=1),
                        "summary_length": lambda n: self.integer(n, low=100, high=3500),
                        "mode": lambda n: self.choice(n, ("instant", "digest")),
                        "every": lambda n: self.duration(n, allow_zero=False),
                        "max_per_hour": lambda n: self.integer(n, low=1),
                        "quiet_hours": self.quiet_hours,
                        "quiet": lambda n: self.choice(n, ("silent", "hold")),
                    },
                )
            )
            chat = values.get("chat")
            if chat is None:
                continue
            if not (chat.startswith("@") or re.fullmatch(r"-?\d+", chat)):
                self.fail(items["chat"], f"chat {chat!r} must be @username or a numeric id")
                continue
            values.setdefault("timezone", defaults.timezone)
            values.setdefault("summary_length", defaults.summary_length)
            channels[name] = Channel(name=name, **values)

    def parse_feeds(
        self, file: Path, node: _Node | None, defaults: Defaults, feeds: list[FeedSource]
    ) -> None:
        if node is None:
            return
        for item in self.sequence(node):
            items = self.mapping_items(item, _FEED_KEYS)
            if not isinstance(item, yaml.MappingNode):
                continue
            missing = [k for k in ("id",) if k not in items]
            if "url" not in items and "telegram" not in items:
                missing.append("url")
            if missing:
                what = " and ".join(repr(k) for k in missing)
                extra = " (or 'telegram: NAME' for a channel)" if "url" in missing else ""
                self.fail(item, f"a feed needs {what}{extra}")
                continue
            values = dict(
                self.fields_of(
                    items,
                    {
                        "id": lambda n: self.identifier(n, "feed id"),
                        "url": lambda n: self.text(n, "a URL or path"),
                        "interval": lambda n: self.duration(n, allow_zero=False),
                        "backfill": self.backfill,
                        "language": lambda n: self.text(n, "a language code"),
                        "name": self.text,
                        "tags": lambda n: tuple(v for v, _ in self.text_list(n)),
                        "user_agent": self.text,
                        "headers": self.headers,
                        "kind": lambda n: self.choice(n, _KINDS),
                        "telegram": self.telegram_channel,
                        "full_text": lambda n: self.choice(n, _FULL_TEXT),
                        "links": self.links_selector,
                    },
                )
            )
            feed_id = values.get("id")
            if feed_id is None or ("url" in items and "url" not in values):
                continue
            if any(k in items and k not in values for k in ("kind", "telegram", "links")):
                continue
            if not self.first_definition(self.feed_nodes, feed_id, items["id"], "feed id"):
                continue
            if not self.source_kind(values, items, defaults):
                continue
            values["url"] = resolve_feed_url(values["url"], file.parent)
            values.setdefault("interval", defaults.interval)
            if "backfill" not in values:
                values["backfill"] = defaults.backfill
            values.setdefault("language", defaults.language)
            values.setdefault("user_agent", defaults.user_agent)
            values.pop("telegram", None)
            feeds.append(FeedSource(**values))

    def source_kind(
        self, values: dict[str, Any], items: dict[str, _Node], defaults: Defaults
    ) -> bool:
        """Settle ``kind``, ``url`` and ``full_text`` of one feed (Sources without a feed).

        ``telegram: NAME`` means kind telegram (its preview URL unless ``url:``
        names a mirror); a t.me URL defaults to kind telegram (read at its
        ``t.me/s/NAME`` preview), anything else to rss. ``links`` belongs to
        page sources, which always fetch their links' text; Telegram posts
        have no article page, so ``full_text`` does not apply to them.
        """
        from monitor.sources.telegram import channel_name, preview_url

        kind = values.get("kind")
        name = values.get("telegram")
        if name is not None:
            if kind not in (None, FeedKind.TELEGRAM):
                self.fail(
                    items["kind"], f"'telegram: {name}' reads a channel: kind must be telegram"
                )
                return False
            kind = FeedKind.TELEGRAM
            values.setdefault("url", preview_url(name))
        else:
            on_tme = channel_name(values["url"])  # a t.me link: read at its /s/ preview
            if kind is None:
                kind = FeedKind.TELEGRAM if on_tme else FeedKind.RSS
            if kind == FeedKind.TELEGRAM and on_tme:
                values["url"] = preview_url(on_tme)
        values["kind"] = FeedKind(kind)
        if "links" in values and values["kind"] is not FeedKind.PAGE:
            self.fail(items["links"], "'links' (a CSS selector) applies to kind: page only")
            return False
        if values["kind"] is FeedKind.PAGE:
            if values.get("full_text", FullText.ALWAYS) != FullText.ALWAYS:
                self.warn(items["full_text"], "a page source always fetches its links' text")
            values["full_text"] = FullText.ALWAYS
        elif values["kind"] is FeedKind.TELEGRAM:
            if "full_text" in values:
                self.warn(items["full_text"], "full_text does not apply to Telegram channels")
            values["full_text"] = FullText.NEVER
        else:
            values.setdefault("full_text", defaults.full_text)
        return True

    def telegram_channel(self, node: _Node) -> str | None:
        """A public channel's username (``NAME``, ``@NAME`` or a t.me link to it)."""
        from monitor.sources.telegram import channel_name

        value = self.text(node, "a channel username")
        if value is None:
            return None
        name = channel_name(value) or channel_name("t.me/" + value.strip().lstrip("@"))
        if name is None:
            self.fail(
                node,
                f"{value!r} is not a public channel username (5-32 letters, digits "
                "and '_', a letter first), nor a t.me link to one",
            )
        return name

    def links_selector(self, node: _Node) -> str | None:
        from monitor.sources.page import check_selector

        value = self.text(node, "a CSS selector")
        if value is None:
            return None
        problem = check_selector(value)
        if problem is not None:
            self.fail(node, problem)
            return None
        return value

    def headers(self, node: _Node) -> dict[str, str] | None:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, "headers: expected a mapping of header name → value")
            return None
        out = {}
        for key_node, value_node in node.value:
            key, value = self.text(key_node, "a header name"), self.text(value_node, "a value")
            if key and value:
                out[key] = value
        return out

    def parse_rules(
        self,
        node: _Node | None,
        rules: list[Rule],
        locations: list[dict[tuple[str, int | None], _Node]],
    ) -> None:
        if node is None:
            return
        for item in self.sequence(node):
            items = self.mapping_items(item, _RULE_KEYS)
            if not isinstance(item, yaml.MappingNode):
                continue
            if "name" not in items:
                self.fail(item, "a rule needs a 'name'")
                continue
            name = self.text(items["name"], "a rule name")
            if name is None:
                continue
            if not self.first_definition(self.rule_nodes, name, items["name"], "rule name"):
                continue
            where: dict[tuple[str, int | None], _Node] = {(k, None): v for k, v in items.items()}
            where[("name", None)] = items["name"]
            values: dict[str, Any] = {"name": name}
            for key in ("any", "all", "none", "feeds", "languages", "notify"):
                if key in items:
                    terms = self.text_list(items[key], "a term" if key in "any all none" else key)
                    values[key] = tuple(t for t, _ in terms)
                    for index, (_, term_node) in enumerate(terms):
                        where[(key, index)] = term_node
            if "fields" in items:
                fields = self.text_list(items["fields"], "a field name")
                for value, field_node in fields:
                    if value not in FIELDS:
                        self.fail(field_node, f"unknown field {value!r}; use {', '.join(FIELDS)}")
                values["fields"] = tuple(v for v, _ in fields if v in FIELDS) or FIELDS
            if "query" in items:
                values["query"] = self.text(items["query"], "a query")
            if "fuzzy" in items:
                values["fuzzy"] = self.integer(items["fuzzy"], low=50, high=100)
            if "min_hits" in items:
                values["min_hits"] = self.integer(items["min_hits"], low=1) or 1
            if "priority" in items:
                priority = self.text(items["priority"], "normal or high")
                if priority not in (None, "normal", "high"):
                    self.fail(
                        items["priority"], f"priority must be normal or high, not {priority!r}"
                    )
                values["priority"] = priority if priority in ("normal", "high") else "normal"
            if "notify" not in items:
                self.warn(
                    items["name"],
                    f"rule {name!r} notifies no channel: it shows in `monitor match` only",
                )
            if not any(k in items for k in ("any", "all", "none", "query")):
                self.fail(items["name"], f"rule {name!r} needs any, all, none or query")
            rules.append(Rule(**{k: v for k, v in values.items() if v is not None}))
            locations.append(where)

    def cross_check(
        self,
        rules: list[Rule],
        locations: list[dict[tuple[str, int | None], _Node]],
        channels: Mapping[str, Channel],
        feeds: list[FeedSource],
    ) -> None:
        feed_names = {f.id for f in feeds} | {t for f in feeds for t in f.tags}
        check_rule = _rule_checker()
        for rule, where in zip(rules, locations, strict=True):
            for index, channel in enumerate(rule.notify):
                if channel not in channels:
                    known = ", ".join(sorted(channels)) or "none defined"
                    hint = difflib.get_close_matches(channel, list(channels), n=1)
                    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                    self.fail(
                        where.get(("notify", index)),
                        f"rule {rule.name!r} notifies unknown channel {channel!r}{extra}; "
                        f"channels: {known}",
                    )
            for index, feed in enumerate(rule.feeds):
                if feed not in feed_names:
                    self.warn(
                        where.get(("feeds", index)),
                        f"rule {rule.name!r} names feed or tag {feed!r}, which no feed has",
                    )
            for problem in check_rule(rule):
                node = where.get((problem.key, problem.index)) or where.get((problem.key, None))
                self.fail(node or where[("name", None)], f"rule {rule.name!r}: {problem.message}")


def _rule_checker() -> Callable[[Rule], list[Any]]:
    """The matcher's own rule validation (bad regex, bad query, empty term …)."""
    from monitor.match import check_rule

    return check_rule


def _api_base(url: str) -> str:
    """The Bot API base URL without a trailing slash or "/bot" (python-telegram-bot
    adds "/bot<token>" itself)."""
    url = url.rstrip("/")
    return url[: -len("/bot")] if url.endswith("/bot") else url


def resolve_feed_url(url: str, base: Path) -> str:
    """Keep http(s) and file: URLs; make a relative path absolute (config folder, then cwd)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", url) or url.startswith("file:"):
        return url
    path = Path(url).expanduser()
    if path.is_absolute():
        return str(path)
    beside_config = base / path
    if beside_config.exists() or not path.exists():
        return str(beside_config.resolve())
    return str(path.resolve())


_NULL = "tag:yaml.org,2002:null"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"


class _NamedLoader(yaml.SafeLoader):
    """SafeLoader whose marks carry the file name (PyYAML takes it from the stream)."""

    @classmethod
    def for_file(cls, name: str) -> Callable[[str], yaml.SafeLoader]:
        def make(stream: str) -> yaml.SafeLoader:
            loader = cls(stream)
            loader.name = name
            return loader

        return make
