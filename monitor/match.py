"""Watch rules compiled into one index; an article in, the rules it matches out.

Rule semantics (the contract; README "Watch rules: how matching works" sums it up)
==================================================================================

A rule matches an article when every clause holds:

``any``       at least one term hits (empty or missing: holds). With ``min_hits: N``
              the ``any`` terms must hit at least N times in all (distinct places,
              counted over the rule's fields), e.g. "mentions Astana at least twice".
``all``       every term hits.
``none``      no term hits.
``query``     a Lucene expression (parsed by luqum): ``AND``, ``OR``, ``NOT``/``-x``,
              ``+x``, parentheses, ``"quoted phrases"``, proximity ``"a b"~N`` (the
              words within N extra positions, any order), field scoping
              ``title:x`` / ``summary:x`` / ``content:x`` / ``page:x`` / ``text:x``
              (summary, content or the linked page's text), a trailing ``*``
              wildcard (``Астан*``), ``word~`` fuzzy and ``/regex/``. Words side
              by side without an operator are ANDed.
filters       ``feeds`` (the article's feed id or one of the feed's tags),
              ``languages`` (``ar`` accepts ``ar-SY``; an article without a language
              is judged by its script, plus stopwords for Latin text), ``fields``
              (default title, summary, content and page — the linked article's
              text for ``full_text`` feeds and page sources; a term hits in any).

A term hits when it occurs as a whole word or phrase after normalisation
(``monitor.text``: NFKC, case folding, accents, Arabic letter variants, tashkeel,
tatweel, digits, ``ё``) and never as a fragment of a longer word: ``Iran`` does
not hit ``Ukraine`` or ``Iranian``, ``Astana`` does not hit ``Astanabad``.

* Arabic proclitics: a word carrying ``و ف ب ك ل`` and/or ``ال`` (``وأستانا``,
  ``بالمفاوضات``, ``للمفاوضات``) hits the bare term; a term written with ``ال``
  also hits the word without it. Candidates are generated per token, never by
  blind stripping, so ``لافروف`` matches ``لافروف``.
* Word forms (single words and each word of a phrase), matched as bases, not by
  stemming both sides, in both directions: a term written in the plural hits the
  singular and the other forms, and the reverse. Russian through pymorphy3 lemmas
  of the article's words (``Астана`` hits ``Астане``, ``Астаны``; ``режим
  прекращения огня`` hits ``режима прекращения огня``; ``Иран`` not ``иранский``).
  A capitalised Russian term that pymorphy3 knows as a name in the nominative
  (surname, first name, place, organisation, abbreviation) or does not know at all
  is a name: it hits only capitalised words (any case, ALL CAPS too) through its
  name parses, so ``Волков`` hits ``Волкова`` but not ``стая волков``, ``Лавров``
  not ``Лавры``; a capitalised common noun (``Перемирие``) is not a name.
  English/French through the bases an article word may inflect from
  (``ceasefire`` hits ``ceasefires``, ``negotiate`` hits ``negotiating``, ``talks``
  hits ``talk``, ``général`` hits ``généraux``), ``-es``/``-is`` (``crises`` ↔
  ``crisis``), ``-men``/``-man`` (``gunmen`` ↔ ``gunman``), ``-ves``/``-f(e)`` and a
  few irregular plurals (``children`` ↔ ``child``); derived words never
  (``Iranian``, ``childhood``). Arabic through light suffixes on words of four or
  more letters (``مفاوضة`` hits ``مفاوضات``, ``حكومة`` hits ``حكومته`` and
  ``حكومتان``, ``مسلح`` hits ``المسلحين`` and ``مسلحو``, ``موقف`` hits ``موقفها``);
  a term in the sound plural (``ون``/``ين``/``ات``) also hits its singular, dual and
  construct forms (``مسلحين`` hits ``مسلح``, ``مسلحون``, ``مسلحان``, ``مسلحي``),
  while a term ending in ``ان`` stays whole (``طالبان`` is not ``طالب``) and only the
  bare word of an ``ال`` term gets forms (``البحرين`` does not hit ``البحر``). Never
  the nisba ``ي``/``ية`` (``إيران`` does not hit ``الإيراني``, ``إيرانيون``) and never
  a bare final ``ه``, which after folding is a ta marbuta (``قطر`` does not hit
  ``قطرة``, ``دول`` not ``دولة``); the accusative ``ا`` is not taken off either. A
  Latin term written with a capital is a proper noun and gets no forms (``Hama``
  does not hit ``Hamas``); the possessive ``'s`` (``’s``, ``&#8217;s``) and French
  elision (``l'Iran``) are handled for every term. Forms follow the script of the
  word, whatever ``Article.language`` says.
* Tokens (``monitor.text.token_parts``, shared by articles and terms): URLs and
  e-mail addresses are not text (``https://…/astana-talks`` hits nothing), nor are
  HTML entities left over from a feed (``Astana&nbsp;talks`` is ``Astana talks``,
  ``&amp;`` is no word); ``_`` is a space (``#وقف_إطلاق_النار`` hits ``وقف إطلاق
  النار``); a hashtag is its word (``#Astana``), and a camel-case hashtag is its
  words (``#AstanaTalks`` hits ``Astana`` and ``Astana talks``); an Arabic word glued
  to digits or Latin is split from them (``أستانا2024``). Soft hyphens, zero-width
  (non-)joiners, direction marks and the BOM vanish inside a word; emoji and NBSP
  separate words; a zero-width space (U+200B) is not a space.
* ``=word`` turns word forms off (normalisation and Arabic proclitics still apply):
  ``=Астана`` hits ``Астана`` but not ``Астане``.
* Phrases hit consecutive tokens separated only by spaces, at most one line break,
  a hyphen or a possessive ``'s``, never across other punctuation.
* Compounds: ``ceasefire``, ``cease-fire`` and ``cease fire`` are one term, in
  whichever way the rule writes it (two adjacent Latin or Cyrillic words of two or
  more letters each, joined by a space or hyphen, also count as one word).
* ``re:PATTERN`` is a case-insensitive Python regular expression, searched in the
  original field text and in its normalised form; it may hit inside words. It runs
  under the ``regex`` module with a time limit (``REGEX_TIMEOUT`` per field; the
  module checks its clock now and then, so a search may overrun it about twofold):
  a term that times out finds nothing in that article, is logged once and counted
  in ``Matcher.regex_timeouts``; ``regex_warnings`` flags such patterns beforehand.
* ``fuzzy: N`` (0–100; below 50 nearly any word of similar length hits, so
  ``monitor check`` warns) lets the rule's single-word ``any``/``all``/``query`` terms
  of five or more letters also hit article words at least N similar (rapidfuzz
  ``ratio`` on normalised forms, Arabic words also without their proclitics; every
  fuzzy term against the article's distinct words in one ``cdist`` call). ``none``
  terms stay exact.
* ``word*`` (a single word ending in ``*``, in any list or in a query) hits every
  word that starts so after normalisation (``Астан*`` hits ``Астану``; Arabic words
  also without their proclitics) — an opt-in scan of the article's distinct words.

* Fuzzy never fires on an article word of fewer than five letters (``Lavr`` is not
  ``Lavrov`` at any threshold).

Every match carries its hits: the term as the rule wrote it, the matched original
text, the field and the offsets into ``Article.field_text(field)``.

How it is fast: all rules compile into one dict from normalised keys to the first
word of every term variant. An article is tokenised once; each distinct raw token
is prepared once per ``Matcher`` (normalised, its Arabic candidates or Russian
lemmas looked up in the index) and cached, so the per-article cost is one dict
lookup per token plus the work for tokens that do hit, independent of the number
of rules. Only rules touched by a hit (and the few that need no hit, e.g. a rule
with only ``none``) are evaluated. Regex, wildcard and fuzzy terms are opt-in scans.

Matching cost stays close to what it explains: the scan and the rule evaluation
(``Matcher._matched``) deal in term ids and ``(start, end, token, token)`` tuples
only; the loop visits just the tokens that can hit or start a phrase, and what a
first word followed by a second one starts is computed once per word pair.
``match`` builds ``Match``/``Hit`` objects (each hit once per article) for the alert
path; ``match_names`` builds none; ``match_json`` writes the ``--jsonl`` output
straight from the tuples with precomputed JSON for every term, rule and field.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import re._constants as _re_constants  # type: ignore[import-not-found]  # stdlib parser internals
import re._parser as _re_parser  # type: ignore[import-not-found]  # (for regex_warnings)
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, chain, compress, count, repeat
from operator import add, ge, itemgetter, sub
from typing import Any

import regex
from luqum import tree as lq
from luqum.exceptions import ParseError as LuqumParseError
from luqum.thread import parse as luqum_parse

from monitor import text as tx
from monitor.exceptions import ConfigError, ConfigErrors
from monitor.models import FIELDS, Article, Hit, Match, Rule

_LEMMA = "\x01"  # namespace of Russian lemma keys in the index
_AR = "\x02"  # namespace of Arabic light-suffix stems
_LAT = "\x03"  # namespace of English/French inflection bases
_RU_NAME = "\x04"  # namespace of Russian names: capitalised article words only
_RU_NAME_LEMMA = "\x05"  # … and of their lemmas
_PAIR_LIMIT = 4096  # next words remembered per phrase-starting token
_NO_PAIR: tuple = ((), (), frozenset())  # a word pair that starts no phrase
_CACHE_LIMIT = 150_000  # prepared raw tokens kept per Matcher (~65 MB if all distinct), then reset
_CHUNK_CACHED = 64  # longer space-delimited chunks are tokenised each time, not kept
_CHUNK_LIMIT = 100_000  # prepared chunks kept per Matcher (~33 MB of distinct ones), then reset
_TOKEN_FLAGS = [(True,) * n + (False,) for n in range(8)]  # shared by the chunks
_FUZZY_MIN_LETTERS = 5
_QUERY_FIELDS = {
    "title": ("title",),
    "summary": ("summary",),
    "content": ("content",),
    "page": ("page",),
    "text": ("summary", "content", "page"),
    "body": ("summary", "content", "page"),
}
# what may separate two words of a phrase: spaces (one line break at most), a hyphen,
# a possessive 's, and invisible direction marks
_SPACE = r"[^\S\n]|[\u200e\u200f\u061c\u2066-\u2069]"
log = logging.getLogger(__name__)

_GAP_RE = re.compile(
    rf"(?:{tx.APOSTROPHE}[sS])?(?:{_SPACE})*(?:\r?\n(?:{_SPACE})*)?(?:[-‐‑](?:{_SPACE})*)?"
)
_COMPOUND_GAP_RE = re.compile(r"[-‐‑]|[^\S\n]{1,2}")


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rule, located by key and list index for FILE:LINE:COL."""

    key: str
    index: int | None
    message: str


# ----------------------------------------------------------------------- terms


@dataclass
class _Term:
    """A compiled term, shared by every rule that writes it the same way."""

    id: int
    text: str  # as the rule wrote it, shown in Hit.term
    variants: tuple[tuple[frozenset[str], ...], ...] = ()
    regex: Any = None  # a regex.Pattern (the `regex` module: searches take a timeout)
    wildcard: re.Pattern[str] | None = None  # over normalised tokens
    fuzzy: int | None = None
    fuzzy_word: str | None = None


class _TermError(ValueError):
    """A term that cannot be compiled; the message is for the user."""


def _word_keys(word: str, raw: str, exact: bool) -> frozenset[str]:
    return _word_keys_cached(word, raw[:1].isupper(), exact)


@lru_cache(maxsize=1 << 16)
def _word_keys_cached(word: str, capitalised: bool, exact: bool) -> frozenset[str]:
    """Index keys of one normalised term word.

    Plain keys are surface forms (an article token offers its Arabic proclitic
    candidates); namespaced keys are word-form bases, which an article token offers
    only through ``_token_keys``: ``_AR`` light-suffix stems, ``_LAT`` inflection
    bases, ``_LEMMA`` Russian lemmas. ``exact`` (``=word``) keeps surface keys only.
    """
    sc = tx.script(word)
    if sc == "arabic":
        bases = tx.arabic_term_bases(word)
        keys = set(bases)
        if not exact:  # forms of the bare word only: البحرين is not البحر + ين
            keys.update(_AR + stem for stem in tx.arabic_term_stems(bases[-1]))
        return frozenset(keys)
    if sc == "cyrillic":
        if capitalised and tx.russian_is_name(word):
            # a name hits capitalised words only: `Волков` not `волков` (of wolves)
            keys = {_RU_NAME + word}
            if not exact:
                lemmas = tx.russian_name_lemmas(word) or (word,)
                keys.update(_RU_NAME_LEMMA + lemma for lemma in lemmas)
            return frozenset(keys)
        keys = {word}
        if not exact and tx.letter_count(word) >= 2:
            keys.update(_LEMMA + lemma for lemma in tx.russian_term_lemmas(word))
        return frozenset(keys)
    if sc == "latin" and not exact and not capitalised and len(word) >= 3:
        return frozenset((word, *(_LAT + b for b in tx.latin_term_bases(word))))
    return frozenset((word,))


def _token_keys(
    norm: str, sc: str, lemma_prefixes: frozenset[str], cap: bool = False
) -> frozenset[str]:
    """Every key an article token can hit a term under (see ``_word_keys``); ``cap``:
    the token is capitalised, so it may be a Russian name."""
    if sc == "arabic":
        cands = tx.arabic_candidates(norm)
        return frozenset((*cands, *(_AR + st for c in cands for st in tx.arabic_stems(c))))
    if sc == "latin":
        return frozenset((norm, *(_LAT + st for st in tx.latin_stems(norm))))
    if sc == "cyrillic":
        if norm[:3] not in lemma_prefixes:
            return frozenset((norm, _RU_NAME + norm)) if cap else frozenset((norm,))
        lemmas = tx.russian_lemmas(norm)
        keys = (norm, *(_LEMMA + lem for lem in lemmas))
        if cap:
            keys = (*keys, _RU_NAME + norm, *(_RU_NAME_LEMMA + lem for lem in lemmas))
        return frozenset(keys)
    return frozenset((norm,))


def _split_term(body: str) -> list[tuple[str, str]]:
    """(normalised word, raw word) pairs of a term."""
    pairs: list[tuple[str, str]] = []
    for raw in tx.raw_tokens(body):
        pairs.extend((w, raw) for w in tx._WORD_RE.findall(tx.normalize_token(raw)))
    return pairs


@lru_cache(maxsize=1 << 16)
def _variants(body: str, exact: bool) -> tuple[tuple[frozenset[str], ...], ...]:
    """The word sequences a term hits: as written, and with compound halves joined."""
    pairs = _split_term(body)
    if not pairs:
        raise _TermError(f"term {body!r} has no letters or digits")
    base = tuple(_word_keys(w, r, exact) for w, r in pairs)
    variants = [base]
    for j in range(len(pairs) - 1):
        (w1, r1), (w2, _) = pairs[j], pairs[j + 1]
        if tx.script(w1) in ("latin", "cyrillic") and tx.script(w2) == tx.script(w1):
            joined = _word_keys(w1 + w2, r1, exact)
            variants.append((*base[:j], joined, *base[j + 2 :]))
    return tuple(variants)


#: Seconds one ``re:`` term may spend on one field of one article; past it the term
#: counts as no hit for that article (a catastrophic pattern must not freeze the worker).
REGEX_TIMEOUT = 0.25


def _compile_regex(pattern: str) -> Any:
    if not pattern:
        raise _TermError("empty regular expression after 're:'")
    try:
        re.compile(pattern, re.IGNORECASE)  # the documented syntax and its error messages
        # the `regex` module runs it: the same syntax (V0), plus a timeout on every search
        return regex.compile(pattern, regex.IGNORECASE | regex.V0)
    except (re.error, regex.error, ValueError, OverflowError, RecursionError) as exc:
        raise _TermError(f"invalid regular expression 're:{pattern}': {exc}") from None


def regex_warnings(pattern: str) -> list[str]:
    """Constructs that can backtrack exponentially: a repeat inside a repeat (``(a+)+``,
    ``(\\w+\\s?)+``) or alternatives that can match the same text inside a repeat
    (``(a|a)*``, ``(a|aa)+``). A walk over the parsed pattern, linear in its size."""
    try:
        tree = _re_parser.parse(pattern, _re_constants.SRE_FLAG_IGNORECASE)
    except Exception:  # the regex module's own syntax; compiled elsewhere
        return []
    found: dict[str, None] = {}
    _walk_regex(list(tree), False, found)
    return list(found)


def _walk_regex(items: list[Any], repeated: bool, found: dict[str, None]) -> None:
    c = _re_constants
    repeats = (c.MAX_REPEAT, c.MIN_REPEAT)
    for op, av in items:
        if op in repeats:
            _lo, hi, body = av
            many = hi == c.MAXREPEAT or hi > 1
            if repeated and hi == c.MAXREPEAT:
                found["a repeat inside a repeat (like (a+)+) can take exponential time"] = None
            _walk_regex(list(body), repeated or many, found)
        elif op == c.SUBPATTERN:
            _walk_regex(list(av[-1]), repeated, found)
        elif op == c.BRANCH:
            alternatives = [list(alt) for alt in av[1]]
            if repeated:
                firsts = [repr(alt[0]) if alt else "" for alt in alternatives]
                if "" in firsts or len(set(firsts)) < len(firsts):
                    found[
                        "alternatives that can match the same text inside a repeat "
                        "(like (a|a)*) can take exponential time"
                    ] = None
            for alt in alternatives:
                _walk_regex(alt, repeated, found)
        elif op in (c.ASSERT, c.ASSERT_NOT):
            _walk_regex(list(av[1]), repeated, found)
        elif op == c.GROUPREF_EXISTS:
            for branch in av[1:]:
                if branch is not None:
                    _walk_regex(list(branch), repeated, found)


def rule_warnings(rule: Rule) -> list[RuleProblem]:
    """Located warnings for one rule (a slow ``re:`` term), for ``monitor check``."""
    out: list[RuleProblem] = []
    for key in ("any", "all", "none"):
        for i, spec in enumerate(getattr(rule, key)):
            if isinstance(spec, str) and spec.startswith("re:"):
                for message in regex_warnings(spec[3:]):
                    out.append(RuleProblem(key, i, f"'{spec}': {message}"))
    if rule.query is not None:
        try:
            nodes = [luqum_parse(str(rule.query))]
        except Exception:  # check_rule reports a bad query
            nodes = []
        while nodes and len(out) < 100:
            node = nodes.pop()
            if isinstance(node, lq.Regex):
                spec = node.value.strip("/")
                for message in regex_warnings(spec):
                    out.append(RuleProblem("query", None, f"'/{spec}/': {message}"))
            nodes.extend(node.children)
    return out


def _compile_wildcard(word: str) -> re.Pattern[str]:
    parts = re.split(r"([*?])", word)
    out = []
    for part in parts:
        if part == "*":
            out.append(r"\w*")
        elif part == "?":
            out.append(r"\w")
        elif part:
            norm = "".join(tx._WORD_RE.findall(tx.normalize_token(part)))
            out.append(re.escape(norm))
    if not "".join(p for p in parts if p not in ("*", "?")).strip():
        raise _TermError(f"wildcard {word!r} needs at least one letter")
    return re.compile("".join(out) + r"\Z")


class _Terms:
    """Interns terms so the same spelling compiles once for all rules."""

    def __init__(self) -> None:
        self.terms: list[_Term] = []
        self._by_key: dict[tuple[str, str, int | None], _Term] = {}

    def get(self, spec: str, kind: str = "term", fuzzy: int | None = None) -> _Term:
        """Compile (or reuse) a term; ``kind`` is term, regex or wildcard."""
        if not isinstance(spec, str):
            raise _TermError(f"a term must be text, not {type(spec).__name__}")
        spec = spec.strip()
        if not spec:
            raise _TermError("empty term")
        if kind == "term" and spec.startswith("re:"):
            kind, spec = "regex", spec[3:]
        elif kind == "term" and spec.endswith("*") and len(tx.raw_tokens(spec)) == 1:
            kind = "wildcard"  # `Астан*`: any word starting so (an opt-in scan)
        key = (kind, spec, fuzzy if kind == "term" else None)
        found = self._by_key.get(key)
        if found is not None:
            return found
        term = _Term(id=len(self.terms), text=spec if kind != "regex" else "re:" + spec)
        if kind == "regex":
            term.regex = _compile_regex(spec)
        elif kind == "wildcard":
            term.wildcard = _compile_wildcard(spec)
        else:
            exact = spec.startswith("=")
            body = spec[1:].strip() if exact else spec
            if not body:
                raise _TermError("empty term after '='")
            term.variants = _variants(body, exact)
            if fuzzy is not None and len(term.variants[0]) == 1:
                word = _split_term(body)[0][0]
                if tx.letter_count(word) >= _FUZZY_MIN_LETTERS:
                    term.fuzzy, term.fuzzy_word = fuzzy, word
        self.terms.append(term)
        self._by_key[key] = term
        return term


# ----------------------------------------------------------------------- query

# compiled query nodes: ("t", term_id, scope) | ("and", kids) | ("or", kids)
_QueryNode = tuple[Any, ...]
# | ("not", kid) | ("near", term_ids, slop, scope); scope is a field tuple or None


def _phrase_words(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _compile_query(
    node: lq.Item, terms: _Terms, fuzzy: int | None, scope: tuple[str, ...] | None = None
) -> _QueryNode:
    if isinstance(node, (lq.Group, lq.FieldGroup)):
        return _compile_query(node.expr, terms, fuzzy, scope)
    if isinstance(node, lq.SearchField):
        name = node.name.lower()
        if name not in _QUERY_FIELDS:
            known = ", ".join(sorted(_QUERY_FIELDS))
            raise _TermError(f"unknown field {node.name!r} in query (known: {known})")
        return _compile_query(node.expr, terms, fuzzy, _QUERY_FIELDS[name])
    if isinstance(node, lq.Boost):
        return _compile_query(node.expr, terms, fuzzy, scope)
    if isinstance(node, lq.Plus):
        return _compile_query(node.a, terms, fuzzy, scope)
    if isinstance(node, (lq.Not, lq.Prohibit)):
        return ("not", _compile_query(node.a, terms, fuzzy, scope))
    if isinstance(node, lq.OrOperation):
        return ("or", [_compile_query(c, terms, fuzzy, scope) for c in node.children])
    if isinstance(node, (lq.AndOperation, lq.UnknownOperation)):
        return ("and", [_compile_query(c, terms, fuzzy, scope) for c in node.children])
    if isinstance(node, lq.Proximity):
        words = _phrase_words(node.term.value) if isinstance(node.term, lq.Phrase) else ""
        parts = tx.raw_tokens(words)
        if not parts:
            raise _TermError(f"proximity {node!s} needs a quoted phrase")
        slop = int(node.degree) if node.degree is not None else 1
        if len(parts) == 1:
            return ("t", terms.get(parts[0], fuzzy=fuzzy).id, scope)
        ids = [terms.get(p, fuzzy=fuzzy).id for p in parts]
        return ("near", ids, slop, scope)
    if isinstance(node, lq.Fuzzy):
        degree = float(node.degree) if node.degree is not None else 1.0
        threshold = max(50, int(100 - 12.5 * min(degree, 4)))
        return ("t", terms.get(node.term.value, fuzzy=threshold).id, scope)
    if isinstance(node, lq.Phrase):
        return ("t", terms.get(_phrase_words(node.value), fuzzy=fuzzy).id, scope)
    if isinstance(node, lq.Regex):
        return ("t", terms.get(node.value.strip("/"), kind="regex").id, scope)
    if isinstance(node, lq.Word):
        value = node.value
        if "*" in value or "?" in value:
            return ("t", terms.get(value, kind="wildcard").id, scope)
        return ("t", terms.get(value, fuzzy=fuzzy).id, scope)
    raise _TermError(f"unsupported query syntax: {node!s}")


def _query_term_ids(
    node: _QueryNode, negated: bool = False
) -> Iterable[tuple[int, bool, tuple[str, ...] | None]]:
    kind = node[0]
    if kind == "t":
        yield node[1], negated, node[2]
    elif kind == "near":
        for tid in node[1]:
            yield tid, negated, node[3]
    elif kind == "not":
        yield from _query_term_ids(node[1], not negated)
    else:
        for kid in node[1]:
            yield from _query_term_ids(kid, negated)


# ----------------------------------------------------------------------- rules


@dataclass
class _Rule:
    index: int
    name: str
    any: tuple[int, ...]
    all: tuple[int, ...]
    none: tuple[int, ...]
    query: tuple | None
    query_hits: tuple[tuple[int, tuple[str, ...] | None], ...]  # positive query terms
    fields: frozenset[str]
    feeds: frozenset[str]
    languages: tuple[str, ...]
    min_hits: int
    needs_hit: bool = True
    simple: int | None = None  # the term id of a rule that is just `any: [term]`
    plain: bool = False  # simple, and no feeds or languages filter either


def _compile_rule(rule: Rule, index: int, terms: _Terms, problems: list[RuleProblem]) -> _Rule:
    fuzzy = rule.fuzzy
    if fuzzy is not None and (
        isinstance(fuzzy, bool) or not isinstance(fuzzy, int) or not 0 <= fuzzy <= 100
    ):
        problems.append(RuleProblem("fuzzy", None, "fuzzy must be a whole number from 0 to 100"))
        fuzzy = None
    if isinstance(rule.min_hits, bool) or not isinstance(rule.min_hits, int) or rule.min_hits < 1:
        problems.append(RuleProblem("min_hits", None, "min_hits must be a whole number ≥ 1"))
    if rule.priority not in ("normal", "high"):
        message = f"priority must be normal or high, not {rule.priority!r}"
        problems.append(RuleProblem("priority", None, message))
    if tuple(rule.fields) == FIELDS:
        rule_fields = _ALL_FIELDS
    else:
        rule_fields = frozenset(f for f in rule.fields if f in FIELDS)
        for i, name in enumerate(rule.fields):
            if name not in FIELDS:
                message = f"unknown field {name!r} (use {', '.join(FIELDS)})"
                problems.append(RuleProblem("fields", i, message))
        if not rule.fields:
            problems.append(RuleProblem("fields", None, "fields must name at least one field"))
    any_ids = _term_ids("any", rule.any, fuzzy, terms, problems)
    all_ids = _term_ids("all", rule.all, fuzzy, terms, problems)
    none_ids = _term_ids("none", rule.none, None, terms, problems)
    query = None
    query_hits: tuple = ()
    if rule.query is not None:
        if not str(rule.query).strip():
            problems.append(RuleProblem("query", None, "empty query"))
        else:
            try:
                query = _compile_query(luqum_parse(str(rule.query)), terms, fuzzy)
                query_hits = tuple(
                    dict.fromkeys((t, s) for t, neg, s in _query_term_ids(query) if not neg)
                )
            except LuqumParseError as exc:
                reason = str(exc).removeprefix("Syntax error in input : ").rstrip("!")
                problems.append(RuleProblem("query", None, f"invalid query: {reason}"))
            except _TermError as exc:
                problems.append(RuleProblem("query", None, str(exc)))
    compiled = _Rule(
        index=index,
        name=rule.name,
        any=any_ids,
        all=all_ids,
        none=none_ids,
        query=query,
        query_hits=query_hits,
        fields=rule_fields,
        feeds=frozenset(rule.feeds),
        languages=tuple(rule.languages),
        min_hits=rule.min_hits if isinstance(rule.min_hits, int) else 1,
    )
    if (
        len(any_ids) == 1
        and not all_ids
        and not none_ids
        and query is None
        and compiled.min_hits == 1
        and compiled.fields == _ALL_FIELDS
    ):
        compiled.simple = any_ids[0]
        compiled.plain = not compiled.feeds and not compiled.languages
    compiled.needs_hit = bool(any_ids or all_ids) or (
        query is not None and not _eval_query(query, {}, compiled.fields)
    )
    return compiled


def _term_ids(
    key: str, specs: Sequence[str], fuzzy: int | None, terms: _Terms, problems: list
) -> tuple[int, ...]:
    """Term ids of one list of a rule, recording a located problem per bad term."""
    out = []
    for i, spec in enumerate(specs):
        try:
            out.append(terms.get(spec, fuzzy=fuzzy).id)
        except _TermError as exc:
            problems.append(RuleProblem(key, i, str(exc)))
    return tuple(dict.fromkeys(out))


def check_rule(rule: Rule) -> list[RuleProblem]:
    """Every problem in one rule (bad regex, bad query, empty term, bad option)."""
    problems: list[RuleProblem] = []
    _compile_rule(rule, 0, _Terms(), problems)
    return problems


def check_rules(rules: Sequence[Rule]) -> list[tuple[int, RuleProblem]]:
    """Every problem of every rule, as (rule index, problem): the one rule validator.

    One shared term table, so a term many rules write is compiled once.
    """
    terms = _Terms()
    out: list[tuple[int, RuleProblem]] = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for i, rule in enumerate(rules):
            problems: list[RuleProblem] = []
            _compile_rule(rule, i, terms, problems)
            out.extend((i, p) for p in problems)
    finally:
        if enabled:
            gc.enable()
    return out


def compile_rules(rules: Sequence[Rule]) -> Matcher:
    """One index for all rules; raises ConfigError naming every invalid rule."""
    # the build allocates ~10^5 small containers and no cycles: pausing the cyclic
    # collector roughly halves the time of a 10,000-rule build
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile_rules(rules)
    finally:
        if enabled:
            gc.enable()


def _compile_rules(rules: Sequence[Rule]) -> Matcher:
    terms = _Terms()
    compiled: list[_Rule] = []
    errors: list[ConfigError] = []
    for i, rule in enumerate(rules):
        problems: list[RuleProblem] = []
        compiled.append(_compile_rule(rule, i, terms, problems))
        for p in problems:
            where = p.key if p.index is None else f"{p.key}[{p.index}]"
            errors.append(ConfigError(f"rule {rule.name!r}: {where}: {p.message}"))
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    return Matcher(compiled, terms.terms)


# --------------------------------------------------------------------- matching

# per field, per term: list of (start, end, first_token, end_token); token -1 = regex
_Hits = dict[int, dict[str, list[tuple[int, int, int, int]]]]


def _eval_query(node: _QueryNode, hits: _Hits, fields: frozenset[str]) -> bool:
    kind = node[0]
    if kind == "t":
        per_field = hits.get(node[1])
        if not per_field:
            return False
        allowed = fields if node[2] is None else fields.intersection(node[2])
        return any(f in allowed for f in per_field)
    if kind == "and":
        return all(_eval_query(k, hits, fields) for k in node[1])
    if kind == "or":
        return any(_eval_query(k, hits, fields) for k in node[1])
    if kind == "not":
        return not _eval_query(node[1], hits, fields)
    _, ids, slop, scope = node
    allowed = fields if scope is None else fields.intersection(scope)
    return bool(_near_fields(ids, slop, hits, allowed))


def _near_fields(
    ids: Sequence[int], slop: int, hits: _Hits, allowed: Iterable[str]
) -> list[str]:
    """Fields where every word of ``ids`` hits within a window of len(ids)+slop tokens."""
    out = []
    width = len(ids) - 1 + slop
    for f in allowed:
        events = []
        for k, tid in enumerate(ids):
            for _s, _e, ti, _tj in hits.get(tid, {}).get(f, ()):
                if ti >= 0:
                    events.append((ti, k))
        if len({k for _, k in events}) < len(ids):
            continue
        events.sort()
        counts: dict[int, int] = defaultdict(int)
        lo = 0
        for hi in range(len(events)):
            counts[events[hi][1]] += 1
            while events[hi][0] - events[lo][0] > width:
                counts[events[lo][1]] -= 1
                if not counts[events[lo][1]]:
                    del counts[events[lo][1]]
                lo += 1
            if len(counts) == len(ids):
                out.append(f)
                break
    return out


class _ChunkCache(dict[str, tuple]):
    """Prepared chunks by text; a missing one is prepared (and kept when short) by
    ``prepare``, so the scan's lookups are one C-level ``map``."""

    def __init__(self, prepare: Callable[[str], tuple]) -> None:
        super().__init__()
        self._prepare = prepare

    def __missing__(self, chunk: str) -> tuple:
        return self._prepare(chunk)


class Matcher:
    """All rules compiled into one index; ``match`` is pure (it only fills a cache)."""

    def __init__(self, rules: list[_Rule], terms: list[_Term]) -> None:
        self._rules = rules
        self._terms = terms
        index: dict[str, list[int]] = defaultdict(list)
        self._variants: list[tuple[int, tuple[frozenset[str], ...]]] = []
        heads: dict[str, set[str]] = defaultdict(set)
        lemma_prefixes: set[str] = set()
        for term in terms:
            for slots in term.variants:
                vid = len(self._variants)
                self._variants.append((term.id, slots))
                for key in slots[0]:
                    index[key].append(vid)
            for keys in term.variants[0] if term.variants else ():
                for key in keys:
                    if key[0] == _LEMMA or key[0] == _RU_NAME_LEMMA:
                        lemma_prefixes.add(key[1:4])
                    elif key[0] > _RU_NAME_LEMMA and len(key) >= 4 and key[0] < "\u0600":
                        # a Latin/Cyrillic compound may arrive split ("cease fire")
                        for k in range(2, len(key) - 1):
                            heads[key[:k]].add(key[k : k + 2])
        self._index = dict(index)
        # head of a compound → how its second half may start ("cease" → {"fi"})
        self._heads = dict(heads)
        self._lemma_prefixes = frozenset(lemma_prefixes)
        self._term_rules: dict[int, tuple[int, ...]] = {}
        term_rules: dict[int, set[int]] = defaultdict(set)
        for r in rules:
            for tid in (*r.any, *r.all):
                term_rules[tid].add(r.index)
            if r.query is not None:
                for tid, _neg, _scope in _query_term_ids(r.query):
                    term_rules[tid].add(r.index)
        self._term_rules = {tid: tuple(sorted(v)) for tid, v in term_rules.items()}
        self._always = tuple(r.index for r in rules if not r.needs_hit)
        self._all_plain = all(r.plain for r in rules)
        self._rule_terms = [r.simple or 0 for r in rules]  # a plain rule's one term
        self._needs_language = any(r.languages for r in rules)
        self._regex_terms = [t for t in terms if t.regex is not None]
        #: ``re:`` terms that hit the time limit → how many articles they timed out on;
        #: the worker may turn new keys into an operator alert.
        self.regex_timeouts: dict[str, int] = {}
        #: called once per term, the first time it times out (an operator-alert hook)
        self.on_regex_timeout: Callable[[str], None] | None = None
        self._wild_terms = [t for t in terms if t.wildcard is not None]
        self._fuzzy_terms = [t for t in terms if t.fuzzy is not None]
        self._fuzzy_words = [t.fuzzy_word for t in self._fuzzy_terms]
        self._cache: dict[str, tuple] = {}
        self._chunks = _ChunkCache(self._prepare_chunk)
        # JSON of every term and rule name, for match_json
        self._term_json = [f'{{"term": {_encode(t.text)}, "text": ' for t in terms]
        self._rule_json = [f'{{"rule": {_encode(r.name)}, "hits": [' for r in rules]

    @property
    def rule_count(self) -> int:
        """How many rules the index holds."""
        return len(self._rules)

    @property
    def needs_language(self) -> bool:
        """Whether any rule filters on language (else ``Article.language`` is unused)."""
        return self._needs_language

    # -- tokens -----------------------------------------------------------------

    def _prepare(self, raw: str) -> tuple:
        """Everything the scan needs about one raw token, computed once and cached."""
        prepared = self._cache.get(raw)
        if prepared is not None:
            return prepared
        norm = "".join(tx._WORD_RE.findall(tx.normalize_token(raw)))
        prepared = self._prepare_norm(norm, raw[:1].isupper())
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[raw] = prepared
        return prepared

    def _prepare_chunk(self, chunk: str) -> tuple:
        """One space-delimited piece of (cleaned) text as the scan reads it: (prepared
        tokens, steps between their starts, which steps end at a token, their widths,
        anything to do?); see ``_offsets``.

        Tokens never cross a space, so the chunk's tokens (``tx.split_words``) are
        exactly the text's tokens there. News repeats its chunks ("Astana,", "(AP)"),
        so a text costs one ``str.split`` and a dict lookup per chunk."""
        parts = tx.split_words(chunk)
        acc = list(accumulate(map(len, parts)))
        preps = tuple(map(self._prepare, parts[1::3]))
        starts = acc[0:-1:3]
        # steps from one token's start to the next, then to the next chunk (past the
        # space); accumulated over the text's chunks they give every token's start
        steps = (*map(sub, starts, [0, *starts[:-1]]), len(chunk) + 1 - (starts or [0])[-1])
        widths = tuple(map(sub, acc[1::3], starts))
        flags = _TOKEN_FLAGS[len(preps)] if len(preps) < 8 else (True,) * len(preps) + (False,)
        info = (preps, steps, flags, widths, any(map(_TODO, preps)))
        if len(chunk) <= _CHUNK_CACHED:
            if len(self._chunks) >= _CHUNK_LIMIT:
                self._chunks.clear()
            self._chunks[chunk] = info
        return info

    def _prepare_norm(self, norm: str, cap: bool = False) -> tuple:
        """One token, ready to scan: (norm, keys, single-word term ids, continuations,
        compound tails, script, anything to do?, keys that continue a phrase, the
        phrase work per next word).

        Continuations map a key of the *next* word to the phrase variants it continues,
        so a common first word ("في", "the") costs a set test, not one per phrase."""
        sc = tx.script(norm)
        keys = _token_keys(norm, sc, self._lemma_prefixes, cap)
        singles: set[int] = set()
        nexts: dict[str, set[int]] = {}
        for key in keys:
            for vid in self._index.get(key, ()):
                tid, slots = self._variants[vid]
                if len(slots) == 1:
                    singles.add(tid)
                else:
                    for k in slots[1]:
                        nexts.setdefault(k, set()).add(vid)
        head = self._heads.get(norm)
        frozen = {k: tuple(sorted(v)) for k, v in nexts.items()} or None
        todo = bool(singles or frozen or head)
        next_keys = frozenset(frozen) if frozen else None
        pairs: dict | None = {} if frozen else None  # next word → _pair(), filled by the scan
        return (norm, keys, tuple(sorted(singles)), frozen, head, sc, todo, next_keys, pairs)

    def _joined(self, a: tuple, b: tuple) -> tuple | None:
        """The prepared compound of two adjacent tokens, when the rules know it."""
        if a[5] != b[5] or len(b[0]) < 2:
            return None
        joined = a[0] + b[0]
        cached = self._cache.get("\x00" + joined)
        if cached is None:
            cached = self._prepare_norm(joined)
            self._cache["\x00" + joined] = cached
        return cached

    # -- scanning ---------------------------------------------------------------

    def _scan_field(
        self, name: str, text: str, hits: _Hits, vocab: dict[str, list[tuple[str, int]]] | None
    ) -> None:
        text = tx.clean_for_tokens(text)
        infos = self._chunked(text)
        if vocab is None and not any(map(_CHUNK_TODO, infos)):
            return  # the common case: nothing here can hit or start a phrase
        preps: list[Any] = list(chain.from_iterable(map(_CHUNK_PREPS, infos)))
        if not preps:
            return
        if vocab is not None:
            for i, p in enumerate(preps):
                if p[0]:
                    for key in p[1] if p[5] == "arabic" else (p[0],):
                        if key[0] > _LAT:
                            vocab.setdefault(key, []).append((name, i))
        # the tokens that can hit, start a phrase or a compound: usually few
        todo = list(compress(count(), map(_TODO, preps)))
        if not todo or not self._may_hit(todo, preps):
            return
        starts, ends = _offsets(infos)
        # three passes, each over just the tokens it concerns (found by C-level
        # filters): hits of single-word terms, phrases, compounds split in the text
        for i in compress(count(), map(_SINGLES, preps)):
            _add_hits(hits, preps[i][2], name, (starts[i], ends[i], i, i + 1))
        n = len(preps)
        for i in compress(range(n - 1), map(_STARTS_PHRASE, preps)):
            # _phrases, its common case inlined
            p = preps[i]
            q = preps[i + 1]
            pair = p[8].get(q[0]) or self._pair(p, q)
            if pair is not _NO_PAIR:
                if pair[0]:
                    a = ends[i]
                    b = starts[i + 1]
                    if (b - a == 1 and text[a] == " ") or _GAP_RE.fullmatch(text, a, b):
                        _add_hits(hits, pair[0], name, (starts[i], ends[i + 1], i, i + 2))
                if pair[1]:
                    self._phrase_rest(p, pair, i, i + 1, preps, starts, ends, text, name, hits)
            if q[4] is not None and _joins(q, preps, i + 1):
                rest = (preps, starts, ends, text, name, hits, True)
                self._phrase_rest(p, pair, i, i + 1, *rest)
        for i in compress(range(n - 1), map(_HEAD, preps)):
            p = preps[i]
            q = preps[i + 1]
            if q[0][:2] not in p[4]:
                continue
            if not _COMPOUND_GAP_RE.fullmatch(text, ends[i], starts[i + 1]):
                continue
            joined = self._joined(p, q)
            if joined is not None:
                for tid in joined[2]:
                    found_list = hits.setdefault(tid, {}).setdefault(name, [])
                    found_list.append((starts[i], ends[i + 1], i, i + 2))
                if joined[3] is not None and i + 2 < n:
                    self._phrases(joined, i, i + 2, preps, starts, ends, text, name, hits)

    def _chunked(self, text: str) -> list[tuple]:
        """``text`` (cleaned: ``tx.clean_for_tokens``) as prepared chunks, in order; their
        tokens are ``tx.token_parts``'s (see ``_prepare_chunk``)."""
        return list(map(self._chunks.__getitem__, text.split(" ")))

    def _may_hit(self, todo: list[int], preps: list[Any]) -> bool:
        """Whether any of these tokens hits or goes on with its next word as a phrase or
        a compound could: when none does (the usual case with few rules hitting),
        the scan needs no offsets."""
        last = len(preps) - 1
        for i in todo:
            p = preps[i]
            if p[2]:
                return True
            if i == last:
                continue
            q = preps[i + 1]
            pairs = p[8]
            if pairs is not None and (
                (pairs.get(q[0]) or self._pair(p, q)) is not _NO_PAIR or q[4] is not None
            ):
                return True
            if p[4] and q[0][:2] in p[4]:
                return True
        return False

    def _phrases(
        self,
        p: tuple[Any, ...],
        i: int,
        nxt: int,
        preps: list[tuple[Any, ...]],
        starts: list[int],
        ends: list[int],
        text: str,
        name: str,
        hits: _Hits,
    ) -> None:
        """Phrase variants whose first word is ``p`` at token ``i``, going on at ``nxt``
        (``_scan_field`` inlines this for ``nxt == i + 1``)."""
        q = preps[nxt]
        pair = p[8].get(q[0]) or self._pair(p, q)
        if pair[0] and _gap_ok(text, ends[nxt - 1], starts[nxt]):  # the common case
            found = (starts[i], ends[nxt], i, nxt + 1)
            for tid in pair[0]:
                hits.setdefault(tid, {}).setdefault(name, []).append(found)
        if pair[1]:
            self._phrase_rest(p, pair, i, nxt, preps, starts, ends, text, name, hits)
        if q[4] is not None and _joins(q, preps, nxt):
            self._phrase_rest(p, pair, i, nxt, preps, starts, ends, text, name, hits, True)

    def _phrase_rest(
        self,
        p: tuple,
        pair: tuple,
        i: int,
        nxt: int,
        preps: list[Any],
        starts: list[int],
        ends: list[int],
        text: str,
        name: str,
        hits: _Hits,
        joined: bool = False,
    ) -> None:
        """The variants of three words or more that ``pair`` lists or, with ``joined``,
        the ones whose second word is a compound split in the text ("cease fire")."""
        if joined:
            second = self._joined(preps[nxt], preps[nxt + 1])
            if second is None:
                return
            more: set[int] = set()
            nexts = p[3]
            for k in p[7] & second[1]:
                more.update(nexts[k])
            more.difference_update(pair[2])
            vids: Iterable[int] = sorted(more)
        else:
            vids = pair[1]
        for vid in vids:
            tid, slots = self._variants[vid]
            end = self._extend(slots, nxt, preps, starts, ends, text)
            if end >= 0:
                hits.setdefault(tid, {}).setdefault(name, []).append(
                    (starts[i], ends[end - 1], i, end)
                )

    def _pair(self, p: tuple, q: tuple) -> tuple[tuple[int, ...], tuple[int, ...], frozenset]:
        """What first word ``p`` followed by word ``q`` starts: the two-word terms it
        completes, the longer variants to extend and every variant id; computed once
        per word pair and kept in ``p[8]`` (news repeats its word pairs)."""
        direct: set[int] = set()
        nexts = p[3]
        for k in p[7] & q[1]:
            direct.update(nexts[k])
        two: list[int] = []
        longer: list[int] = []
        for vid in sorted(direct):
            tid, slots = self._variants[vid]
            if len(slots) == 2:
                two.append(tid)
            else:
                longer.append(vid)
        pair = (tuple(dict.fromkeys(two)), tuple(longer), frozenset(direct)) if direct else _NO_PAIR
        pairs = p[8]
        if len(pairs) >= _PAIR_LIMIT:
            pairs.clear()
        pairs[q[0]] = pair
        return pair

    def _extend(
        self,
        slots: tuple[frozenset[str], ...],
        pos: int,
        preps: list[tuple[Any, ...]],
        starts: list[int],
        ends: list[int],
        text: str,
    ) -> int:
        """Token index after the whole variant, or -1 when the next words do not follow."""
        n = len(preps)
        for s in range(1, len(slots)):
            if pos >= n or not _gap_ok(text, ends[pos - 1], starts[pos]):
                return -1
            if not slots[s].isdisjoint(preps[pos][1]):
                pos += 1
                continue
            # the next word may be a compound split in the text ("cease fire")
            if _joins(preps[pos], preps, pos):
                joined = self._joined(preps[pos], preps[pos + 1])
                if (
                    joined is not None
                    and _COMPOUND_GAP_RE.fullmatch(text, ends[pos], starts[pos + 1])
                    and not slots[s].isdisjoint(joined[1])
                ):
                    pos += 2
                    continue
            return -1
        return pos

    def _scan_regex(self, name: str, text: str, hits: _Hits, timed_out: set[int]) -> None:
        """``re:`` terms, in the original text and (unless it is plain ASCII, where the
        two agree) in its normalised form, mapped back to original offsets. A term that
        exceeds ``REGEX_TIMEOUT`` is added to ``timed_out`` and finds nothing."""
        norm: str | None = None
        norm_map = None
        for term in self._regex_terms:
            if term.id in timed_out:
                continue
            assert term.regex is not None
            try:
                found = {
                    (m.start(), m.end())
                    for m in term.regex.finditer(text, timeout=REGEX_TIMEOUT)
                    if m.end() > m.start()
                }
                if not text.isascii():
                    if norm is None:
                        norm = tx.normalize(text)
                    for m in term.regex.finditer(norm, timeout=REGEX_TIMEOUT):
                        if m.end() > m.start():
                            if norm_map is None:  # offsets only once something hit
                                norm_map = tx.normalize_map(text)
                            _, starts, ends = norm_map
                            found.add((starts[m.start()], ends[m.end() - 1]))
            except TimeoutError:
                timed_out.add(term.id)
                continue
            if found:
                per_field = hits.setdefault(term.id, {}).setdefault(name, [])
                per_field.extend((a, b, -1, -1) for a, b in sorted(found))

    def _regex_timed_out(self, timed_out: set[int], hits: _Hits) -> None:
        """Drop every hit of a timed-out term (no hit for this article); report it once."""
        for tid in timed_out:
            hits.pop(tid, None)
            text = self._terms[tid].text
            count = self.regex_timeouts.get(text, 0)
            self.regex_timeouts[text] = count + 1
            if count == 0:
                log.warning(
                    "rule term %r took longer than %g s on one article and was skipped for it; "
                    "simplify the regular expression",
                    text,
                    REGEX_TIMEOUT,
                )
                if self.on_regex_timeout is not None:
                    self.on_regex_timeout(text)

    def _scan_vocab(
        self, vocab: dict[str, list[tuple[str, int]]], fields_text: dict[str, str], hits: _Hits
    ) -> None:
        """Wildcard and fuzzy terms against the article's distinct words, in one batch."""
        if not vocab:
            return
        words = list(vocab)
        spans_cache: dict[str, list[tuple[int, int]]] = {}

        def add(tid: int, word: str) -> None:
            for fname, i in vocab[word]:
                spans = spans_cache.get(fname)
                if spans is None:
                    spans = spans_cache[fname] = tx.token_spans(fields_text[fname])
                a, b = spans[i]
                found = hits.setdefault(tid, {}).setdefault(fname, [])
                if (a, b, i, i + 1) not in found:
                    found.append((a, b, i, i + 1))

        for term in self._wild_terms:
            assert term.wildcard is not None
            for word in words:
                if term.wildcard.match(word):
                    add(term.id, word)
        # fuzzy never fires on a short word: "Lavr" is not "Lavrov" at any threshold
        long_words = [w for w in words if tx.letter_count(w) >= _FUZZY_MIN_LETTERS]
        if self._fuzzy_terms and long_words:
            for r, c, score in _fuzzy_pairs(self._fuzzy_terms, self._fuzzy_words, long_words):
                if score >= (self._fuzzy_terms[r].fuzzy or 0):
                    add(self._fuzzy_terms[r].id, long_words[c])
        for tid, per_field in hits.items():  # keep every term's fields in field order
            if len(per_field) > 1:
                hits[tid] = {f: per_field[f] for f in FIELDS if f in per_field}

    # -- rules ------------------------------------------------------------------

    def _scan(self, article: Article) -> tuple[_Hits, dict[str, str]]:
        """Every term's raw hits in every field, and the field texts (scan once)."""
        hits: _Hits = {}
        vocab: dict[str, list[tuple[str, int]]] | None = (
            {} if self._fuzzy_terms or self._wild_terms else None
        )
        texts: dict[str, str] = {}
        timed_out: set[int] = set()
        for name in FIELDS:
            value = article.field_text(name) or ""
            if not value:
                continue
            texts[name] = value
            self._scan_field(name, value, hits, vocab)
            if self._regex_terms:
                self._scan_regex(name, value, hits, timed_out)
        if timed_out:
            self._regex_timed_out(timed_out, hits)
        if vocab:
            self._scan_vocab(vocab, texts, hits)
        return hits, texts

    def _candidates(self, hits: _Hits) -> list[int]:
        """The rules a hit touches (and those that need none), in config order."""
        if not hits and not self._always:
            return []
        candidates = set(self._always)
        candidates.update(chain.from_iterable(map(self._term_rules.get, hits, repeat(()))))
        return sorted(candidates)

    def _matched(self, article: Article, feed_tags: Sequence[str]) -> tuple[list, _Hits, dict]:
        """Scan once, evaluate the touched rules: ``(rule, report)`` per matching rule in
        config order (``report`` is None for a simple rule: its one term, every field),
        the raw hits and the field texts. Nothing here builds a Match or a Hit."""
        hits, texts = self._scan(article)
        rules = self._rules
        candidates = self._candidates(hits)
        if self._all_plain:  # every rule is one `any` term, no filters: nothing to decide
            return list(zip(map(rules.__getitem__, candidates), repeat(None))), hits, texts
        matched: list[tuple[_Rule, list | None]] = []
        language = article.language or None
        language_guessed = False
        feed_ids = {article.feed_id, *feed_tags}
        for ri in candidates:
            rule = rules[ri]
            if rule.plain:  # the common rule: one `any` term, no filters
                matched.append((rule, None))
                continue
            if rule.feeds and rule.feeds.isdisjoint(feed_ids):
                continue
            if rule.languages:
                if language is None and not language_guessed:
                    language_guessed = True
                    language = tx.guess_language(" ".join(texts.values()))
                if not any(tx.language_matches(w, language) for w in rule.languages):
                    continue
            if rule.simple is not None:  # one `any` term, every field, nothing else
                matched.append((rule, None))
                continue
            report = self._evaluate(rule, hits)
            if report is not None:
                matched.append((rule, report))
        return matched, hits, texts

    def match(self, article: Article, feed_tags: Sequence[str] = ()) -> list[Match]:
        """The rules this article matches, in config order, each with its hits."""
        matched, hits, texts = self._matched(article, feed_tags)
        if not matched:
            return []
        cache: dict[int, tuple[_Place, ...]] = {}
        made: dict[_Place, Hit] = {}
        simple: dict[int, tuple[Hit, ...]] = {}
        matches: list[Match] = []
        for rule, report in matched:
            if report is None:
                found = simple.get(rule.simple)  # type: ignore[arg-type]
                if found is None:
                    places = self._term_places(rule.simple, hits, cache)  # type: ignore[arg-type]
                    found = simple[rule.simple] = _make_hits(places, texts, made)  # type: ignore[index]
            else:
                found = _make_hits(self._rule_places(report, hits, cache), texts, made)
            matches.append(Match(rule.name, found))
        return matches

    def match_names(self, article: Article, feed_tags: Sequence[str] = ()) -> list[str]:
        """The names of the rules ``match`` would return, without building any hit."""
        return [rule.name for rule, _ in self._matched(article, feed_tags)[0]]

    def match_json(self, article: Article, feed_tags: Sequence[str] = ()) -> str:
        """``match`` as the JSON array ``monitor match --json``/``--jsonl`` prints.

        The same text as ``json.dumps([{"rule": …, "hits": [{"term", "text", "field",
        "start", "end"}, …]}, …], ensure_ascii=False)``, written straight from the raw
        hits: no Match, Hit or dict per hit, each hit serialised once per article
        however many rules report it, terms and rule names encoded once per Matcher.
        """
        if self._all_plain:  # each rule's hits are its one term's: write each term once
            hits, texts = self._scan(article)
            order = self._candidates(hits)
            if not order:
                return "[]"
            bodies = {tid: self._term_json_hits(tid, spans, texts) for tid, spans in hits.items()}
            rule_terms = map(self._rule_terms.__getitem__, order)
            rule_json = map(self._rule_json.__getitem__, order)
            return "[" + ", ".join(map(add, rule_json, map(bodies.__getitem__, rule_terms))) + "]"
        matched, hits, texts = self._matched(article, feed_tags)
        if not matched:
            return "[]"
        cache: dict[int, tuple[_Place, ...]] = {}
        simple: dict[int, str] = {}
        out: list[str] = []
        for rule, report in matched:
            if report is None:
                tid: int = rule.simple  # type: ignore[assignment]
                body = simple.get(tid)
                if body is None:
                    body = simple[tid] = self._term_json_hits(tid, hits[tid], texts)
            else:
                places = self._rule_places(report, hits, cache)
                body = ", ".join(
                    f'{{"term": {_encode(term)}, "text": {_encode(texts[FIELDS[fo]][a:b])}'
                    f'{_FIELD_MID[FIELDS[fo]]}{a}, "end": {b}}}'
                    for fo, a, b, term in places
                ) + "]}"
            out.append(self._rule_json[rule.index] + body)
        return "[" + ", ".join(out) + "]"

    def _term_json_hits(self, tid: int, per_field: dict[str, list], texts: dict[str, str]) -> str:
        """The JSON objects of one term's hits (as ``_term_places`` orders them), joined
        and closed with ``]}`` (the end of a rule's record): the hot loop of --jsonl.

        A term's fields are in field order (the scan goes field by field and
        ``_scan_vocab`` restores the order); spans are sorted and made unique here."""
        head = self._term_json[tid]
        pieces = []
        for f, spans in per_field.items():
            text = texts[f]
            mid = _FIELD_MID[f]
            if len(spans) == 1:  # the usual case
                a, b, _, _ = spans[0]
                if len(per_field) == 1:
                    return f'{head}{_encode(text[a:b])}{mid}{a}, "end": {b}}}]}}'
                pieces.append(f'{head}{_encode(text[a:b])}{mid}{a}, "end": {b}}}')
                continue
            if any(map(ge, spans, spans[1:])):  # not strictly increasing: sort, drop repeats
                spans = sorted(set(spans))  # (start, end) fix the tokens: no two ways
            for a, b, _, _ in spans:
                pieces.append(f'{head}{_encode(text[a:b])}{mid}{a}, "end": {b}}}')
        return ", ".join(pieces) + "]}"

    def _term_places(
        self, tid: int, hits: _Hits, cache: dict[int, tuple[_Place, ...]]
    ) -> tuple[_Place, ...]:
        """Every place one term hit, in field order then by position, once each."""
        found = cache.get(tid)
        if found is not None:
            return found
        term = self._terms[tid].text
        out: list[_Place] = []
        for f, spans in hits[tid].items():  # in field order (see _scan_vocab)
            fo = _FIELD_ORDER[f]
            if len(spans) > 1:
                spans = sorted(set(spans))
            out.extend([(fo, s[0], s[1], term) for s in spans])
        found = cache[tid] = tuple(out)
        return found

    def _rule_places(
        self, report: list, hits: _Hits, cache: dict[int, tuple[_Place, ...]]
    ) -> tuple[_Place, ...]:
        """The places a rule's report covers, merged and sorted (field, start, end, term)."""
        parts = []
        for tid, scope in report:
            places = self._term_places(tid, hits, cache)
            if scope is not None:
                places = tuple(p for p in places if FIELDS[p[0]] in scope)
            if places:
                parts.append(places)
        if len(parts) == 1:
            return parts[0]
        return tuple(sorted(dict.fromkeys(chain.from_iterable(parts))))

    def _evaluate(self, rule: _Rule, hits: _Hits) -> list[tuple[int, frozenset | None]] | None:
        """The (term, fields) whose hits a match reports, or None if the rule fails."""
        fields = rule.fields
        scope_all = None if fields == _ALL_FIELDS else fields
        for tid in rule.none:
            per_field = hits.get(tid)
            if per_field and not fields.isdisjoint(per_field):
                return None
        for tid in rule.all:
            per_field = hits.get(tid)
            if not per_field or fields.isdisjoint(per_field):
                return None
        if rule.query is not None and not _eval_query(rule.query, hits, fields):
            return None
        report: list[tuple[int, frozenset | None]] = []
        places: set[tuple[str, int, int]] = set()
        for tid in rule.any:
            per_field = hits.get(tid)
            if per_field and not fields.isdisjoint(per_field):
                report.append((tid, scope_all))
                if rule.min_hits > 1:
                    places.update(
                        (f, h[0], h[1])
                        for f, found in per_field.items()
                        if f in fields
                        for h in found
                    )
        if rule.any and (not report or (len(places) < rule.min_hits and rule.min_hits > 1)):
            return None
        report.extend((tid, scope_all) for tid in rule.all)
        for tid, scope in rule.query_hits:
            if tid in hits:
                report.append((tid, fields if scope is None else fields.intersection(scope)))
        return report


_ALL_FIELDS = frozenset(FIELDS)


def _add_hits(hits: _Hits, tids: Iterable[int], name: str, found: tuple) -> None:
    """Record that each of these terms hit at ``found`` (start, end, first token,
    token after) in field ``name``."""
    for tid in tids:
        per_field = hits.get(tid)
        if per_field is None:
            hits[tid] = {name: [found]}
        elif name in per_field:
            per_field[name].append(found)
        else:
            per_field[name] = [found]


def _offsets(infos: list[tuple]) -> tuple[list[int], list[int]]:
    """Every token's (start, end) in the text of these chunks (``Matcher._chunked``):
    summed from each chunk's cached steps, leaving out the step to the next chunk."""
    places = accumulate(chain.from_iterable(map(_CHUNK_STEPS, infos)))
    starts = list(compress(places, chain.from_iterable(map(_CHUNK_TOKENS, infos))))
    ends = list(map(add, starts, chain.from_iterable(map(_CHUNK_WIDTHS, infos))))
    return starts, ends


def _gap_ok(text: str, a: int, b: int) -> bool:
    """Whether ``text[a:b]`` may separate two words of a phrase (see ``_GAP_RE``)."""
    return (b - a == 1 and text[a] == " ") or _GAP_RE.fullmatch(text, a, b) is not None


def _joins(p: tuple, preps: list, i: int) -> bool:
    """Whether token ``i`` (prepared as ``p``) may start a compound with token i+1."""
    return p[4] is not None and i + 1 < len(preps) and preps[i + 1][0][:2] in p[4]


_FIELD_ORDER = {name: i for i, name in enumerate(FIELDS)}
_TODO = itemgetter(6)  # a prepared token's "anything to do?" flag
_SINGLES = itemgetter(2)  # … its single-word terms
_HEAD = itemgetter(4)  # … the compounds it may start
_STARTS_PHRASE = itemgetter(7)  # … and the next-word keys of the phrases it may start
# the fields of a prepared chunk (Matcher._prepare_chunk)
_CHUNK_PREPS = itemgetter(0)
_CHUNK_STEPS = itemgetter(1)
_CHUNK_TOKENS = itemgetter(2)
_CHUNK_WIDTHS = itemgetter(3)
_CHUNK_TODO = itemgetter(4)
_FIELD_MID = {f: f', "field": {json.dumps(f)}, "start": ' for f in FIELDS}
_encode = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses

# where a term hit: (field order, start, end, term as written); sorts as hits are shown
_Place = tuple[int, int, int, str]


def _make_hits(
    places: tuple[_Place, ...], texts: dict[str, str], made: dict[_Place, Hit]
) -> tuple[Hit, ...]:
    """Hit objects for places, each built once per article."""
    out = []
    for place in places:
        hit = made.get(place)
        if hit is None:
            fo, a, b, term = place
            field = FIELDS[fo]
            hit = made[place] = Hit(term, texts[field][a:b], field, a, b)
        out.append(hit)
    return tuple(out)


def _fuzzy_pairs(terms: list[_Term], words_a: list, words_b: list) -> list[tuple[int, int, int]]:
    """(term row, vocabulary column, score) for every pair above the lowest threshold."""
    from rapidfuzz import fuzz, process

    cutoff = min(t.fuzzy or 0 for t in terms)
    try:
        import numpy  # noqa: F401  (cdist returns a numpy matrix)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pairs = []
        for r, w in enumerate(words_a):
            for _, score, c in process.extract(
                w, words_b, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None
            ):
                pairs.append((r, c, int(score)))
        return pairs
    matrix = process.cdist(words_a, words_b, scorer=fuzz.ratio, score_cutoff=cutoff, workers=1)
    rows, cols = matrix.nonzero()
    return [(int(r), int(c), int(matrix[r, c])) for r, c in zip(rows, cols, strict=True)]


__all__ = [
    "REGEX_TIMEOUT",
    "Matcher",
    "RuleProblem",
    "check_rule",
    "check_rules",
    "compile_rules",
    "regex_warnings",
    "rule_warnings",
]



# ------------------------------------------------------------ archive index keys
#
# The archive's search index stores, per article, the keys its tokens offer the
# index above (``_token_keys``, with every Russian lemma and every adjacent-token
# compound the scan could join), and a rule is turned into a boolean expression
# over the keys its terms are indexed under. Every article a rule matches
# satisfies that expression, so the index only narrows the candidates; the
# ``Matcher`` still decides. Terms it cannot serve (regex, wildcard, fuzzy, a
# clause under NOT) leave their clause unconstrained.

#: A boolean expression over index keys: a set of keys (any of them) or
#: ``("and" | "or", children)``.
KeyExpr = frozenset[str] | tuple[str, tuple["KeyExpr", ...]]

#: Text fields the archive indexes: the matcher's fields and the fetched page.
INDEX_FIELDS: tuple[str, ...] = tuple(dict.fromkeys((*FIELDS, "page")))
_EXPR_DEPTH = 32  # deeper query nesting is left unconstrained (scanned)


@lru_cache(maxsize=1 << 16)
def _index_keys_of(norm: str, cap: bool = False) -> frozenset[str]:
    """Every key one normalised article token can hit a term under (``cap``: the
    token is capitalised, so it may also be a Russian name; see ``_token_keys``)."""
    sc = tx.script(norm)
    if sc == "cyrillic":
        lemmas = tx.russian_lemmas(norm)
        keys: tuple[str, ...] = (norm, *(_LEMMA + lem for lem in lemmas))
        if cap:
            keys = (*keys, _RU_NAME + norm, *(_RU_NAME_LEMMA + lem for lem in lemmas))
        return frozenset(keys)
    return _token_keys(norm, sc, frozenset(), cap)


@lru_cache(maxsize=1 << 16)
def _norm_token(raw: str) -> str:
    """A raw token as the scan normalises it (cached: news repeats its words)."""
    return "".join(tx._WORD_RE.findall(tx.normalize_token(raw)))


def text_index_keys(text: str) -> set[str]:
    """The index keys of one text: its tokens' and its joinable token pairs'."""
    text, parts = tx.token_parts(text)  # the scan's own tokens (see Matcher._scan_field)
    raws = parts[1::3]
    if not raws:
        return set()
    norms = list(map(_norm_token, raws))
    keys: set[str] = set()
    capitalised = map(str.isupper, map(itemgetter(slice(0, 1)), raws))
    for norm, cap in set(zip(norms, capitalised, strict=True)):
        if norm:
            keys.update(_index_keys_of(norm, cap))
    acc = list(accumulate(map(len, parts)))
    starts, ends = acc[0::3], acc[1::3]
    for i in range(len(norms) - 1):
        a, b = norms[i], norms[i + 1]
        # what Matcher._joined can join: a Latin/Cyrillic-range head, same script
        if len(a) < 2 or len(b) < 2 or not "\x03" < a[0] < "\u0600" or b[0] >= "\u0600":
            continue
        if not _COMPOUND_GAP_RE.fullmatch(text, ends[i], starts[i + 1]):
            continue
        if _script(a) == _script(b):
            keys.update(_index_keys_of(a + b, raws[i][:1].isupper()))
    return keys


_script = lru_cache(maxsize=1 << 16)(tx.script)  # per normalised word, for the index


def article_index_keys(article: Article) -> frozenset[str]:
    """Every key under which some term could hit this article (the archive index)."""
    keys: set[str] = set()
    for name in INDEX_FIELDS:
        value = getattr(article, name, None)
        if isinstance(value, str) and value:
            keys.update(text_index_keys(value))
    return frozenset(keys)


def _and(parts: list[KeyExpr]) -> KeyExpr | None:
    flat: list[KeyExpr] = []
    for p in parts:
        if isinstance(p, tuple) and p[0] == "and":
            flat.extend(p[1])
        else:
            flat.append(p)
    flat = list(dict.fromkeys(flat))
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else ("and", tuple(flat))


def _or(parts: list[KeyExpr]) -> KeyExpr:
    leaves: set[str] = set()
    rest: list[KeyExpr] = []
    for p in parts:
        if isinstance(p, frozenset):
            leaves.update(p)
        elif p[0] == "or":
            for q in p[1]:
                if isinstance(q, frozenset):
                    leaves.update(q)
                else:
                    rest.append(q)
        else:
            rest.append(p)
    if leaves:
        rest.insert(0, frozenset(leaves))
    rest = list(dict.fromkeys(rest))
    return rest[0] if len(rest) == 1 else ("or", tuple(rest))


def _term_expr(term: _Term) -> KeyExpr | None:
    """Keys an article must hold for this term to hit; None when the index cannot tell."""
    if term.regex is not None or term.wildcard is not None or term.fuzzy is not None:
        return None
    if not term.variants:
        return None
    options = [_and(list(slots)) for slots in term.variants]
    if any(o is None for o in options):
        return None
    return _or([o for o in options if o is not None])


def _query_expr(node: tuple, terms: list[_Term], depth: int = 0) -> KeyExpr | None:
    if depth > _EXPR_DEPTH:
        return None
    kind = node[0]
    if kind == "t":
        return _term_expr(terms[node[1]])
    if kind == "near":
        return _and([e for e in (_term_expr(terms[t]) for t in node[1]) if e is not None])
    if kind == "and":
        kids = [_query_expr(k, terms, depth + 1) for k in node[1]]
        return _and([k for k in kids if k is not None])
    if kind == "or":
        kids = [_query_expr(k, terms, depth + 1) for k in node[1]]
        if any(k is None for k in kids):
            return None
        return _or([k for k in kids if k is not None])
    return None  # "not": an absence cannot be looked up


def index_query(matcher: Matcher, rule: str) -> KeyExpr | None:
    """What the archive index must hold for ``rule`` to match, or None to scan.

    Exact in one direction: every article the rule matches satisfies the
    expression (given ``article_index_keys``); the ``Matcher`` confirms each.
    """
    found = [r for r in matcher._rules if r.name == rule]
    if not found:
        raise KeyError(rule)
    compiled = found[0]
    if not compiled.needs_hit:
        return None
    terms = matcher._terms
    parts: list[KeyExpr] = []
    if compiled.any:
        options = [_term_expr(terms[t]) for t in compiled.any]
        if all(o is not None for o in options):
            parts.append(_or([o for o in options if o is not None]))
    for tid in compiled.all:
        expr = _term_expr(terms[tid])
        if expr is not None:
            parts.append(expr)
    if compiled.query is not None:
        expr = _query_expr(compiled.query, terms)
        if expr is not None:
            parts.append(expr)
    return _and(parts)


def rule_names(matcher: Matcher) -> list[str]:
    """The compiled rules' names, in configuration order."""
    return [r.name for r in matcher._rules]


__all__ += ["INDEX_FIELDS", "KeyExpr", "article_index_keys", "index_query", "rule_names"]
