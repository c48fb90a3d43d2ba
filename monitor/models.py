"""Plain values passed between pipeline stages, named by where they are in the flow.

    config.py           → FeedSource, Rule, Channel
    fetch.py            → FetchResult
    parse.py            → ParsedFeed / RawEntry
    articles.py         → Article            (text.py, sentences.py: the text tools)
    match.py            → Match(Hit…)
    stories.py          → the story key that makes one alert per story and channel
    render/             → Alert              (alert.py, digest.py, operator_alerts.py)
    deliver/            → Delivery           (sender.py paces the outbox, notifier.py sends)

``pipeline.py`` runs fetch → … → render for one feed; ``storage/`` keeps feed
state, entries and the outbox between the stages; ``worker.py`` runs polls,
the sender, digests and reloads.  The enums below name every state that
travels as a string (and is stored as one): being ``StrEnum``s they compare
equal to, and are stored as, the same strings as before.

All datetimes are timezone-aware UTC. Every stage returns a new, complete value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol


def utc_now() -> datetime:
    """The current time, aware UTC: the one wall clock the I/O modules pass down as ``now``."""
    return datetime.now(UTC)


class AlertStatus(StrEnum):
    """Where an outbox row is (the ``alerts.status`` column)."""

    PENDING = "pending"  # waiting to be sent (or retried)
    SENT = "sent"  # Telegram accepted it
    FAILED = "failed"  # given up: permanent error or held too long
    HELD = "held"  # kept back for the channel's next digest
    DIGESTED = "digested"  # went out as a line of a digest


class Decision(StrEnum):
    """What the sender does with an alert that is due (``render.digest.delivery_decision``)."""

    SEND = "send"
    SEND_SILENT = "send_silent"  # without a notification sound (quiet hours)
    HOLD = "hold"  # keep it for the channel's next digest


class ChannelMode(StrEnum):
    """``mode`` of a channel."""

    INSTANT = "instant"  # one message per article
    DIGEST = "digest"  # one message per period


class QuietMode(StrEnum):
    """``quiet`` of a channel: what quiet hours do to an alert."""

    SILENT = "silent"  # send it without sound
    HOLD = "hold"  # keep it for the digest


class StoryMode(StrEnum):
    """``stories`` of a channel: what a later report of a story already alerted does."""

    EDIT = "edit"  # the first alert is edited to list the other sources
    REPLY = "reply"  # a short reply to the first alert names them
    OFF = "off"  # every article gets its own alert (near-identical titles excepted)


class Priority(StrEnum):
    """``priority`` of a rule, and of the alerts it makes."""

    NORMAL = "normal"
    HIGH = "high"


class AlertKind(StrEnum):
    """What an outbox message is."""

    ARTICLE = "article"  # one article for one channel
    DIGEST = "digest"  # a channel's held alerts in one message
    OPERATOR = "operator"  # a state change for ``telegram.admin_chat``


#: What the outbox's ``priority`` column holds for a digest message (storage keeps
#: the kind there; see ``stored_kind``).
DIGEST_PRIORITY = "digest"


def stored_kind(priority: str) -> tuple[AlertKind, Priority]:
    """The kind and priority of an outbox row from its stored ``priority`` column.

    Storage writes ``"digest"`` there for digest messages and the alert's
    priority otherwise; anything unknown reads as a normal article.
    """
    if priority == DIGEST_PRIORITY:
        return AlertKind.DIGEST, Priority.NORMAL
    if priority == Priority.HIGH:
        return AlertKind.ARTICLE, Priority.HIGH
    return AlertKind.ARTICLE, Priority.NORMAL


class MuteKind(StrEnum):
    """What a /mute silences."""

    RULE = "rule"
    CHANNEL = "channel"


@dataclass(frozen=True)
class MuteTarget:
    """A muted rule or channel; stored and compared as ``"rule:NAME"`` / ``"channel:NAME"``."""

    kind: MuteKind
    name: str

    @classmethod
    def parse(cls, text: str) -> MuteTarget | None:
        """``"rule:NAME"`` → ``MuteTarget``; None when ``text`` has no known kind prefix."""
        kind, sep, name = text.partition(":")
        if not sep or kind not in (MuteKind.RULE, MuteKind.CHANNEL):
            return None
        return cls(MuteKind(kind), name)

    @classmethod
    def rule(cls, name: str) -> MuteTarget:
        return cls(MuteKind.RULE, name)

    @classmethod
    def channel(cls, name: str) -> MuteTarget:
        return cls(MuteKind.CHANNEL, name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class FeedKind(StrEnum):
    """``kind`` of a feed: what its URL serves."""

    RSS = "rss"  # an RSS, Atom or RDF feed
    TELEGRAM = "telegram"  # a public Telegram channel's web preview (t.me/s/NAME)
    PAGE = "page"  # a page listing articles: each new link is an entry


class FullText(StrEnum):
    """``full_text`` of a feed: when the entry's linked page is fetched for its text."""

    NEVER = "never"
    AUTO = "auto"  # only for entries carrying little text of their own
    ALWAYS = "always"


#: Article fields a rule can look at, in the order alerts show them; ``page`` is
#: the linked article's text, fetched for ``full_text`` feeds and page sources.
FIELDS: tuple[str, ...] = ("title", "summary", "content", "page")


@dataclass(frozen=True)
class Channel:
    """A Telegram destination that rules notify by name."""

    name: str
    chat: str  # "@username" or a numeric id, as text
    language: str = "en"  # language of the alert's fixed labels: en, ar, ru
    timezone: str = "UTC"  # IANA name used for publication times
    link_preview: bool = False
    thread_id: int | None = None  # forum topic (message_thread_id)
    summary_length: int = 600  # characters of summary in an alert
    mode: ChannelMode = ChannelMode.INSTANT
    every: timedelta = timedelta(hours=1)  # digest period (also flushes held overflow)
    max_per_hour: int | None = None  # instant alerts beyond this roll into the next digest
    quiet_hours: str | None = None  # "23:00-07:00" in the channel's timezone
    quiet: QuietMode = QuietMode.SILENT  # what quiet hours do
    stories: StoryMode = StoryMode.EDIT  # later reports of an alerted story
    story_window: timedelta = timedelta(hours=24)  # how far apart two reports of one story are
    surges: bool = False  # surge alerts for every rule that notifies this channel
    translate_to: str | None = None  # language code: translate title and summary into it
    images: bool = False  # send an article's image as a photo, the alert as its caption

    def __post_init__(self) -> None:
        # config validates the strings; this makes them the enums whoever builds a Channel
        object.__setattr__(self, "mode", ChannelMode(self.mode))
        object.__setattr__(self, "quiet", QuietMode(self.quiet))
        object.__setattr__(self, "stories", StoryMode(self.stories))


@dataclass(frozen=True)
class FeedSource:
    """One feed to poll, as configured."""

    id: str
    url: str  # http(s) URL, file: URL or local path (already resolved)
    interval: timedelta = timedelta(minutes=5)
    backfill: timedelta | None = timedelta(0)  # None means "all" on the first poll
    language: str | None = None
    name: str | None = None  # display name; defaults to the feed's own title, then id
    tags: tuple[str, ...] = ()
    user_agent: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    kind: FeedKind = FeedKind.RSS
    full_text: FullText = FullText.NEVER  # page sources always fetch their links
    links: str | None = None  # CSS selector of the article links (kind page)
    telegram: str | None = None  # the channel's username (kind telegram), when known

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FeedKind(self.kind))
        object.__setattr__(self, "full_text", FullText(self.full_text))


@dataclass(frozen=True)
class Rule:
    """A watch rule; the semantics live in ``match.py``'s module docstring."""

    name: str
    notify: tuple[str, ...] = ()
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    query: str | None = None
    fuzzy: int | None = None  # 0–100 similarity for terms of ≥5 letters
    feeds: tuple[str, ...] = ()  # feed ids or tags; empty = every feed
    languages: tuple[str, ...] = ()  # empty = every language
    fields: tuple[str, ...] = FIELDS
    min_hits: int = 1
    priority: Priority = Priority.NORMAL
    surge: bool = False  # alert the rule's channels when its matches surge

    def __post_init__(self) -> None:
        # the matcher's rule check reports a bad value with its location; keep it as written
        if self.priority in Priority.__members__.values():
            object.__setattr__(self, "priority", Priority(self.priority))


@dataclass(frozen=True)
class FeedState:
    """What storage remembers about a feed between polls."""

    feed_id: str
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    last_poll: datetime | None = None
    next_poll: datetime | None = None
    http_status: int | None = None
    entries_seen: int = 0
    errors: int = 0
    last_error: str | None = None
    first_success: datetime | None = None  # None until a poll succeeded once
    page_errors: int = 0  # linked pages that could not be fetched or gave no text, in all


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one successful request; "not modified" is a flag, not an error."""

    feed_id: str
    url: str  # final URL after redirects
    status: int | None  # None for local files
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    max_age: float | None = None  # Cache-Control max-age in seconds, if sent


@dataclass(frozen=True)
class RawEntry:
    """One entry as the feed wrote it (HTML still in it)."""

    guid: str | None = None
    link: str | None = None
    title: str = ""
    summary_html: str = ""
    content_html: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    image: str | None = None  # absolute http(s) URL of the entry's image (media, enclosure)


@dataclass(frozen=True)
class ParsedFeed:
    """A feed document reduced to what monitor uses."""

    title: str | None = None
    link: str | None = None
    language: str | None = None
    entries: tuple[RawEntry, ...] = ()
    warning: str | None = None  # feedparser's bozo reason when entries were still recovered


class EntryRow(Protocol):
    """What the entries table stores of an entry (and the surge counters read): an
    ``Article``, or an entry whose text was not read (``articles.EntryHead``)."""

    @property
    def key(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def link(self) -> str | None: ...

    @property
    def published(self) -> datetime | None: ...


@dataclass(frozen=True)
class Article:
    """A normalised entry: plain text, canonical link, stable key, aware UTC date."""

    key: str  # stable per feed: GUID, else canonical link, else hash of title+date
    feed_id: str
    title: str
    summary: str = ""
    content: str = ""  # empty when it would only repeat the summary
    link: str | None = None
    published: datetime | None = None
    language: str | None = None
    source: str = ""  # display name of the feed
    guid: str | None = None
    image: str | None = None  # http(s) URL: feed media/enclosure, or the page's og:image
    page: str = ""  # the linked page's main text (``full_text``, page sources), else ""

    def field_text(self, name: str) -> str:
        """The text of one matchable field ("title", "summary", "content" or "page")."""
        return getattr(self, name)


@dataclass(frozen=True)
class Hit:
    """Where a term hit: ``text`` is ``field_text(field)[start:end]`` of the original."""

    term: str
    text: str
    field: str
    start: int
    end: int


@dataclass(frozen=True)
class Match:
    """A rule that matched an article, with every hit that made it match."""

    rule: str
    hits: tuple[Hit, ...] = ()


@dataclass(frozen=True)
class Alert:
    """One message for one channel, rendered and ready to queue: what it is says ``kind``."""

    article_key: str
    feed_id: str
    channel: str
    rules: tuple[str, ...]
    html: str  # Telegram HTML, at most 4096 characters after parsing
    text: str  # the same alert as readable plain text (console)
    link: str | None = None
    title: str = ""
    priority: Priority = Priority.NORMAL  # high when a high-priority rule matched
    source: str = ""  # the feed's display name (listed in digests)
    published: datetime | None = None
    kind: AlertKind = AlertKind.ARTICLE
    story: str = ""  # the outbox's one-per-channel key (``stories.story_key`` for articles)
    photo_url: str | None = None  # send as a photo (by URL) with ``caption``...
    photo_png: bytes | None = None  # ... or these PNG bytes (a chart); URL wins if both
    caption: str | None = None  # Telegram HTML, ≤ 1024 characters after parsing


@dataclass(frozen=True)
class Delivery:
    """What Telegram (or the console) answered for an alert."""

    alert_id: int
    ok: bool
    message_id: int | None = None
    error: str | None = None
    retry_after: float | None = None
    permanent: bool = False  # retrying this message will not help
    channel_broken: bool = False  # nothing will reach this chat until an operator acts
