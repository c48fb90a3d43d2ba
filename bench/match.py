"""Matcher benchmark: articles/s at 10, 1,000 and 10,000 rules, against the naive loop.

Run: ``python bench/match.py [--articles 2000] [--rounds 5] [--seed 7]``. Not a test.

Articles are ~3 KB of reshuffled Arabic, English and Russian sentences written
for this script; rules are half Arabic, a third English, the rest Russian, one to
three words, a share taken from the corpus vocabulary (so they hit) and the rest
synthetic. Each round times every variant once on the same input (interleaved, so
all variants see the same noisy moments); the table shows medians, and ratios are
medians of per-round ratios. The naive loop (``term in text`` over every rule) is
timed on a subset of articles when it would take too long, and reported per article.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor import match as matcher_module
from monitor import text as tx
from monitor.match import compile_rules
from monitor.models import Article, Rule

ARABIC = [
    "أعلنت وزارة الخارجية أن جولة جديدة من المحادثات ستعقد في أستانا الأسبوع المقبل.",
    "وقال الوزير إن وقف إطلاق النار صامد في معظم المناطق رغم بعض الخروقات.",
    "وأكد المبعوث الأممي ضرورة تثبيت الهدنة قبل الانتقال إلى المرحلة السياسية.",
    "وشارك في الاجتماع ممثلون عن الدول الضامنة وعن الحكومة والمعارضة.",
    "وبحث لافروف مع نظيره التركي سبل تعزيز التعاون في مكافحة الإرهاب.",
    "وأشار البيان الختامي إلى التزام الأطراف بوحدة الأراضي السورية وسيادتها.",
    "ونقلت وكالة الأنباء عن مصدر دبلوماسي أن الوفود وصلت إلى العاصمة الكازاخية.",
    "وتناولت المباحثات ملف المعتقلين وإيصال المساعدات الإنسانية إلى المناطق المحاصرة.",
    "ودعا المشاركون إلى وقف الأعمال القتالية وتبادل الأسرى في أقرب وقت.",
    "وأوضح المتحدث أن اللجنة الدستورية ستجتمع في جنيف الشهر المقبل.",
    "وذكرت مصادر محلية أن القصف توقف على الجبهات الشمالية منذ يومين.",
    "وأعربت إيران عن استعدادها لاستضافة الجولة التالية من المفاوضات.",
    "ورحبت الأمم المتحدة بنتائج اللقاء ووصفته بأنه خطوة إلى الأمام.",
    "وتعمل فرق الإغاثة على إعادة تأهيل المدارس والمستشفيات في الريف.",
    "وقالت الحكومة إن عودة اللاجئين تتطلب توفير الخدمات الأساسية.",
]
ENGLISH = [
    "The foreign ministry said a new round of talks would open in Astana next week.",
    "Officials described the ceasefire as holding across most front lines.",
    "The envoy urged the parties to consolidate the truce before political talks.",
    "Delegations from the guarantor states met government and opposition negotiators.",
    "Lavrov discussed counter-terrorism cooperation with his Turkish counterpart.",
    "The final statement reaffirmed the territorial integrity of the country.",
    "Aid convoys reached besieged districts for the first time in months.",
    "Diplomats expect the constitutional committee to meet in Geneva next month.",
    "Local sources reported that shelling had stopped on the northern fronts.",
    "Tehran offered to host the next round of negotiations.",
    "The United Nations welcomed the outcome and called it a step forward.",
    "Relief teams are repairing schools and hospitals in rural areas.",
    "The government said refugees would need basic services before returning.",
    "Analysts warned that the cease-fire remained fragile after recent clashes.",
    "Observers will monitor the exchange of prisoners agreed at the meeting.",
]
RUSSIAN = [
    "МИД сообщил, что новый раунд переговоров пройдет в Астане на следующей неделе.",
    "По словам министра, перемирие соблюдается в большинстве районов.",
    "Спецпосланник призвал стороны закрепить режим прекращения огня.",
    "В встрече участвовали представители стран-гарантов, правительства и оппозиции.",
    "Лавров обсудил с турецким коллегой сотрудничество в борьбе с терроризмом.",
    "В итоговом заявлении подтверждена территориальная целостность страны.",
    "Гуманитарные колонны впервые за несколько месяцев достигли осажденных районов.",
    "Конституционный комитет соберется в Женеве в следующем месяце.",
    "Местные источники сообщили, что обстрелы на северных участках прекратились.",
    "Иран предложил провести следующий раунд переговоров в Тегеране.",
    "Организация Объединенных Наций приветствовала итоги встречи.",
    "Спасатели восстанавливают школы и больницы в сельских районах.",
    "Правительство заявило, что беженцам нужны базовые услуги для возвращения.",
    "Эксперты считают, что договоренности остаются хрупкими.",
    "Наблюдатели будут следить за обменом пленными.",
]
SCRIPTS = {
    "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "en": "abcdefghijklmnopqrstuvwxyz",
    "ru": "абвгдежзиклмнопрстуфхцчшщыэюя",
}


def make_articles(n: int, rng: random.Random) -> list[Article]:
    """n articles of ~3 KB, a mix of the three languages, each from reshuffled sentences."""
    articles = []
    pools = [ARABIC, ENGLISH, RUSSIAN]
    for i in range(n):
        main = pools[i % 3]
        parts: list[str] = []
        while len(" ".join(parts).encode()) < 3000:
            pool = main if rng.random() < 0.7 else rng.choice(pools)
            parts.append(rng.choice(pool))
        body = " ".join(parts)
        articles.append(
            Article(key=str(i), feed_id="bench", title=parts[0][:80], summary="", content=body)
        )
    return articles


def make_rules(count: int, rng: random.Random, low_hit: bool = False) -> list[Rule]:
    """Rules: 1/2 Arabic, 1/3 English, the rest Russian; 50% one word, 35% two, 15% three.

    High-hit (as in the research baselines): a share of the rules are n-grams of the
    corpus (25% at ≤100 rules, 8% at 1,000, 2% at 10,000), stopwords included, so they
    hit; the rest are synthetic words or phrases mixing synthetic and real words.
    Low-hit: only synthetic words, which is closer to a real watch list (names and
    topics that most articles do not mention) and shows the pure scanning cost.
    """
    share = 0.0 if low_hit else 0.25 if count <= 100 else 0.08 if count <= 1000 else 0.02
    mix = 0.0 if low_hit else 0.3
    sentences = {
        "ar": [s.split() for s in ARABIC],
        "en": [s.split() for s in ENGLISH],
        "ru": [s.split() for s in RUSSIAN],
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
            words = []
            for _ in range(n):
                if n > 1 and rng.random() < mix:
                    words.append(rng.choice(rng.choice(sentences[lang])).strip(".,"))
                else:
                    size = rng.randint(4, 8)
                    words.append("".join(rng.choice(SCRIPTS[lang]) for _ in range(size)))
        rules.append(Rule(name=f"r{i}", any=(" ".join(words),)))
    return rules


# -- the variants ----------------------------------------------------------------

_TASHKEEL = re.compile("[\u064b-\u0652\u0640]")


def floor_normalise_tokenise(article: Article) -> int:
    """The floor: casefold + Arabic folding (replace chain) + \\w+ tokens, nothing else."""
    n = 0
    for value in (article.title, article.summary, article.content):
        s = value.casefold()
        for a, b in (("أ", "ا"), ("إ", "ا"), ("آ", "ا"), ("ى", "ي"), ("ة", "ه"), ("ё", "е")):
            if a in s:
                s = s.replace(a, b)
        s = _TASHKEEL.sub("", s)
        n += len(re.findall(r"\w+", s))
    return n


def naive_loop(terms: list[str]):
    """The baseline every per-rule loop is: ``term in text`` for each rule."""
    folded = [t.casefold() for t in terms]

    def run(article: Article) -> int:
        text = f"{article.title}\n{article.summary}\n{article.content}".casefold()
        return sum(1 for t in folded if t in text)

    return run


def timed(fn, items) -> float:
    """CPU seconds (``process_time``) to run fn over items: robust to a busy machine."""
    start = time.process_time()
    for item in items:
        fn(item)
    return time.process_time() - start


def clear_caches() -> None:
    """Forget every per-word cache (not the loaded pymorphy3 dictionary): a cold build."""
    tx.russian_term_lemmas.cache_clear()
    tx.russian_lemmas.cache_clear()
    tx.normalize_token.cache_clear()
    matcher_module._word_keys_cached.cache_clear()
    matcher_module._variants.cache_clear()


def ratio(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:,.0f}"


def run_table(articles: list[Article], sizes: list[int], args, low_hit: bool) -> None:
    """One markdown table: a row per rule-set size, every variant timed in each round."""
    print(
        "| rules | build ms (cold caches) | matches/article | matcher art/s, first pass "
        "| **matcher art/s** | floor art/s | ×floor | naive art/s | **×naive** |"
    )
    print("|---" * 9 + "|")
    for count in sizes:
        rules = make_rules(count, random.Random(args.seed + count), low_hit=low_hit)
        clear_caches()
        t0 = time.process_time()
        matcher = compile_rules(rules)
        cold_build = time.process_time() - t0
        builds = []
        for _ in range(3):
            t0 = time.process_time()
            matcher = compile_rules(rules)
            builds.append(time.process_time() - t0)
        first = timed(matcher.match, articles)
        sample = articles[:200]
        matches = sum(len(matcher.match(a)) for a in sample) / len(sample)
        naive = naive_loop([r.any[0] for r in rules])
        naive_items = articles if count <= 1000 else articles[: max(50, len(articles) // 20)]
        m_rates, f_rates, n_rates, x_floor, x_naive = [], [], [], [], []
        for _ in range(args.rounds):
            tm = timed(matcher.match, articles) / len(articles)
            tf = timed(floor_normalise_tokenise, articles) / len(articles)
            tn = timed(naive, naive_items) / len(naive_items)
            m_rates.append(1 / tm)
            f_rates.append(1 / tf)
            n_rates.append(1 / tn)
            x_floor.append(tm / tf)
            x_naive.append(tn / tm)
        med = statistics.median
        print(
            f"| {count:,} | {med(builds) * 1000:.0f} ({cold_build * 1000:.0f}) | {matches:.1f} "
            f"| {len(articles) / first:,.0f} | **{med(m_rates):,.0f}** | {med(f_rates):,.0f} "
            f"| {med(x_floor):.1f} | {med(n_rates):,.0f} | **{ratio(med(x_naive))}×** |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sizes", default="10,1000,10000")
    args = parser.parse_args(argv)
    articles = make_articles(args.articles, random.Random(args.seed))
    size = statistics.median(len(f"{a.title}\n{a.content}".encode()) for a in articles)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{len(articles)} articles, median {size:.0f} bytes; {args.rounds} rounds; one core")
    print("times are CPU time (process_time); ratios are medians of per-round ratios")
    tx.russian_lemmas("прогрев")  # load pymorphy3 once, outside every timing
    for title, low_hit in (("high-hit rule mix", False), ("low-hit rule mix", True)):
        print(f"\n{title}\n")
        run_table(articles, sizes, args, low_hit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
