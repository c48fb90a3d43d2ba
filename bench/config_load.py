"""Configuration load benchmark: ``monitor check``'s load path against libyaml's plain read.

Run: ``python bench/config_load.py [--runs 5] [--seed 7]``. Not a test.

For 100, 1,000 and 10,000 rules it writes one configuration (three channels, six
feeds, rules in Arabic, English and Russian written for this script: ``any`` lists
of one to four terms, some ``all``/``none`` lists, queries, fuzzy, ``feeds`` and
phrases), then times, interleaved in each run, ``yaml.load(f, Loader=CSafeLoader)``
(the floor: reading the file into plain Python values, no validation) and
``load_settings`` (what ``monitor check`` does: compose with marks, validate every
key, type and range, compile every rule in the matcher's own check). The table
shows medians; the ratio is the median of per-run ratios. "monitor check" runs with
the term caches emptied (as in a fresh process); "warm caches" is a reload in a
running worker that has seen these terms before. ``load_settings`` pauses the
cyclic GC while it loads; the last columns time the C read with the GC paused too,
so the comparison holds without that advantage. Target: ≤ 2.5× (cold).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor import match as match_module
from monitor import text as text_module
from monitor.config import load_settings

ARABIC = [
    "أستانا",
    "مفاوضات",
    "هدنة",
    "وقف",
    "إطلاق",
    "النار",
    "لافروف",
    "دمشق",
    "حلب",
    "إدلب",
    "اللاجئين",
    "المساعدات",
    "الإنسانية",
    "الحدود",
    "جنيف",
    "الدستورية",
    "المعارضة",
    "الحكومة",
    "الضامنة",
    "الأسرى",
    "المعتقلين",
]
ENGLISH = [
    "Astana",
    "ceasefire",
    "truce",
    "talks",
    "Lavrov",
    "Damascus",
    "Aleppo",
    "Idlib",
    "refugees",
    "convoy",
    "aid",
    "border",
    "Geneva",
    "constitution",
    "opposition",
    "guarantor",
    "prisoners",
    "detainees",
    "shelling",
    "envoy",
]
RUSSIAN = [
    "Астана",
    "перемирие",
    "переговоры",
    "Лавров",
    "Дамаск",
    "Алеппо",
    "Идлиб",
    "беженцы",
    "гуманитарная",
    "помощь",
    "граница",
    "Женева",
    "конституция",
    "оппозиция",
    "гарант",
    "пленные",
    "обстрел",
    "посланник",
]
LANGUAGES = [("ar", ARABIC), ("en", ENGLISH), ("ru", RUSSIAN)]
CHANNELS = ("desk", "arabic_desk", "russian_desk")
FEEDS = ("sana", "tass", "reuters", "aljazeera", "interfax", "bbc")


def _quote(term: str) -> str:
    return '"' + term.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _term(rng: random.Random, words: list[str], n: int) -> str:
    """A term: a word, a phrase of 2–3 words, or a made-up word (so terms vary)."""
    roll = rng.random()
    if roll < 0.25:
        return " ".join(rng.sample(words, rng.randint(2, 3)))
    if roll < 0.6:
        return rng.choice(words) + str(n % 97) if rng.random() < 0.5 else rng.choice(words)
    base = rng.choice(words)
    return base[: max(2, len(base) - 1)] + rng.choice(words)[-2:] + str(n)


def config_text(rules: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = ["defaults:", "  interval: 5m", "  backfill: 6h", "channels:"]
    lines += [f"  {c}: {{chat: '@{c}', language: en, max_per_hour: 20}}" for c in CHANNELS]
    lines.append("feeds:")
    for i, feed in enumerate(FEEDS):
        lang = LANGUAGES[i % 3][0]
        lines.append(
            f"  - {{id: {feed}, url: 'https://{feed}.example/rss', language: {lang}, "
            f"tags: [{'agency' if i % 2 else 'press'}]}}"
        )
    lines.append("rules:")
    for n in range(rules):
        lang, words = LANGUAGES[n % 3] if n % 6 else LANGUAGES[rng.randrange(3)]
        lines.append(f"  - name: rule-{n}-{lang}")
        kind = rng.random()
        if kind < 0.15:
            a, b = rng.sample(words, 2)
            lines.append(f"    query: '{a} AND NOT {b}{n}'")
        else:
            terms = [_term(rng, words, n) for _ in range(rng.randint(1, 4))]
            lines.append(f"    any: [{', '.join(_quote(t) for t in terms)}]")
            if kind < 0.35:
                lines.append(f"    all: [{_quote(rng.choice(words))}]")
            if kind > 0.8:
                lines.append(f"    none: [{_quote(rng.choice(words) + 'x')}, football]")
            if kind > 0.9:
                lines.append("    fuzzy: 85")
        if rng.random() < 0.3:
            lines.append(f"    feeds: [{rng.choice(FEEDS)}, agency]")
        if rng.random() < 0.1:
            lines.append("    priority: high")
        lines.append(f"    notify: [{rng.choice(CHANNELS)}]")
    return "\n".join(lines) + "\n"


def _cold() -> None:
    """Empty the matcher's and normaliser's memo caches: a fresh ``monitor check`` process."""
    for module in (match_module, text_module):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def _time(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    if not getattr(yaml, "__with_libyaml__", False):
        sys.exit("PyYAML was built without libyaml: the floor this compares against is missing")

    print(
        f"{'rules':>7} {'bytes':>10} {'CSafeLoader':>12} {'monitor check':>14} {'ratio':>7}"
        f" {'(warm caches)':>13} {'ratio':>7} {'C, GC paused':>13} {'cold÷it':>7}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(folder) / f"rules-{size}.yaml"
            path.write_text(config_text(size, args.seed), encoding="utf-8")

            def plain(path: Path = path) -> None:
                with path.open("rb") as f:
                    yaml.load(f, Loader=yaml.CSafeLoader)

            def plain_no_gc(path: Path = path) -> None:
                gc.disable()
                try:
                    plain(path)
                finally:
                    gc.enable()

            def check(path: Path = path, size: int = size) -> None:
                settings = load_settings(path, env={})
                assert len(settings.rules) == size

            check()  # imports and the morphology dictionaries, loaded once per process
            floors, bare, colds, warms = [], [], [], []
            for _ in range(args.runs):
                floors.append(_time(plain))
                bare.append(_time(plain_no_gc))
                _cold()
                colds.append(_time(check))
                warms.append(_time(check))
            floor = statistics.median(floors)
            ratios = [c / f for c, f in zip(colds, floors, strict=True)]
            warm_ratios = [w / f for w, f in zip(warms, floors, strict=True)]
            bare_ratios = [c / b for c, b in zip(colds, bare, strict=True)]
            cold, warm = statistics.median(colds), statistics.median(warms)
            print(
                f"{size:>7,} {path.stat().st_size:>10,} {floor * 1000:>10.1f}ms"
                f" {cold * 1000:>12.1f}ms {statistics.median(ratios):>6.2f}×"
                f" {warm * 1000:>11.1f}ms {statistics.median(warm_ratios):>6.2f}×"
                f" {statistics.median(bare) * 1000:>11.1f}ms"
                f" {statistics.median(bare_ratios):>6.2f}×"
            )


if __name__ == "__main__":
    main()
