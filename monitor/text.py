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

Word forms are candidates, never blind stripping: an Arabic token yields what is
left after removing each possible run of proclitics (``وبالمفاوضات`` →
``بالمفاوضات``, ``المفاوضات``, ``مفاوضات`` …) and keeps itself, so ``لافروف`` still
matches ``لافروف``; each candidate then offers its light-suffix stems. English and
French tokens offer the bases they may inflect from (``ceasefires`` →
``ceasefire``). Russian tokens offer their pymorphy3 lemmas (the analyser is loaded
once, lazily, and every analysis is cached). A candidate hits nothing unless a rule
term is exactly that base, so over-generation is cheap and safe.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from functools import lru_cache
from itertools import accumulate
from typing import Any

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


#: ``_mark_class()`` under Unicode 14.0 (Python 3.11), written out: computing it scans
#: 64k code points, a noticeable part of the start-up (``test_text`` checks it).
_MARKS_UNICODE = "14.0.0"
_MARKS_14 = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u05bf\u05c1-\u05c2\u05c4-\u05c5\u05c7"
    "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7-\u06e8\u06ea-\u06ed"
    "\u0711\u0730-\u074a\u07a6-\u07b0\u07eb-\u07f3\u07fd\u0816-\u0819\u081b-\u0823"
    "\u0825-\u0827\u0829-\u082d\u0859-\u085b\u0898-\u089f\u08ca-\u08e1\u08e3-\u0903"
    "\u093a-\u093c\u093e-\u094f\u0951-\u0957\u0962-\u0963\u0981-\u0983\u09bc\u09be-\u09c4"
    "\u09c7-\u09c8\u09cb-\u09cd\u09d7\u09e2-\u09e3\u09fe\u0a01-\u0a03\u0a3c\u0a3e-\u0a42"
    "\u0a47-\u0a48\u0a4b-\u0a4d\u0a51\u0a70-\u0a71\u0a75\u0a81-\u0a83\u0abc\u0abe-\u0ac5"
    "\u0ac7-\u0ac9\u0acb-\u0acd\u0ae2-\u0ae3\u0afa-\u0aff\u0b01-\u0b03\u0b3c\u0b3e-\u0b44"
    "\u0b47-\u0b48\u0b4b-\u0b4d\u0b55-\u0b57\u0b62-\u0b63\u0b82\u0bbe-\u0bc2\u0bc6-\u0bc8"
    "\u0bca-\u0bcd\u0bd7\u0c00-\u0c04\u0c3c\u0c3e-\u0c44\u0c46-\u0c48\u0c4a-\u0c4d"
    "\u0c55-\u0c56\u0c62-\u0c63\u0c81-\u0c83\u0cbc\u0cbe-\u0cc4\u0cc6-\u0cc8\u0cca-\u0ccd"
    "\u0cd5-\u0cd6\u0ce2-\u0ce3\u0d00-\u0d03\u0d3b-\u0d3c\u0d3e-\u0d44\u0d46-\u0d48"
    "\u0d4a-\u0d4d\u0d57\u0d62-\u0d63\u0d81-\u0d83\u0dca\u0dcf-\u0dd4\u0dd6\u0dd8-\u0ddf"
    "\u0df2-\u0df3\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ecd"
    "\u0f18-\u0f19\u0f35\u0f37\u0f39\u0f3e-\u0f3f\u0f71-\u0f84\u0f86-\u0f87\u0f8d-\u0f97"
    "\u0f99-\u0fbc\u0fc6\u102b-\u103e\u1056-\u1059\u105e-\u1060\u1062-\u1064\u1067-\u106d"
    "\u1071-\u1074\u1082-\u108d\u108f\u109a-\u109d\u135d-\u135f\u1712-\u1715\u1732-\u1734"
    "\u1752-\u1753\u1772-\u1773\u17b4-\u17d3\u17dd\u180b-\u180d\u180f\u1885-\u1886\u18a9"
    "\u1920-\u192b\u1930-\u193b\u1a17-\u1a1b\u1a55-\u1a5e\u1a60-\u1a7c\u1a7f\u1ab0-\u1ace"
    "\u1b00-\u1b04\u1b34-\u1b44\u1b6b-\u1b73\u1b80-\u1b82\u1ba1-\u1bad\u1be6-\u1bf3"
    "\u1c24-\u1c37\u1cd0-\u1cd2\u1cd4-\u1ce8\u1ced\u1cf4\u1cf7-\u1cf9\u1dc0-\u1dff"
    "\u20d0-\u20f0\u2cef-\u2cf1\u2d7f\u2de0-\u2dff\u302a-\u302f\u3099-\u309a\ua66f-\ua672"
    "\ua674-\ua67d\ua69e-\ua69f\ua6f0-\ua6f1\ua802\ua806\ua80b\ua823-\ua827\ua82c"
    "\ua880-\ua881\ua8b4-\ua8c5\ua8e0-\ua8f1\ua8ff\ua926-\ua92d\ua947-\ua953\ua980-\ua983"
    "\ua9b3-\ua9c0\ua9e5\uaa29-\uaa36\uaa43\uaa4c-\uaa4d\uaa7b-\uaa7d\uaab0\uaab2-\uaab4"
    "\uaab7-\uaab8\uaabe-\uaabf\uaac1\uaaeb-\uaaef\uaaf5-\uaaf6\uabe3-\uabea\uabec-\uabed"
    "\ufb1e\ufe00-\ufe0f\ufe20-\ufe2f"
)
_MARKS = _MARKS_14 if unicodedata.unidata_version == _MARKS_UNICODE else _mark_class()
#: Characters that belong to a word: letters, digits (and ``_``, as ``\w`` has it,
#: though ``token_parts`` reads it as a space), combining marks, tatweel, ZWNJ/ZWJ,
#: the soft hyphen and the invisible direction marks, word joiner and BOM (which
#: vanish in normalisation: pasted text carries them inside words). One class keeps
#: ``re`` fast.
_WORD_CHAR = rf"[\w{_MARKS}\u0640\u200c-\u200f\u00ad\u061c\u2060\u2066-\u2069\ufeff]"
#: One token; group 1 is the word, an English possessive ``'s`` after it is swallowed.
#: An apostrophe, also as an HTML entity left over from a feed (``Lavrov&#8217;s``).
APOSTROPHE = r"(?:['’ʼ]|&(?:#39|#x27|#8217|#x2019|apos|rsquo);)"
TOKEN_RE = re.compile(rf"({_WORD_CHAR}+)(?:{APOSTROPHE}[sS](?!{_WORD_CHAR}))?")
_WORD_RE = re.compile(rf"{_WORD_CHAR}+")
#: The same with the possessive as a second group, for ``re.split``: the pieces are
#: ``[gap, word, possessive, gap, word, possessive, …, gap]`` and their lengths add up
#: to the offsets, which is much cheaper than a match object per token.
TOKEN_SPLIT_RE = re.compile(rf"({_WORD_CHAR}+)((?:{APOSTROPHE}[sS](?!{_WORD_CHAR}))?)")


#: What is not text to match, blanked out (same length, so offsets hold): a URL
#: (``https://…/astana-talks`` names no talks) or an e-mail address, an HTML entity
#: left over from a feed
#: (``Astana&nbsp;talks``; an apostrophe entity before ``s`` stays for the possessive)
#: and ``_``, which hashtags write for a space (``#وقف_إطلاق_النار``).
_BLANK_RE = re.compile(
    r"(?:https?://|www\.)[^\s<>\"]+"
    r"|&(?!(?:#39|#x27|#8217|#x2019|apos|rsquo);[sS](?!\w))"
    r"(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]{2,10}[0-9]{0,2});"
    r"|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # starts a run only: linear
    r"|_+"
)
#: a hashtag's camel-case parts: ``#AstanaTalks`` → ``Astana``, ``Talks``
_CAMEL_RE = re.compile(r"[A-ZА-ЯЁ]?[a-zа-яё]+|[A-ZА-ЯЁ]+(?![a-zа-яё])|[^A-Za-zА-Яа-яЁё]+")
#: Arabic letters (and what rides on them) as against digits and other scripts
_ARABIC_RUN_RE = re.compile(
    "[\u0600-\u065f\u066a-\u06ef\u06fa-\u06ff\u0750-\u077f\u08a0-\u08ff"
    "\ufb50-\ufdff\ufe70-\ufefe\u200c-\u200f\u00ad\u061c\u2060\u2066-\u2069]+"
    "|[^\u0600-\u065f\u066a-\u06ef\u06fa-\u06ff\u0750-\u077f\u08a0-\u08ff"
    "\ufb50-\ufdff\ufe70-\ufefe\u200c-\u200f\u00ad\u061c\u2060\u2066-\u2069]+"
)
_HAS_ARABIC_RE = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufefe]")
_HAS_OTHER_RE = re.compile("[0-9A-Za-z\u00c0-\u024f\u0400-\u04ff\u0660-\u0669\u06f0-\u06f9]")


def _blank(m: re.Match[str]) -> str:
    return " " * (m.end() - m.start())


def clean_for_tokens(text: str) -> str:
    """``text`` with URLs, leftover HTML entities and ``_`` blanked out (same length);
    plain text comes back as is after a few substring tests."""
    if "_" in text or "&" in text or "://" in text or "www." in text or "@" in text:
        return _BLANK_RE.sub(_blank, text)
    return text


@lru_cache(maxsize=1 << 14)
def split_glued(token: str) -> tuple[str, ...] | None:
    """An Arabic word glued to digits or another script, in its runs
    (``أستانا2024`` → ``أستانا``, ``2024``); None for any other token."""
    if _HAS_ARABIC_RE.search(token) is None or _HAS_OTHER_RE.search(token) is None:
        return None
    runs = tuple(_ARABIC_RUN_RE.findall(token))
    return runs if len(runs) > 1 else None


def _split_camel(token: str) -> tuple[str, ...] | None:
    runs = tuple(_CAMEL_RE.findall(token))
    return runs if len(runs) > 1 and "".join(runs) == token else None


def resplit(parts: list[str], splits: dict[int, tuple[str, ...]]) -> list[str]:
    """``parts`` (``[gap, word, possessive, …, gap]``) with word ``k`` replaced by the
    pieces ``splits[k]``, joined by empty gaps: offsets and the piece layout hold."""
    out: list[str] = []
    last = 0
    for k in sorted(splits):
        at = 3 * k + 1
        out.extend(parts[last:at])
        pieces = splits[k]
        out.append(pieces[0])
        for piece in pieces[1:]:
            out.extend(("", "", piece))
        last = at + 1
    out.extend(parts[last:])
    return out


def split_hashtags(parts: list[str]) -> list[str]:
    """``parts`` with each camel-case word after a ``#`` split into its words."""
    splits: dict[int, tuple[str, ...]] = {}
    for k in range(len(parts) // 3):
        if parts[3 * k].endswith("#"):
            camel = _split_camel(parts[3 * k + 1])
            if camel is not None:
                splits[k] = camel
    return resplit(parts, splits) if splits else parts


def token_parts(text: str) -> tuple[str, list[str]]:
    """The cleaned text (``clean_for_tokens``) and its pieces ``[gap, word, possessive,
    gap, word, …, gap]``: the one tokenisation the matcher and terms share.

    Beyond ``TOKEN_SPLIT_RE``: a camel-case hashtag is split into its words
    (``#AstanaTalks`` → ``Astana``, ``Talks``; ``#Astana`` is just ``Astana``), and
    an Arabic word glued to digits or Latin is split (``أستانا2024``). The matcher's
    scan does the same, finding glued words through its per-token cache.
    """
    clean = clean_for_tokens(text)
    return clean, split_words(clean)


def split_words(clean: str) -> list[str]:
    """``token_parts`` of a text already cleaned (``clean_for_tokens``)."""
    parts = TOKEN_SPLIT_RE.split(clean)
    if "#" in clean:
        parts = split_hashtags(parts)
    glued = {}
    for k, word in enumerate(parts[1::3]):
        pieces = split_glued(word)
        if pieces is not None:
            glued[k] = pieces
    return resplit(parts, glued) if glued else parts


def token_spans(text: str) -> list[tuple[int, int]]:
    """Original ``(start, end)`` offsets of the tokens of ``text``, in order."""
    acc = list(accumulate(map(len, token_parts(text)[1])))
    return list(zip(acc[0::3], acc[1::3], strict=False))


def raw_tokens(text: str) -> list[str]:
    """The tokens of ``text`` as written (not normalised), aligned with ``token_spans``."""
    return token_parts(text)[1][1::3]


# --------------------------------------------------------------------- normalisation

_ARABIC_MAP = {
    "\u0671": "\u0627",  # ٱ alef wasla
    "\u0649": "\u064a",  # ى alef maksura → ي
    "\u0629": "\u0647",  # ة ta marbuta → ه
    "\u06a9": "\u0643",  # ک Persian kaf → ك
    "\u06cc": "\u064a",  # ی Persian yeh → ي
    "\u06c0": "\u0647",  # ۀ heh with yeh above → ه
    "\u06c1": "\u0647",  # ہ Urdu heh goal → ه
    "\u06be": "\u0647",  # ھ heh doachashmee → ه
    "\u06c3": "\u0647",  # ۃ Urdu ta marbuta goal → ه
    "\u06d2": "\u064a",  # ے Urdu yeh barree → ي
    "\u06d3": "\u064a",  # ۓ → ي
    "\u0640": "",  # tatweel
    "\u200c": "",  # zero-width non-joiner
    "\u200d": "",  # zero-width joiner
    "\u00ad": "",  # soft hyphen
    "\u200e": "",  # left-to-right mark
    "\u200f": "",  # right-to-left mark
    "\u061c": "",  # Arabic letter mark
    "\u2060": "",  # word joiner
    "\u2066": "",  # directional isolates
    "\u2067": "",
    "\u2068": "",
    "\u2069": "",
    "\ufeff": "",  # zero-width no-break space (BOM)
}
for _i in range(10):
    _ARABIC_MAP[chr(0x0660 + _i)] = str(_i)  # Arabic-Indic digits
    _ARABIC_MAP[chr(0x06F0 + _i)] = str(_i)  # Persian digits
_ALEF = "\u0627"
_HAMZA_MARKS = "\u0653\u0654\u0655"  # madda, hamza above, hamza below (NFD of آ أ إ)
_CYRILLIC_KEEP = "\u0306"  # breve: й, ў stay distinct from и, у


# The one definition of the scripts monitor tells apart (articles, sentences and
# matching all ask ``char_script``).  Arabic: Arabic, Arabic Supplement, Arabic
# Extended-B and -A, Presentation Forms-A and -B (without U+FEFF, the BOM).
# Cyrillic: Cyrillic, Supplement, Extended-C, -A and -B.
ARABIC_RANGES: tuple[tuple[int, int], ...] = (
    (0x0600, 0x06FF),
    (0x0750, 0x077F),
    (0x0870, 0x089F),
    (0x08A0, 0x08FF),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFE),
)
CYRILLIC_RANGES: tuple[tuple[int, int], ...] = (
    (0x0400, 0x052F),
    (0x1C80, 0x1C8F),
    (0x2DE0, 0x2DFF),
    (0xA640, 0xA69F),
)
_LATIN_END = 0x0250  # Basic Latin through Latin Extended-B


def char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    """A regular-expression character class matching any character in ``ranges``."""
    return "[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges) + "]"


def _in(ranges: tuple[tuple[int, int], ...], ch: str) -> bool:
    code = ord(ch)
    return any(a <= code <= b for a, b in ranges)


def _is_arabic_letter(ch: str) -> bool:
    return bool(ch) and _in(ARABIC_RANGES, ch)


def _is_cyrillic(ch: str) -> bool:
    return bool(ch) and _in(CYRILLIC_RANGES, ch)


def char_script(ch: str) -> str:
    """``"arabic"``, ``"cyrillic"``, ``"latin"`` or ``"other"`` for one letter."""
    if not ch:
        return "other"
    if ord(ch) < _LATIN_END:
        return "latin"
    if _is_cyrillic(ch):
        return "cyrillic"
    if _is_arabic_letter(ch):
        return "arabic"
    return "other"


#: Characters that normalise to themselves after case folding (the common case).
_SIMPLE_RE = re.compile(
    "[a-z0-9\u0621\u0624\u0626-\u0628\u062a-\u063a\u0641-\u0648\u064a\u0430-\u044f]*\\Z"
)


@lru_cache(maxsize=1 << 17)
def normalize_token(token: str) -> str:
    """Normalise one word as the module docstring says; idempotent."""
    folded = token.casefold()
    if _SIMPLE_RE.match(folded):
        return folded
    return _normalize_slow(token)


def _normalize_slow(token: str) -> str:
    """The full normalisation, character by character (``normalize_token`` skips it
    for words made only of characters it would leave alone)."""
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
    return _WORD_RE.sub(_normalize_match, text)


def _normalize_match(m: re.Match[str]) -> str:
    return normalize_token(m.group())


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
        if pos < a:  # the gap, unchanged
            out.append(text[pos:a])
            starts.extend(range(pos, a))
            ends.extend(range(pos + 1, a + 1))
        norm, rel_starts, rel_ends = _token_map(m.group())
        out.append(norm)
        if rel_starts is None or rel_ends is None:  # one char for one char
            starts.extend(range(a, b))
            ends.extend(range(a + 1, b + 1))
        else:
            starts.extend([a + k for k in rel_starts])
            ends.extend([a + k for k in rel_ends])
        pos = b
    if pos < len(text):
        out.append(text[pos:])
        starts.extend(range(pos, len(text)))
        ends.extend(range(pos + 1, len(text) + 1))
    return "".join(out), starts, ends


@lru_cache(maxsize=1 << 16)
def _token_map(token: str) -> tuple[str, tuple[int, ...] | None, tuple[int, ...] | None]:
    """A token's normalised form and, per normalised char, its offsets in the token
    (``None`` when the mapping is one to one); cached like ``normalize_token``."""
    norm = normalize_token(token)
    if len(norm) == len(token) and _SIMPLE_RE.match(token.casefold()):
        return norm, None, None
    # map each normalised char to the original char it came from when the token
    # normalises char by char (the usual case), else to the whole token
    pieces = [normalize_token(ch) for ch in token]
    if "".join(pieces) != norm:
        return norm, (0,) * len(norm), (len(token),) * len(norm)
    starts: list[int] = []
    ends: list[int] = []
    for k, piece in enumerate(pieces):
        if not piece and starts:
            ends[-1] = k + 1  # a dropped mark or tatweel widens the char before it
        for _ in piece:
            starts.append(k)
            ends.append(k + 1)
    return norm, tuple(starts), tuple(ends)


def words(text: str) -> list[str]:
    """The normalised words of a text or a term (``cease-fire`` → ``cease``, ``fire``)."""
    result: list[str] = []
    for raw in raw_tokens(text):
        result.extend(_WORD_RE.findall(normalize_token(raw)))
    return result


# ------------------------------------------------------------------------- scripts


_FIRST_LETTER_RE = re.compile(r"[^\W\d_]")


def script(word: str) -> str:
    """``"arabic"``, ``"cyrillic"``, ``"latin"`` or ``"other"``, from the first letter."""
    m = _FIRST_LETTER_RE.search(word)
    if m is None:
        return "other"
    return char_script(m.group())


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


_AR_PRONOUNS = ("ها", "هم", "هما", "هن", "كم", "كما", "نا", "ه")
_AR_PLURALS = ("ات", "ون", "ين", "ان")
#: A suffix comes off only when four letters are left: most three-letter words are
#: roots whose suffixed forms are other words (قطر/قطرات "drops", عرب/عربات "carts").
_MIN_SUFFIX_STEM = 4


def arabic_stems(word: str) -> tuple[str, ...]:
    """The word and what it may be without one light suffix (for article tokens).

    Plural/dual ``ات ون ين ان``, the plural in construct ``و`` (``مراقبو``) and
    pronoun suffixes ``ها هم هما هن كم كما نا``; a
    ``ت`` left before a suffix is a ta marbuta again (``حكومته``, ``حكومتها`` and
    ``حكومتان`` → ``حكومه``), and a sound feminine plural gives its singular
    (``مفاوضات`` → ``مفاوضه``). A bare final ``ه`` is never taken for "his": after
    folding ``ة`` → ``ه`` it is usually a ta marbuta (``دولة`` is not ``دول`` + ``ه``,
    ``سورية`` is not ``سوري`` + ``ه``). Never the nisba ``ي`` (``إيراني``).
    """
    found = [word]
    for suffix in _AR_PLURALS:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_SUFFIX_STEM:
            stem = word[: -len(suffix)]
            found.append(stem)
            if suffix == "ات":
                found.append(stem + "ه")
            elif stem.endswith("ت"):  # dual of a feminine noun: حكومتان
                found.append(stem[:-1] + "ه")
    if word.endswith("و") and len(word) - 1 >= _MIN_SUFFIX_STEM:
        found.append(word[:-1])  # plural in construct: مراقبو الأمم المتحدة
    for suffix in _AR_PRONOUNS:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_SUFFIX_STEM:
            stem = word[: -len(suffix)]
            if stem.endswith("ت"):
                found.append(stem[:-1] + "ه")
                found.append(stem)
            elif suffix != "ه":
                found.append(stem)
    return tuple(dict.fromkeys(found))


def arabic_term_stems(word: str) -> tuple[str, ...]:
    """The stems an Arabic *term* word is indexed under: itself, and the singular of a
    plural or dual, so a term written in the plural hits the singular and every other
    form: ``مفاوضات`` → ``مفاوضه``, ``مسلحين`` → ``مسلح`` (hits ``مسلح``, ``مسلحون``,
    ``مسلحان``, ``مسلحي``), ``حكومتين`` → ``حكومه``. Four letters must be left, as in
    ``arabic_stems``, so ``لبنان`` or ``إيران`` stay whole; a term ending in ``ان`` is
    kept whole too (``طالبان`` is not ``طالب``, ``سليمان`` not ``سليم``): rules name
    plurals, and a dual in a rule is rarer than a name that looks like one."""
    if len(word) - 2 < _MIN_SUFFIX_STEM:
        return (word,)
    if word.endswith("ات"):
        return (word, word[:-2] + "ه")
    if word.endswith(("ين", "ون")):
        stem = word[:-2]
        if stem.endswith("ت"):  # dual of a feminine noun: حكومتين
            return (word, stem[:-1] + "ه")
        # the plural in construct, genitive or nominative: مسلحي المنطقة, مسلحو
        return (word, stem, stem + "ي", stem + "و")
    return (word,)


# ------------------------------------------------------------- English and French

_VOWELS = set("aeiouy")


def latin_stems(word: str) -> tuple[str, ...]:
    """The word and the bases it may be an inflection of (for article tokens).

    ``ceasefires`` → ``ceasefire``; ``talked``/``talking`` → ``talk``; ``banned`` →
    ``ban``; ``negotiating`` → ``negotiate``; ``parties`` → ``party``; French
    ``accords``, ``généraux`` → ``general``. Candidates only: they hit nothing
    unless a rule's term is exactly one of them.
    """
    found = [word]
    n = len(word)
    if n < 4 or not word.isalpha():
        return tuple(found)
    if word.endswith("ies") and n > 4:
        found.append(word[:-3] + "y")
    if word.endswith("es"):
        found.append(word[:-2])
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        found.append(word[:-1])
    if word.endswith("ied"):
        found.append(word[:-3] + "y")
    elif word.endswith("ed") and n > 4:
        found.append(word[:-2])
        found.append(word[:-1])
        if word[-3] == word[-4] and word[-3] not in _VOWELS:
            found.append(word[:-3])
    if word.endswith("ing") and n > 5:
        found.append(word[:-3])
        found.append(word[:-3] + "e")
        if word[-4] == word[-5] and word[-4] not in _VOWELS:
            found.append(word[:-4])
    if word.endswith("aux") and n > 4:
        found.append(word[:-3] + "al")
    if word.endswith(("eaux", "eux")):
        found.append(word[:-1])
    if word.endswith("es") and n > 4:
        found.append(word[:-2] + "is")  # crises → crisis, analyses → analysis
    if word.endswith("men") and n > 4:
        found.append(word[:-3] + "man")  # gunmen → gunman, women → woman
    if word.endswith("ves") and n > 4:
        found.append(word[:-3] + "f")  # halves → half, lives → life
        found.append(word[:-3] + "fe")
    irregular = _LATIN_IRREGULAR.get(word)
    if irregular:
        found.append(irregular)
    return tuple(dict.fromkeys(f for f in found if len(f) >= 3))


#: English plurals no suffix rule undoes (article word → singular); the rules do
#: ``-es`` → ``-is``, ``-men`` → ``-man`` and ``-ves`` → ``-f``/``-fe``.
_LATIN_IRREGULAR = {
    "children": "child",
    "feet": "foot",
    "teeth": "tooth",
    "mice": "mouse",
    "geese": "goose",
    "oxen": "ox",
    "criteria": "criterion",
    "phenomena": "phenomenon",
    "nuclei": "nucleus",
}


def latin_term_bases(word: str) -> tuple[str, ...]:
    """The bases a Latin *term* word is indexed under: itself and, for a plural,
    its singular (``talks`` → ``talk``, ``parties`` → ``party``, ``crises`` →
    ``crisis``, ``children`` → ``child``, ``gunmen`` → ``gunman``), so either hits."""
    found = [word]
    n = len(word)
    irregular = _LATIN_IRREGULAR.get(word)
    if irregular:
        found.append(irregular)
    if n > 4 and word.isalpha():
        if word.endswith("ses") and not word.endswith("sses"):
            found.append(word[:-2] + "is")
        if word.endswith("men"):
            found.append(word[:-3] + "man")
        if word.endswith("ves"):
            found.append(word[:-3] + "f")
            found.append(word[:-3] + "fe")
        if word.endswith("ies"):
            found.append(word[:-3] + "y")
        elif word.endswith(("sses", "xes", "zes", "ches", "shes")):
            found.append(word[:-2])
        elif word.endswith("aux"):
            found.append(word[:-3] + "al")
        elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
            found.append(word[:-1])
    return tuple(found)


# ------------------------------------------------------------------------ Russian

_morph: Any = None
_morph_lock = threading.Lock()


_MORPH_MISSING = object()


def _analyzer() -> Any:
    """The pymorphy3 analyser, loaded once per process on first use (~0.15 s).

    ``None`` when it cannot be loaded (a broken install): Russian words then match
    as written, and the reason is logged once, rather than failing every article.
    """
    global _morph
    if _morph is None:
        with _morph_lock:
            if _morph is None:
                try:
                    import pymorphy3

                    _morph = pymorphy3.MorphAnalyzer()
                except Exception as exc:  # ImportError, a missing or corrupt dictionary
                    logging.getLogger(__name__).error(
                        "pymorphy3 could not be loaded (%s); Russian word forms are off", exc
                    )
                    _morph = _MORPH_MISSING
    return None if _morph is _MORPH_MISSING else _morph


@lru_cache(maxsize=1 << 16)
def russian_lemmas(word: str) -> tuple[str, ...]:
    """Every dictionary form pymorphy3 proposes for a normalised Russian token.

    ``астане`` → (``астана``, ``астан``); ``лаврова`` → (``лавров``,). Cached: a parse
    costs ~65 µs for a dictionary word (~1 ms for a guessed one), a cache hit < 1 µs.
    """
    morph = _analyzer()
    if morph is None:
        return (word,)
    return tuple(dict.fromkeys(p.normal_form.replace("ё", "е") for p in morph.parse(word)))


_NAME_TAGS = frozenset({"Surn", "Name", "Patr", "Geox", "Orgn", "Abbr", "Trad"})


@lru_cache(maxsize=1 << 14)
def russian_is_name(word: str) -> bool:
    """Whether a capitalised Russian term word is a name: pymorphy3 has a parse of it
    as a surname, first name, place, organisation or abbreviation (``Волков``,
    ``Зайцев``, ``Астана``, ``ООН``), or the word is unknown to it (most foreign
    names). A common noun written with a capital (``Перемирие``) is not."""
    morph = _analyzer()
    if morph is None:
        return False
    if not morph.word_is_known(word):
        return True
    return bool(russian_name_lemmas(word))


@lru_cache(maxsize=1 << 14)
def russian_name_lemmas(word: str) -> tuple[str, ...]:
    """The dictionary forms of a word's name parses in the nominative, as a rule
    writes a name (``зайцев`` → ``зайцев``, not ``заяц``; ``лавров`` → ``лавров``, not
    the first name ``Лавр``): a name's forms, never another word's."""
    morph = _analyzer()
    if morph is None:
        return ()
    return tuple(
        dict.fromkeys(
            p.normal_form.replace("ё", "е")
            for p in morph.parse(word)
            if "nomn" in p.tag and any(t in p.tag for t in _NAME_TAGS)
        )
    )


@lru_cache(maxsize=1 << 16)
def russian_term_lemmas(word: str) -> tuple[str, ...]:
    """The dictionary forms a Russian *term* word stands for: itself, and the lemma of
    its most probable parse when pymorphy3 knows the word (``астане`` → ``астана``).

    Unknown words (most proper nouns in rules) are taken as written: predicting their
    parse costs ~1 ms and a rule names a word in its dictionary form anyway.
    """
    morph = _analyzer()
    if morph is None or len(word) < 3 or not morph.word_is_known(word):
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


# scripts that name a language by themselves (Latin is read by its stopwords)
_SCRIPT_LANGUAGES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ar", re.compile(char_class(ARABIC_RANGES))),
    ("ru", re.compile(char_class(CYRILLIC_RANGES))),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
)
_LATIN_LETTER_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LATIN_WORD_RE = re.compile(r"[a-z\u00c0-\u024f]+")
_URDU_RE = re.compile(r"[ٹڈڑںےۓھہۃ]")
_PERSIAN = frozenset("پچژگکی")
_UKRAINIAN_RE = re.compile(r"[іїєґІЇЄҐ]")
_SCRIPT_SAMPLE = 160  # characters whose script decides
_WORD_SAMPLE = 600  # characters whose stopwords decide among Latin languages


def guess_language(text: str) -> str | None:
    """The language a text's dominant script implies; None for a text without letters.

    Arabic script is ``ar``, or ``ur``/``fa`` when letters only those alphabets have
    appear; Cyrillic is ``ru``, or ``uk`` by its own letters; Latin is whichever of
    en/fr/de/es has most stopwords in the first lines (``en`` when none). The one
    guess everything shares: articles without a declared language, the matcher's
    ``languages:`` filter, sentences, stories and translation."""
    sample = text[:_SCRIPT_SAMPLE]
    latin = len(_LATIN_LETTER_RE.findall(sample))
    best, most = None, 0
    for lang, pattern in _SCRIPT_LANGUAGES:
        found = len(pattern.findall(sample))
        if found > most:
            best, most = lang, found
            if most > len(sample) // 2:
                break  # a clear majority: no other script can win
    if best is None and not latin:
        return None
    if best is None or latin > most:
        words = _LATIN_WORD_RE.findall(text[:_WORD_SAMPLE].casefold())
        votes = {lang: sum(1 for w in words if w in sw) for lang, sw in _STOPWORDS.items()}
        top = max(votes, key=votes.__getitem__)
        return top if votes[top] > votes["en"] else "en"
    if best == "ar":
        if _URDU_RE.search(sample):
            return "ur"
        if len(set(sample) & _PERSIAN) >= 2:
            return "fa"
    if best == "ru" and _UKRAINIAN_RE.search(sample):
        return "uk"
    return best


def primary_subtag(code: str | None) -> str:
    """``ar-SY``, ``ar_sy``, `` AR `` → ``ar``; "" for no code."""
    return (code or "").strip().replace("_", "-").split("-", 1)[0].lower()


def language_matches(wanted: str, actual: str | None) -> bool:
    """``ar`` accepts ``ar``, ``ar-SY`` and ``ar_SY``; comparison is case-insensitive."""
    if actual is None:
        return False
    w = wanted.strip().lower().replace("_", "-")
    a = actual.strip().lower().replace("_", "-")
    return a == w or primary_subtag(a) == w or primary_subtag(w) == a


__all__ = [
    "APOSTROPHE",
    "ARABIC_RANGES",
    "CYRILLIC_RANGES",
    "PROCLITICS",
    "TOKEN_RE",
    "TOKEN_SPLIT_RE",
    "arabic_candidates",
    "arabic_stems",
    "arabic_term_bases",
    "arabic_term_stems",
    "char_class",
    "char_script",
    "clean_for_tokens",
    "guess_language",
    "language_matches",
    "latin_stems",
    "latin_term_bases",
    "letter_count",
    "normalize",
    "normalize_map",
    "normalize_token",
    "primary_subtag",
    "raw_tokens",
    "resplit",
    "russian_is_name",
    "russian_lemmas",
    "russian_name_lemmas",
    "russian_term_lemmas",
    "script",
    "split_glued",
    "split_hashtags",
    "split_words",
    "token_parts",
    "token_spans",
    "words",
]
