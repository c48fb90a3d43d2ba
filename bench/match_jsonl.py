"""`monitor match --jsonl` end to end at 10,000 rules, against the naive loop.

Run: ``python bench/match_jsonl.py [--articles 600] [--rounds 5] [--rules 10000]``.
Not a test.

The issue's setup: mixed Arabic/English/Russian articles of ~2 KB (the sentences of
``bench/match.py``, reshuffled) written to a JSONL file, then the CLI's own
``--jsonl`` path run in-process from that file to an output sink (``/dev/null``):
JSON parsing, language detection, matching and serialising every hit. Two rule
mixes at 10,000 rules: *high-hit* (a share of the rules are n-grams of the corpus,
tuned so that ~65 rules and ~120 hits fire per article) and *low-hit* (synthetic
words only, nothing fires). The naive loop is ``" term " in " text "`` over every
rule on the case-folded article, timed on the same articles in the same rounds.
Times are CPU time; ratios are medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor import cli  # noqa: E402
from monitor import text as tx  # noqa: E402
from monitor.match import compile_rules  # noqa: E402
from monitor.models import Article, Rule  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_match", ROOT / "bench" / "match.py")
assert _spec is not None and _spec.loader is not None
bm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bm)


def make_articles(n: int, rng: random.Random, size: int = 2000) -> list[Article]:
    """n articles of ~``size`` bytes, 70% one language, the rest mixed in."""
    pools = [bm.ARABIC, bm.ENGLISH, bm.RUSSIAN]
    out = []
    for i in range(n):
        main = pools[i % 3]
        parts: list[str] = []
        while len(" ".join(parts).encode()) < size:
            pool = main if rng.random() < 0.7 else rng.choice(pools)
            parts.append(rng.choice(pool))
        out.append(Article(key=str(i), feed_id="", title=parts[0][:80], content=" ".join(parts)))
    return out


def make_rules(count: int, rng: random.Random, share: float) -> list[Rule]:
    """``count`` one-term rules: ``share`` of them corpus n-grams (they hit), the rest
    synthetic words and phrases (they do not); 1/2 Arabic, 1/3 English, 1/6 Russian."""
    sentences = {
        "ar": [s.split() for s in bm.ARABIC],
        "en": [s.split() for s in bm.ENGLISH],
        "ru": [s.split() for s in bm.RUSSIAN],
    }
    rules = []
    for i in range(count):
        r = i % 6
        lang = "ar" if r < 3 else "en" if r < 5 else "ru"
        n = rng.choices((1, 2, 3), weights=(50, 35, 15))[0]
        if rng.random() < share:
            sentence = rng.choice(sentences[lang])
            start = rng.randrange(0, max(1, len(sentence) - n))
            words = [w.strip(".,") for w in sentence[start : start + n]]
        else:
            words = [
                "".join(rng.choice(bm.SCRIPTS[lang]) for _ in range(rng.randint(4, 8)))
                for _ in range(n)
            ]
        rules.append(Rule(name=f"r{i}", any=(" ".join(words),)))
    return rules


def naive_loop(terms: list[str]):
    """``" term " in " text "`` for every rule: what a per-rule loop costs."""
    folded = [f" {t.casefold()} " for t in terms]

    def run(article: Article) -> int:
        text = f" {article.title} {article.summary} {article.content} ".casefold()
        return sum(1 for t in folded if t in text)

    return run


def write_jsonl(articles: list[Article], path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for a in articles:
            fh.write(json.dumps({"id": a.key, "title": a.title, "text": a.content}) + "\n")


def run_cli(matcher, path: str) -> None:
    """The CLI's ``--jsonl`` path, in-process, from the file to /dev/null."""
    with open(path, encoding="utf-8") as stream, open(os.devnull, "w", encoding="utf-8") as out:
        cli._match_jsonl(matcher, {}, stream, out)


def stats(matcher, path: str) -> tuple[float, float]:
    """Rules matched and hits per article, read back from the CLI's own output."""
    out = io.StringIO()
    with open(path, encoding="utf-8") as stream:
        cli._match_jsonl(matcher, {}, stream, out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    rules = sum(len(r["matches"]) for r in records) / len(records)
    hits = sum(len(m["hits"]) for r in records for m in r["matches"]) / len(records)
    return rules, hits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=0.018, help="high-hit corpus share")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--label", default="", help="a name for this run in the table")
    args = parser.parse_args(argv)
    articles = make_articles(args.articles, random.Random(args.seed))
    size = statistics.median(len(f"{a.title}\n{a.content}".encode()) for a in articles)
    tx.russian_lemmas("прогрев")  # load pymorphy3 outside every timing
    naive_items = articles[: max(30, len(articles) // 10)]
    print(f"{len(articles)} articles, median {size:.0f} bytes; {args.rules:,} rules; one core")
    print(
        "| mix | rules hit/article | hits/article | **`match --jsonl` art/s** "
        "| naive art/s | **×naive** |"
    )
    print("|---" * 6 + "|")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "articles.jsonl")
        write_jsonl(articles, path)
        for title, share in (("high-hit", args.share), ("low-hit", 0.0)):
            rules = make_rules(args.rules, random.Random(args.seed + 1), share)
            matcher = compile_rules(rules)
            gc.freeze()  # as cmd_match does after compiling
            run_cli(matcher, path)  # warm the per-token cache, as a long run would be
            rules_hit, hits = stats(matcher, path)
            naive = naive_loop([r.any[0] for r in rules])
            rates, n_rates, x_naive = [], [], []
            for _ in range(args.rounds):
                t0 = time.process_time()
                run_cli(matcher, path)
                tm = (time.process_time() - t0) / len(articles)
                tn = bm.timed(naive, naive_items) / len(naive_items)
                rates.append(1 / tm)
                n_rates.append(1 / tn)
                x_naive.append(tn / tm)
            med = statistics.median
            print(
                f"| {args.label}{title} | {rules_hit:.1f} | {hits:.1f} | **{med(rates):,.0f}** "
                f"| {med(n_rates):,.0f} | **{med(x_naive):.1f}×** |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
