"""The HTML parser stand-in behaves as Telegram's (TDLib parse_html + clean-up)."""

from __future__ import annotations

import html

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.telegram_html import (
    TEXT_LENGTH_MAX,
    TelegramHTMLError,
    clean_text,
    message_length,
    parse_telegram_html,
    utf16_length,
)

# (submitted text, exact parser message).  Offsets are UTF-8 *byte* offsets.
ERROR_CASES = [
    ("a < b", 'Unsupported start tag "" at byte offset 2'),
    ("1<2 and 3", 'Unsupported start tag "2" at byte offset 1'),
    ("line<br/>next", 'Unsupported start tag "br/" at byte offset 4'),
    ("line<br>next", 'Unsupported start tag "br" at byte offset 4'),
    ("<p>para</p>", 'Unsupported start tag "p" at byte offset 0'),
    ("<!-- note -->", 'Unsupported start tag "!--" at byte offset 0'),
    ("Привет <x>", 'Unsupported start tag "x" at byte offset 13'),
    ("مرحبا <div>", 'Unsupported start tag "div" at byte offset 11'),
    ("😀<img src=x>", 'Unsupported start tag "img" at byte offset 4'),
    ("price <", "Unclosed start tag at byte offset 6"),
    ("1<2", "Unclosed start tag at byte offset 1"),
    ('<a href="x"', "Unclosed start tag at byte offset 0"),
    ("<a href=", 'Unclosed start tag "a" at byte offset 0'),
    ('<a href="https://x.org">x', 'Can\'t find end tag corresponding to start tag "a"'),
    ("<b><i>x</i>", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<b><i>x", 'Can\'t find end tag corresponding to start tag "i"'),
    ("<b =x>y</b>", 'Empty attribute name in the tag "b" at byte offset 0'),
    ('<a href="x"/>y</a>', 'Empty attribute name in the tag "a" at byte offset 0'),
    ("<a href=https://x.org>x</a>", "Unexpected end of name token at byte offset 8"),
    (
        "<a href='https://x.org' target=_blank>x</a>",
        "Unexpected end of name token at byte offset 31",
    ),
    ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ('ab<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 2'),
    ("x</b>", "Unexpected end tag at byte offset 1"),
    ("<b>x</b", "Unclosed end tag at byte offset 4"),
    ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
    ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
    ('<tg-emoji emoji-id="abc">x</tg-emoji>', "Invalid custom emoji identifier specified"),
    ("<tg-emoji>x</tg-emoji>", "Invalid custom emoji identifier specified"),
    ('<tg-time unix="1700000000" format="q">x</tg-time>', "Invalid date format used"),
    (
        "&#xD83D;",
        "Text contains invalid Unicode characters after decoding HTML entities, "
        "check for unmatched surrogate code units",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERROR_CASES)
def test_parser_errors_match_telegram_wording(text: str, message: str) -> None:
    with pytest.raises(TelegramHTMLError) as caught:
        parse_telegram_html(text)
    assert caught.value.message == message
    assert str(caught.value) == message


# (submitted text, plain text after parsing + clean-up, entities)
OK_CASES = [
    ("plain", "plain", []),
    ("<b>bold</b>", "bold", [{"type": "bold", "offset": 0, "length": 4}]),
    ("<B>x</B>", "x", [{"type": "bold", "offset": 0, "length": 1}]),
    ("<b>x</>", "x", [{"type": "bold", "offset": 0, "length": 1}]),
    (
        "<strong>a</strong><em>b</em>",
        "ab",
        [
            {"type": "bold", "offset": 0, "length": 1},
            {"type": "italic", "offset": 1, "length": 1},
        ],
    ),
    ("a > b", "a > b", []),
    ("AT&T &nbsp; &copy;", "AT&T &nbsp; &copy;", []),
    ("&lt;&gt;&amp;&quot;", '<>&"', []),
    ("&lt&gt", "<>", []),
    ("&#65;&#x42;&#X43;", "AB&#X43;", []),
    ("&#0;&#1114111;", "&#0;&#1114111;", []),
    ("&#x1F600;", "😀", []),
    ("<b></b>x", "x", []),
    ("😀<b>😀</b>", "😀😀", [{"type": "bold", "offset": 2, "length": 2}]),
    ("<i>Привет</i>", "Привет", [{"type": "italic", "offset": 0, "length": 6}]),
    ("  x  \n", "x", []),
    ("  <b> x</b>  ", " x", [{"type": "bold", "offset": 0, "length": 2}]),
    ("<b>x</b>   ", "x", [{"type": "bold", "offset": 0, "length": 1}]),
    ("<b>x </b>", "x", [{"type": "bold", "offset": 0, "length": 1}]),
    ("a\r\nb", "a\nb", []),
    ("a\tb\x01c", "a b c", []),
    ("\u202bمرحبا\u202c x", "مرحبا x", []),
    (
        "<u>u</u><ins>i</ins><s>s</s><strike>k</strike><del>d</del>",
        "uiskd",
        [
            {"type": "underline", "offset": 0, "length": 1},
            {"type": "underline", "offset": 1, "length": 1},
            {"type": "strikethrough", "offset": 2, "length": 1},
            {"type": "strikethrough", "offset": 3, "length": 1},
            {"type": "strikethrough", "offset": 4, "length": 1},
        ],
    ),
    (
        '<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>',
        "st",
        [
            {"type": "spoiler", "offset": 0, "length": 1},
            {"type": "spoiler", "offset": 1, "length": 1},
        ],
    ),
    (
        '<a href="https://example.org/a?b=1&amp;c=2">link</a>',
        "link",
        [
            {"type": "text_link", "offset": 0, "length": 4, "url": "https://example.org/a?b=1&c=2"},
        ],
    ),
    (
        "<a href='example.org'>e</a>",
        "e",
        [
            {"type": "text_link", "offset": 0, "length": 1, "url": "http://example.org/"},
        ],
    ),
    (
        "<a>https://t.me/x</a>",
        "https://t.me/x",
        [
            {"type": "text_link", "offset": 0, "length": 14, "url": "https://t.me/x"},
        ],
    ),
    ('<a HREF="https://x.org">x</a>', "x", []),
    ('<a href="not a url">x</a>', "x", []),
    (
        '<a href="tg://user?id=42">u</a>',
        "u",
        [
            {
                "type": "text_mention",
                "offset": 0,
                "length": 1,
                "user": {"id": 42, "is_bot": False, "first_name": "42"},
            },
        ],
    ),
    (
        '<a href="https://x.org" title="t" target="_blank">x</a>',
        "x",
        [
            {"type": "text_link", "offset": 0, "length": 1, "url": "https://x.org/"},
        ],
    ),
    ("<code>c</code>", "c", [{"type": "code", "offset": 0, "length": 1}]),
    ('<code class="language-py">c</code>', "c", [{"type": "code", "offset": 0, "length": 1}]),
    ("<pre>p</pre>", "p", [{"type": "pre", "offset": 0, "length": 1}]),
    (
        '<pre><code class="language-python">x = 1</code></pre>',
        "x = 1",
        [
            {"type": "pre", "offset": 0, "length": 5, "language": "python"},
        ],
    ),
    ("<code><b>x</b></code>", "x", [{"type": "code", "offset": 0, "length": 1}]),
    ("<blockquote>q</blockquote>", "q", [{"type": "blockquote", "offset": 0, "length": 1}]),
    (
        "<blockquote expandable>q</blockquote>",
        "q",
        [
            {"type": "expandable_blockquote", "offset": 0, "length": 1},
        ],
    ),
    (
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
        "👍",
        [
            {
                "type": "custom_emoji",
                "offset": 0,
                "length": 2,
                "custom_emoji_id": "5368324170671202286",
            },
        ],
    ),
    (
        '<tg-time unix="1700000000" format="wDT">t</tg-time>',
        "t",
        [
            {
                "type": "date_time",
                "offset": 0,
                "length": 1,
                "unix_time": 1700000000,
                "date_time_format": "wDT",
            },
        ],
    ),
    (
        "<b>a<i>b</i></b>",
        "ab",
        [
            {"type": "bold", "offset": 0, "length": 2},
            {"type": "italic", "offset": 1, "length": 1},
        ],
    ),
]


@pytest.mark.parametrize(("text", "plain", "entities"), OK_CASES)
def test_accepted_html_gives_telegram_plain_text_and_entities(
    text: str, plain: str, entities: list[dict]
) -> None:
    assert parse_telegram_html(text) == (plain, entities)


def test_attribute_names_are_case_sensitive() -> None:
    # HREF is not href: the link has no URL attribute, so its text is used as the URL.
    assert parse_telegram_html('<a HREF="https://x.org">x.org</a>') == (
        "x.org",
        [{"type": "text_link", "offset": 0, "length": 5, "url": "http://x.org/"}],
    )


def test_length_counts_code_points_not_utf16_units() -> None:
    emoji = "😀" * TEXT_LENGTH_MAX
    plain, _ = parse_telegram_html(emoji)
    assert message_length(plain) == TEXT_LENGTH_MAX
    assert utf16_length(plain) == 2 * TEXT_LENGTH_MAX


def test_clean_text_shifts_entities_over_removed_characters() -> None:
    text, entities = clean_text("a\r\rbc", [{"type": "bold", "offset": 3, "length": 2}])
    assert (text, entities) == ("abc", [{"type": "bold", "offset": 1, "length": 2}])


# Text a feed could carry: markup characters, RTL marks, emoji, controls, Cyrillic, Arabic.
feed_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("<>&;\"'#/ \n\r\tabcxyz019")),
        st.sampled_from(["\u200f", "\u200e", "\u202b", "\u2066", "\u2069", "😀", "П", "ع"]),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(feed_text)
def test_escaped_text_always_parses_back_to_itself(text: str) -> None:
    plain, entities = parse_telegram_html(html.escape(text, quote=False))
    assert (plain, entities) == clean_text(text, [])


@settings(max_examples=300, deadline=None)
@given(feed_text, feed_text)
def test_escaped_text_inside_tags_keeps_one_entity(a: str, b: str) -> None:
    plain, entities = parse_telegram_html(
        f"{html.escape(a, quote=False)}<b>{html.escape(b, quote=False)}</b>"
    )
    expected_plain, _ = clean_text(a + b, [])
    # leading blanks are trimmed only up to the first entity
    assert plain.lstrip(" \n") == expected_plain
    assert len(entities) <= 1
    assert all(e["type"] == "bold" for e in entities)


@settings(max_examples=500, deadline=None)
@given(feed_text)
def test_raw_text_either_parses_or_fails_with_a_parser_message(text: str) -> None:
    try:
        plain, entities = parse_telegram_html(text)
    except TelegramHTMLError as err:
        assert err.message
        return
    total = utf16_length(plain)
    for entity in entities:
        assert 0 <= entity["offset"] < entity["offset"] + entity["length"] <= total
