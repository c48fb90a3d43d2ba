"""Story identity: when two articles are the same story (pure).

Copies: the same canonical link or GUID, or a near-identical normalised title
within a day in the same channel (``is_same_story``). Events across sources and
languages: ``same_story`` / ``find_story`` on ``StoryCandidate`` (below).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rapidfuzz import fuzz, process

from monitor.models import Alert, Article, Match
from monitor.text import (
    TOKEN_RE,
    guess_language,
    normalize_token,
    primary_subtag,
    raw_tokens,
    script,
    words,
)

SAME_STORY_WINDOW = timedelta(hours=24)
SAME_STORY_SCORE = 92.0  # rapidfuzz ratio of normalised titles
SAME_STORY_MIN_LENGTH = 24  # shorter titles ("Breaking news") must match exactly
_NUMBER = re.compile(r"\d+")


def story_key(article: Article) -> str:
    """Identity of a story across feeds: canonical link, else GUID, else feed+key."""
    if article.link:
        return article.link
    if article.guid:
        return f"guid:{article.guid}"
    return f"{article.feed_id}:{article.key}"


def title_key(title: str) -> str:
    """A title reduced for comparison: normalised words (same rules as ``match.py``)."""
    return " ".join(words(title))


def is_same_story(key: str, seen: Sequence[str]) -> bool:
    """Near-identical normalised titles are one story (another feed's copy of a wire).

    Titles whose numbers differ ("round 3" / "round 4", "12 killed" / "15 killed")
    are different stories however alike the words.
    """
    if len(key) < SAME_STORY_MIN_LENGTH:
        return key in seen
    numbers = _NUMBER.findall(key)
    candidates = [s for s in seen if _NUMBER.findall(s) == numbers]
    best = process.extractOne(key, candidates, scorer=fuzz.ratio, score_cutoff=SAME_STORY_SCORE)
    return best is not None


# ----------------------------------------------------------- stories across languages
#
# ``same_story`` decides whether two alerted articles report the same *event*, in
# the same or another language. Precision first: merging two events hides news,
# a missed merge costs one message. Hard vetoes come first (outside the window;
# different round or session numbers; different directions — a truce in the
# south is not one in the north), then a score adds up evidence:
#
# - the rules both matched (+1; none in common −2; each rule only one matched
#   −0.75) and the matched terms both share (+0.75 each: a rule's terms already
#   align languages, Astana/أستانا/Астана, compared on ``skeleton``);
# - names: capitalised Latin/Cyrillic words not first in a sentence, and
#   capitalised matched terms, looked for among the other text's word skeletons
#   (Arabic words included, so لافروف finds Lavrov): +0.75 per name found; when
#   each side names someone or somewhere the other does not (Lavrov / Shoigu),
#   −0.5 per such name (at most two);
# - numbers in title and lead, read as significant digits so that 240,000,
#   240 тысяч and ٢٤٠ ألف agree: +1.5 per specific figure in common (13 or more,
#   not a year or a day of a month), +0.75 per other number, −1 when both carry
#   numbers and share none; written-out ordinals ("ninth", "التاسعة", "девятый")
#   and small cardinals count; a shared round number +1, a shared direction +0.75;
# - same language only: title similarity and word overlap of title+lead;
# - time: +0.75 within an hour, +0.5 within three, −0.5 beyond twelve.
#
# ``STORY_THRESHOLD`` is 3.25: the rule, one shared term and the same hour
# (2.5) are not enough — two events on one topic often share all three — one
# more independent signal is needed (a name, a figure, a direction, a similar
# title). On tests/data/stories.yaml the best-scoring pair of different events
# scores 2.94 and no two events are merged (``bench/stories.py``).
#
# Cost: ``find_story`` compares a new article only with candidates published
# within ``window`` of it, and only with the newest ``MAX_COMPARE`` of those.
# Each comparison is bounded: at most ``MAX_NAMES`` names against
# ``MAX_SHAPES`` word skeletons of a few characters, ``MAX_TERMS`` terms, and
# two fuzzy ratios over at most ``TITLE_CHARS`` + ``LEAD_CHARS`` characters.

STORY_WINDOW = timedelta(hours=24)
MAX_COMPARE = 200  # newest candidates compared per new article
MAX_NAMES = 24
MAX_TERMS = 24
MAX_SHAPES = 160
LEAD_CHARS = 400
TITLE_CHARS = 300
STORY_THRESHOLD = 3.25  # see the labelled set: the best wrong pair scores 2.94

_CYRILLIC_LATIN = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "e",
            "e",
            "zh",
            "z",
            "i",
            "y",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "sh",
            "_",
            "y",
            "_",
            "e",
            "yu",
            "ya",
        ],
        strict=True,
    )
)
_CYRILLIC_LATIN["ъ"] = _CYRILLIC_LATIN["ь"] = ""
_ARABIC_LATIN = {
    "ا": "a", "ب": "b", "ت": "t", "ث": "th", "ج": "j", "ح": "h", "خ": "kh", "د": "d",
    "ذ": "dh", "ر": "r", "ز": "z", "س": "s", "ش": "sh", "ص": "s", "ض": "d", "ط": "t",
    "ظ": "z", "ع": "", "غ": "gh", "ف": "f", "ق": "q", "ك": "k", "ل": "l", "م": "m",
    "ن": "n", "ه": "h", "و": "w", "ي": "y", "ء": "", "ؤ": "", "ئ": "", "ة": "a", "ى": "a",
    "أ": "a", "إ": "i", "آ": "a", "پ": "p", "چ": "ch", "گ": "g", "ڤ": "v",
}  # fmt: skip
# folded so that one name spelled through Arabic, Russian and English meets itself:
# digraphs first, then sounds the scripts render differently (Russian г for h,
# Arabic ف for v, ب for p, ج for g, ذ/ط/ض for t/d) fall into one class
_DIGRAPHS = (("sh", "s"), ("ch", "s"), ("ts", "s"), ("kh", "h"), ("zh", "j"), ("gh", "g"),
             ("th", "t"), ("ph", "f"), ("dh", "t"), ("ck", "k"), ("x", "ks"), ("v", "f"),
             ("p", "b"), ("d", "t"), ("z", "s"), ("c", "k"), ("q", "k"), ("j", "k"),
             ("g", "k"))  # fmt: skip
_SKELETON_DROP = set("aeiouyhw'_-")
_AR_ARTICLES = ("وال", "بال", "فال", "لل", "ال")
_AR_PROCLITICS = ("و", "ب", "ل", "ف")


def transliterate(word: str) -> str:
    """A simple Latin spelling of a Latin, Cyrillic or Arabic word (lower case, no marks)."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", word.casefold()):
        if unicodedata.combining(ch):
            continue
        if ch in _CYRILLIC_LATIN:
            out.append(_CYRILLIC_LATIN[ch])
        elif ch in _ARABIC_LATIN:
            out.append(_ARABIC_LATIN[ch])
        elif ch.isascii() and ch.isalnum():
            out.append(ch)
    return "".join(out)


def skeleton(word: str) -> str:
    """Consonants of the transliteration, in broad classes (Lavrov, Лавров, لافروف →
    ``lfrf``; Idlib, Идлиб, إدلب → ``tlb``).

    Arabic writes few vowels and has no v or p, so names are compared on
    consonants with sounds folded into classes; a leading Arabic article (ال،
    وال، بال، لل) is dropped.
    """
    if script(word) == "arabic":
        word = normalize_token(word)
        for prefix in _AR_ARTICLES:
            if word.startswith(prefix) and len(word) - len(prefix) >= 3:
                word = word[len(prefix) :]
                break
    s = transliterate(word)
    for a, b in _DIGRAPHS:
        s = s.replace(a, b)
    out: list[str] = []
    for ch in s:
        if ch in _SKELETON_DROP or ch.isdigit():
            continue
        if out and out[-1] == ch:
            continue
        out.append(ch)
    return "".join(out)


# ordinals written out, read as numbers
_EN_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
}  # fmt: skip
# small cardinals written out ("thirty detainees"), read as numbers
_CARDINALS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
    "два": 2, "две": 2, "три": 3, "четыре": 4, "пять": 5, "шесть": 6, "семь": 7,
    "восемь": 8, "девять": 9, "десять": 10, "двадцать": 20, "тридцать": 30, "сорок": 40,
    "пятьдесят": 50, "сто": 100,
    "اثنان": 2, "اثنين": 2, "ثلاثه": 3, "ثلاث": 3, "اربعه": 4, "اربع": 4, "خمسه": 5,
    "خمس": 5, "سته": 6, "ست": 6, "سبعه": 7, "سبع": 7, "ثمانيه": 8, "ثماني": 8,
    "تسعه": 9, "تسع": 9, "عشره": 10, "عشر": 10, "عشرين": 20, "عشرون": 20,
    "ثلاثين": 30, "ثلاثون": 30, "اربعين": 40, "خمسين": 50, "مئه": 100, "مائه": 100,
}  # fmt: skip
_MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "января", "февраля", "марта", "апреля", "мая",
    "июня", "июля", "августа", "сентября", "октября", "ноября", "декабря", "يناير",
    "فبراير", "مارس", "ابريل", "مايو", "يونيو", "يوليو", "اغسطس", "سبتمبر", "اكتوبر",
    "نوفمبر", "ديسمبر", "كانون", "شباط", "اذار", "نيسان", "ايار", "حزيران", "تموز", "اب",
    "ايلول", "تشرين",
}  # fmt: skip
FIGURE_MIN = 13  # numbers from here up (not dates, not years) are specific evidence
_THOUSANDS_RE = re.compile(r"(?<![\d.,])(\d{1,3})((?:[,\u066c\u00a0 ]\d{3})+)(?![\d])")
_RU_ORDINAL_RE = re.compile(
    r"(перв|втор|трет|четверт|пят|шест|седьм|восьм|девят|десят|одиннадцат|двенадцат)"
    r"(ый|ого|ому|ым|ом|ой|ая|ую|ое|ые|ых|ыми|ий|ья|ье|ьего|ьей|ьему|ьим|ьем|ью|ьи|ьих)"
)
_RU_ORDINAL_STEMS = {
    "перв": 1, "втор": 2, "трет": 3, "четверт": 4, "пят": 5, "шест": 6, "седьм": 7,
    "восьм": 8, "девят": 9, "десят": 10, "одиннадцат": 11, "двенадцат": 12,
}  # fmt: skip
_AR_ORDINAL_BASES = {
    "اول": 1, "ثاني": 2, "ثالث": 3, "رابع": 4, "خامس": 5, "سادس": 6, "سابع": 7,
    "ثامن": 8, "تاسع": 9, "عاشر": 10,
}  # fmt: skip
_AR_ORDINALS: dict[str, int] = {"الاولي": 1, "اولي": 1}
for _base, _n in _AR_ORDINAL_BASES.items():
    for _form in (_base, _base + "ه", "ال" + _base, "ال" + _base + "ه"):
        _AR_ORDINALS[_form] = _n
# words after or before which a number is a round/session number
_SESSION_WORDS = {
    "round", "rounds", "session", "meeting", "summit", "phase", "stage",
    "раунд", "раунда", "раунде", "тур", "тура", "туре", "заседание", "этап", "этапа",
    "جوله", "الجوله", "جولات", "دوره", "الدوره", "مرحله", "المرحله",
}  # fmt: skip
_ORDINAL_SUFFIX_RE = re.compile(r"^(\d{1,3})(st|nd|rd|th|й|я|е|го|м)$")
# directions: two reports of the same event do not disagree on where it is
_DIRECTIONS = {
    "south": "S", "southern": "S", "جنوب": "S", "الجنوب": "S", "جنوبي": "S", "الجنوبي": "S",
    "الجنوبيه": "S", "جنوبيه": "S", "юг": "S", "юге": "S", "южный": "S", "южной": "S",
    "южном": "S", "южная": "S", "юга": "S",
    "north": "N", "northern": "N", "شمال": "N", "الشمال": "N", "شمالي": "N", "الشمالي": "N",
    "الشماليه": "N", "شماليه": "N", "север": "N", "севере": "N", "северный": "N",
    "северной": "N", "северном": "N", "северная": "N", "севера": "N",
    "east": "E", "eastern": "E", "شرق": "E", "الشرق": "E", "شرقي": "E", "الشرقي": "E",
    "الشرقيه": "E", "восток": "E", "востоке": "E", "восточный": "E", "восточной": "E",
    "восточном": "E",
    "west": "W", "western": "W", "غرب": "W", "الغرب": "W", "غربي": "W", "الغربي": "W",
    "الغربيه": "W", "запад": "W", "западе": "W", "западный": "W", "западной": "W",
    "западном": "W",
}  # fmt: skip
# capitalised words that are not names
_NOT_NAMES = {
    "the", "a", "an", "in", "on", "at", "after", "before", "as", "by", "for", "from", "with",
    "this", "that", "it", "he", "she", "they", "we", "his", "her", "its", "their", "new",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "minister", "president", "foreign", "defence",
    "defense", "ministry", "talks", "round", "state", "news", "breaking", "update", "says",
    "в", "на", "по", "и", "с", "о", "об", "за", "после", "до", "как", "что", "это", "он",
    "она", "они", "его", "ее", "их", "министр", "глава", "президент", "понедельник",
    "вторник", "среда", "среду", "четверг", "пятница", "пятницу", "суббота", "субботу",
    "воскресенье", "января", "февраля", "марта", "апреля", "мая", "июня", "июля",
    "августа", "сентября", "октября", "ноября", "декабря", "мид", "новый", "новые",
}  # fmt: skip


@dataclass(frozen=True)
class StoryCandidate:
    """What ``same_story`` compares: an alerted article reduced to its evidence."""

    key: str  # ``story_key`` of the article
    language: str  # "ar", "ru", "en", … ("" when unknown)
    title: str
    lead: str
    published: datetime
    rules: frozenset[str] = frozenset()
    terms: frozenset[str] = frozenset()  # skeletons of the matched terms
    numbers: frozenset[str] = frozenset()  # digits, ordinals read as digits
    ordinals: frozenset[str] = frozenset()  # round/session numbers (a veto on mismatch)
    figures: frozenset[str] = frozenset()  # specific numbers: tolls, tonnes, trucks
    names: frozenset[str] = frozenset()  # skeletons of capitalised words and matched terms
    directions: frozenset[str] = frozenset()  # S N E W
    shapes: frozenset[str] = field(default=frozenset(), repr=False)  # skeletons of all words
    story: str = ""  # the story id this candidate belongs to (storage sets it)
    words: frozenset[str] = field(default=frozenset(), repr=False)  # title+lead, normalised


@dataclass(frozen=True)
class StoryClaim:
    """An alert on its way to the outbox with what storage needs to place it in a story.

    ``candidate`` is None for a channel with ``stories: off``: the alert is then
    queued unless a near-identical title was alerted within ``window``.
    """

    alert: Alert
    candidate: StoryCandidate | None
    window: timedelta = SAME_STORY_WINDOW


@dataclass(frozen=True)
class StoryVerdict:
    """The decision for one pair, with the evidence that made it."""

    score: float
    same: bool
    reasons: tuple[str, ...]


def _clean_text(text: str, limit: int) -> str:
    text = "".join(
        ch for ch in text[: limit * 2] if not "\ud800" <= ch <= "\udfff" and ch != "\x00"
    )
    return " ".join(text.split())[:limit]


def _significant(value: int) -> str:
    """Digits without trailing zeros: 240,000 · 240 тысяч · 240 ألف all read ``24``."""
    text = str(value).rstrip("0")
    return text or "0"


def _number_features(text: str) -> tuple[set[str], set[str], set[str]]:
    """Numbers (significant digits), figures (the specific ones: at least ``FIGURE_MIN``,
    not a day of a month) and round/session numbers, from a text in any script."""
    text = _THOUSANDS_RE.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), text)
    numbers: set[str] = set()
    figures: set[str] = set()
    ordinals: set[str] = set()
    norm = [normalize_token(t) for t in raw_tokens(text)]
    for i, w in enumerate(norm):
        value: int | None = None
        if w.isdigit() and len(w) <= 12:
            value = int(w)
        elif m := _ORDINAL_SUFFIX_RE.match(w):
            value = int(m.group(1))
        elif w in _EN_ORDINALS:
            value = _EN_ORDINALS[w]
        elif w in _CARDINALS:
            value = _CARDINALS[w]
        elif (m := _RU_ORDINAL_RE.fullmatch(w)) is not None:
            value = _RU_ORDINAL_STEMS[m.group(1)]
        else:
            bare = w[1:] if w.startswith(("و", "ل", "ب")) and w[1:] in _AR_ORDINALS else w
            if bare in _AR_ORDINALS:
                value = _AR_ORDINALS[bare]
        if value is None:
            continue
        if len(numbers) < MAX_NAMES:
            numbers.add(_significant(value))
        near = norm[max(0, i - 2) : i] + norm[i + 1 : i + 3]
        if any(n in _SESSION_WORDS for n in near):
            ordinals.add(str(value))
        elif (
            value >= FIGURE_MIN
            and not 1900 <= value <= 2100
            and len(figures) < MAX_NAMES
            and not any(n in _MONTHS for n in norm[max(0, i - 1) : i + 2])
        ):
            figures.add(_significant(value))
    return numbers, figures, ordinals


def _shapes(text: str) -> set[str]:
    """Skeletons of every word (Arabic also without a one-letter proclitic): where a
    name from another language is looked for."""
    shapes: set[str] = set()
    for raw in raw_tokens(text):
        if len(shapes) >= MAX_SHAPES:
            break
        forms = [raw]
        if script(raw) == "arabic":
            w = normalize_token(raw)
            forms += [w[1:] for p in _AR_PROCLITICS if w.startswith(p) and len(w) >= 5]
        for form in forms:
            sk = skeleton(form)
            if len(sk) >= 2:
                shapes.add(sk)
    return shapes


_SENTENCE_END_RE = re.compile(r"[.!?؟…:\n]\s*$")


def _name_features(text: str) -> set[str]:
    """Skeletons of capitalised Latin/Cyrillic words that are not first in a sentence.

    A sentence's first word is capitalised anyway; a headline in Title Case
    (most words capitalised) gives no evidence and is skipped.
    """
    names: set[str] = set()
    for part in text.split("\n"):
        spans = [(m.start(), m.group()) for m in TOKEN_RE.finditer(part)]
        caps = [t for _, t in spans if t[:1].isupper()]
        if len(spans) >= 4 and len(caps) > 0.6 * len(spans):
            continue
        for i, (start, raw) in enumerate(spans):
            if len(names) >= MAX_NAMES:
                return names
            if i == 0 or _SENTENCE_END_RE.search(part[:start]):
                continue
            if script(raw) not in ("latin", "cyrillic") or not raw[:1].isupper() or len(raw) < 3:
                continue
            if raw.isupper() and len(raw) <= 4:
                continue  # acronyms: UN, MFA, ООН are not names of people or places
            w = normalize_token(raw)
            if w in _NOT_NAMES or w in _DIRECTIONS or w in _EN_ORDINALS:
                continue
            sk = skeleton(raw)
            if len(sk) >= 2:
                names.add(sk)
    return names


def make_candidate(
    *,
    key: str,
    title: str,
    lead: str,
    published: datetime,
    language: str | None = None,
    rules: Iterable[str] = (),
    terms: Iterable[str] = (),
    story: str = "",
) -> StoryCandidate:
    """Build a candidate from plain values (``candidate_from`` does it from an Article)."""
    title = _clean_text(title, TITLE_CHARS)
    lead = _clean_text(lead, LEAD_CHARS)
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    text = f"{title}\n{lead}"
    numbers, figures, ordinals = _number_features(text)
    names = _name_features(text)
    term_skeletons: set[str] = set()
    for term in list(terms)[:MAX_TERMS]:
        term = _clean_text(str(term), 100)
        sk = "".join(skeleton(w) for w in words(term))
        if sk:
            term_skeletons.add(sk)
            # a capitalised Latin/Cyrillic term is a name (Lavrov, Idlib); Arabic
            # terms cannot tell, and lower-case terms (truce) are translated, not named
            named = script(term) in ("latin", "cyrillic") and term[:1].isupper()
            if named and len(names) < MAX_NAMES and len(sk) >= 2:
                names.add(sk)
    directions = {_DIRECTIONS[w] for w in words(text) if w in _DIRECTIONS}
    return StoryCandidate(
        key=key,
        language=primary_subtag(language or guess_language(text)),
        title=title,
        lead=lead,
        published=published.astimezone(UTC),
        rules=frozenset(_clean_text(r, 200) for r in list(rules)[:MAX_TERMS]),
        terms=frozenset(term_skeletons),
        numbers=frozenset(numbers),
        ordinals=frozenset(ordinals),
        figures=frozenset(figures),
        names=frozenset(names),
        directions=frozenset(directions),
        shapes=frozenset(_shapes(text)),
        story=story or key,
        words=frozenset(words(text)),
    )


def candidate_from(
    article: Article, matches: Sequence[Match], *, story: str = ""
) -> StoryCandidate:
    """The candidate for an alerted article: its title, lead, rules and matched terms.

    Articles without a publication time should be given one (first seen) by the
    caller; the epoch stands in so that they never fall inside a window by accident.
    """
    terms = [hit.text or hit.term for m in matches for hit in m.hits]
    return make_candidate(
        key=story_key(article),
        title=article.title,
        lead=article.summary or article.content,
        published=article.published or datetime(1970, 1, 1, tzinfo=UTC),
        language=article.language,
        rules=[m.rule for m in matches],
        terms=terms,
        story=story,
    )


def _fuzzy_shared(a: frozenset[str], b: frozenset[str]) -> int:
    """How many of the smaller set have a near-identical skeleton in the other."""
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    shared = 0
    for x in sorted(small):
        if x in large:
            shared += 1
            continue
        if len(x) >= 4:
            best = process.extractOne(x, sorted(large), scorer=fuzz.ratio, score_cutoff=80)
            if best is not None:
                shared += 1
    return shared


def _name_in(name: str, shapes: frozenset[str], pool: list[str]) -> bool:
    """Whether a name's skeleton is among the other text's word shapes: exactly, as a
    prefix one consonant short (Moscow ``msk`` / Москве ``mskf``), or by a fuzzy
    ratio of at least 85 for names of four or more consonants."""
    if name in shapes:
        return True
    if len(name) < 3:
        return False
    for shape in pool:
        near = len(shape) >= 3 and abs(len(shape) - len(name)) == 1
        if near and (shape.startswith(name) or name.startswith(shape)):
            return True
    if len(name) >= 4:
        return process.extractOne(name, pool, scorer=fuzz.ratio, score_cutoff=85) is not None
    return False


def _found(names: frozenset[str], terms: frozenset[str], shapes: frozenset[str]) -> tuple[int, int]:
    """How many names (not already counted as matched terms, 3+ consonants) appear
    among the other text's word shapes, and how many names (terms included, 2+
    consonants: Shoigu is ``sk``) do not."""
    found = missing = 0
    pool = sorted(shapes)
    for name in sorted(names):
        if len(name) < 2:
            continue
        if _name_in(name, shapes, pool):
            if len(name) >= 3 and name not in terms:
                found += 1
        else:
            missing += 1
    return found, missing


def _years(numbers: frozenset[str]) -> frozenset[str]:
    return frozenset(n for n in numbers if len(n) == 4 and 1900 <= int(n) <= 2100)


def same_story(
    a: StoryCandidate, b: StoryCandidate, *, window: timedelta = STORY_WINDOW
) -> StoryVerdict:
    """Whether two candidates report the same event: symmetric and deterministic."""
    if a.key == b.key:
        return StoryVerdict(10.0, True, ("same link",))
    # order the pair so that the result does not depend on argument order
    if (a.key, a.published, a.title) > (b.key, b.published, b.title):
        a, b = b, a
    reasons: list[str] = []
    gap = abs(a.published - b.published)
    if gap > window:
        return StoryVerdict(0.0, False, ("outside the window",))
    if a.ordinals and b.ordinals and not a.ordinals & b.ordinals:
        return StoryVerdict(0.0, False, ("different round or session numbers",))
    if a.directions and b.directions and not a.directions & b.directions:
        return StoryVerdict(0.0, False, ("different directions",))
    if a.language and a.language == b.language:
        # as ``is_same_story`` decides within a language: titles whose numbers differ
        # ("bulletin 3" / "bulletin 4", "round 8" / "round 9") are different stories
        a_title_numbers = set(_NUMBER.findall(title_key(a.title)))
        b_title_numbers = set(_NUMBER.findall(title_key(b.title)))
        if a_title_numbers and b_title_numbers and not a_title_numbers & b_title_numbers:
            return StoryVerdict(0.0, False, ("titles with different numbers",))
    score = 0.0
    same_language = bool(a.language) and a.language == b.language
    key_a = title_key(a.title)
    if same_language and len(key_a) >= SAME_STORY_MIN_LENGTH and key_a == title_key(b.title):
        return StoryVerdict(10.0, True, ("same title",))

    shared_rules = a.rules & b.rules
    if shared_rules:
        score += 1.0
        reasons.append("rules " + ", ".join(sorted(shared_rules)[:3]))
    elif a.rules and b.rules:
        score -= 2.0
        reasons.append("no rule in common")
    only_one = len(a.rules ^ b.rules)
    if only_one:
        score -= min(only_one, 2) * 0.75
        reasons.append(f"{only_one} rules matched only one")
    shared_terms = _fuzzy_shared(a.terms, b.terms) if a.terms and b.terms else 0
    if shared_terms:
        score += min(shared_terms, 3) * 0.75
        reasons.append(f"{shared_terms} matched terms in common")

    a_found, a_missing = _found(a.names, a.terms, b.shapes)
    b_found, b_missing = _found(b.names, b.terms, a.shapes)
    found = max(a_found, b_found)
    if found:
        score += min(found, 3) * 0.75
        reasons.append(f"{found} names in common")
    if a_missing and b_missing:  # each names someone or somewhere the other does not
        score -= min(a_missing, b_missing, 2) * 0.5
        reasons.append("names differ")
    if a.directions & b.directions:
        score += 0.75
        reasons.append("same direction")

    a_nums, b_nums = a.numbers - _years(a.numbers), b.numbers - _years(b.numbers)
    if a_nums and b_nums:
        common = a_nums & b_nums
        if common:
            strong = len(a.figures & b.figures)
            score += min(strong, 2) * 1.5 + min(len(common) - strong, 2) * 0.75
            reasons.append("numbers " + ", ".join(sorted(common)[:3]))
        else:
            score -= 1.0
            reasons.append("numbers differ")
    if a.ordinals and b.ordinals:
        score += 1.0
        reasons.append("same round")

    if same_language:
        title_sim = fuzz.token_set_ratio(title_key(a.title), title_key(b.title)) / 100
        overlap = len(a.words & b.words) / max(1, min(len(a.words), len(b.words)))
        score += 3.0 * max(0.0, title_sim - 0.45) + 2.0 * max(0.0, overlap - 0.2)
        reasons.append(f"title {title_sim:.2f}, words {overlap:.2f}")

    if gap <= timedelta(hours=1):
        score += 0.75
    elif gap <= timedelta(hours=3):
        score += 0.5
    elif gap > timedelta(hours=12):
        score -= 0.5
    score = round(score, 6)
    return StoryVerdict(score, score >= STORY_THRESHOLD, tuple(reasons))


def find_story(
    candidate: StoryCandidate,
    recent: Sequence[StoryCandidate],
    window: timedelta = STORY_WINDOW,
    now: datetime | None = None,
) -> str | None:
    """The story id the candidate joins (the best-scoring match), or None for a new story.

    Only candidates published within ``window`` of the candidate (and of ``now``)
    are compared, newest first, at most ``MAX_COMPARE`` of them.
    """
    ref = now or candidate.published
    pool = [
        c
        for c in recent
        if abs(c.published - candidate.published) <= window and ref - c.published <= window
    ]
    pool.sort(key=lambda c: (c.published, c.key), reverse=True)
    best: tuple[float, str] | None = None
    for other in pool[:MAX_COMPARE]:
        verdict = same_story(candidate, other, window=window)
        if verdict.same and (best is None or verdict.score > best[0]):
            best = (verdict.score, other.story or other.key)
    return best[1] if best else None


def group_stories(
    candidates: Sequence[StoryCandidate], window: timedelta = STORY_WINDOW
) -> dict[str, str]:
    """Replay a stream in publication order: candidate key → story id (bench, backtests)."""
    assigned: dict[str, str] = {}
    seen: list[StoryCandidate] = []
    for c in sorted(candidates, key=lambda c: (c.published, c.key)):
        story = find_story(c, seen, window, c.published) or c.key
        assigned[c.key] = story
        seen.append(StoryCandidate(**{**c.__dict__, "story": story}))
    return assigned


_SET_FIELDS = (
    "rules",
    "terms",
    "numbers",
    "ordinals",
    "figures",
    "names",
    "directions",
    "shapes",
    "words",
)


def candidate_to_json(candidate: StoryCandidate) -> str:
    """The candidate as JSON, for a story table: rebuilt by ``candidate_from_json``
    without re-reading the article."""
    data: dict[str, object] = {
        "key": candidate.key,
        "language": candidate.language,
        "title": candidate.title,
        "lead": candidate.lead,
        "published": candidate.published.isoformat(),
        "story": candidate.story,
    }
    for name in _SET_FIELDS:
        data[name] = sorted(getattr(candidate, name))
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def candidate_from_json(text: str) -> StoryCandidate:
    """Inverse of ``candidate_to_json``; raises ``ValueError`` on anything else."""
    try:
        data = json.loads(text)
        sets = {name: frozenset(str(x) for x in data.get(name, ())) for name in _SET_FIELDS}
        published = datetime.fromisoformat(data["published"])
        if published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
        return StoryCandidate(
            key=str(data["key"]),
            language=str(data.get("language", "")),
            title=str(data.get("title", "")),
            lead=str(data.get("lead", "")),
            published=published,
            story=str(data.get("story") or data["key"]),
            **sets,
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a story candidate: {exc}") from exc
