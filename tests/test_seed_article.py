"""The seed article (a real SANA report on Lavrov and the Astana talks) against real rules.

The article lives beside the repository in ``../shared`` (or ``$MONITOR_SHARED_DIR``);
the test is skipped when it is absent. Its text is not copied into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.match import compile_rules
from monitor.models import Article, Match, Rule


def shared_dir() -> Path:
    override = os.environ.get("MONITOR_SHARED_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared"


SEED = shared_dir() / "seed-article-ar.txt"
pytestmark = pytest.mark.skipif(not SEED.is_file(), reason=f"seed article not found at {SEED}")

RULES = [
    Rule(name="astana", any=("Astana", "أستانا", "Астана")),
    Rule(
        name="ceasefire",
        any=("ceasefire", "truce", "وقف إطلاق النار", "وقف الأعمال القتالية", "هدنة", "перемирие"),
        none=("football",),
    ),
    Rule(name="lavrov", any=("Lavrov", "لافروف", "Лавров")),
    Rule(name="iran", any=("Iran", "إيران", "Иран")),
    Rule(name="tehran", any=("Tehran", "طهران", "Тегеран")),
    # Geneva *only*: talks in Geneva that are not about Astana
    Rule(name="geneva-only", any=("Geneva", "جنيف", "Женева"), none=("Astana", "أستانا")),
    # Geneva in the headline
    Rule(name="geneva-title", any=("Geneva", "جنيف"), fields=("title",)),
    # Geneva anywhere: the article does mention it once, so this one must fire
    Rule(name="geneva", any=("Geneva", "جنيف", "Женева")),
    Rule(name="lavrov-near-astana", query='"لافروف أستانا"~12'),
    Rule(name="hostilities-in-title", query='title:"وقف الأعمال القتالية"'),
]


@pytest.fixture(scope="module")
def article() -> Article:
    title, _, body = SEED.read_text(encoding="utf-8").partition("\n")
    return Article(key="seed", feed_id="sana-ar", title=title.strip(), content=body.strip())


@pytest.fixture(scope="module")
def matches(article: Article) -> dict[str, Match]:
    return {m.rule: m for m in compile_rules(RULES).match(article)}


def texts(match: Match) -> set[str]:
    return {h.text for h in match.hits}


def test_rules_that_fire_and_rules_that_do_not(matches: dict[str, Match]) -> None:
    assert list(matches) == [
        "astana",
        "ceasefire",
        "lavrov",
        "iran",
        "geneva",
        "lavrov-near-astana",
    ]


def test_astana_in_both_spellings(matches: dict[str, Match]) -> None:
    found = texts(matches["astana"])
    assert "أستانا" in found
    assert "استانا" in found


def test_ceasefire_phrases_with_clitics(matches: dict[str, Match]) -> None:
    found = texts(matches["ceasefire"])
    assert "وقف إطلاق النار" in found
    assert "لوقف إطلاق النار" in found  # the phrase carrying the preposition ل
    assert "وقف الأعمال القتالية" in found
    terms = {h.term for h in matches["ceasefire"].hits}
    assert terms == {"وقف إطلاق النار", "وقف الأعمال القتالية"}


def test_lavrov_in_title_and_body(matches: dict[str, Match], article: Article) -> None:
    hits = matches["lavrov"].hits
    assert {h.text for h in hits} == {"لافروف"}
    assert hits[0].field == "title"
    assert hits[0].start == 0
    assert article.content.count("لافروف") == sum(1 for h in hits if h.field == "content")


def test_iran_through_the_conjunction(matches: dict[str, Match]) -> None:
    assert texts(matches["iran"]) == {"وإيران", "وايران"}


def test_geneva_is_mentioned_once_but_the_article_is_about_astana(
    matches: dict[str, Match], article: Article
) -> None:
    (hit,) = matches["geneva"].hits
    assert article.content[hit.start : hit.end] == "جنيف"
    assert "geneva-only" not in matches
    assert "geneva-title" not in matches
    assert "tehran" not in matches


def test_hit_offsets_point_into_the_original(matches: dict[str, Match], article: Article) -> None:
    for match in matches.values():
        for hit in match.hits:
            assert article.field_text(hit.field)[hit.start : hit.end] == hit.text
