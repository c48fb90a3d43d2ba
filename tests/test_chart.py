"""Surge chart and caption: a real PNG of the right size, captions escaped and short."""

from __future__ import annotations

import html
import struct
import threading
import warnings
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.render.chart import CAPTION_LIMIT, HEIGHT_PX, WIDTH_PX, surge_caption, surge_chart

NOW = datetime(2026, 12, 7, 15, 20, tzinfo=UTC)
H = timedelta(hours=1)
COUNTS = {NOW - i * H: (40 if i == 0 else 2 + i % 3) for i in range(60)}


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, checking the signature and the chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(kind + body) == crc
    width, height = struct.unpack(">II", body[:8])
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"
    return width, height


@pytest.mark.parametrize(
    "rule",
    [
        "astana-talks",
        "محادثات أستانا",
        "Переговоры в Астане",
        "$x$ & <b>",
        "🚨" * 100,
        "a\x00b\ud800",
    ],
)
def test_chart_is_a_png_of_phone_size(rule: str) -> None:
    with warnings.catch_warnings(record=True) as caught:  # the module's filters stay
        data = surge_chart(rule, COUNTS, 2.5, NOW, ["TASS", "سانا", "РИА Новости", "x" * 500])
    assert not [w for w in caught if "missing from" in str(w.message)]
    assert png_size(data) == (WIDTH_PX, HEIGHT_PX)


def test_chart_with_no_counts_and_hostile_values() -> None:
    assert png_size(surge_chart("r", {}, 0.0, NOW, [])) == (WIDTH_PX, HEIGHT_PX)
    bad = {NOW: -3, NOW - H: "x", datetime(2026, 12, 7, 3): 10**40}
    assert png_size(surge_chart("r", bad, 1.0, NOW, [])) == (WIDTH_PX, HEIGHT_PX)  # type: ignore[arg-type]


def test_charts_from_several_threads() -> None:
    results: list[bytes] = []

    def draw(i: int) -> None:
        results.append(surge_chart(f"rule {i}", COUNTS, 1.0 + i, NOW, ["A"]))

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 4
    assert all(png_size(r) == (WIDTH_PX, HEIGHT_PX) for r in results)


def test_caption_escapes_and_says_the_figures() -> None:
    caption = surge_caption(
        "<script>&", 18, 2.0, NOW, ["A&B <i>", "سانا"], link='https://x.test/?a=1&b="2"'
    )
    assert "&lt;script&gt;&amp;" in caption
    assert "A&amp;B &lt;i&gt;" in caption and "سانا" in caption
    assert 'href="https://x.test/?a=1&amp;b=&quot;2&quot;"' in caption
    assert "18 matches" in caption and "9×" in caption
    assert "<script>" not in caption


@settings(max_examples=80, deadline=None)
@given(
    st.text(max_size=3000),
    st.lists(st.text(max_size=500), max_size=40),
    st.one_of(st.none(), st.text(max_size=3000)),
)
def test_caption_within_limit_and_only_our_tags(
    rule: str, sources: list[str], link: str | None
) -> None:
    caption = surge_caption(rule, 7, 1.5, NOW, sources, link=link)
    assert len(caption) <= CAPTION_LIMIT
    stripped = caption
    for tag in ("<b>", "</b>", "</a>"):
        stripped = stripped.replace(tag, "")
    if "<a href=" in stripped:
        start = stripped.index("<a href=")
        stripped = stripped[:start] + stripped[stripped.index(">", start) + 1 :]
    assert "<" not in stripped and ">" not in stripped
    assert html.unescape(stripped) is not None
