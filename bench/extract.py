"""Main-text extractors on the test pages: sentence precision/recall per language, time per page.

Run: ``python bench/extract.py [--rounds 5] [--no-hostile]``. Not a test.
readability-lxml is compared when it is installed (``pip install readability-lxml``).

Pages are ``tests/data/pages/NAME.html`` beside ``NAME.expected.txt`` (the
article's sentences, one per line), written for monitor: news-site layouts with
menus, breadcrumbs, share buttons, related-story lists, comments, newsletter
boxes, cookie banners and footers. An extractor's output is split into sentences
(line breaks, then ``. ! ? ؟`` before a capital, a quote or an Arabic letter) and
compared, whitespace folded, with the expected set: precision is the share of
output sentences that belong to the article, recall the share of the article's
sentences found. "leaks" counts pages whose output contains a watched name that
the page has only in its furniture (a related link, a comment, a footer). The
baseline is the whole page as text (``monitor.articles.html_to_text``). Times
are medians over pages of each page's best round (all candidates run on the
same page in turn, so they share the machine's noisy moments). A second table
times hostile pages (deep nesting, megabytes of tags) once each, extract_page
beside plain trafilatura, and says whether the article's sentence survived.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import justext  # noqa: E402
import lxml.html  # noqa: E402
import trafilatura  # noqa: E402

try:  # optional: `pip install readability-lxml` to compare it (not a dependency)
    from readability import Document
except ImportError:
    Document = None

from monitor.articles import html_to_text  # noqa: E402

PAGES = ROOT / "tests" / "data" / "pages"
URL = "https://news.example.org/2026/12/07/article.html"
# The watched names each page has only in its furniture (see tests/test_extract.py).
FURNITURE_ONLY = {"astana": "Astana", "астан": "Астан", "أستانا": "أستانا"}

_SPLIT = re.compile(r"(?<=[.!?؟»”])\s+(?=[«“A-ZА-ЯЁ\u0600-\u06ff])")
_LANG_STOPLIST = {"en": "English", "ru": "Russian", "ar": "Arabic"}


def sentences(text: str) -> list[str]:
    """Sentences of ``text``, whitespace folded; list markers dropped."""
    out: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*[-•*]\s+", "", line)
        for sent in _SPLIT.split(line):
            sent = " ".join(sent.split())
            if sent:
                out.append(sent)
    return out


def _traf(**options: object) -> Callable[[str, str], str]:
    def run(html: str, lang: str) -> str:
        return trafilatura.extract(html, url=URL, include_comments=False, **options) or ""  # type: ignore[arg-type]

    return run


def _readability(html: str, lang: str) -> str:
    summary = Document(html).summary(html_partial=True)
    tree = lxml.html.fromstring(summary)
    blocks = tree.xpath("//p|//h1|//h2|//h3|//h4|//li|//blockquote")
    if not blocks:
        return tree.text_content()
    return "\n".join(b.text_content() for b in blocks)


def _justext(html: str, lang: str) -> str:
    paragraphs = justext.justext(html.encode(), justext.get_stoplist(_LANG_STOPLIST[lang]))
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def _justext_short(html: str, lang: str) -> str:
    # jusText's defaults want 200-character paragraphs; agency paragraphs are often shorter.
    stoplist = justext.get_stoplist(_LANG_STOPLIST[lang])
    paragraphs = justext.justext(html.encode(), stoplist, length_low=50, length_high=100)
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def _monitor(**options: bool) -> Callable[[str, str], str]:
    """monitor.extract.extract_page, with its trafilatura options replaced by ``options``."""

    def run(html: str, lang: str) -> str:
        from monitor import extract

        saved = dict(extract._OPTIONS)
        extract._OPTIONS.update(options)
        try:
            return extract.extract_page(html.encode(), URL, "text/html; charset=utf-8").text
        finally:
            extract._OPTIONS.clear()
            extract._OPTIONS.update(saved)

    return run


def _scan(html: str, lang: str) -> str:
    # the nesting pre-check alone (its cost is paid on every page)
    from monitor.extract import MAX_DEPTH, nesting_depth

    nesting_depth(html, MAX_DEPTH + 1)
    return ""


CANDIDATES: dict[str, Callable[[str, str], str]] = {
    "whole page (baseline)": lambda html, lang: html_to_text(html),
    "trafilatura": _traf(),
    "trafilatura fast": _traf(fast=True),
    "trafilatura precision": _traf(favor_precision=True),
    "trafilatura recall": _traf(favor_recall=True),
    "trafilatura, no tables": _traf(include_tables=False),
    "trafilatura precision, no tables": _traf(favor_precision=True, include_tables=False),
    "trafilatura fast, prec., no tables": _traf(
        fast=True, favor_precision=True, include_tables=False
    ),
    "justext": _justext,
    "justext, length_high=100": _justext_short,
}
if Document is not None:
    CANDIDATES["readability-lxml"] = _readability


_P = "<p>The next round of talks will take place in Astana in February, the ministry said.</p>"
HOSTILE: dict[str, Callable[[], str]] = {
    "100k nested divs": lambda: "<html><body>" + "<div>" * 100_000 + _P * 5 + "</div>" * 100_000,
    "50k unclosed divs": lambda: "<html><body>" + "<div>" * 50_000 + _P * 5,
    "20k nested tables": lambda: "<html><body>" + "<table><tr><td>" * 20_000 + _P * 5,
    "3 MB of links": lambda: "<html><body>" + _P * 5 + '<a href="/x">link</a> ' * 150_000,
    "3 MB, one paragraph": lambda: "<html><body><p>" + "Astana " * 450_000 + "</p>",
    "300k unclosed <script>": lambda: "<html><body>" + _P * 5 + "<script>x" * 300_000,
}


def hostile() -> None:
    """Worst cases: extract_page (capped, nesting flattened) beside plain trafilatura."""
    from monitor.extract import extract_page

    cols = f"{'extract_page s':>14} {'found':>6} {'trafilatura s':>14} {'found':>6}"
    print(f"\n{'hostile page':24} {cols}")
    for name, build in HOSTILE.items():
        html = build()
        start = time.perf_counter()
        ours = extract_page(html.encode(), URL, "text/html").text
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = trafilatura.extract(html, url=URL, include_comments=False) or ""
        theirs_s = time.perf_counter() - start
        found = "take place in Astana"
        print(
            f"{name:24} {ours_s:14.3f} {found in ours!s:>6} {theirs_s:14.3f} {found in theirs!s:>6}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-hostile", action="store_true", help="skip the worst-case table")
    args = parser.parse_args()
    try:
        import monitor.extract  # noqa: F401

        CANDIDATES["monitor.extract.extract_page"] = _monitor()
        CANDIDATES["  same, without tables"] = _monitor(include_tables=False)
        CANDIDATES["  same, without favor_precision"] = _monitor(favor_precision=False)
        CANDIDATES["  same, fast (no fallback)"] = _monitor(fast=True)
        CANDIDATES["  same, fast, without tables"] = _monitor(fast=True, include_tables=False)
        CANDIDATES["(its nesting pre-scan alone)"] = _scan
    except ImportError:
        pass
    pages = sorted(PAGES.glob("*.html"))
    # per candidate, per language: [true positives, output sentences, expected found, expected]
    score: dict[str, dict[str, list[int]]] = {c: {} for c in CANDIDATES}
    times: dict[str, list[float]] = {c: [] for c in CANDIDATES}
    leaks: dict[str, list[str]] = {c: [] for c in CANDIDATES}
    worst: dict[str, tuple[float, float]] = {c: (1.0, 1.0) for c in CANDIDATES}
    for page in pages:
        html = page.read_text(encoding="utf-8")
        lang = page.name[:2]
        expected = {
            " ".join(s.split())
            for s in page.with_suffix("")
            .with_suffix(".expected.txt")
            .read_text(encoding="utf-8")
            .splitlines()
            if s.strip()
        }
        best = dict.fromkeys(CANDIDATES, float("inf"))
        outputs: dict[str, str] = {}
        for _ in range(args.rounds):
            for name, fn in CANDIDATES.items():
                start = time.perf_counter()
                outputs[name] = fn(html, lang)
                best[name] = min(best[name], time.perf_counter() - start)
        for name, text in outputs.items():
            got = sentences(text)
            tp = sum(1 for s in got if s in expected)
            found = sum(1 for s in expected if s in set(got))
            row = score[name].setdefault(lang, [0, 0, 0, 0])
            row[0] += tp
            row[1] += len(got)
            row[2] += found
            row[3] += len(expected)
            times[name].append(best[name])
            body = "\n".join(expected).lower()
            lowered = text.lower()
            for key in FURNITURE_ONLY:
                if key in lowered and key not in body:
                    leaks[name].append(page.stem)
            p = tp / len(got) if got else 0.0
            r = found / len(expected)
            worst[name] = (min(worst[name][0], p), min(worst[name][1], r))
    langs = ["ar", "ru", "en"]
    head = f"{'extractor':34} " + " ".join(f"{lang + ' P':>6} {lang + ' R':>6}" for lang in langs)
    head += f" {'min P':>6} {'min R':>6} {'leaks':>5} {'ms/page':>8}"
    counts = ", ".join(f"{sum(p.name.startswith(lang) for p in pages)} {lang}" for lang in langs)
    print(f"{len(pages)} pages ({counts}), best of {args.rounds} rounds per page\n")
    print(head)
    print("-" * len(head))
    for name in CANDIDATES:
        cells = []
        for lang in langs:
            tp, n, found, total = score[name].get(lang, [0, 0, 0, 0])
            cells.append(f"{(tp / n if n else 0):6.3f} {(found / total if total else 0):6.3f}")
        ms = statistics.median(times[name]) * 1000
        low_p, low_r = worst[name]
        print(
            f"{name:34} {' '.join(cells)} {low_p:6.3f} {low_r:6.3f} {len(leaks[name]):5d} {ms:8.2f}"
        )
    print("\nleaks:", {k: v for k, v in leaks.items() if v and not k.startswith("whole")})
    if not args.no_hostile and "monitor.extract.extract_page" in CANDIDATES:
        hostile()


if __name__ == "__main__":
    main()
