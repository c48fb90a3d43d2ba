"""Multilingual text normalisation, tokens and word forms (pure functions).

Articles and rule terms go through the same functions, so a term and the text
it should hit compare equal after normalisation:

* Unicode NFKC and case folding; Latin (and Greek) accents removed;
* Arabic: tashkeel, Quranic marks and tatweel removed; ``أ إ آ ٱ`` → ``ا``,
  ``ى`` → ``ي``, ``ة`` → ``ه``, Persian ``ک ی`` → ``ك ي``; hamza on waw and
  yeh (``ؤ ئ``) is kept;
* Arabic-Indic and Persian digits → ASCII; Russian ``ё`` → ``е`` (``й`` stays);
* zero-width joiners and soft hyphens vanish inside a word.

A token is a run of letters, digits and combining marks, so ``Lavrov's`` is the
token ``Lavrov`` (the possessive ``'s`` is dropped) and ``cease-fire`` is two
tokens. Tokens are found in the *original* text, so their offsets are the
offsets an alert highlights; each token is then normalised on its own (and
cached, because news vocabulary repeats).

Word forms are generated, not stripped blindly: an Arabic token yields the
candidates left after removing each possible run of proclitics (``وبالمفاوضات``
→ ``بالمفاوضات``, ``المفاوضات``, ``مفاوضات`` …) and keeps itself, so
``لافروف`` still matches ``لافروف``. Russian uses pymorphy3 lemmas (loaded once,
lazily). English/French and Arabic suffixes are generated from the *term*
(``ceasefire`` → ``ceasefires``; ``مفاوضة`` → ``مفاوضات``), so article tokens
need only a dictionary lookup.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from functools import lru_cache

# --------------------------------------------------------------------------- tokens


def _mark_class() -> str:
    """A regex class of every combining mark in the BMP (Python's ``re`` has no \\p{M})."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x300, 0x10000):
        if unicodedata.category(chr(cp)) in ("Mn", "Mc", "Me"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    parts = [
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    ]
    return "".join(parts)


_MARKS = _mark_class()
#: Characters that belong to a word: letters, digits (and ``_``, as ``\w`` has it),
#: combining marks, tatweel, ZWNJ/ZWJ and the soft hyphen. One class keeps ``re`` fast.
_WORD_CHAR = rf"[\w{_MARKS}\u0640\u200c\u200d\u00ad]"
#: One token; group 1 is the word, an English possessive ``'s`` after it is swallowed.
TOKEN_RE = re.compile(rf"({_WORD_CHAR}+)(?:['’ʼ][sS](?!{_WORD_CHAR}))?")
_WORD_RE = re.compile(rf"{_WORD_CHAR}+")


def token_spans(text: str) -> list[tuple[int, int]]:
    """Original ``(start, end)`` offsets of the tokens of ``text``, in order."""
    return [m.span(1) for m in TOKEN_RE.finditer(text)]


def raw_tokens(text: str) -> list[str]:
    """The tokens of ``text`` as written (not normalised), aligned with ``token_spans``."""
    return TOKEN_RE.findall(text)


# --------------------------------------------------------------------- normalisation

_ARABIC_MAP = {
    "\u0671": "\u0627",  # ٱ alef wasla
    "\u0649": "\u064a",  # ى alef maksura → ي
    "\u0629": "\u0647",  # ة ta marbuta → ه
    "\u06a9": "\u0643",  # ک Persian kaf → ك
    "\u06cc": "\u064a",  # ی Persian yeh → ي
    "\u06c0": "\u0647",  # ۀ heh with yeh above → ه
    "\u0640": "",  # tatweel
    "\u200c": "",  # zero-width non-joiner
    "\u200d": "",  # zero-width joiner
    "\u00ad": "",  # soft hyphen
}
for _i in range(10):
    _ARABIC_MAP[chr(0x0660 + _i)] = str(_i)  # Arabic-Indic digits
    _ARABIC_MAP[chr(0x06F0 + _i)] = str(_i)  # Persian digits
_ALEF = "\u0627"
_HAMZA_MARKS = "\u0653\u0654\u0655"  # madda, hamza above, hamza below (NFD of آ أ إ)
_CYRILLIC_KEEP = "\u0306"  # breve: й, ў stay distinct from и, у


def _is_arabic_letter(ch: str) -> bool:
    return "\u0600" <= ch <= "\u06ff" or "\u0750" <= ch <= "\u077f" or "\u08a0" <= ch <= "\u08ff"


def _is_cyrillic(ch: str) -> bool:
    return "\u0400" <= ch <= "\u052f"


@lru_cache(maxsize=1 << 18)
def normalize_token(token: str) -> str:
    """Normalise one word as the module docstring says; idempotent."""
    s = unicodedata.normalize("NFKC", token).casefold()
    s = unicodedata.normalize("NFKC", s)
    out: list[str] = []
    base = ""
    for ch in unicodedata.normalize("NFD", s):
        if unicodedata.combining(ch) or unicodedata.category(ch) == "Mn":
            if _is_cyrillic(base):
                if ch == _CYRILLIC_KEEP:
                    out.append(ch)
            elif _is_arabic_letter(base):
                # hamza/madda only ride on ؤ ئ and are kept there; on alef they vanish
                if ch in _HAMZA_MARKS and base != _ALEF:
                    out.append(ch)
            elif not base.isascii() and unicodedata.category(base)[0] != "L":
                out.append(ch)
            # marks on Latin/Greek/other letters: accents, removed
            continue
        mapped = _ARABIC_MAP.get(ch)
        if mapped is not None:
            out.append(mapped)
            base = mapped[-1:] or base
            continue
        out.append(ch)
        base = ch
    result = unicodedata.normalize("NFC", "".join(out))
    if "ё" in result:
        result = result.replace("ё", "е")
    return result


def normalize(text: str) -> str:
    """Normalise a whole text: tokens are normalised, everything between them is kept."""
    return normalize_map(text)[0]


def normalize_map(text: str) -> tuple[str, list[int], list[int]]:
    """Normalised text plus, per normalised character, its original ``[start, end)``.

    A match ``[a, b)`` in the normalised text covers ``text[starts[a]:ends[b-1]]``.
    """
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in _WORD_RE.finditer(text):
        a, b = m.span()
        for k in range(pos, a):  # the gap, unchanged
            out.append(text[k])
            starts.append(k)
            ends.append(k + 1)
        norm = normalize_token(m.group())
        # map each normalised char to the original char cluster it came from when the
        # token normalises char by char (the usual case), else to the whole token
        pieces = [normalize_token(text[k]) for k in range(a, b)]
        if "".join(pieces) == norm:
            first = len(out)
            for k, piece in zip(range(a, b), pieces, strict=True):
                if not piece and len(out) > first:
                    ends[-1] = k + 1  # a dropped mark or tatweel widens the char before it
                for ch in piece:
                    out.append(ch)
                    starts.append(k)
                    ends.append(k + 1)
        else:
            for ch in norm:
                out.append(ch)
                starts.append(a)
                ends.append(b)
        pos = b
    for k in range(pos, len(text)):
        out.append(text[k])
        starts.append(k)
        ends.append(k + 1)
    return "".join(out), starts, ends


def words(text: str) -> list[str]:
    """The normalised words of a text or a term (``cease-fire`` → ``cease``, ``fire``)."""
    result: list[str] = []
    for raw in raw_tokens(text):
        result.extend(_WORD_RE.findall(normalize_token(raw)))
    return result


# ------------------------------------------------------------------------- scripts


def script(word: str) -> str:
    """``"arabic"``, ``"cyrillic"``, ``"latin"`` or ``"other"``, from the first letter."""
    for ch in word:
        if ch.isdigit():
            continue
        if _is_arabic_letter(ch):
            return "arabic"
        if _is_cyrillic(ch):
            return "cyrillic"
        if ch.isascii() or "\u00c0" <= ch <= "\u024f":
            return "latin"
        return "other"
    return "other"


def letter_count(word: str) -> int:
    """Letters in a word (digits and marks do not count)."""
    return sum(1 for ch in word if ch.isalpha())


# ---------------------------------------------------------------- Arabic proclitics

_CONJ = ("", "و", "ف")
_PREP = ("", "ب", "ك", "ل")


def _proclitic_prefixes() -> tuple[str, ...]:
    prefixes = set()
    for c in _CONJ:
        for p in _PREP:
            prefixes.add(c + p)
            prefixes.add(c + p + "ال" if p != "ل" else c + "لل")
    prefixes.discard("")
    return tuple(sorted(prefixes, key=len))


#: Every run of conjunction + preposition + article that can precede an Arabic word.
PROCLITICS: tuple[str, ...] = _proclitic_prefixes()
_MIN_STEM = 2


def arabic_candidates(word: str) -> tuple[str, ...]:
    """The word itself and what is left after each proclitic run it may carry.

    Candidates, not a decision: ``لافروف`` gives ``لافروف`` (and the harmless
    ``افروف``), so a term ``لافروف`` still matches it exactly.
    """
    found = [word]
    for prefix in PROCLITICS:
        if len(word) - len(prefix) >= _MIN_STEM and word.startswith(prefix):
            stem = word[len(prefix) :]
            if prefix.endswith("لل"):
                # ل + ال: "للمفاوضات" → "مفاوضات"; the article's alef is elided
                found.append(stem)
                found.append("ال" + stem)
            else:
                found.append(stem)
    return tuple(dict.fromkeys(found))


def arabic_term_bases(word: str) -> tuple[str, ...]:
    """A term word and, when it carries the article ``ال``, the word without it."""
    if word.startswith("ال") and len(word) - 2 >= 3:
        return (word, word[2:])
    return (word,)


_AR_PRONOUNS = ("ه", "ها", "هم", "هما", "هن", "كم", "كما", "نا")
_AR_PLURALS = ("ات", "ون", "ين", "ان")


def arabic_forms(word: str) -> set[str]:
    """Light suffix forms of an Arabic term word: plurals, duals, pronoun suffixes.

    ``مفاوضة`` → ``مفاوضات``, ``مفاوضته`` …; ``مسلح`` → ``مسلحون``, ``مسلحين``;
    ``مفاوضات`` → ``مفاوضة``. Nisba ``ي`` is *not* a form: ``إيراني`` is not ``إيران``.
    """
    forms = {word}
    if letter_count(word) < 3:
        return forms
    if word.endswith("ه"):  # ة folded: feminine noun
        stem = word[:-1]
        forms.add(stem + "ات")
        forms.add(stem + "تان")
        forms.add(stem + "تين")
        forms.update(stem + "ت" + p for p in _AR_PRONOUNS)
    elif word.endswith("ات") and len(word) > 4:
        stem = word[:-2]
        forms.add(stem + "ه")
        forms.update(word + p for p in _AR_PRONOUNS)
    elif word[-1] in "اوي":
        forms.update(word + p for p in ("ها", "هم", "نا", "كم"))
    else:
        forms.update(word + p for p in _AR_PLURALS)
        forms.update(word + p for p in _AR_PRONOUNS)
    return forms


# ------------------------------------------------------------- English and French

_VOWELS = set("aeiou")


def latin_forms(word: str) -> set[str]:
    """Inflected forms of an English (or French) term word, generated from the term.

    Plural/third person (``ceasefires``, ``talks``, ``embargoes``, ``parties``), past
    and ``-ing`` (``banned``, ``negotiating``), the singular of a plural term
    (``talks`` → ``talk``) and French ``-al``/``-aux``, ``-eau(x)`` plurals.
    """
    forms = {word}
    if not word.isalpha() or len(word) < 3:
        return forms
    bases = {word}
    if len(word) > 4:
        if word.endswith("ies"):
            bases.add(word[:-3] + "y")
        elif word.endswith(("ses", "xes", "zes", "ches", "shes")):
            bases.add(word[:-2])
        elif word.endswith("aux"):
            bases.add(word[:-3] + "al")
        elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
            bases.add(word[:-1])
    for b in bases:
        forms.add(b)
        last = b[-1]
        cons_y = len(b) > 1 and last == "y" and b[-2] not in _VOWELS
        if cons_y:
            forms.update((b[:-1] + "ies", b[:-1] + "ied", b + "ing"))
        elif b.endswith(("s", "x", "z", "ch", "sh", "o")):
            forms.update((b + "es", b + "ed", b + "ing", b + "s"))
        elif last == "e":
            forms.update((b + "s", b + "d", b[:-1] + "ing"))
        else:
            forms.update((b + "s", b + "ed", b + "ing"))
            if (
                len(b) >= 3
                and last not in _VOWELS
                and last not in "wxy"
                and b[-2] in _VOWELS
                and b[-3] not in _VOWELS
            ):
                forms.update((b + last + "ed", b + last + "ing"))
        if b.endswith("al"):
            forms.add(b[:-2] + "aux")
        if b.endswith(("eau", "au", "eu")):
            forms.add(b + "x")
    return forms


# ------------------------------------------------------------------------ Russian

_morph = None
_morph_lock = threading.Lock()


def _analyzer():  # pragma: no cover - trivial
    """The pymorphy3 analyser, loaded once per process on first use (~0.15 s)."""
    global _morph
    if _morph is None:
        with _morph_lock:
            if _morph is None:
                import pymorphy3

                _morph = pymorphy3.MorphAnalyzer()
    return _morph


@lru_cache(maxsize=1 << 17)
def russian_lemmas(word: str) -> tuple[str, ...]:
    """Every dictionary form pymorphy3 proposes for a normalised Russian token.

    ``астане`` → (``астана``, ``астан``); ``лаврова`` → (``лавров``,). Cached: a parse
    costs ~65 µs, a cache hit well under 1 µs.
    """
    parses = _analyzer().parse(word)
    return tuple(dict.fromkeys(p.normal_form.replace("ё", "е") for p in parses))


@lru_cache(maxsize=1 << 16)
def russian_term_lemmas(word: str) -> tuple[str, ...]:
    """The dictionary forms a Russian *term* word stands for: itself, and the lemma of
    its most probable parse when pymorphy3 knows the word (``астане`` → ``астана``).

    Unknown words (most proper nouns in rules) are taken as written: predicting their
    parse costs ~1 ms and a rule names a word in its dictionary form anyway.
    """
    morph = _analyzer()
    if not morph.word_is_known(word):
        return (word,)
    parses = morph.parse(word)
    return tuple(dict.fromkeys((word, *(p.normal_form.replace("ё", "е") for p in parses[:1]))))


# ---------------------------------------------------------------------- languages

_STOPWORDS = {
    "en": {"the", "and", "of", "to", "in", "is", "that", "for", "on", "with", "was", "said"},
    "fr": {"le", "la", "les", "des", "et", "du", "un", "une", "est", "dans", "pour", "sur"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "mit", "den", "von", "zu", "auf"},
    "es": {"el", "los", "las", "y", "del", "que", "por", "una", "con", "para", "en"},
}


def guess_language(text: str) -> str | None:
    """A best guess at a text's language from its script (and stopwords for Latin)."""
    counts: Counter[str] = Counter()
    latin_words: list[str] = []
    for raw in raw_tokens(text[:4000]):
        sc = script(raw)
        counts[sc] += 1
        if sc == "latin":
            latin_words.append(raw.casefold())
    if not counts:
        return None
    top, _ = counts.most_common(1)[0]
    if top == "arabic":
        return "ar"
    if top == "cyrillic":
        return "ru"
    if top != "latin":
        return None
    votes = {lang: sum(1 for w in latin_words if w in sw) for lang, sw in _STOPWORDS.items()}
    best = max(votes, key=lambda k: votes[k])
    return best if votes[best] else "en"


def language_matches(wanted: str, actual: str | None) -> bool:
    """``ar`` accepts ``ar``, ``ar-SY`` and ``ar_SY``; comparison is case-insensitive."""
    if actual is None:
        return False
    w = wanted.strip().lower().replace("_", "-")
    a = actual.strip().lower().replace("_", "-")
    return a == w or a.split("-")[0] == w or w.split("-")[0] == a


__all__ = [
    "PROCLITICS",
    "TOKEN_RE",
    "arabic_candidates",
    "arabic_forms",
    "arabic_term_bases",
    "guess_language",
    "language_matches",
    "latin_forms",
    "letter_count",
    "normalize",
    "normalize_map",
    "normalize_token",
    "raw_tokens",
    "russian_lemmas",
    "russian_term_lemmas",
    "script",
    "token_spans",
    "words",
]
