"""A public Telegram channel's web preview (``https://t.me/s/NAME``) → one entry per post; pure.

No login and no MTProto: the preview is a plain HTML page listing the last
~20 posts, oldest first, each a ``div.tgme_widget_message[data-post="NAME/ID"]``
(the markup RSSHub's ``telegram/channel`` route and snscrape's ``telegram``
module read).

One post → one ``RawEntry``:

- key (``guid``) and link: ``https://t.me/NAME/ID`` from ``data-post``. An
  edited post keeps its id, so it is never a new entry (``Post.edited`` says
  the preview marked it "edited").
- time: the ``<time datetime>`` in the post's date link (aware UTC).
- text: the post's own text block (``js-message_text``; never the quoted post
  of a reply) with line breaks kept (``<br>`` and blocks → newline), links as
  their text, emoji (``<i class="emoji"><b>😀</b></i>``) as the character;
  views, reactions, buttons, author avatars and the footer are not text. A
  media-only post's caption is that same block, so it is the text; an album
  is one post in the preview, so one entry.
- a forwarded post starts with the line ``Forwarded from NAME``; a document or
  poll adds the line ``Document: NAME`` or ``Poll: QUESTION``.
- a link preview is appended after the text as the line ``SITE — TITLE``
  (whichever of the two exist) and then its description, so rules can match
  the linked article's headline.
- title: the text's first line, trimmed (at most ``TITLE_MAX`` characters);
  without text, the link preview's title; else a label for the media
  ("Photo", "Album: 3 items", "Video", "Document: NAME", "Poll: QUESTION" …).
- service messages ("channel created", "pinned a message" …) are dropped.

``summary_html`` holds the text escaped, newlines as ``<br>``, so
``articles.to_articles`` yields exactly the text above.

Paging: when more than a page of posts arrived since the last poll, the
fetcher follows ``?before=ID`` pages, at most ``MAX_BEFORE_PAGES``;
``next_before`` decides whether and which.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from lxml import etree

from monitor.models import ParsedFeed, RawEntry
from monitor.sources._html import classes, element_text, fold, parse_html

__all__ = [
    "MAX_BEFORE_PAGES",
    "ChannelPage",
    "LinkPreview",
    "Post",
    "before_url",
    "channel_name",
    "next_before",
    "parse_channel_page",
    "preview_url",
]

#: Older pages (``?before=``) one poll may follow after the first.
MAX_BEFORE_PAGES = 5
#: Posts read from one page (the preview shows about 20).
MAX_POSTS_PER_PAGE = 200
#: Characters of text kept per post (Telegram allows 4096 plus a link preview).
MAX_TEXT_CHARS = 20_000
#: Characters of a title cut from the first line.
TITLE_MAX = 200

_HOSTS = frozenset(("t.me", "www.t.me", "telegram.me", "www.telegram.me", "telegram.dog"))
# Public usernames: 5–32 characters, a letter first (a few old ones have 4).
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
# First path segments of t.me links that are not channels.
_RESERVED = frozenset(
    (
        "s", "c", "joinchat", "addstickers", "addemoji", "addtheme", "addlist", "share",
        "proxy", "socks", "iv", "login", "setlanguage", "bg", "invoice", "confirmphone",
        "boost", "contact", "m", "nft", "giftcode", "i", "k", "a", "z", "dl", "apps",
    )
)  # fmt: skip

_TEXT = "tgme_widget_message_text"
_JS_TEXT = "js-message_text"
_WANTED = frozenset(
    (
        _TEXT,
        _JS_TEXT,
        "tgme_widget_message_date",
        "tgme_widget_message_meta",
        "tgme_widget_message_forwarded_from",
        "tgme_widget_message_forwarded_from_name",
        "tgme_widget_message_from_author",
        "tgme_widget_message_link_preview",
        "link_preview_site_name",
        "link_preview_title",
        "link_preview_description",
        "tgme_widget_message_photo_wrap",
        "tgme_widget_message_video_player",
        "tgme_widget_message_grouped_wrap",
        "tgme_widget_message_document_title",
        "tgme_widget_message_poll_question",
        "tgme_widget_message_voice",
        "tgme_widget_message_sticker",
        "tgme_widget_message_tgsticker",
        "tgme_widget_message_videosticker",
        "tgme_widget_message_location_wrap",
        "tgme_widget_message_roundvideo",
    )
)
# Never this post's own content: a quoted post, and furniture.
_SKIP = frozenset(
    (
        "tgme_widget_message_reply",
        "tgme_widget_message_user",
        "tgme_widget_message_reactions",
        "tgme_widget_message_inline_keyboard",
        "tgme_widget_message_views",
    )
)
_TEXT_SKIP = frozenset(("copyonly",))


@dataclass(frozen=True)
class LinkPreview:
    """The card Telegram shows under a post with a link."""

    url: str | None
    site: str = ""
    title: str = ""
    description: str = ""


@dataclass(frozen=True)
class Post:
    """One channel post as the preview shows it."""

    channel: str  # as ``data-post`` spells it
    id: int
    link: str  # https://t.me/NAME/ID
    published: datetime | None
    text: str  # the post's own text (caption for media), line breaks kept
    title: str
    edited: bool = False
    forwarded_from: str | None = None
    author: str | None = None  # the signature under the post, if the channel shows one
    media: tuple[str, ...] = ()  # "photo", "video", "document", "poll" … one per item
    attachment: str | None = None  # "Document: NAME" or "Poll: QUESTION"
    link_preview: LinkPreview | None = None

    @property
    def full_text(self) -> str:
        """What rules see: forward note, attachment, text, then the link preview."""
        lines = []
        if self.forwarded_from:
            lines.append(f"Forwarded from {self.forwarded_from}")
        if self.attachment:
            lines.append(self.attachment)
        if self.text:
            lines.append(self.text)
        preview = self.link_preview
        if preview is not None:
            head = " — ".join(p for p in (preview.site, preview.title) if p)
            lines.extend(p for p in (head, preview.description) if p)
        return "\n".join(lines)

    def entry(self) -> RawEntry:
        """This post as a feed entry (HTML-escaped text, ``<br>`` for line breaks)."""
        body = "<br>".join(html.escape(line, quote=False) for line in self.full_text.split("\n"))
        return RawEntry(
            guid=self.link,
            link=self.link,
            title=html.escape(self.title, quote=False),
            summary_html=body,
            published=self.published,
            author=self.author,
        )


@dataclass(frozen=True)
class ChannelPage:
    """One preview page: its posts in page order (oldest first) and the older-page cursor."""

    channel: str
    title: str | None = None  # the channel's display name
    posts: tuple[Post, ...] = ()
    before: int | None = None  # ``data-before`` of the "load older" link; None: no older posts
    # False when the page is not a channel preview at all (t.me sends private or
    # unknown channels, and channels that disabled the preview, to a plain page)
    available: bool = True

    @property
    def entries(self) -> tuple[RawEntry, ...]:
        """Every post as a ``RawEntry``, in page order."""
        return tuple(p.entry() for p in self.posts)

    def feed(self) -> ParsedFeed:
        """The page as the parser stage's value, so the pipeline treats it as a feed."""
        return ParsedFeed(
            title=self.title,
            link=preview_url(self.channel),
            entries=self.entries,
        )


def channel_name(url: str) -> str | None:
    """The channel in ``t.me/NAME``, ``t.me/s/NAME``, ``t.me/NAME/123``,
    ``telegram.me/…`` (scheme optional); None for anything else (invite links,
    private ``t.me/c/…`` links, other hosts)."""
    text = (url or "").strip()
    if not text or len(text) > 2048:
        return None
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or host not in _HOSTS:
        return None
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[0] == "s":
        segments = segments[1:]
    elif segments and segments[0].lower() in _RESERVED:
        return None
    if not segments:
        return None
    name = segments[0].lstrip("@")
    if not _NAME.match(name) or name.lower() in _RESERVED:
        return None
    return name


def preview_url(channel: str, before: int | None = None) -> str:
    """The preview page of a channel, or of the posts older than ``before``."""
    url = f"https://t.me/s/{quote(channel, safe='')}"
    return f"{url}?before={int(before)}" if before is not None else url


def before_url(url: str, before: int) -> str:
    """``url`` with its ``before`` query parameter set: paging on a configured preview URL,
    a mirror or self-hosted preview included (other parameters kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "before"]
    query.append(("before", str(int(before))))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def next_before(
    page: ChannelPage,
    known_max_id: int | None,
    pages_fetched: int = 1,
    max_pages: int = 1 + MAX_BEFORE_PAGES,
    fetched_before: int | None = None,
) -> int | None:
    """The ``before`` id of the next older page to fetch, or None to stop.

    ``known_max_id`` is the highest post id stored for this channel (None on
    the first poll: one page is the backfill, never more). Older pages are
    needed only while this page's oldest post is newer than the next expected
    id; a gap left by deleted posts or album ids costs at most one page that
    overlaps. Stops at ``max_pages`` pages in all, and when the page has no
    older-page link or the cursor does not move back from ``fetched_before``
    (the ``before`` this page was fetched with; a misbehaving mirror cannot loop).
    """
    if known_max_id is None or pages_fetched >= max_pages or not page.posts:
        return None
    oldest = min(p.id for p in page.posts)
    if oldest <= known_max_id + 1 or page.before is None:
        return None
    cursor = min(page.before, oldest)
    if fetched_before is not None and cursor >= fetched_before:
        return None
    return cursor if cursor > known_max_id + 1 else None


def parse_channel_page(markup: bytes | str, channel: str) -> ChannelPage:
    """Every post on a preview page (``t.me/s/NAME``), service messages dropped.

    ``channel`` names the channel when the page has no post to tell its
    spelling; unparseable input gives an empty page, never an exception, and
    ``available`` False says the page is no channel preview (the caller
    reports that, rather than "no new posts").
    """
    root = parse_html(markup, "utf-8")
    if root is None:
        return ChannelPage(channel=channel, available=False)
    title: str | None = None
    before: int | None = None
    posts: dict[int, Post] = {}
    spelled = channel
    history = False
    for element in root.iter(etree.Element):
        names = classes(element)
        if not names:
            continue
        if "tgme_channel_history" in names:
            history = True
        elif "tgme_widget_message" in names and element.get("data-post"):
            if len(posts) >= MAX_POSTS_PER_PAGE:
                continue
            post = _post(element)
            if post is not None and post.id not in posts:
                posts[post.id] = post
                spelled = post.channel
        elif "tgme_channel_info_header_title" in names and title is None:
            title = element_text(element, limit=2000)[:300] or None
        elif "tme_messages_more" in names and element.get("data-before") and before is None:
            before = _int(element.get("data-before"))
    return ChannelPage(
        channel=spelled,
        title=title,
        posts=tuple(sorted(posts.values(), key=lambda p: p.id)),
        before=before,
        available=history or bool(posts),
    )


def _post(message: etree._Element) -> Post | None:
    names = classes(message)
    if "service_message" in names:
        return None
    channel, _, number = (message.get("data-post") or "").strip().partition("/")
    post_id = _int(number)
    if post_id is None or not _NAME.match(channel.lstrip("@")):
        return None
    channel = channel.lstrip("@")
    found = _index(message)

    text_nodes = found.get(_JS_TEXT) or found.get(_TEXT) or []
    text = (
        element_text(text_nodes[0], _TEXT_SKIP, 4 * MAX_TEXT_CHARS)[:MAX_TEXT_CHARS]
        if text_nodes
        else ""
    )

    meta = found.get("tgme_widget_message_meta", [])
    edited = bool(meta) and "edited" in _own_text(meta[0]).lower()

    forwarded = _forwarded(found)
    author = _first_text(found, "tgme_widget_message_from_author")
    preview = _preview(found)
    media = _media(found)
    attachment = None
    if media and media[0] in ("document", "poll"):
        attachment = _media_label(media[:1], found)
    title = _title(text, preview, media, found)
    return Post(
        channel=channel,
        id=post_id,
        link=f"https://t.me/{channel}/{post_id}",
        published=_published(found),
        text=text,
        title=title,
        edited=edited,
        forwarded_from=forwarded,
        author=author,
        media=media,
        attachment=attachment,
        link_preview=preview,
    )


def _index(message: etree._Element) -> dict[str, list[etree._Element]]:
    """Class name → elements of this post carrying it, in document order (one walk)."""
    found: dict[str, list[etree._Element]] = {}
    walker = etree.iterwalk(message, events=("start",))
    for _, node in walker:
        if node is message or not isinstance(node.tag, str):
            continue
        names = classes(node)
        if not names:
            if node.tag == "time" and node.get("datetime"):
                found.setdefault("time", []).append(node)
            continue
        if _SKIP.intersection(names):
            walker.skip_subtree()
            continue
        for name in names:
            if name in _WANTED:
                found.setdefault(name, []).append(node)
        if node.tag == "time" and node.get("datetime"):
            found.setdefault("time", []).append(node)
    return found


def _published(found: dict[str, list[etree._Element]]) -> datetime | None:
    candidates: list[etree._Element] = []
    for link in found.get("tgme_widget_message_date", [])[:1]:
        candidates.extend(t for t in link.iter("time") if t.get("datetime"))
    candidates.extend(found.get("time", [])[:3])
    for node in candidates:
        value = _datetime(node.get("datetime") or "")
        if value is not None:
            return value
    return None


def _datetime(value: str) -> datetime | None:
    value = value.strip()
    if not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _forwarded(found: dict[str, list[etree._Element]]) -> str | None:
    name = _first_text(found, "tgme_widget_message_forwarded_from_name")
    if name:
        return name
    box = _first_text(found, "tgme_widget_message_forwarded_from")
    if not box:
        return None
    box = re.sub(r"^\s*forwarded from\s*", "", box, flags=re.IGNORECASE).strip()
    return box or None


def _preview(found: dict[str, list[etree._Element]]) -> LinkPreview | None:
    cards = found.get("tgme_widget_message_link_preview")
    if not cards:
        return None
    card = cards[0]

    def inside(name: str) -> str:
        for node in found.get(name, []):
            if any(parent is card for parent in node.iterancestors()):
                return element_text(node, limit=4000).replace("\n", " ")[:1000]
        return ""

    description = ""
    for node in found.get("link_preview_description", []):
        if any(parent is card for parent in node.iterancestors()):
            description = element_text(node, limit=4 * MAX_TEXT_CHARS)[:MAX_TEXT_CHARS]
            break
    href = (card.get("href") or "").strip() or None
    preview = LinkPreview(
        url=href,
        site=inside("link_preview_site_name"),
        title=inside("link_preview_title"),
        description=description,
    )
    if not (preview.site or preview.title or preview.description):
        return None
    return preview


_MEDIA = (
    ("tgme_widget_message_photo_wrap", "photo"),
    ("tgme_widget_message_video_player", "video"),
    ("tgme_widget_message_roundvideo", "video"),
    ("tgme_widget_message_document_title", "document"),
    ("tgme_widget_message_poll_question", "poll"),
    ("tgme_widget_message_voice", "voice"),
    ("tgme_widget_message_sticker", "sticker"),
    ("tgme_widget_message_tgsticker", "sticker"),
    ("tgme_widget_message_videosticker", "sticker"),
    ("tgme_widget_message_location_wrap", "location"),
)


def _media(found: dict[str, list[etree._Element]]) -> tuple[str, ...]:
    cards = found.get("tgme_widget_message_link_preview", [])
    kinds: list[str] = []
    for name, kind in _MEDIA:
        for node in found.get(name, [])[:100]:
            # a link preview's image is the linked page's, not the post's
            if cards and any(p is cards[0] for p in node.iterancestors()):
                continue
            kinds.append(kind)
    return tuple(kinds)


def _title(
    text: str,
    preview: LinkPreview | None,
    media: tuple[str, ...],
    found: dict[str, list[etree._Element]],
) -> str:
    first = text.split("\n", 1)[0].strip() if text else ""
    if not first and preview is not None:
        first = preview.title or preview.site
    if first:
        if len(first) > TITLE_MAX:
            cut = first[:TITLE_MAX].rsplit(" ", 1)[0] or first[:TITLE_MAX]
            first = cut.rstrip() + "…"
        return first
    return _media_label(media, found)


def _media_label(media: tuple[str, ...], found: dict[str, list[etree._Element]]) -> str:
    if not media:
        return "Post"
    visual = [m for m in media if m in ("photo", "video")]
    if len(visual) > 1:
        return f"Album: {len(visual)} items"
    named = {
        "document": "tgme_widget_message_document_title",
        "poll": "tgme_widget_message_poll_question",
    }
    if media[0] in named:
        name = _first_text(found, named[media[0]])
        if name:
            return f"{media[0].capitalize()}: {name[:TITLE_MAX]}"
    return "Voice message" if media[0] == "voice" else media[0].capitalize()


def _first_text(found: dict[str, list[etree._Element]], name: str) -> str | None:
    nodes = found.get(name)
    if not nodes:
        return None
    return fold(element_text(nodes[0], limit=2000).replace("\n", " "))[:300] or None


def _own_text(element: etree._Element) -> str:
    """The element's own text and its children's tails, never the children's text
    (an author signature could hold any word)."""
    parts = [element.text or ""]
    parts.extend(child.tail or "" for child in element)
    return "".join(parts)


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    number = int(value)
    return number if number > 0 else None
