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

Translation (a channel's ``translate_to``) is I/O and happens before this:
``translation_request`` names the title and the sentences the alert will show,
the pipeline has them translated in one request, and ``render_alert`` takes the
``Translation`` back. The translated alert keeps the original title as the
link and the original hit terms on the "Matched" line, shows the translated
title under it, the translated summary, and a ``🌐 Translated from …`` mark.
Hits are carried over sentence by sentence: a hit's own text is bolded where it
appears verbatim in the translation (a name left as it was), else the whole
translated sentence is bolded — word alignment is unknown, and a wrong bold
word would be worse than a bold sentence.

Images (a channel's ``images: true``): an article with an image also gets a
``caption``, the same alert laid out within 1024 characters after parsing
(the summary is shortened first); the full text alert stays the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from monitor.models import Alert, AlertKind, Article, Channel, Hit, Match, Priority
from monitor.render.telegram_text import (
    ELLIPSIS,
    FSI,
    HREF_MAX,
    LRI,
    MAX_CAPTION_LENGTH,
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
    link_text,
    merge_spans,
    safe_link,
    splits_grapheme,
    truncate,
)
from monitor.sentences import split_sentences
from monitor.stories import story_key
from monitor.text import primary_subtag
from monitor.translate import Translation, language_name

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
    "translation_request",
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
_PREFIX_MIN = 20  # a truncated copy shorter than this is not recognised as one
_PREFIX_CHECK = 64  # picked sentences a new one is compared with (bounded work)
_TRAILING_CUT = (*"….!?؟؛。", "...")
_TERMS_MAX = 6  # original hit terms shown on a translated alert's "Matched" line
_TERM_MAX = 40
_NOTE_MAX = 80
_CAPTION_TITLE_MAX = 200

#: Fixed labels per channel language.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "matched": "Matched",
        "source": "Source",
        "untitled": "(untitled)",
        "translated": "Translated from {language}",
        "untranslated": "Not translated: {reason}",
    },
    "ar": {
        "matched": "القواعد",
        "source": "المصدر",
        "untitled": "(بلا عنوان)",
        "translated": "مترجم من {language}",
        "untranslated": "لم تُترجم: {reason}",
    },
    "ru": {
        "matched": "Правила",
        "source": "Источник",
        "untitled": "(без заголовка)",
        "translated": "Перевод, язык оригинала: {language}",
        "untranslated": "Без перевода: {reason}",
    },
}


# ---------------------------------------------------------------------------
# Public API


def render_alert(
    article: Article,
    matches: Sequence[Match],
    channel: Channel,
    priorities: Mapping[str, Priority] | None = None,
    *,
    translation: Translation | None = None,
    translation_note: str | None = None,
) -> Alert:
    """The one message for ``article`` in ``channel``, naming every rule in ``matches``.

    ``priorities`` maps rule names to their priority: the alert is high when any
    matched rule is (a rule missing from it counts as normal). ``translation``
    is the answer to ``translation_request`` for this article and channel;
    ``translation_note`` is the short reason shown when it could not be had.
    With ``channel.images`` and an article image the alert also carries a
    ``photo_url`` and its ``caption`` (None when even a bare caption cannot fit).
    """
    rules = tuple(dict.fromkeys(m.rule for m in matches))
    high = any((priorities or {}).get(rule) == Priority.HIGH for rule in rules)
    labels = LABELS.get(base_language(channel.language), LABELS["en"])
    link = safe_link(article.link)
    href = link if link and len(link) <= HREF_MAX else None
    spans_by_field = _hit_spans(article, matches)
    picked = _pick_sentences(article, spans_by_field)
    parts = _Parts(rules, _title_segments(article, matches, labels), href, link, labels)
    if translation is not None and translation.translated:
        translated = _translated(article, matches, channel, picked, translation, parts)
        if translated is not None:
            parts, picked = translated
        else:
            translation_note = translation_note or "translation did not match the alert"
    if translation_note and not parts.mark:
        note = truncate(clean(translation_note)[0], _NOTE_MAX)
        parts = parts.with_mark(labels["untranslated"].format(reason=note))

    html_text, console = _layout(article, channel, parts, picked, MAX_MESSAGE_LENGTH)
    photo_url = safe_link(article.image) if channel.images and article.image else None
    caption: str | None = None
    if photo_url is not None:
        short = parts.shortened(_CAPTION_TITLE_MAX)
        fitted = _layout(article, channel, short, picked, MAX_CAPTION_LENGTH, strict=True)
        caption = fitted[0] if fitted[0] else None
        if caption is None:
            photo_url = None

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
        photo_url=photo_url,
        caption=caption,
    )


def translation_request(
    article: Article, matches: Sequence[Match], channel: Channel
) -> tuple[str, tuple[str, ...]]:
    """The title and the summary sentences an alert for ``channel`` shows, to translate.

    Only what the alert shows (its ``summary_length``), whole sentences, in order;
    ``render_alert`` lines the ``Translation`` of these up with its own choice.
    """
    title = clean(article.title)[0]
    picked = _pick_sentences(article, _hit_spans(article, matches))
    budget = max(0, min(channel.summary_length, MAX_MESSAGE_LENGTH - 400))
    _, shown = _fit_count(picked, budget)
    return title, tuple(s.text for s in picked[:shown])


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
    return {field: merge_spans(spans) for field, spans in raw.items()}


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
            if key not in seen and (j := _same_as_prefix(cleaned, picked)) is not None:
                picked[j] = _merge_prefix(picked[j], cleaned, moved)
                seen[key] = j  # a truncated copy (or the whole of one): the same sentence
                continue
            if key in seen:  # the content repeats the summary: merge highlights
                i = seen[key]
                if i < 0:
                    continue
                old = picked[i]
                picked[i] = _Sentence(
                    old.text,
                    tuple(merge_spans([*old.spans, *moved], touching=False)),
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


def _stem(text: str) -> str:
    """``text`` without what a truncated copy or a sentence ends with (``…``, ``...``, ``.``)."""
    stem = text.rstrip()
    while stem.endswith(_TRAILING_CUT):
        stem = stem[:-3] if stem.endswith("...") else stem[:-1]
        stem = stem.rstrip()
    return stem


def _same_as_prefix(text: str, picked: Sequence[_Sentence]) -> int | None:
    """The picked sentence that ``text`` is a prefix of, or that is a prefix of ``text``.

    A feed's description is often its content cut short (``…``), so the same
    sentence comes twice, once whole and once cut. Only the first
    ``_PREFIX_CHECK`` picked sentences are compared (the alert shows fewer).
    """
    stem = _stem(text)
    for i, old in enumerate(picked[:_PREFIX_CHECK]):
        old_stem = _stem(old.text)
        if len(stem) <= len(old_stem):
            if len(stem) >= _PREFIX_MIN and old.text.startswith(stem):
                return i
        elif len(old_stem) >= _PREFIX_MIN and text.startswith(old_stem):
            return i
    return None


def _merge_prefix(old: _Sentence, text: str, spans: Sequence[tuple[int, int]]) -> _Sentence:
    """One sentence from two copies: the longer text, the hits of both."""
    if len(_stem(text)) > len(_stem(old.text)):  # the new copy extends the old one
        keep = len(_stem(old.text))
        moved = [(a, min(b, keep)) for a, b in old.spans if a < keep]
        return _Sentence(
            text, tuple(merge_spans([*moved, *spans], touching=False)), old.field, old.index
        )
    keep = len(_stem(text))
    moved = [(a, min(b, keep)) for a, b in spans if a < keep]
    return _Sentence(
        old.text, tuple(merge_spans([*old.spans, *moved], touching=False)), old.field, old.index
    )


def _fit(picked: list[_Sentence], max_chars: int) -> list[Segment]:
    return _fit_count(picked, max_chars)[0]


def _fit_count(picked: list[_Sentence], max_chars: int) -> tuple[list[Segment], int]:
    """``_fit`` and how many of ``picked`` it showed (whole or cut)."""
    if max_chars <= 0:
        return [], 0
    shown = 0
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
        shown += 1
    return out, shown


def _rest_need(rest: Sequence[_Sentence]) -> int:
    return sum(len(s.text) + len(_GAP) for s in rest)


def _window(
    text: str, spans: Sequence[tuple[int, int]], room: int
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """At most ``room`` characters of ``text`` cut at word boundaries, around the first hit."""
    first = spans[0] if spans else (0, 0)
    if first[1] <= room - 1 or first[0] == 0:  # the head of the sentence shows the hit
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
    while cut < hit_start and splits_grapheme(text, cut):
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


@dataclass(frozen=True)
class _Parts:
    """What surrounds the summary: rules, titles, link and the translation mark."""

    rules: tuple[str, ...]
    title: list[Segment]
    href: str | None
    link: str | None
    labels: dict[str, str]
    terms: tuple[str, ...] = ()  # the original's hit terms (translated alerts)
    translated_title: tuple[Segment, ...] | None = None
    mark: str = ""  # "🌐 Translated from …" or "🌐 Not translated: …"

    def with_mark(self, mark: str) -> _Parts:
        return replace(self, mark=mark)

    def shortened(self, title_max: int) -> _Parts:
        """The same parts with titles cut to ``title_max`` (captions)."""
        return replace(
            self,
            title=_shorten(self.title, title_max),
            translated_title=(
                tuple(_shorten(list(self.translated_title), title_max))
                if self.translated_title is not None
                else None
            ),
        )


def _shorten(segments: list[Segment], limit: int) -> list[Segment]:
    text = "".join(s.text for s in segments)
    if len(text) <= limit:
        return segments
    spans, at = [], 0
    for seg in segments:
        if seg.bold:
            spans.append((at, at + len(seg.text)))
        at += len(seg.text)
    short, moved = _window(text, spans, limit)
    return _segments(short, moved)


def _translated(
    article: Article,
    matches: Sequence[Match],
    channel: Channel,
    picked: list[_Sentence],
    translation: Translation,
    parts: _Parts,
) -> tuple[_Parts, list[_Sentence]] | None:
    """The parts and sentences of the translated alert; None if the translation does
    not line up with what this alert shows (the caller renders the original)."""
    title, sentences = translation_request(article, matches, channel)
    if len(translation.sentences) != len(sentences):
        return None
    terms = _hit_terms(article, matches)
    out: list[_Sentence] = []
    for original, text in zip(picked, translation.sentences, strict=False):
        shown = clean(text)[0]
        if not shown:  # the backend sent nothing for it: the original is better than a gap
            out.append(original)
            continue
        out.append(
            _Sentence(
                shown,
                _carry_bold(shown, terms, bool(original.spans)),
                original.field,
                original.index,
            )
        )
    translated_title: tuple[Segment, ...] | None = None
    shown_title = clean(translation.title)[0]
    if shown_title and shown_title != title:
        had_hits = bool(_hit_spans(article, matches).get("title"))
        spans = list(_carry_bold(shown_title, terms, had_hits))
        if len(shown_title) > _TITLE_MAX:
            shown_title, spans_t = _window(shown_title, spans, _TITLE_MAX)
            spans = list(spans_t)
        translated_title = tuple(_segments(shown_title, spans))
    language = f"{FSI}{language_name(translation.source)}{PDI}"
    mark = parts.labels["translated"].format(language=language)
    return replace(parts, terms=terms, translated_title=translated_title, mark=mark), out


def _hit_terms(article: Article, matches: Sequence[Match]) -> tuple[str, ...]:
    """The original's distinct hit texts, title first, in order of appearance (capped)."""
    found: list[tuple[int, int, str]] = []
    order = {"title": 0, "summary": 1, "content": 2}
    for match in matches:
        for hit in match.hits[:200]:
            text = truncate(clean(hit.text)[0], _TERM_MAX)
            if text and hit.field in order:
                found.append((order[hit.field], hit.start, text))
    terms = dict.fromkeys(t for _, _, t in sorted(found))
    return tuple(list(terms)[:_TERMS_MAX])


def _carry_bold(text: str, terms: Sequence[str], had_hits: bool) -> tuple[tuple[int, int], ...]:
    """Bold spans for a translated sentence: a term left verbatim (a whole word), else the
    whole sentence when its original held a hit, else nothing."""
    spans: list[tuple[int, int]] = []
    for term in terms:
        if len(term) < 2:
            continue
        at = text.find(term)
        while at >= 0 and len(spans) < 50:
            end = at + len(term)
            before = at == 0 or not text[at - 1].isalnum()
            after = end == len(text) or not text[end].isalnum()
            if before and after:
                spans.append((at, end))
            at = text.find(term, end)
    if spans:
        return tuple(merge_spans(spans))
    return ((0, len(text)),) if had_hits and text else ()


def _layout(
    article: Article,
    channel: Channel,
    parts: _Parts,
    picked: list[_Sentence],
    limit: int,
    strict: bool = False,
) -> tuple[str, str]:
    """The alert's HTML and console text within ``limit`` characters after parsing.

    The summary gets what the fixed parts leave; with ``strict`` an alert whose
    fixed parts alone exceed ``limit`` comes back empty (a caption that cannot be).
    """
    head = _head(parts, article, channel)
    tail = _tail(parts)
    fixed_len = head.plain_len + tail.plain_len + 4  # two blank lines around the summary
    if strict and fixed_len > limit:
        return "", ""
    budget = max(0, min(channel.summary_length, limit - fixed_len))
    segments = _fit(picked, budget)
    for with_bold in (True, False):
        html_text, console = _assemble(head, tail, segments, with_bold)
        if len(html_text.encode("utf-8")) <= MAX_HTML_BYTES:
            break
    else:  # pathological: thousands of escaped characters; halve the summary until it fits
        while len(html_text.encode("utf-8")) > MAX_HTML_BYTES and budget > 0:
            budget //= 2
            segments = _fit(picked, budget)
            html_text, console = _assemble(head, tail, segments, False)
    return html_text, console


def _head(parts: _Parts, article: Article, channel: Channel) -> _Block:
    labels = parts.labels
    names = rule_names(parts.rules)
    matched = f"🔔 {labels['matched']}: "
    isolated = " · ".join(f"{FSI}{n}{PDI}" for n in names)
    html_parts = [f"🔔 <b>{esc(labels['matched'])}:</b> ", esc(isolated)]
    plain_parts = [matched, isolated]
    console_parts = [matched, " · ".join(names)]
    if parts.terms:
        terms = " — " + " · ".join(f"{FSI}{t}{PDI}" for t in parts.terms)
        html_parts.append(esc(terms))
        plain_parts.append(terms)
        console_parts.append(" — " + " · ".join(parts.terms))

    title_html = "".join(esc_segment(s, True) for s in parts.title)
    if parts.href:
        title_html = f'<a href="{href_attr(parts.href)}">{title_html}</a>'
    html_parts.append("\n" + title_html)
    plain_parts.append("\n" + "".join(s.text for s in parts.title))
    console_parts.append("\n" + "".join(f"*{s.text}*" if s.bold else s.text for s in parts.title))
    if parts.translated_title is not None:
        html_parts.append("\n🌐 " + "".join(esc_segment(s, True) for s in parts.translated_title))
        plain_parts.append("\n🌐 " + "".join(s.text for s in parts.translated_title))
        console_parts.append(
            "\n🌐 " + "".join(f"*{s.text}*" if s.bold else s.text for s in parts.translated_title)
        )

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


def _tail(parts: _Parts) -> _Block:
    mark_html = mark_console = ""
    mark_len = 0
    if parts.mark:
        mark = f"🌐 {parts.mark}"
        mark_html, mark_console, mark_len = (
            esc(mark),
            mark.replace(FSI, "").replace(PDI, ""),
            len(mark),
        )
    href, link = parts.href, parts.link
    if not link:
        return _Block(mark_html, mark_console, mark_len)
    join = "\n" if parts.mark else ""
    if not href:  # too long to link: the console still gets it
        return _Block(mark_html, mark_console + join + f"🔗 {link}", mark_len)
    shown = truncate(link_text(href), _LINK_TEXT_MAX)
    text = f"🔗 {LRI}{shown}{PDI}"
    html_text = f'🔗 {LRI}<a href="{href_attr(href)}">{esc(shown)}</a>{PDI}'
    return _Block(
        mark_html + join + html_text,
        mark_console + join + f"🔗 {link}",
        mark_len + len(join) + len(text),
    )


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
    return primary_subtag(code) or "en"


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
