"""A re-implementation of Telegram's ``parse_mode=HTML`` parser, for tests.

The Bot API runs TDLib's HTML parser on every ``sendMessage`` with
``parse_mode=HTML`` and then cleans and trims the result before the length
limit applies.  Tests use this module to prove that what we send would be
accepted, and the Bot API stand-in (``tests.fakes.botapi``) uses it to refuse
what Telegram would refuse, with the same message.

What it reproduces, byte for byte where it matters:

* the scan over the **UTF-8 bytes** of the text, so every error message carries
  the same *byte offset* Telegram reports;
* tag names (ASCII case-insensitive), attribute parsing (quoted values with
  entity decoding, unquoted "name tokens" of letters, digits, ``.`` and ``-``,
  value-less attributes such as ``<blockquote expandable>``), ``</>`` closing the
  innermost tag, unknown attributes ignored;
* character references: ``&lt; &gt; &amp; &quot;`` (``;`` optional), decimal and
  lower-case-``x`` hex numeric references, anything else kept literally;
* entity construction (zero-length entities dropped, ``<pre><code
  class="language-x">`` → ``pre`` with ``language``, ``<a>`` without ``href``
  using its text, ``tg://user?id=N`` → ``text_mention``);
* the clean-up after parsing: control characters become spaces, ``\\r`` and
  U+2028–U+202E disappear, trailing blanks are cut, leading blanks are cut up to
  the first entity;
* entity offsets and lengths in UTF-16 code units, the length limit in code
  points (:func:`message_length`).

Known simplifications (documented, not hidden): link validation is a small
approximation of TDLib's ``check_link``; entities are not re-split or merged the
way ``fix_entities`` does for exotic overlaps (the HTML stack can only produce
nested entities anyway); auto-detected entities (URLs, mentions, hashtags) are
not added.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = [
    "CAPTION_LENGTH_MAX",
    "TEXT_LENGTH_MAX",
    "TelegramHTMLError",
    "clean_text",
    "message_length",
    "parse_telegram_html",
    "utf16_length",
]

TEXT_LENGTH_MAX = 4096
"""``message_text_length_max``: code points after parsing and clean-up."""
CAPTION_LENGTH_MAX = 1024
"""``message_caption_length_max``: code points after parsing and clean-up."""

_SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SPACE = frozenset(b" \t\r\n\v\x00")  # td::is_space, NUL included (C strings)
_DATE_FORMAT = re.compile(r"r|w?[dD]?[tT]?")


class TelegramHTMLError(ValueError):
    """The text is not HTML Telegram accepts; ``message`` is the parser's own wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def message_length(plain: str) -> int:
    """Length as Telegram limits it: Unicode code points (not UTF-16 units, not bytes)."""
    return len(plain)


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, the unit of entity offsets and lengths."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


class _Bytes:
    """The submitted text as a NUL-terminated byte string, as the C++ parser sees it."""

    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def __getitem__(self, i: int) -> int:
        return self.data[i] if i < self.size else 0


def _decode_entity(t: _Bytes, pos: int) -> tuple[int, int]:
    """Decode the character reference at ``pos`` (an ``&``): (code point or 0, new pos)."""
    end = pos + 1
    res = 0
    if t[pos + 1] == ord("#"):
        end += 1
        if t[pos + 2] == ord("x"):
            end += 1
            while chr(t[end]) in "0123456789abcdefABCDEF" and t[end]:
                res = (res * 16 + int(chr(t[end]), 16)) & 0xFFFFFFFF
                end += 1
        else:
            while 0x30 <= t[end] <= 0x39:
                res = (res * 10 + t[end] - 0x30) & 0xFFFFFFFF
                end += 1
        if res == 0 or res >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while 0x41 <= t[end] <= 0x5A or 0x61 <= t[end] <= 0x7A:
            end += 1
        name = t.data[pos + 1 : end]
        res = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}.get(name, 0)
        if res == 0:
            return 0, pos
    return res, end + 1 if t[end] == ord(";") else end


def _encode_code_point(code: int) -> bytes:
    """UTF-8 bytes of a code point, surrogates included (TDLib writes them unchecked)."""
    return chr(code).encode("utf-8", "surrogatepass")


def _is_alnum(c: int) -> bool:
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


def _link_user_id(url: str) -> int | None:
    """``tg://user?id=N`` → N, the way LinkManager::get_link_user_id reads it."""
    m = re.fullmatch(r"tg:(?://)?user\?(?:.*&)?id=(\d{1,19})(?:&.*)?", url, re.IGNORECASE)
    if m:
        user_id = int(m.group(1))
        if 0 < user_id < 1 << 40:
            return user_id
    return None


def _checked_link(url: str) -> str:
    """Simplified LinkManager::get_checked_link: a normalised URL, or "" if invalid."""
    url = url.strip()
    if not url or any(ch in url for ch in " \t\n\r<>\"'"):
        return ""
    low = url.lower()
    for scheme in ("tg:", "ton:", "tonsite:"):
        if low.startswith(scheme):
            rest = url[len(scheme) :].removeprefix("//")
            return url if rest else ""
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    host = parts.hostname
    if not re.fullmatch(r"[0-9A-Za-z\-._~\u0080-\U0010ffff]+", host) or ".." in host:
        return ""
    if "." not in host.strip(".") and host.lower() != "localhost":
        return ""
    if not parts.path and not parts.query and not parts.fragment:
        url += "/"
    return url


def _raw_parse(text: str) -> tuple[bytes, list[dict], bool]:
    """The tag/entity scan of TDLib's parse_html: (result bytes, entities, needs utf8 check)."""
    t = _Bytes(text.encode("utf-8", "surrogatepass"))
    out = bytearray()
    entities: list[dict] = []
    utf16 = 0
    recheck = False
    # each open tag: [name, argument, utf16 offset, byte offset in result, extra]
    stack: list[list] = []
    i = 0
    while i < t.size:
        c = t[i]
        if c == 0x26:  # '&'
            code, new_i = _decode_entity(t, i)
            if code:
                utf16 += 1 + (code > 0xFFFF)
                if 0xD800 <= code <= 0xDFFF:
                    recheck = True
                out += _encode_code_point(code)
                i = new_i
                continue
        if c != 0x3C:  # not '<'
            if c & 0xC0 != 0x80:
                utf16 += 1 + (c >= 0xF0)
            out.append(c)
            i += 1
            continue

        begin = i
        i += 1
        if t[i] != 0x2F:  # start tag
            while t[i] not in _SPACE and t[i] != 0x3E:
                i += 1
            if t[i] == 0:
                raise TelegramHTMLError(f"Unclosed start tag at byte offset {begin}")
            tag = t.data[begin + 1 : i].decode("utf-8", "surrogatepass").lower()
            tag = "".join(ch.lower() if ch.isascii() else ch for ch in tag)
            if tag not in _SUPPORTED_TAGS:
                raise TelegramHTMLError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            extra: dict[str, str] = {}
            while t[i] != 0x3E:
                while t[i] != 0 and t[i] in _SPACE:
                    i += 1
                if t[i] == 0x3E:
                    break
                attr_begin = i
                while t[i] not in _SPACE and t[i] not in b"=>/\"'":
                    i += 1
                attr_name = t.data[attr_begin:i]
                if not attr_name:
                    raise TelegramHTMLError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while t[i] != 0 and t[i] in _SPACE:
                    i += 1
                if t[i] != 0x3D:  # no '=': a value-less attribute
                    if t[i] == 0:
                        raise TelegramHTMLError(
                            f'Unclosed start tag "{tag}" at byte offset {begin}'
                        )
                    if tag == "blockquote" and attr_name == b"expandable":
                        argument = "1"
                    continue
                i += 1
                while t[i] != 0 and t[i] in _SPACE:
                    i += 1
                if t[i] == 0:
                    raise TelegramHTMLError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if t[i] not in (0x27, 0x22):
                    token_begin = i
                    while _is_alnum(t[i]) or t[i] in (0x2E, 0x2D):
                        i += 1
                    value = t.data[token_begin:i].decode("ascii").lower()
                    if t[i] not in _SPACE and t[i] != 0x3E:
                        raise TelegramHTMLError(
                            f"Unexpected end of name token at byte offset {token_begin}"
                        )
                else:
                    quote = t[i]
                    i += 1
                    buf = bytearray()
                    while t[i] != quote and t[i] != 0:
                        if t[i] == 0x26:
                            code, new_i = _decode_entity(t, i)
                            if code:
                                buf += _encode_code_point(code)
                                i = new_i
                                continue
                        buf.append(t[i])
                        i += 1
                    if t[i] == quote:
                        i += 1
                    value = buf.decode("utf-8", "surrogatepass")
                if t[i] == 0:
                    raise TelegramHTMLError(f"Unclosed start tag at byte offset {begin}")
                if tag == "a" and attr_name == b"href":
                    argument = value
                elif tag == "code" and attr_name == b"class" and value.startswith("language-"):
                    argument = value[9:]
                elif tag == "span" and attr_name == b"class" and value.startswith("tg-"):
                    argument = value[3:]
                elif tag == "tg-emoji" and attr_name == b"emoji-id":
                    argument = value
                elif tag == "blockquote" and attr_name == b"expandable":
                    argument = "1"
                elif tag == "tg-time" and attr_name in (b"unix", b"format"):
                    extra[attr_name.decode()] = value
            if tag == "span" and argument != "spoiler":
                raise TelegramHTMLError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            stack.append([tag, argument, utf16, len(out), extra])
            i += 1  # past '>'
            continue

        # end tag
        if not stack:
            raise TelegramHTMLError(f"Unexpected end tag at byte offset {begin}")
        while t[i] not in _SPACE and t[i] != 0x3E:
            i += 1
        end_name = t.data[begin + 2 : i].decode("utf-8", "surrogatepass")
        end_name = "".join(ch.lower() if ch.isascii() else ch for ch in end_name)
        while t[i] in _SPACE and t[i] != 0:
            i += 1
        if t[i] != 0x3E:
            raise TelegramHTMLError(f"Unclosed end tag at byte offset {begin}")
        tag, argument, start, start_byte, extra = stack[-1]
        if end_name and end_name != tag:
            raise TelegramHTMLError(
                f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                f'found "</{end_name}>"'
            )
        if utf16 > start:
            _close_entity(entities, tag, argument, extra, start, utf16 - start, out, start_byte)
        stack.pop()
        i += 1  # past '>'
    if stack:
        raise TelegramHTMLError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for e in entities:
        if e["type"] == "code":
            e.pop("language", None)
    return bytes(out), entities, recheck


def _close_entity(
    entities: list[dict],
    tag: str,
    argument: str,
    extra: dict[str, str],
    offset: int,
    length: int,
    out: bytearray,
    start_byte: int,
) -> None:
    """Append the entity a closed tag stands for (the end-tag branch of parse_html)."""
    simple = {
        "i": "italic",
        "em": "italic",
        "b": "bold",
        "strong": "bold",
        "s": "strikethrough",
        "strike": "strikethrough",
        "del": "strikethrough",
        "u": "underline",
        "ins": "underline",
        "tg-spoiler": "spoiler",
        "span": "spoiler",
    }
    if tag in simple:
        entities.append({"type": simple[tag], "offset": offset, "length": length})
    elif tag == "tg-emoji":
        if not re.fullmatch(r"[+-]?\d{1,19}", argument) or int(argument) == 0:
            raise TelegramHTMLError("Invalid custom emoji identifier specified")
        entities.append(
            {
                "type": "custom_emoji",
                "offset": offset,
                "length": length,
                "custom_emoji_id": str(int(argument)),
            }
        )
    elif tag == "tg-time":
        unix, fmt = extra.get("unix", ""), extra.get("format", "")
        if not re.fullmatch(r"\d{1,10}", unix) or not _DATE_FORMAT.fullmatch(fmt):
            raise TelegramHTMLError("Invalid date format used")
        entity = {"type": "date_time", "offset": offset, "length": length, "unix_time": int(unix)}
        if fmt:
            entity["date_time_format"] = fmt
        entities.append(entity)
    elif tag == "a":
        url = argument or bytes(out[start_byte:]).decode("utf-8", "surrogatepass")
        user_id = _link_user_id(url)
        if user_id is not None:
            entities.append(
                {
                    "type": "text_mention",
                    "offset": offset,
                    "length": length,
                    "user": {"id": user_id, "is_bot": False, "first_name": str(user_id)},
                }
            )
        else:
            url = _checked_link(url)
            if url:
                link = {"type": "text_link", "offset": offset, "length": length, "url": url}
                entities.append(link)
    elif tag == "pre":
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == offset
            and last["length"] == length
            and last.get("language")
        ):
            last["type"] = "pre"
        else:
            entities.append({"type": "pre", "offset": offset, "length": length})
    elif tag == "code":
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "pre"
            and last["offset"] == offset
            and last["length"] == length
            and argument
        ):
            last["language"] = argument
        else:
            entity = {"type": "code", "offset": offset, "length": length}
            if argument:
                entity["language"] = argument
            entities.append(entity)
    elif tag == "blockquote":
        kind = "expandable_blockquote" if argument else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})
    else:  # pragma: no cover - guarded by _SUPPORTED_TAGS
        raise AssertionError(tag)


_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "date_time": 50,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}


def _sort_key(e: dict) -> tuple[int, int, int]:
    """TDLib's sort_entities order: offset, longer first, then type priority."""
    return (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50))


def clean_text(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """TDLib's clean-up after parsing: control chars, invisible marks, trimming.

    Entities are shifted for removed characters and cut to the trimmed text;
    those that end up empty are dropped.
    """
    # Map each code point to its UTF-16 position so entity bounds can be moved.
    kept: list[str] = []
    new_pos: list[int] = []  # utf16 position in the new text of each old utf16 unit boundary
    pos = 0
    for ch in text:
        o = ord(ch)
        units = 2 if o > 0xFFFF else 1
        for _ in range(units):
            new_pos.append(pos)
        if ch == "\r" or 0x2028 <= o <= 0x202E or o in (0x0333, 0x033F, 0x030A):
            continue
        if o < 0x20 and ch != "\n":
            ch = " "
        kept.append(ch)
        pos += units
    new_pos.append(pos)
    cleaned = "".join(kept)
    moved = []
    for e in entities:
        start, end = new_pos[e["offset"]], new_pos[e["offset"] + e["length"]]
        if end > start:
            moved.append({**e, "offset": start, "length": end - start})
    # trailing blanks are cut
    stripped = cleaned.rstrip(" \n")
    total = utf16_length(stripped)
    cut = []
    for e in moved:
        end = min(e["offset"] + e["length"], total)
        if end > e["offset"]:
            cut.append({**e, "length": end - e["offset"]})
    # leading blanks are cut, but never past the first entity
    lead = len(stripped) - len(stripped.lstrip(" \n"))
    if cut:
        lead = min(lead, min(e["offset"] for e in cut))
    final_text = stripped[lead:]
    for e in cut:
        e["offset"] -= lead
    cut.sort(key=_sort_key)
    return final_text, _drop_forbidden_nesting(cut)


def _drop_forbidden_nesting(entities: list[dict]) -> list[dict]:
    """Drop entities Telegram refuses to nest: anything inside code/pre, nested quotes."""
    result: list[dict] = []
    for e in entities:
        end = e["offset"] + e["length"]
        inside = [
            p for p in result if p["offset"] <= e["offset"] and end <= p["offset"] + p["length"]
        ]
        if any(p["type"] in ("code", "pre") for p in inside):
            continue
        if e["type"].endswith("blockquote") and any(
            p["type"].endswith("blockquote") for p in inside
        ):
            continue
        result.append(e)
    return result


def parse_telegram_html(text: str) -> tuple[str, list[dict]]:
    """Parse ``text`` as Telegram does for ``parse_mode=HTML``.

    Returns the plain text after parsing and clean-up, and the entities as Bot API
    ``MessageEntity`` dicts (UTF-16 offsets).  Raises :class:`TelegramHTMLError`
    with Telegram's exact parser message (the part after
    ``Bad Request: can't parse entities: ``).  It does not apply the empty-text
    or length checks: use :func:`message_length` against :data:`TEXT_LENGTH_MAX`.
    """
    raw, entities, recheck = _raw_parse(text)
    try:
        plain = raw.decode("utf-8")
    except UnicodeDecodeError:
        if recheck:
            raise TelegramHTMLError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            ) from None
        raise TelegramHTMLError("Strings must be encoded in UTF-8") from None
    entities.sort(key=_sort_key)
    return clean_text(plain, entities)
