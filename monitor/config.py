"""Configuration: YAML files + environment → one validated, immutable ``Settings``.

Validation walks PyYAML's node tree rather than plain dicts, so every problem
(unknown key, wrong type, bad duration, duplicate id, unknown channel, bad rule
term, missing include, YAML syntax) is reported at once as
``FILE:LINE:COL: message`` — the user fixes them all in one edit.

Each key is written once: a ``Section`` table of ``Option(key, parser, doc)`` per
mapping (``DEFAULTS``, ``TELEGRAM``, ``CHANNEL``, ``FEED``, ``RULE``, ``TOP``) names
the dataclass field it fills (whose default is the key's default); validation,
"did you mean" hints and construction all read the tables. Rule values are only
typed here: ``match.check_rules`` is the one judge of a rule.

YAML 1.1 readings that surprise (``0123`` octal, ``1:30`` base 60, ``no`` as
false) are refused with a located message rather than guessed; libyaml composes
the node tree when PyYAML has it (marks intact, about C speed).

Relative feed paths and include globs are resolved against the folder of the
file that names them (feed paths fall back to the current directory).
"""

from __future__ import annotations

import dataclasses
import difflib
import glob
import hashlib
import io
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from monitor import paused_gc
from monitor.exceptions import ConfigError, ConfigErrors
from monitor.models import Channel, FeedKind, FeedSource, FullText, Rule
from monitor.translate import BACKENDS, TranslateSettings, normalize_language

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
    allow_private_redirects: bool = False  # see the README's redirect guard
    keep_text: timedelta = timedelta(days=30)  # archive of article text; 0 keeps none
    story_window: timedelta = timedelta(hours=24)
    full_text: FullText = FullText.NEVER  # fetch linked articles: never, auto, always


@dataclass(frozen=True)
class TelegramSettings:
    """Bot-wide settings; the token itself only ever comes from the environment."""

    token: str | None = field(default=None, repr=False)  # a secret: never in logs
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
    translate: TranslateSettings | None = None  # the top-level ``translate:`` block
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
    # composing and checking allocates ~10 small objects per YAML scalar and no cycles that
    # matter: pausing the cyclic collector saves a third of a 10,000-rule load
    with paused_gc():
        return _Loader(Path(path), env).load()


# --------------------------------------------------------------------------- options

_Node = yaml.Node
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
_CHAT = re.compile(r"-?\d+")


class _Bad:
    """A value was rejected and its problem already recorded (``None`` can be a value)."""


_BAD: Any = _Bad()
Parser = Callable[["_Loader", _Node], Any]


@dataclass(frozen=True)
class Option:
    """One configuration key: its parser (value or ``_BAD``) and what it is for.

    The key is the dataclass field it fills; its default is that field's default,
    so the key, its check and its default are each written once.
    """

    key: str
    parse: Parser
    doc: str


@dataclass(frozen=True)
class Section:
    """The options of one mapping (``defaults``, a channel, a feed, a rule …)."""

    name: str
    options: tuple[Option, ...]
    target: type | None = None  # the dataclass the options fill
    required: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(o.key for o in self.options)

    def default(self, key: str) -> Any:
        """The dataclass field's default (what an omitted key means)."""
        assert self.target is not None
        for f in dataclasses.fields(self.target):
            if f.name == key:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:
                    return f.default_factory()
        raise KeyError(key)


def _duration(ld: _Loader, node: _Node) -> Any:
    return ld.duration(node, allow_zero=False)


def _backfill(ld: _Loader, node: _Node) -> Any:
    if isinstance(node, yaml.ScalarNode) and str(node.value).strip().lower() == "all":
        return None
    return ld.duration(node)


def _text(what: str = "text", bool_word: bool = False) -> Parser:
    return lambda ld, node: ld.text(node, what, bool_word=bool_word)


def _texts(what: str = "text") -> Parser:
    return lambda ld, node: tuple(v for v, _ in ld.text_list(node, what))


def _integer(low: int | None = None, high: int | None = None) -> Parser:
    return lambda ld, node: ld.integer(node, low, high)


def _choice(*options: str) -> Parser:
    return lambda ld, node: ld.choice(node, options)


def _boolean(ld: _Loader, node: _Node) -> Any:
    return ld.boolean(node)


def _timezone(ld: _Loader, node: _Node) -> Any:
    return ld.timezone(node)


def _label_language(ld: _Loader, node: _Node) -> Any:
    value = ld.text(node, "a language code")
    if value is not _BAD and value not in LABEL_LANGUAGES:
        ld.fail(node, f"alert labels exist in {', '.join(LABEL_LANGUAGES)}, not {value!r}")
        return _BAD
    return value


def _identifier(what: str) -> Parser:
    def parse(ld: _Loader, node: _Node) -> Any:
        value = ld.text(node, f"a {what}")
        if value is not _BAD and not _ID.match(value):
            ld.fail(node, f"{what} {value!r} may hold only letters, digits, '_', '-' and '.'")
            return _BAD
        return value

    return parse


def _chat(ld: _Loader, node: _Node) -> Any:
    chat = ld.text(node, "@username or numeric chat id")
    if chat is not _BAD and not (chat.startswith("@") or _CHAT.fullmatch(chat)):
        ld.fail(node, f"chat {chat!r} must be @username or a numeric id")
        return _BAD
    return chat


def _quiet_hours(ld: _Loader, node: _Node) -> Any:
    from monitor.render.digest import parse_quiet_hours

    value = ld.text(node, 'a time range such as "23:00-07:00"')
    if value is _BAD:
        return _BAD
    try:
        parse_quiet_hours(value)
    except ValueError as exc:
        ld.fail(node, str(exc))
        return _BAD
    return value


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")  # no control characters


def _header_value(ld: _Loader, node: _Node, what: str = "a header value") -> Any:
    value = ld.text(node, what)
    if value is not _BAD and not _HEADER_VALUE.fullmatch(value):
        ld.fail(node, f"{what} may not hold line breaks or control characters")
        return _BAD
    return value


def _user_agent(ld: _Loader, node: _Node) -> Any:
    return _header_value(ld, node, "a User-Agent")


def _headers(ld: _Loader, node: _Node) -> Any:
    if not isinstance(node, yaml.MappingNode):
        ld.fail(node, "headers: expected a mapping of header name → value")
        return _BAD
    out: dict[str, str] = {}
    for key_node, value_node in node.value:
        key, value = ld.text(key_node, "a header name"), _header_value(ld, value_node)
        if key is _BAD or value is _BAD:
            continue
        if not _HEADER_NAME.fullmatch(key):
            ld.fail(
                key_node, f"header name {key!r} may hold only letters, digits and -_.!#$%&'*+^`|~"
            )
            continue
        if key.lower() in (k.lower() for k in out):
            ld.fail(key_node, f"duplicate header {key!r}")
            continue
        out[key] = value
    return out


def _telegram_channel(ld: _Loader, node: _Node) -> Any:
    """A public channel's username (``NAME``, ``@NAME`` or a t.me link to it)."""
    from monitor.sources.telegram import channel_name

    value = ld.text(node, "a channel username")
    if value is _BAD:
        return _BAD
    name = channel_name(value) or channel_name("t.me/" + value.strip().lstrip("@"))
    if name is None:
        ld.fail(
            node,
            f"{value!r} is not a public channel username (5-32 letters, digits "
            "and '_', a letter first), nor a t.me link to one",
        )
        return _BAD
    return name


def _links_selector(ld: _Loader, node: _Node) -> Any:
    from monitor.sources.page import check_selector

    value = ld.text(node, "a CSS selector")
    if value is _BAD:
        return _BAD
    problem = check_selector(value)
    if problem is not None:
        ld.fail(node, problem)
        return _BAD
    return value


def _language_code(ld: _Loader, node: _Node) -> Any:
    value = ld.text(node, "a language code such as en")
    if value is _BAD:
        return _BAD
    try:
        return normalize_language(value)
    except ValueError as exc:
        ld.fail(node, str(exc))
        return _BAD


def _http_url(ld: _Loader, node: _Node) -> Any:
    value = ld.text(node, "an http(s) URL")
    if value is not _BAD and not re.match(r"^https?://[^\s/]+", value):
        ld.fail(node, f"expected an http(s) URL, not {value[:60]!r}")
        return _BAD
    return value


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(ld: _Loader, node: _Node) -> Any:
    value = ld.text(node, "an environment variable name")
    if value is not _BAD and not _ENV_NAME.fullmatch(value):
        ld.fail(
            node,
            f"api_key_env names an environment variable (e.g. DEEPL_API_KEY), "
            f"not {value[:40]!r}; the key itself never goes in the file",
        )
        return _BAD
    return value


def _story_mode(ld: _Loader, node: _Node) -> Any:
    """``edit``, ``reply`` or ``off``; YAML reads an unquoted ``off`` as false."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
        if str(node.value).lower() in ("false", "no", "off", "n"):
            return "off"
        ld.fail(node, "stories: expected edit, reply or off")
        return _BAD
    return ld.choice(node, ("edit", "reply", "off"))


def _story_window(ld: _Loader, node: _Node) -> Any:
    """A positive duration of at most a week (older stories are not compared)."""
    value = ld.duration(node, allow_zero=False)
    if value is not _BAD and value > timedelta(days=7):
        ld.fail(node, "story_window: at most 7d")
        return _BAD
    return value


_STORY_WINDOW = Option("story_window", _story_window, "how far apart two reports of a story may be")


def _admins(ld: _Loader, node: _Node) -> Any:
    values = [ld.integer(item) for item in ld.sequence(node, allow_scalar=True)]
    return tuple(v for v in values if v is not _BAD)


_LANGUAGE = Option("language", _text("a language code"), "language of the feed's text")
_USER_AGENT = Option("user_agent", _user_agent, "User-Agent header sent to the feed's server")
_SUMMARY = Option(
    "summary_length", _integer(100, 3500), "characters of summary in an alert (100–3500)"
)
_INTERVAL = Option("interval", _duration, "how often a feed is polled (30s, 5m …)")
_BACKFILL = Option("backfill", _backfill, "how old entries may be on the first poll, or all")
_FULL_TEXT = Option(
    "full_text",
    _choice(*(f.value for f in FullText)),
    "fetch each new entry's linked article for its text: never, auto (short entries), always",
)

DEFAULTS = Section(
    "defaults",
    (
        _INTERVAL,
        _BACKFILL,
        _LANGUAGE,
        _USER_AGENT,
        Option("timeout", _duration, "how long one fetch may take"),
        Option("max_bytes", _integer(1024), "largest feed body read (bytes, at least 1024)"),
        Option("timezone", _timezone, "IANA time zone channels inherit"),
        _SUMMARY,
        Option("keep_text", lambda ld, n: ld.duration(n), "how long article text is archived"),
        _STORY_WINDOW,
        Option(
            "allow_private_redirects",
            _boolean,
            "follow a public feed's redirect to a private or loopback address",
        ),
        _FULL_TEXT,
    ),
    Defaults,
)
TELEGRAM = Section(
    "telegram",
    (
        Option("admins", _admins, "Telegram user ids allowed to use admin commands"),
        Option("admin_chat", _text("a chat"), "where operator alerts go"),
        Option("feed_down_after", _integer(1), "failed polls in a row before a feed-down alert"),
        Option("commands", _boolean, "answer bot commands such as /status"),
    ),
    TelegramSettings,
)
CHANNEL = Section(
    "channel",
    (
        Option("chat", _chat, "@username or numeric chat id"),
        Option("language", _label_language, "language of the alert's labels (en, ar, ru)"),
        Option("timezone", _timezone, "IANA time zone for publication times"),
        Option("link_preview", _boolean, "let Telegram show a link preview"),
        Option("thread_id", _integer(1), "forum topic to post in"),
        _SUMMARY,
        Option("mode", _choice("instant", "digest"), "one message per article, or digests"),
        Option("every", _duration, "digest period"),
        Option("max_per_hour", _integer(1), "instant alerts per hour before the rest wait"),
        Option("quiet_hours", _quiet_hours, 'a time range such as "23:00-07:00"'),
        Option("quiet", _choice("silent", "hold"), "during quiet hours: no sound, or hold"),
        Option("stories", _story_mode, "edit the first alert, reply to it, or off"),
        _STORY_WINDOW,
        Option("surges", _boolean, "surge alerts for every rule that notifies this channel"),
        Option("translate_to", _language_code, "translate alerts into this language (en, ru …)"),
        Option("images", _boolean, "send an article's picture as a photo with the alert"),
    ),
    Channel,
    required=("chat",),
)
FEED = Section(
    "feed",
    (
        Option("id", _identifier("feed id"), "the name rules and commands use"),
        Option("url", _text("a URL or path"), "http(s) URL, file: URL or local path"),
        _INTERVAL,
        _BACKFILL,
        _LANGUAGE,
        Option("name", _text(), "display name in alerts"),
        Option("tags", _texts(), "names rules can use for a group of feeds"),
        _USER_AGENT,
        Option("headers", _headers, "extra HTTP request headers"),
        Option(
            "kind",
            _choice(*(k.value for k in FeedKind)),
            "what the URL serves: rss (default), telegram (default for t.me), page",
        ),
        Option("telegram", _telegram_channel, "a public Telegram channel's username"),
        _FULL_TEXT,
        Option("links", _links_selector, "CSS selector of the article links (kind: page)"),
    ),
    FeedSource,
    required=("id", "url"),  # url may be left out when telegram names a channel
)
#: the top-level ``translate:`` block (its ``translate_timeout`` fills ``timeout``)
TRANSLATE = Section(
    "translate",
    (
        Option("backend", _choice(*BACKENDS), "libretranslate, deepl or openai"),
        Option("url", _http_url, "the service's base URL"),
        Option("model", _text("a model name"), "the model (openai backend)"),
        Option("api_key_env", _env_name, "the environment variable that holds the API key"),
        Option("translate_timeout", _duration, "longest an alert waits for its translation"),
    ),
    required=("backend",),
)
#: rule values are only parsed into their types here; ``match.check_rules`` alone
#: decides what is a valid rule (ranges, fields, terms, queries)
RULE = Section(
    "rule",
    (
        Option("name", _text("a rule name"), "the rule's name, shown in alerts"),
        Option("any", _texts("a term"), "at least one of these terms"),
        Option("all", _texts("a term"), "every one of these terms"),
        Option("none", _texts("a term"), "none of these terms"),
        Option("query", _text("a query"), "a boolean query"),
        Option("fuzzy", _integer(), "similarity 0–100 for near spellings"),
        Option("feeds", _texts("feeds"), "feed ids or tags the rule is limited to"),
        Option("languages", _texts("languages"), "article languages the rule is limited to"),
        Option("fields", _texts("a field name"), "article fields the rule looks at"),
        Option("min_hits", _integer(), "distinct hits needed"),
        Option("priority", _text("normal or high"), "normal or high"),
        Option("surge", _boolean, "send a chart when the rule's matches surge"),
        Option("notify", _texts("notify"), "channels to alert"),
    ),
    Rule,
    required=("name",),
)
#: the top level holds sections; included files only add channels, feeds and rules
TOP = Section(
    "top level",
    (
        Option("defaults", lambda ld, n: n, "values feeds and channels inherit"),
        Option("telegram", lambda ld, n: n, "bot-wide settings"),
        Option("translate", lambda ld, n: n, "a translation service for translate_to"),
        Option("channels", lambda ld, n: n, "channel name → settings"),
        Option("feeds", lambda ld, n: n, "the feeds to poll"),
        Option("rules", lambda ld, n: n, "the watch rules"),
        Option("include", lambda ld, n: n, "more YAML files (globs) with channels, feeds, rules"),
    ),
)
INCLUDED = Section(
    "included file",
    tuple(o for o in TOP.options if o.key in ("channels", "feeds", "rules", "include")),
)
#: keys a feed or channel inherits from ``defaults`` when it does not say (``full_text``
#: too, for rss feeds: ``_Loader.source_kind``)
_FEED_INHERITS = ("interval", "backfill", "language", "user_agent")
#: feed keys whose rejected value leaves no way to build the feed
_SOURCE_KEYS = ("url", "kind", "telegram", "links")
_CHANNEL_INHERITS = ("timezone", "summary_length", "story_window")


# --------------------------------------------------------------------------- loader


@dataclass
class _Loader:
    path: Path
    env: Mapping[str, str]
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[tuple[str, int, int, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    digest: Any = field(default_factory=hashlib.sha256)
    # where each rule and feed was defined, for cross-checks
    feed_nodes: dict[str, _Node] = field(default_factory=dict)
    rule_nodes: dict[str, _Node] = field(default_factory=dict)
    translate_to_nodes: dict[str, _Node] = field(default_factory=dict)

    # ---- reporting
    def warn(self, node: _Node | None, message: str) -> None:
        """A located remark that does not stop the configuration from loading."""
        mark = node.start_mark if node is not None else None
        where = (mark.name, mark.line + 1, mark.column + 1) if mark else (str(self.path), 1, 1)
        self.warnings.append((*where, message))

    def fail(
        self,
        node: _Node | None,
        message: str,
        file: Path | None = None,
        line: int = 1,
        col: int = 1,
    ) -> None:
        if node is None:
            self.errors.append(ConfigError(message, str(file or self.path), line, col))
            return
        mark = node.start_mark
        self.errors.append(ConfigError(message, mark.name, mark.line + 1, mark.column + 1))

    # ---- entry point
    def load(self) -> Settings:
        root = self.read_file(self.path, None)
        if root is _EMPTY:
            self.fail(None, "the configuration is empty: name the feeds and rules to watch")
        if root is None or root is _EMPTY:
            raise ConfigErrors(self.errors)
        docs: list[tuple[Path, _Node]] = [(self.path, root)]
        self.collect_includes(self.path, root, docs, TOP, seen={self.path.resolve()})

        top = self.mapping_items(root, TOP)
        defaults = self.build(DEFAULTS, self.mapping_items(top.get("defaults"), DEFAULTS))
        telegram = self.build(TELEGRAM, self.mapping_items(top.get("telegram"), TELEGRAM))
        translate = self.parse_translate(top.get("translate"))

        channels: dict[str, Channel] = {}
        feeds: list[FeedSource] = []
        rules: list[Rule] = []
        rule_items: list[dict[str, _Node]] = []
        for file, doc in docs:
            items = top if file == self.path else self.mapping_items(doc, INCLUDED)
            self.parse_channels(items.get("channels"), defaults, channels)
            self.parse_feeds(file, items.get("feeds"), defaults, feeds)
            self.parse_rules(items.get("rules"), rules, rule_items)

        self.cross_check(rules, rule_items, channels, feeds)
        if translate is None:
            for name, channel in channels.items():
                if channel.translate_to is not None:
                    self.fail(
                        self.translate_to_nodes.get(name),
                        f"channel {name!r} sets translate_to but there is no top-level "
                        "translate: block (backend, url, api_key_env)",
                    )
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
            translate=translate,
            version=self.digest.hexdigest()[:12],
            warnings=tuple(
                f"{p}:{line}:{col}: warning: {m}" for p, line, col, m in sorted(self.warnings)
            ),
        )

    # ---- files
    def read_file(self, file: Path, include_node: _Node | None) -> _Node | None:
        """The node tree (``_EMPTY`` for an empty file); None when a problem was recorded."""
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            self.fail(include_node, f"configuration file not found: {file}", file)
            return None
        except OSError as exc:
            self.fail(include_node, f"cannot read {file}: {exc.strerror or exc}", file)
            return None
        self.files.append(file)
        self.digest.update(str(file).encode() + b"\0" + data)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line, col = _line_col(data, exc.start)
            self.fail(
                None,
                f"not UTF-8 text: byte {exc.start} (0x{data[exc.start]:02x}) cannot be decoded; "
                "save the file as UTF-8",
                file,
                line,
                col,
            )
            return None
        if "\t" in text:
            # YAML forbids tabs in indentation; say so plainly rather than as a token error
            for number, row in enumerate(text.splitlines(), 1):
                indent = len(row) - len(row.lstrip(" \t"))
                if "\t" in row[:indent]:
                    self.fail(
                        None,
                        "tab in indentation: YAML indents with spaces only",
                        file,
                        number,
                        row.index("\t") + 1,
                    )
                    return None
        try:
            node = _compose(data, text, str(file))
            return _EMPTY if node is None else node
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = " ".join(p for p in (exc.context, exc.problem) if p)
            self.fail(None, f"YAML syntax error: {problem}", file, line, col)
        except yaml.reader.ReaderError as exc:
            if _LIBYAML:  # libyaml counts bytes of the raw file, the pure reader characters
                line, col = _line_col(data, exc.position)
            else:
                line, col = _text_line_col(text, exc.position)
            problem = f"{exc.reason} (character {exc.character!r})"
            self.fail(None, f"YAML error: {problem}", file, line, col)
        except (yaml.YAMLError, RecursionError) as exc:
            self.fail(None, f"YAML error: {exc}".splitlines()[0], file)
        return None

    def collect_includes(
        self,
        file: Path,
        node: _Node,
        docs: list[tuple[Path, _Node]],
        section: Section,
        seen: set[Path],
    ) -> None:
        items = self.mapping_items(node, section, report=False)
        include = items.get("include")
        if include is None:
            return
        for pattern_node in self.sequence(include, allow_scalar=True):
            pattern = self.text(pattern_node)
            if pattern is _BAD:
                continue
            full = pattern if os.path.isabs(pattern) else str(file.parent / pattern)
            try:
                matches = sorted(glob.glob(full, recursive=True))
            except (OSError, ValueError) as exc:  # NUL bytes, over-long names
                self.fail(pattern_node, f"include {pattern!r}: {exc}")
                continue
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
                    self.collect_includes(included, child, docs, INCLUDED, seen)

    # ---- node helpers
    def mapping_items(
        self, node: _Node | None, section: Section, report: bool = True
    ) -> dict[str, _Node]:
        """Key → value node; reports unknown and duplicate keys once (when ``report``)."""
        if node is None:
            return {}
        allowed = section.keys
        if not isinstance(node, yaml.MappingNode):
            if report:
                self.fail(node, f"expected a mapping of keys ({', '.join(allowed)})")
            return {}
        out: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in allowed:
                if report:
                    hint = difflib.get_close_matches(str(key)[:100], allowed, n=1)
                    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                    shown = repr(key) if key is not None else "(not a plain name)"
                    self.fail(
                        key_node, f"unknown key {shown}{extra}; allowed: {', '.join(allowed)}"
                    )
                continue
            if key in out:
                if report:
                    first = out[key].start_mark
                    self.fail(key_node, f"duplicate key {key!r} (first at line {first.line + 1})")
                continue
            out[key] = value_node
        return out

    def parse_translate(self, node: _Node | None) -> TranslateSettings | None:
        """The ``translate:`` block; the key's variable is only named here, read at start."""
        if node is None:
            return None
        items = self.mapping_items(node, TRANSLATE)
        values = self.values(TRANSLATE, items)
        backend = values.get("backend")
        if "backend" not in items:
            self.fail(node, f"translate: needs 'backend' ({' or '.join(BACKENDS)})")
        if backend == "openai" and "model" not in items:
            self.fail(node, "translate: backend openai needs 'model'")
        if backend == "libretranslate" and "url" not in items:
            self.fail(node, "translate: backend libretranslate needs 'url' (your server)")
        if backend in ("libretranslate", "deepl") and "model" in items:
            message = f"translate: backend {backend} has no models; 'model' is unused"
            self.warn(items["model"], message)
        if backend is None:
            return None
        timeout = values.pop("translate_timeout", None)
        return TranslateSettings(**values, **({"timeout": timeout} if timeout else {}))

    def build(self, section: Section, items: dict[str, _Node], **given: Any) -> Any:
        """The section's dataclass from the keys present; others keep their defaults."""
        assert section.target is not None
        values = self.values(section, items)
        return section.target(**{**values, **given})

    def values(self, section: Section, items: dict[str, _Node]) -> dict[str, Any]:
        """Parse each present key; leave out values whose parser recorded a problem."""
        out: dict[str, Any] = {}
        for option in section.options:
            node = items.get(option.key)
            if node is not None:
                value = option.parse(self, node)
                if value is not _BAD:
                    out[option.key] = value
        return out

    def sequence(self, node: _Node, allow_scalar: bool = False) -> list[_Node]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if allow_scalar and isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
            return [node]
        self.fail(node, "expected a list")
        return []

    def text(self, node: _Node, what: str = "text", bool_word: bool = False) -> Any:
        """A scalar as written; YAML 1.1 booleans (no, off, yes …) only where ``bool_word``."""
        if isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
            value = str(node.value)
            if node.tag == _BOOL and not bool_word:
                self.fail(
                    node,
                    f"expected {what}, got {value!r}, which YAML reads as "
                    f"{_is_true(value)}; write it in quotes: '{value}'",
                )
                return _BAD
            if value.strip():
                return value
            self.fail(node, f"expected {what}, got an empty value")
            return _BAD
        self.fail(node, f"expected {what}")
        return _BAD

    def text_list(self, node: _Node | None, what: str = "text") -> list[tuple[str, _Node]]:
        if node is None:
            return []
        out = []
        for item in self.sequence(node, allow_scalar=True):
            value = self.text(item, what)
            if value is not _BAD:
                out.append((value, item))
        return out

    def integer(self, node: _Node, low: int | None = None, high: int | None = None) -> Any:
        """A plain decimal whole number; YAML 1.1's octal, sexagesimal, hex are refused."""
        text = str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
        if not isinstance(node, yaml.ScalarNode) or node.tag in (_NULL, _BOOL) or not text:
            self.fail(node, "expected a whole number")
            return _BAD
        if not _DECIMAL.fullmatch(text):
            self.fail(node, f"expected a whole number, got {text!r}{_odd_number(text)}")
            return _BAD
        if node.style in ("'", '"'):
            self.fail(node, f"expected a whole number, got the text {text!r}")
            return _BAD
        if len(text) > 30:
            self.fail(node, "number too large")
            return _BAD
        value = int(text.replace("_", ""))
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.fail(node, f"expected a number {bounds}, got {value}")
            return _BAD
        return value

    def boolean(self, node: _Node) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
            return _is_true(str(node.value))
        self.fail(node, "expected true or false")
        return _BAD

    def duration(self, node: _Node, allow_zero: bool = True) -> Any:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            self.fail(node, "expected a duration such as 30s, 5m, 2h or 1d")
            return _BAD
        try:
            value = parse_duration(node.value)
        except (ValueError, OverflowError) as exc:
            self.fail(node, str(exc))
            return _BAD
        if not allow_zero and value <= timedelta(0):
            self.fail(node, "duration must be longer than zero")
            return _BAD
        return value

    def timezone(self, node: _Node) -> Any:
        name = self.text(node, "a time zone name such as UTC or Asia/Damascus")
        if name is _BAD:
            return _BAD
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.fail(node, f"unknown time zone {name!r} (use an IANA name such as Europe/Moscow)")
            return _BAD
        return name

    def choice(self, node: _Node, options: tuple[str, ...]) -> Any:
        value = self.text(node, " or ".join(options))
        if value is not _BAD and value not in options:
            self.fail(node, f"expected {' or '.join(options)}, not {value!r}")
            return _BAD
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

    def missing(self, section: Section, items: dict[str, _Node]) -> list[str]:
        return [k for k in section.required if k not in items]

    # ---- sections
    def parse_channels(
        self, node: _Node | None, defaults: Defaults, channels: dict[str, Channel]
    ) -> None:
        if node is None:
            return
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, "channels: expected a mapping of channel name → settings")
            return
        for key_node, value_node in node.value:
            name = _identifier("channel name")(self, key_node)
            if name is _BAD:
                continue
            if name in channels:
                self.fail(key_node, f"duplicate channel {name!r}")
                continue
            items = self.mapping_items(value_node, CHANNEL)
            if "chat" not in items:
                self.fail(value_node, f"channel {name!r} needs 'chat' (@username or numeric id)")
                continue
            values = self.values(CHANNEL, items)
            if "chat" not in values:
                continue
            for key in _CHANNEL_INHERITS:
                values.setdefault(key, getattr(defaults, key))
            if "translate_to" in items:
                self.translate_to_nodes[name] = items["translate_to"]
            channels[name] = Channel(name=name, **values)

    def parse_feeds(
        self, file: Path, node: _Node | None, defaults: Defaults, feeds: list[FeedSource]
    ) -> None:
        if node is None:
            return
        for item in self.sequence(node):
            items = self.mapping_items(item, FEED)
            if not isinstance(item, yaml.MappingNode):
                continue
            missing = self.missing(FEED, items)
            if "telegram" in items and "url" in missing:
                missing.remove("url")  # the channel's preview URL
            if missing:
                what = " and ".join(repr(k) for k in missing)
                extra = " (or 'telegram: NAME' for a channel)" if "url" in missing else ""
                self.fail(item, f"a feed needs {what}{extra}")
                continue
            values = self.values(FEED, items)
            feed_id = values.get("id")
            if feed_id is None or any(k in items and k not in values for k in _SOURCE_KEYS):
                continue
            if not self.first_definition(self.feed_nodes, feed_id, items["id"], "feed id"):
                continue
            if not self.source_kind(values, items, defaults):
                continue
            url = values["url"]
            try:
                values["url"] = resolve_feed_url(url, file.parent)
            except (OSError, ValueError) as exc:  # NUL bytes, names the OS cannot hold
                self.fail(items.get("url"), f"unusable feed path {url!r}: {exc}")
                continue
            for key in _FEED_INHERITS:
                if key not in values:
                    values[key] = getattr(defaults, key)
            feeds.append(FeedSource(**values))

    def source_kind(
        self, values: dict[str, Any], items: dict[str, _Node], defaults: Defaults
    ) -> bool:
        """Settle ``kind``, ``url`` and ``full_text`` of one feed (Sources without a feed).

        ``telegram: NAME`` means kind telegram (its preview URL unless ``url:``
        names a mirror); a t.me URL defaults to kind telegram and is read at its
        ``t.me/s/NAME`` preview; anything else defaults to rss. ``links`` belongs
        to page sources, which always fetch their links' text; Telegram posts
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
                values["telegram"] = on_tme
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

    def parse_rules(
        self, node: _Node | None, rules: list[Rule], rule_items: list[dict[str, _Node]]
    ) -> None:
        if node is None:
            return
        for item in self.sequence(node):
            items = self.mapping_items(item, RULE)
            if not isinstance(item, yaml.MappingNode):
                continue
            if self.missing(RULE, items):
                self.fail(item, "a rule needs a 'name'")
                continue
            values = self.values(RULE, items)
            name = values.get("name")
            if name is None:
                continue
            if not self.first_definition(self.rule_nodes, name, items["name"], "rule name"):
                continue
            if "notify" not in items:
                self.warn(
                    items["name"],
                    f"rule {name!r} notifies no channel: it shows in `monitor match` only",
                )
            if not any(k in items for k in ("any", "all", "none", "query")):
                self.fail(items["name"], f"rule {name!r} needs any, all, none or query")
            rules.append(Rule(**values))
            rule_items.append(items)

    def cross_check(
        self,
        rules: list[Rule],
        rule_items: list[dict[str, _Node]],
        channels: Mapping[str, Channel],
        feeds: list[FeedSource],
    ) -> None:
        from monitor.match import check_rules, rule_warnings

        feed_names = {f.id for f in feeds} | {t for f in feeds for t in f.tags}
        for rule, items in zip(rules, rule_items, strict=True):
            for index, channel in enumerate(rule.notify):
                if channel not in channels:
                    known = ", ".join(sorted(channels)) or "none defined"
                    hint = difflib.get_close_matches(channel, list(channels), n=1)
                    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                    self.fail(
                        _item_node(items, "notify", index),
                        f"rule {rule.name!r} notifies unknown channel {channel!r}{extra}; "
                        f"channels: {known}",
                    )
            for index, feed in enumerate(rule.feeds):
                if feed not in feed_names:
                    self.warn(
                        _item_node(items, "feeds", index),
                        f"rule {rule.name!r} names feed or tag {feed!r}, which no feed has",
                    )
            if rule.fuzzy is not None and 0 <= rule.fuzzy < 50:
                self.warn(
                    items["fuzzy"],
                    f"rule {rule.name!r}: fuzzy {rule.fuzzy} lets almost any word of similar "
                    "length hit; 80–90 catches misspellings",
                )
            for problem in rule_warnings(rule):
                node = _item_node(items, problem.key, problem.index) or items["name"]
                self.warn(node, f"rule {rule.name!r}: {problem.message}")
        for index, problem in check_rules(rules):
            rule, items = rules[index], rule_items[index]
            node = _item_node(items, problem.key, problem.index) or items["name"]
            self.fail(node, f"rule {rule.name!r}: {problem.message}")


def _item_node(items: dict[str, _Node], key: str, index: int | None) -> _Node | None:
    """The node of ``key`` (or of its ``index``-th list item) in a rule, for locations."""
    node = items.get(key)
    if index is not None and isinstance(node, yaml.SequenceNode):
        return node.value[index] if 0 <= index < len(node.value) else node
    return node


def _is_true(word: str) -> bool:
    return word.lower() in ("true", "yes", "on", "y")


def _odd_number(text: str) -> str:
    """Why YAML 1.1 (and so PyYAML) would not read ``text`` as the number it looks like."""
    if ":" in text:
        return " (YAML 1.1 reads digits with ':' as base 60: write the plain number)"
    if re.fullmatch(r"[-+]?0[0-9_]+", text):
        return " (YAML 1.1 reads a leading 0 as octal: write the number without it)"
    if re.fullmatch(r"[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?", text):
        return " (write a whole number without a point or exponent)"
    if text.lower().startswith(("0x", "-0x", "+0x", "0b", "-0b", "+0b")):
        return " (write the number in decimal)"
    return ""


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte ``offset`` of a file."""
    offset = max(0, min(offset, len(data)))
    start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def _text_line_col(text: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - start + 1


_EMPTY = yaml.MappingNode("tag:yaml.org,2002:map", [])


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


_LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))


def _compose(data: bytes, text: str, name: str) -> _Node | None:
    """The node tree (marks carry ``name``): libyaml when present, else PyYAML's own."""
    if _LIBYAML:
        stream = io.BytesIO(data)
        stream.name = name  # libyaml takes the marks' file name from here
        node: _Node | None = yaml.compose(stream, Loader=yaml.CSafeLoader)
    else:  # pragma: no cover - PyYAML built without libyaml
        loader = yaml.SafeLoader(text)
        loader.name = name
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    return node


def load_draft_rules(path: str | Path, env: Mapping[str, str] | None = None) -> tuple[Rule, ...]:
    """The rules of a file being drafted (``monitor backtest --rules FILE``).

    Validated like the configuration's rules (every problem as FILE:LINE:COL),
    except that ``notify`` may name channels that do not exist yet and ``feeds``
    may name feeds defined in the real configuration.
    """
    env = os.environ if env is None else env
    return _DraftLoader(Path(path), env).load().rules


class _DraftLoader(_Loader):
    """A loader that skips the cross-checks a drafted rules file cannot pass."""

    def cross_check(
        self,
        rules: list[Rule],
        rule_items: list[dict[str, _Node]],
        channels: Mapping[str, Channel],
        feeds: list[FeedSource],
    ) -> None:
        from monitor.match import check_rules

        for index, problem in check_rules(rules):
            rule, items = rules[index], rule_items[index]
            node = _item_node(items, problem.key, problem.index) or items["name"]
            self.fail(node, f"rule {rule.name!r}: {problem.message}")
