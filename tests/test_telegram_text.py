"""The shared Telegram text primitives and the one script classifier."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st
from telegram.error import RetryAfter

from monitor import text as tx
from monitor.render.telegram_text import (
    ELLIPSIS,
    FSI,
    GRAPHEME_MAX,
    LRI,
    PDI,
    Segment,
    bold,
    cut_before,
    esc,
    esc_segment,
    format_time,
    format_utc,
    href_attr,
    isolate,
    retry_after_seconds,
    truncate,
)

PACKAGE = Path(__file__).resolve().parent.parent / "monitor"


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
@pytest.mark.parametrize(
    ("value", "seconds"),
    [(7, 7.0), (0, 0.0), (timedelta(seconds=42), 42.0), (timedelta(minutes=2), 120.0)],
)
def test_retry_after_seconds_reads_ints_and_timedeltas(value: object, seconds: float) -> None:
    exc = RetryAfter(value)  # type: ignore[arg-type]
    assert retry_after_seconds(exc) == seconds


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
        ('say "hi"', 'say "hi"'),  # quotes stay outside attributes
        ("ترامب & بوتين", "ترامب &amp; بوتين"),
    ],
)
def test_esc(text: str, html: str) -> None:
    assert esc(text) == html


def test_bold_and_segments_escape_inside_the_tag() -> None:
    assert bold("<x>") == "<b>&lt;x&gt;</b>"
    assert esc_segment(Segment("a&b", True)) == "<b>a&amp;b</b>"
    assert esc_segment(Segment("a&b", True), with_bold=False) == "a&amp;b"
    assert href_attr('https://e.org/?q="x"&y=1') == "https://e.org/?q=&quot;x&quot;&amp;y=1"


def test_isolates() -> None:
    assert isolate("سانا") == f"{FSI}سانا{PDI}"
    assert isolate("2026-11-29", ltr=True) == f"{LRI}2026-11-29{PDI}"


@given(st.text(max_size=300), st.integers(min_value=2, max_value=120))
def test_truncate_stays_within_the_limit_in_code_points(text: str, limit: int) -> None:
    out = truncate(text, limit)
    assert len(out) <= limit
    if len(text) <= limit:
        assert out == text
    else:
        assert out.endswith(ELLIPSIS)


def test_truncate_counts_astral_characters_once() -> None:
    flags = "🇸🇾" * 10  # 20 code points (40 UTF-16 units)
    assert truncate(flags, 20) == flags


def grapheme_starts(text: str) -> set[int]:
    """Where Unicode's extended grapheme clusters start (the regex module's \\X)."""
    starts, at = {0, len(text)}, 0
    for cluster in regex.findall(r"\X", text):
        at += len(cluster)
        starts.add(at)
    return starts


# Text of the kinds a cut can land in: Arabic with its marks, emoji joined by ZWJ
# and with skin tones or variation selectors, flags (regional indicator pairs).
CLUSTER_PIECES = st.sampled_from(
    [
        "a",
        "b",
        " ",
        "ب",
        "ا",
        "\u064e",
        "\u0651",
        "\u200d",
        "👨",
        "👩",
        "👧",
        "🏽",
        "\ufe0f",
        "❤",
        "🇸",
        "🇾",
        "🇷",
        "🇺",
        "e\u0301",
    ]
)


@given(st.lists(CLUSTER_PIECES, max_size=24).map("".join), st.integers(0, 40))
def test_cut_before_never_splits_a_grapheme(text: str, limit: int) -> None:
    cut = cut_before(text, limit)
    assert 0 <= cut <= min(limit, len(text))
    assert cut in grapheme_starts(text), (text, limit, cut)


@pytest.mark.parametrize(
    ("text", "limit", "kept"),
    [
        ("Talks in Astana👨\u200d👩\u200d👧resume", 20, "Talks in Astana"),  # family emoji
        ("🇸🇾" * 10 + "x", 20, "🇸🇾" * 9),  # the cut falls between a flag's two letters
        ("أستانا" + "\u064e" * 5000, 100, "أستانا" + "\u064e" * 93),  # hostile marks
    ],
)
def test_truncate_keeps_graphemes_whole(text: str, limit: int, kept: str) -> None:
    assert truncate(text, limit) == kept + ELLIPSIS


def test_a_grapheme_longer_than_the_bound_is_cut_at_the_limit() -> None:
    text = "x" + "\u0651" * (GRAPHEME_MAX * 3)
    assert cut_before(text, GRAPHEME_MAX * 2) == GRAPHEME_MAX * 2


@pytest.mark.parametrize(
    ("moment", "zone", "shown"),
    [
        (datetime(2026, 11, 29, 3, 22, tzinfo=UTC), "Europe/Moscow", "2026-11-29 06:22 MSK"),
        (datetime(2026, 11, 29, 3, 22, tzinfo=UTC), "Asia/Damascus", "2026-11-29 06:22 UTC+03"),
        (datetime(2026, 11, 29, 3, 22), "UTC", "2026-11-29 03:22 UTC"),  # naive reads as UTC
        (datetime(2026, 11, 29, 3, 22, tzinfo=UTC), "Not/AZone", "2026-11-29 03:22 UTC"),
        (None, "UTC", ""),
    ],
)
def test_format_time(moment: datetime | None, zone: str, shown: str) -> None:
    assert format_time(moment, zone) == shown


def test_format_utc() -> None:
    damascus = datetime(2026, 11, 29, 9, 22, tzinfo=timezone(timedelta(hours=3)))
    assert format_utc(damascus) == "2026-11-29 06:22 UTC"
    assert format_utc(None) == "never"


@pytest.mark.parametrize(
    ("ch", "script"),
    [
        ("a", "latin"),
        ("é", "latin"),
        ("ж", "cyrillic"),
        ("ԑ", "cyrillic"),  # Cyrillic Supplement
        ("ꙁ", "cyrillic"),  # Cyrillic Extended-B
        ("ب", "arabic"),
        ("ݐ", "arabic"),  # Arabic Supplement
        ("ࢠ", "arabic"),  # Arabic Extended-A
        ("ﻻ", "arabic"),  # Presentation Forms-B (lam-alef ligature)
        ("ﷲ", "arabic"),  # Presentation Forms-A
        ("\ufeff", "other"),  # the BOM is not Arabic
        ("א", "other"),
        ("中", "other"),
        ("", "other"),
    ],
)
def test_char_script(ch: str, script: str) -> None:
    assert tx.char_script(ch) == script


@given(st.characters())
def test_the_regex_class_and_char_script_agree(ch: str) -> None:
    arabic = re.fullmatch(tx.char_class(tx.ARABIC_RANGES), ch) is not None
    cyrillic = re.fullmatch(tx.char_class(tx.CYRILLIC_RANGES), ch) is not None
    assert arabic == (tx.char_script(ch) == "arabic")
    assert cyrillic == (tx.char_script(ch) == "cyrillic")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("ﻭﻗﻒ ﺇﻃﻼﻕ ﺍﻟﻨﺎﺭ ﻓﻲ ﺃﺳﺘﺎﻧﺎ", "ar"),  # presentation forms, as some PDFs export them
        ("وقف إطلاق النار في أستانا", "ar"),
        ("Переговоры в Астане", "ru"),
        ("Talks in Astana", "en"),
    ],
)
def test_the_language_guess_reads_scripts(text: str, language: str) -> None:
    assert tx.guess_language(text) == language


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("monitor")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    assert _private_imports(path) == []
