"""Surge charts: a PNG of a rule's last 48 hours, and its Telegram caption (pure).

Drawn with matplotlib's Agg canvas on a ``Figure`` made here, never pyplot: no
global figure state, so charts can be drawn from several threads. 1200×675 px
(16:9, what Telegram shows full width on a phone) with large fonts.

Arabic is joined and ordered right to left where matplotlib's text layout
supports it (3.11 here does); an older matplotlib draws isolated letters —
legible enough for a title, never a crash.
Characters the font (DejaVu Sans, shipped with matplotlib) lacks — emoji, CJK on
a bare server — are replaced by "?" before drawing, so matplotlib never warns
"Glyph … missing" (silencing warnings would need ``catch_warnings``, which is
not thread-safe, or a global filter that pytest and other code reset).
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont, get_font

WIDTH_PX = 1200
HEIGHT_PX = 675
DPI = 100
HOURS = 48
CAPTION_LIMIT = 1024  # Telegram's caption limit; we keep the raw HTML within it
TITLE_CHARS = 60  # longer rule names are cut with an ellipsis
MAX_SOURCES = 5
MAX_COUNT = 10**9  # bars beyond this are clipped (hostile input; matplotlib needs C longs)

FONT = "DejaVu Sans"

_HOUR = timedelta(hours=1)


def _clean(text: str, limit: int) -> str:
    """Printable text of at most ``limit`` characters (surrogates, controls, NUL removed)."""
    text = "".join(ch for ch in text if ch.isprintable() and not "\ud800" <= ch <= "\udfff")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@lru_cache(maxsize=1)
def _charmap() -> frozenset[int]:
    """Code points the chart font can draw."""
    return frozenset(get_font(findfont(FontProperties(family=FONT))).get_charmap())


def _drawable(text: str, limit: int) -> str:
    """``_clean`` text with every character the font lacks replaced by "?"."""
    chars = _charmap()
    return "".join(ch if ord(ch) in chars or ch == " " else "?" for ch in _clean(text, limit))


def _hour(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def surge_chart(
    rule: str,
    counts: Mapping[datetime, int],
    baseline: float,
    now: datetime,
    top_sources: Sequence[str],
) -> bytes:
    """A PNG: matches per hour over the last 48 hours as bars, the usual rate as a line."""
    end = _hour(now)
    hours = [end - (HOURS - 1 - i) * _HOUR for i in range(HOURS)]
    index = {h: i for i, h in enumerate(hours)}
    values = [0] * HOURS
    for moment, value in counts.items():
        i = index.get(_hour(moment))
        if i is not None:
            try:
                values[i] = min(values[i] + max(0, int(value)), MAX_COUNT)
            except (TypeError, ValueError, OverflowError):
                continue

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = ["#d62728" if h == end else "#1f77b4" for h in hours]
    ax.bar(range(HOURS), values, width=0.85, color=colors)
    if baseline > 0:
        ax.axhline(
            baseline, color="#555555", linestyle="--", linewidth=2.5,
            label=f"usual rate: {baseline:.1f} an hour",
        )  # fmt: skip
        ax.legend(loc="upper left", fontsize=16, frameon=False)
    ticks = [i for i, h in enumerate(hours) if h.hour % 6 == 0]
    ax.set_xticks(ticks)
    ax.set_xticklabels([hours[i].strftime("%d %H:00") for i in ticks], fontsize=15)
    ax.tick_params(axis="y", labelsize=15)
    ax.set_ylabel("matches per hour", fontsize=16)
    ax.set_xlim(-0.6, HOURS - 0.4)
    ax.set_ylim(0, max(max(values), baseline, 1) * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    title = _drawable(rule, TITLE_CHARS) or "?"
    sources = ", ".join(_drawable(s, 30) for s in top_sources[:MAX_SOURCES] if _clean(s, 30))
    fig.suptitle(
        title, fontsize=26, fontweight="bold", x=0.02, ha="left", parse_math=False, fontfamily=FONT
    )
    if sources:
        ax.set_title(
            f"top sources: {_drawable(sources, 110)}",
            fontsize=16,
            loc="left",
            parse_math=False,
            fontfamily=FONT,
        )
    fig.text(0.99, 0.01, f"last 48 h, UTC, until {end:%Y-%m-%d %H:00}", fontsize=12, ha="right")
    fig.subplots_adjust(left=0.08, right=0.98, top=0.83, bottom=0.12)
    out = io.BytesIO()
    canvas.print_png(out)
    return out.getvalue()


def surge_caption(
    rule: str,
    count: float,
    baseline: float,
    now: datetime,
    top_sources: Sequence[str],
    *,
    link: str | None = None,
) -> str:
    """The photo's caption in Telegram HTML, every outside string escaped, ≤ 1024 characters."""
    when = _hour(now)
    head = (
        f"📈 <b>Surge: {html.escape(_clean(rule, 120) or '?')}</b>\n"
        f"{count:g} matches in the last hour, about {count / max(baseline, 1e-9):.0f}× "
        f"the usual {baseline:.1f}/h ({when:%Y-%m-%d %H:00} UTC)"
    )
    if link:
        anchor = f'\n<a href="{html.escape(_clean(link, 300), quote=True)}">latest article</a>'
        if len(head) + len(anchor) <= CAPTION_LIMIT // 2:
            head += anchor
    names = [html.escape(_clean(s, 60)) for s in top_sources[:20] if _clean(s, 60)]
    while names:
        caption = head + "\nTop sources: " + " · ".join(names)
        if len(caption) <= CAPTION_LIMIT:
            return caption
        names.pop()
    return head  # at most ~800 characters: a 120-character rule name escaped plus figures
