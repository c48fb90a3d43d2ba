"""Article + matches → one Alert: extractive summary, highlights, Telegram HTML, console text.

Pure: no I/O, no clock.  The alert reads, line by line::

    🔔 Matched: astana · ceasefire          (rule names, in config order)
    <a href="…">Title with <b>hits</b></a>   (the title as a link)
    📰 Source: SANA · 2026-11-29 06:22 UTC+03  (source, time in the channel's zone)

    Lead sentence. … Sentence with a <b>hit</b>.

    🔗 sana.sy/en/news/1234                 (the link, shown without its query)

Why it is built this way (the primitives live in ``telegram_text``):

* Feed text is trimmed as *plain text* first and escaped last, so a cut can
  never fall inside a tag or an entity.
* Lines that are pure feed text (title, summary) stand alone so the client
  picks their direction from the text; feed text placed next to a label
  (source, rule names, date, URL) is wrapped in an isolate so an Arabic source
  name cannot reorder an English label or the date.
* The length limit is 4096 code points after parsing.  Every fixed part is
  capped, the summary gets what is left, and the raw HTML is kept under the
  32768-byte pre-parse limit.

The alert carries what it is: its kind, its story key (one alert per story and
channel in the outbox) and its priority (high when a matched rule is high).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.models import Alert, AlertKind, Article, Channel, Hit, Match, Priority
from monitor.render.telegram_text import (
    ELLIPSIS,
    FSI,
    HREF_MAX,
    LRI,
    MAX_HTML_BYTES,
    MAX_MESSAGE_LENGTH,
    PDI,
    Segment,
    clean,
    cut_before,
    esc,
    esc_segment,
    format_time,
    href_attr,
    joins_previous,
    link_text,
    safe_link,
    truncate,
)
from monitor.sentences import split_sentences
from monitor.stories import story_key

__all__ = [
    "LABELS",
    "MAX_HTML_BYTES",
    "MAX_MESSAGE_LENGTH",
    "Segment",
    "base_language",
    "render_alert",
    "render_sample_alert",
    "rule_names",
    "safe_link",
    "summarize",
]

_TITLE_MAX = 400
_SOURCE_MAX = 100
_RULE_NAME_MAX = 60
_RULES_MAX = 300
_LINK_TEXT_MAX = 60
_SHORT_LEAD = 60  # a first "sentence" shorter than this, without a full stop, is a dateline
_LEAD_EXTENSIONS = 3  # ... so up to two more sentences make up the lead
_SENTENCE_END = tuple(".!?…؟؛。\"'»”’)")
_MIN_PIECE = 24  # a trimmed sentence shorter than this is not worth showing
_GAP = f" {ELLIPSIS} "

#: Fixed labels per channel language.
LABELS: dict[str, dict[str, str]] = {
    "en": {"matched": "Matched", "source": "Source", "untitled": "(untitled)"},
    "ar": {"matched": "القواعد", "source": "المصدر", "untitled": "(بلا عنوان)"},
    "ru": {"matched": "Правила", "source": "Источник", "untitled": "(без заголовка)"},
}


# ---------------------------------------------------------------------------
# Public API


def render_alert(
    article: Article,
    matches: Sequence[Match],
    channel: Channel,
    priorities: Mapping[str, Priority] | None = None,
) -> Alert:
    """The one message for ``article`` in ``channel``, naming every rule in ``matches``.

    ``priorities`` maps rule names to their priority: the alert is high when any
    matched rule is (a rule missing from it counts as normal).
    """
    rules = tuple(dict.fromkeys(m.rule for m in matches))
    high = any((priorities or {}).get(rule) == Priority.HIGH for rule in rules)
    labels = LABELS.get(base_language(channel.language), LABELS["en"])
    link = safe_link(article.link)
    href = link if link and len(link) <= HREF_MAX else None
    title_segments = _title_segments(article, matches, labels)
    head = _head(rules, title_segments, href, article, channel, labels)
    tail = _tail(href, link)
    fixed_len = head.plain_len + tail.plain_len + 4  # two blank lines around the summary
    budget = max(0, min(channel.summary_length, MAX_MESSAGE_LENGTH - fixed_len))

    segments = summarize(article, matches, budget)
    for bold in (True, False):
        html_text, console = _assemble(head, tail, segments, bold)
        if len(html_text.encode("utf-8")) <= MAX_HTML_BYTES:
            break
    else:  # pathological: thousands of escaped characters; halve the summary until it fits
        while len(html_text.encode("utf-8")) > MAX_HTML_BYTES and budget > 0:
            budget //= 2
            segments = summarize(article, matches, budget)
            html_text, console = _assemble(head, tail, segments, False)

    return Alert(
        article_key=article.key,
        feed_id=article.feed_id,
        channel=channel.name,
        rules=rules,
        html=html_text,
        text=console,
        link=link,
        title=article.title,
        priority=Priority.HIGH if high else Priority.NORMAL,
        source=article.source,
        published=article.published,
        kind=AlertKind.ARTICLE,
        story=story_key(article),
    )


def summarize(article: Article, matches: Sequence[Match], max_chars: int) -> list[Segment]:
    """The lead sentence plus the sentences holding hits, in order, within ``max_chars``.

    Sentences come from the summary, then the content, then the linked page's
    text (``full_text``); a sentence that repeats one already taken is skipped
    (its hits are merged into the one shown).  Non-adjacent sentences are joined by
    `` … ``; a sentence too long for the room left is cut at a word boundary
    around its first hit.
    """
    if max_chars <= 0:
        return []
    spans_by_field = _hit_spans(article, matches)
    picked = _pick_sentences(article, spans_by_field)
    if not picked:
        return []
    return _fit(picked, max_chars)


def render_sample_alert(channel: Channel, now: datetime | None = None) -> Alert:
    """A realistic alert in the channel's language, for ``monitor send-test``."""
    lang = base_language(channel.language)
    sample = _SAMPLES.get(lang, _SAMPLES["en"])
    published = now or datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    article = Article(
        key="monitor-send-test",
        feed_id="send-test",
        title=sample["title"],
        summary=sample["summary"],
        link="https://example.org/monitor/send-test",
        published=published,
        language=lang,
        source=sample["source"],
    )
    hits = []
    for field in ("title", "summary"):
        text = article.field_text(field)
        start = text.find(sample["term"])
        while start >= 0:
            end = start + len(sample["term"])
            hits.append(Hit(sample["term"], text[start:end], field, start, end))
            start = text.find(sample["term"], end)
    return render_alert(article, [Match(sample["rule"], tuple(hits))], channel)


# ---------------------------------------------------------------------------
# Text cleaning with offset tracking


def _merge(spans: Sequence[tuple[int, int]], touching: bool = True) -> list[tuple[int, int]]:
    """Sorted spans with overlaps (and, if ``touching``, adjacent spans) joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and (start < merged[-1][1] or (touching and start == merged[-1][1])):
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _hit_spans(article: Article, matches: Sequence[Match]) -> dict[str, list[tuple[int, int]]]:
    """Valid hit spans per field, merged; spans outside the field's text are ignored."""
    raw: dict[str, list[tuple[int, int]]] = {}
    for match in matches:
        for hit in match.hits:
            if hit.field not in ("title", "summary", "content", "page"):
                continue
            length = len(article.field_text(hit.field))
            start, end = max(0, hit.start), min(length, hit.end)
            if start < end:
                raw.setdefault(hit.field, []).append((start, end))
    return {field: _merge(spans) for field, spans in raw.items()}


def _segments(text: str, spans: Sequence[tuple[int, int]]) -> list[Segment]:
    out: list[Segment] = []
    at = 0
    for start, end in spans:
        if start > at:
            out.append(Segment(text[at:start]))
        out.append(Segment(text[start:end], True))
        at = end
    if at < len(text):
        out.append(Segment(text[at:]))
    return out


# ---------------------------------------------------------------------------
# Sentence selection and trimming


@dataclass(frozen=True)
class _Sentence:
    text: str  # cleaned
    spans: tuple[tuple[int, int], ...]  # bold spans into text
    field: str
    index: int  # position among the field's sentences


def _pick_sentences(
    article: Article, spans_by_field: dict[str, list[tuple[int, int]]]
) -> list[_Sentence]:
    picked: list[_Sentence] = []
    title_key = clean(article.title)[0].casefold()
    seen: dict[str, int] = {title_key: -1} if title_key else {}  # -1: the title, never shown
    lead_open = _LEAD_EXTENSIONS  # a dateline or kicker does not count as the lead
    for field in ("summary", "content", "page"):
        text = article.field_text(field)
        if not text.strip():
            continue
        hits = spans_by_field.get(field, [])
        h = 0
        for index, (start, end) in enumerate(split_sentences(text, article.language)):
            while h < len(hits) and hits[h][1] <= start:
                h += 1
            inside = []
            k = h
            while k < len(hits) and hits[k][0] < end:
                inside.append((max(hits[k][0], start) - start, min(hits[k][1], end) - start))
                k += 1
            if not (inside or lead_open):  # the lead, then only sentences with hits
                continue
            cleaned, moved = clean(text[start:end], inside)
            if not cleaned:
                continue
            key = cleaned.casefold()
            if key in seen:  # the content repeats the summary: merge highlights
                i = seen[key]
                if i < 0:
                    continue
                old = picked[i]
                picked[i] = _Sentence(
                    old.text,
                    tuple(_merge([*old.spans, *moved], touching=False)),
                    old.field,
                    old.index,
                )
                continue
            seen[key] = len(picked)
            picked.append(_Sentence(cleaned, tuple(moved), field, index))
            if lead_open:
                short = len(cleaned) < _SHORT_LEAD and not cleaned.endswith(_SENTENCE_END)
                lead_open = lead_open - 1 if short else 0
    return picked


def _fit(picked: list[_Sentence], max_chars: int) -> list[Segment]:
    out: list[Segment] = []
    used = 0
    previous: _Sentence | None = None
    for n, sentence in enumerate(picked):
        adjacent = (
            previous is not None
            and previous.field == sentence.field
            and previous.index + 1 == sentence.index
        )
        if previous is None:
            sep = ""
        elif adjacent or out[-1].text.endswith(ELLIPSIS):
            sep = " "
        else:
            sep = _GAP
        room = max_chars - used - len(sep)
        more_after = n + 1 < len(picked)
        if previous is None and more_after:
            room = max(room // 2, min(len(sentence.text), room - _rest_need(picked[1:])))
        if len(sentence.text) <= room:
            text, spans = sentence.text, sentence.spans
        elif room >= _MIN_PIECE:
            text, spans = _window(sentence.text, sentence.spans, room)
        else:
            if out and max_chars - used >= 2 and not out[-1].text.endswith(ELLIPSIS):
                out.append(Segment(" " + ELLIPSIS))
            break
        if sep == _GAP and text.startswith(ELLIPSIS):
            sep = " "  # the window's own ellipsis already marks the gap
        if sep:
            out.append(Segment(sep))
        out.extend(_segments(text, spans))
        used += len(sep) + len(text)
        previous = sentence
    return out


def _rest_need(rest: Sequence[_Sentence]) -> int:
    return sum(len(s.text) + len(_GAP) for s in rest)


def _window(
    text: str, spans: Sequence[tuple[int, int]], room: int
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """At most ``room`` characters of ``text`` cut at word boundaries, around the first hit."""
    first = spans[0] if spans else (0, 0)
    if first[1] <= room - 1:  # the head of the sentence shows the hit
        cut = cut_before(text, room - 1)
        start, end, prefix = 0, cut, ""
    else:
        width = room - 2
        lead_in = max(0, (width - (first[1] - first[0])) // 3)
        start = _cut_after(text, max(0, first[0] - lead_in), first[0])
        end = cut_before(text, min(len(text), start + width), start)
        if end <= start:
            start, end = first[0], first[0] + width
        prefix = ELLIPSIS
    body = text[start:end].rstrip()
    shown = prefix + body + (ELLIPSIS if end < len(text) else "")
    shift = len(prefix) - start
    moved = []
    for a, b in spans:
        a2, b2 = max(a, start) + shift, min(b, start + len(body)) + shift
        if a2 < b2:
            moved.append((a2, b2))
    return shown, tuple(moved)


def _cut_after(text: str, at: int, hit_start: int) -> int:
    """The first word start at or after ``at`` (but not past the hit)."""
    if at == 0 or text[at - 1] == " ":
        return at
    space = text.find(" ", at, hit_start)
    if space >= 0:
        return space + 1
    cut = at
    while cut < hit_start and joins_previous(text[cut]):
        cut += 1
    return cut


# ---------------------------------------------------------------------------
# Layout


@dataclass(frozen=True)
class _Block:
    """Rendered text: Telegram HTML, what Telegram will count, and the console form."""

    html: str
    console: str
    plain_len: int


def _title_segments(
    article: Article, matches: Sequence[Match], labels: dict[str, str]
) -> list[Segment]:
    spans = _hit_spans(article, matches).get("title", [])
    title, moved = clean(article.title, spans)
    if not title:
        return [Segment(labels["untitled"])]
    if len(title) > _TITLE_MAX:
        title, moved_t = _window(title, moved, _TITLE_MAX)
        moved = list(moved_t)
    return _segments(title, moved)


def _head(
    rules: tuple[str, ...],
    title: list[Segment],
    href: str | None,
    article: Article,
    channel: Channel,
    labels: dict[str, str],
) -> _Block:
    names = rule_names(rules)
    matched = f"🔔 {labels['matched']}: "
    isolated = " · ".join(f"{FSI}{n}{PDI}" for n in names)
    html_parts = [f"🔔 <b>{esc(labels['matched'])}:</b> ", esc(isolated)]
    plain_parts = [matched, isolated]
    console_parts = [matched, " · ".join(names)]

    title_html = "".join(esc_segment(s, True) for s in title)
    if href:
        title_html = f'<a href="{href_attr(href)}">{title_html}</a>'
    html_parts.append("\n" + title_html)
    plain_parts.append("\n" + "".join(s.text for s in title))
    console_parts.append("\n" + "".join(f"*{s.text}*" if s.bold else s.text for s in title))

    source = truncate(clean(article.source or article.feed_id)[0], _SOURCE_MAX)
    when = format_time(article.published, channel.timezone)
    label = f"📰 {labels['source']}: "
    sep = " · " if source and when else ""
    meta = label + (f"{FSI}{source}{PDI}" if source else "") + sep
    meta += f"{LRI}{when}{PDI}" if when else ""
    html_parts.append("\n" + esc(meta))
    plain_parts.append("\n" + meta)
    console_parts.append("\n" + label + source + sep + when)
    return _Block("".join(html_parts), "".join(console_parts), len("".join(plain_parts)))


def _tail(href: str | None, link: str | None) -> _Block:
    if not link:
        return _Block("", "", 0)
    if not href:  # too long to link: the console still gets it
        return _Block("", f"🔗 {link}", 0)
    shown = truncate(link_text(href), _LINK_TEXT_MAX)
    text = f"🔗 {LRI}{shown}{PDI}"
    html_text = f'🔗 {LRI}<a href="{href_attr(href)}">{esc(shown)}</a>{PDI}'
    return _Block(html_text, f"🔗 {link}", len(text))


def _assemble(head: _Block, tail: _Block, segments: list[Segment], bold: bool) -> tuple[str, str]:
    html_parts = [head.html]
    console_parts = [head.console]
    if segments:
        html_parts.append("\n\n" + "".join(esc_segment(s, bold) for s in segments))
        console_parts.append(
            "\n\n" + "".join(f"*{s.text}*" if s.bold else s.text for s in segments)
        )
    if tail.html:
        html_parts.append("\n\n" + tail.html)
    if tail.console:
        console_parts.append("\n\n" + tail.console)
    return "".join(html_parts), "".join(console_parts)


def rule_names(rules: tuple[str, ...]) -> list[str]:
    """Rule names as listed in a message: each capped, ``+N`` for those past the room."""
    names: list[str] = []
    total = 0
    for i, rule in enumerate(rules):
        name = truncate(clean(rule)[0], _RULE_NAME_MAX) or "?"
        if total + len(name) > _RULES_MAX:
            names.append(f"+{len(rules) - i}")
            break
        names.append(name)
        total += len(name) + 3
    return names


def base_language(code: str | None) -> str:
    """``ar-SY`` → ``ar``: the key of ``LABELS`` for a channel's language."""
    return (code or "en").replace("_", "-").split("-", 1)[0].lower()


_SAMPLES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Test alert: ceasefire talks resume in Astana",
        "summary": (
            "This is a sample alert sent by monitor to check that the bot can post here. "
            "Delegations met on Friday. A ceasefire was the first item on the agenda, "
            "officials said."
        ),
        "source": "monitor send-test",
        "term": "ceasefire",
        "rule": "sample-rule",
    },
    "ar": {
        "title": "تنبيه تجريبي: استئناف محادثات وقف إطلاق النار في أستانا",
        "summary": (
            "هذا تنبيه تجريبي أرسله monitor للتحقق من أن البوت يستطيع النشر هنا. "
            "التقت الوفود يوم الجمعة؛ وكان وقف إطلاق النار أول بند على جدول الأعمال."
        ),
        "source": "اختبار monitor",
        "term": "وقف إطلاق النار",
        "rule": "قاعدة-تجريبية",
    },
    "ru": {
        "title": "Тестовое оповещение: в Астане возобновились переговоры о перемирии",
        "summary": (
            "Это пробное оповещение от monitor: бот проверяет, что может писать сюда. "
            "Делегации встретились в пятницу. Переговоры в Астане начались с вопроса "
            "о перемирии, сообщили участники."
        ),
        "source": "проверка monitor",
        "term": "Астане",
        "rule": "пробное-правило",
    },
}
