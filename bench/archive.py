"""Archive benchmark: search with the index against a full scan with the matcher.

Run: ``python bench/archive.py [--articles 100000] [--rounds 5] [--seed 7]``. Not a test.

Builds a SQLite archive of N generated articles (a third each Arabic, Russian and
English; sentences written for this script, reshuffled, with synthetic words mixed
in so the vocabulary is large; a few target words at known rates) and then, for a
handful of queries, times ``monitor.archive.search`` (index candidates confirmed by
the matcher) against the baseline in the same run: every archived article read
back and checked by the same matcher. Both must return the same articles; the
table shows medians of the indexed search over ``--rounds`` and one scan per
query. Also printed: the cost of computing index keys and inserting, and the
archive's size on disk per article (split into text table and index when SQLite
has ``dbstat``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.archive import archive_entries, compile_query, search
from monitor.models import Article
from monitor.storage import Store

ARABIC = [
    "أعلنت الوزارة أن جولة جديدة من المحادثات ستعقد الأسبوع المقبل.",
    "وقال المتحدث إن الأوضاع هادئة في معظم المناطق رغم بعض الخروقات.",
    "وشارك في الاجتماع ممثلون عن الحكومة والمعارضة والدول المجاورة.",
    "وأشار البيان إلى التزام الأطراف بمواصلة الحوار في الأشهر المقبلة.",
    "ونقلت الوكالة عن مصدر مطلع أن الوفود وصلت إلى العاصمة صباح اليوم.",
    "وتناولت المباحثات ملف المساعدات الإنسانية وإعادة الإعمار.",
    "ورحبت المنظمة الدولية بنتائج اللقاء ووصفته بأنه خطوة إلى الأمام.",
    "وتعمل الفرق على إعادة تأهيل المدارس والمستشفيات في الريف.",
    "وارتفعت أسعار المواد الغذائية في الأسواق المحلية خلال الشهر الماضي.",
    "وأكد الخبراء أن الموسم الزراعي سيكون أفضل من العام الماضي.",
]
RUSSIAN = [
    "Министерство сообщило, что новый раунд переговоров начнётся на следующей неделе.",
    "Представитель ведомства заявил, что обстановка в большинстве районов спокойная.",
    "Во встрече участвовали представители правительства и оппозиции.",
    "В заявлении говорится, что стороны продолжат диалог в ближайшие месяцы.",
    "Агентство со ссылкой на источник сообщило, что делегации прибыли утром.",
    "На переговорах обсуждались гуманитарная помощь и восстановление городов.",
    "Международная организация приветствовала итоги встречи.",
    "Бригады ремонтируют школы и больницы в сельских районах.",
    "Цены на продукты на местных рынках выросли за прошлый месяц.",
    "Эксперты считают, что урожай в этом году будет лучше прошлогоднего.",
]
ENGLISH = [
    "The ministry said a new round of negotiations would open next week.",
    "A spokesman said most districts were calm despite some violations.",
    "Government and opposition representatives attended the meeting.",
    "The statement said the parties would keep talking in the coming months.",
    "The agency quoted a source as saying the delegations arrived in the morning.",
    "Humanitarian aid and reconstruction were discussed at the talks.",
    "The international organisation welcomed the outcome of the meeting.",
    "Crews are repairing schools and hospitals in rural areas.",
    "Food prices in local markets rose over the past month.",
    "Experts expect this year's harvest to beat last year's.",
]
#: (sentence, share of that language's articles that carry it)
TARGETS = {
    "ar": [
        ("ووصل الوفد وبأستانا بدأت الجولة.", 0.01),
        ("وقال شهود إن ووقف إطلاق النار صامد.", 0.01),
    ],
    "ru": [("Делегации встретились в Астане.", 0.01), ("Перемирие соблюдается.", 0.02)],
    "en": [
        ("Talks in Astana resumed on Monday.", 0.01),
        ("The ceasefire held overnight.", 0.02),
        ("The football ceasefire match was played.", 0.005),
    ],
}
POOLS = {"ar": ARABIC, "ru": RUSSIAN, "en": ENGLISH}
LETTERS = {
    "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "ru": "абвгдежзийклмнопрстуфхцчшщыэюя",
    "en": "abcdefghijklmnopqrstuvwxyz",
}
QUERIES = [
    "Астана",  # rare; case forms (Астане)
    "أستانا",  # rare; clitic forms (وبأستانا)
    '"وقف إطلاق النار"',  # phrase, clitic on the first word
    "ceasefire NOT football",
    "Astana AND talks",
    "перемирие OR ceasefire",
]


def synthetic_vocab(rng: random.Random, language: str, size: int) -> list[str]:
    letters = LETTERS[language]
    return ["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(size)]


def generate(n: int, seed: int, now: datetime) -> list[Article]:
    rng = random.Random(seed)
    vocab = {lang: synthetic_vocab(rng, lang, 3000) for lang in POOLS}
    out = []
    for i in range(n):
        lang = ("ar", "ru", "en")[i % 3]
        sentences = rng.sample(POOLS[lang], rng.randint(4, 8))
        for sentence, share in TARGETS[lang]:
            if rng.random() < share:
                sentences.insert(rng.randrange(len(sentences) + 1), sentence)
        words = " ".join(rng.choices(vocab[lang], k=rng.randint(10, 30)))
        sentences.insert(rng.randrange(len(sentences) + 1), words + ".")
        out.append(
            Article(
                key=f"a{i}",
                feed_id=f"feed-{lang}-{i % 40}",
                title=sentences[0][:120],
                content=" ".join(sentences[1:]),
                link=f"https://news.example/{lang}/{i}",
                published=now - timedelta(seconds=rng.randint(0, 29 * 86400)),
                language=lang,
                source=f"Source {i % 40}",
            )
        )
    return out


def scan(store: Store, query: str) -> list[int]:
    """The baseline: every archived article read back and checked by the matcher."""
    matcher = compile_query(query)
    ids = store.search_candidates(None)
    found = []
    for start in range(0, len(ids), 500):
        for archived in store.archived_articles(ids[start : start + 500]):
            if matcher.match(archived.article):
                found.append(archived.id)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--database",
        metavar="URL",
        help="an EMPTY PostgreSQL database or schema to use instead of a temporary SQLite file",
    )
    args = parser.parse_args()
    now = datetime(2026, 12, 1, tzinfo=UTC)

    started = time.perf_counter()
    articles = generate(args.articles, args.seed, now)
    generated = time.perf_counter() - started
    text_bytes = sum(len((a.title + a.content).encode()) for a in articles)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "archive.db"
        store = Store(args.database or f"sqlite:///{path}")
        store.migrate()
        if store.archive_count():
            raise SystemExit("the database already holds an archive: give an empty one")
        keys_s = insert_s = 0.0
        batch = 1000
        for start in range(0, len(articles), batch):
            t0 = time.perf_counter()
            entries = archive_entries(articles[start : start + batch], now, timedelta(days=30))
            t1 = time.perf_counter()
            store.archive_articles(entries, now)
            t2 = time.perf_counter()
            keys_s += t1 - t0
            insert_s += t2 - t1
            if start and start % 20_000 == 0:
                print(f"  … {start} articles archived", file=sys.stderr)
        split: dict[str, int] = {}
        if args.database:
            with store.engine.begin() as conn:  # what autovacuum does a minute later
                conn.exec_driver_sql("ANALYZE archive")
            with store.engine.connect() as conn:
                size = int(
                    conn.exec_driver_sql("SELECT pg_total_relation_size('archive')").scalar()
                )
                index = conn.exec_driver_sql("SELECT pg_relation_size('ix_archive_keys')").scalar()
                split = {"archive": size - int(index), "archive_fts (GIN)": int(index)}
        else:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            size = os.path.getsize(path)
        try:
            with store.engine.connect() as conn:
                split = dict(
                    conn.exec_driver_sql("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").all()
                )
        except Exception:  # PostgreSQL, or an SQLite built without dbstat
            pass

        n = len(articles)
        print(f"\narchive of {n:,} articles ({generated:.1f}s to generate)")
        print("| step | total | per article |\n|---|---|---|")
        print(
            f"| index keys (tokens, lemmas, stems) | {keys_s:.1f} s | {keys_s / n * 1e3:.2f} ms |"
        )
        print(f"| insert (text + FTS5) | {insert_s:.1f} s | {insert_s / n * 1e3:.2f} ms |")
        print("\n| on disk | bytes | per article |\n|---|---|---|")
        print(f"| article text (UTF-8, title + content) | {text_bytes:,} | {text_bytes / n:,.0f} |")
        what = "archive table, TOAST and indexes" if args.database else "database file"
        print(f"| {what} | {size:,} | {size / n:,.0f} |")
        if split:
            table = sum(
                v
                for k, v in split.items()
                if k == "archive"
                or k.startswith("sqlite_autoindex_archive")
                or k.startswith("ix_archive")
            )
            fts = sum(v for k, v in split.items() if k.startswith("archive_fts"))
            print(f"| archive table and its indexes | {table:,} | {table / n:,.0f} |")
            label = "GIN index" if args.database else "FTS5 index (archive_fts*)"
            print(f"| {label} | {fts:,} | {fts / n:,.0f} |")

        print(
            "\n| query | matches | candidates | indexed search (median) | full scan "
            "| speed-up |\n|---|---|---|---|---|---|"
        )
        speedups = []
        for query in QUERIES:
            times = []
            result = None
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                result = search(store, query, now=now, since=None, limit=n)
                times.append(time.perf_counter() - t0)
            assert result is not None
            t0 = time.perf_counter()
            baseline = scan(store, query)
            scan_s = time.perf_counter() - t0
            got = sorted(f.ref.id for f in result.results)
            if got != sorted(baseline):
                raise SystemExit(f"{query!r}: index found {len(got)}, scan {len(baseline)}")
            median = statistics.median(times)
            speedups.append(scan_s / median)
            print(
                f"| `{query}` | {result.total:,} | {result.examined:,} | {median * 1e3:,.1f} ms "
                f"| {scan_s:,.1f} s | {scan_s / median:,.0f}× |"
            )
        print(
            f"\nmedian speed-up {statistics.median(speedups):,.0f}× (target ≥ 20×); "
            "the same articles every time"
        )
        store.close()


if __name__ == "__main__":
    main()
