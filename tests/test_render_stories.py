"""The "Also:" line (render/stories.py): names, links, caps, and Telegram's limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.render.stories import (
    MAX_NAMES,
    StorySource,
    also_line,
    edited_alert,
    plain_length,
    story_reply,
)
from monitor.render.telegram_text import MAX_HTML_BYTES, MAX_MESSAGE_LENGTH
from tests.fakes.telegram_html import parse_telegram_html

TASS = StorySource("TASS", "https://tass.ru/politika/1")
SANA = StorySource("SANA", "https://sana.sy/?p=2")
RT = StorySource("RT Arabic", None)


def plain(html: str) -> str:
    return parse_telegram_html(html)[0]


@pytest.mark.parametrize(
    ("sources", "total", "language", "expected"),
    [
        ([TASS], None, "en", "Also: \u2068TASS\u2069"),
        ([TASS, SANA], None, "en", "Also: \u2068TASS\u2069 · \u2068SANA\u2069"),
        ([TASS, SANA], 5, "en", "Also: \u2068TASS\u2069 · \u2068SANA\u2069 +3"),
        ([TASS, SANA, TASS], None, "ru", "Также: \u2068TASS\u2069 · \u2068SANA\u2069"),
        ([RT], None, "ar-SY", "أيضًا: \u2068RT Arabic\u2069"),
        (
            [StorySource("  Al\nWatan <daily> ", None)],
            None,
            "en",
            "Also: \u2068Al Watan <daily>\u2069",
        ),
        ([], 4, "en", "Also: +4"),
    ],
)
def test_the_line(sources, total, language, expected):
    line = also_line(sources, total, language)
    assert line is not None
    assert plain(line.html) == expected
    assert line.plain_len == len(expected)
    assert line.text == expected.replace("\u2068", "").replace("\u2069", "")


def test_each_name_links_to_its_latest_report_oldest_first():
    newer = StorySource("TASS", "https://tass.ru/politika/9")
    line = also_line([TASS, SANA, newer])
    assert line is not None
    _, entities = parse_telegram_html(line.html)
    urls = [e["url"] for e in entities if e["type"] == "text_link"]
    assert urls == ["https://tass.ru/politika/9", "https://sana.sy/?p=2"]


def test_past_the_name_cap_the_rest_is_counted():
    sources = [StorySource(f"Outlet {n}", f"https://o{n}.example/") for n in range(20)]
    line = also_line(sources)
    assert line is not None and line.shown == MAX_NAMES
    assert plain(line.html).endswith(f"\u2068Outlet {MAX_NAMES - 1}\u2069 +{20 - MAX_NAMES}")


def test_nothing_to_say():
    assert also_line([]) is None and story_reply([], 0) is None


def test_an_alert_at_the_limit_gets_only_what_fits():
    alert = "<b>" + "x" * (MAX_MESSAGE_LENGTH - 20) + "</b>"
    edited = edited_alert(alert, "x", [TASS, SANA, RT], 3)
    assert edited is not None
    text = plain(edited[0])
    assert len(text) <= MAX_MESSAGE_LENGTH and text.endswith("Also: \u2068TASS\u2069 +2")
    full = "<b>" + "x" * MAX_MESSAGE_LENGTH + "</b>"
    assert edited_alert(full, "x", [TASS], 1) is None  # the message stays as it is


def test_plain_length_counts_entities_as_one():
    assert plain_length('<b>a &amp; b</b> <a href="https://x.example/?a=1&amp;b=2">link</a>') == 10


hostile = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "Cc", "Mn")), max_size=80
)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.tuples(hostile, st.booleans()), max_size=40),
    extra=st.integers(0, 500),
    body=st.integers(0, MAX_MESSAGE_LENGTH),
)
def test_an_edited_alert_is_always_valid_and_within_limits(names, extra, body):
    sources = [
        StorySource(name, f"https://n{i}.example/a?q=<{i}>&x" if linked else None)
        for i, (name, linked) in enumerate(names)
    ]
    alert = "<b>" + "é" * body + "</b>"
    edited = edited_alert(alert, "text", sources, len(sources) + extra)
    if edited is None:
        assert (not sources and not extra) or body > MAX_MESSAGE_LENGTH - 12
        return
    html_text, console = edited
    text = plain(html_text)  # Telegram's parser accepts it
    assert len(text) <= MAX_MESSAGE_LENGTH
    assert len(html_text.encode("utf-8")) <= MAX_HTML_BYTES
    assert text.startswith("é" * body) and "Also:" in text
    assert console.startswith("text\n\nAlso:")
