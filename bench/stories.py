"""Story grouping on the labelled set: pairwise precision and recall against the baseline.

Run: ``python bench/stories.py [--data tests/data/stories.yaml] [--pairs]``. Not a test.

Every report of ``tests/data/stories.yaml`` is replayed in publication order.
The baseline is today's rule: the same link, or a near-identical normalised title
(``is_same_story`` over ``title_key``) within ``story_window``. The new grouping is
``group_stories`` (``find_story`` per article). Pairs are all pairs of reports:
a true pair is two reports of the same labelled event. Precision = grouped pairs
that are true / grouped pairs; recall = true pairs grouped / true pairs. The
"confusable" column counts pairs from events labelled confusable that were
merged (must be 0). ``--pairs`` lists every wrong and every missed pair.

A second table times one new article against a full window: ``MAX_COMPARE``
recent candidates (the set's reports, re-keyed, all inside the window), median of
``--rounds`` runs, beside the baseline's ``is_same_story`` over as many titles.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.stories import (
    MAX_COMPARE,
    STORY_WINDOW,
    StoryCandidate,
    find_story,
    group_stories,
    is_same_story,
    make_candidate,
    same_story,
    title_key,
)

DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "data" / "stories.yaml"


def load(path: Path) -> tuple[list[StoryCandidate], dict[str, str], set[frozenset[str]]]:
    """Candidates, key → event id, and the confusable event pairs."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    candidates: list[StoryCandidate] = []
    event_of: dict[str, str] = {}
    confusable: set[frozenset[str]] = set()
    for event in data["events"]:
        for other in event.get("confusable", []):
            confusable.add(frozenset((event["id"], other)))
        for i, r in enumerate(event["reports"]):
            key = f"{event['id']}#{i}"
            at = r["at"] if isinstance(r["at"], datetime) else datetime.fromisoformat(r["at"])
            candidates.append(
                make_candidate(
                    key=key,
                    title=r["title"],
                    lead=r["lead"],
                    published=at,
                    language=r["lang"],
                    rules=r.get("rules", []),
                    terms=r.get("terms", []),
                )
            )
            event_of[key] = event["id"]
    return candidates, event_of, confusable


def baseline_groups(candidates: list[StoryCandidate]) -> dict[str, str]:
    """Today's grouping: same link, or a near-identical title within the window."""
    assigned: dict[str, str] = {}
    seen: list[tuple[StoryCandidate, str]] = []
    for c in sorted(candidates, key=lambda c: (c.published, c.key)):
        story = c.key
        for other, other_story in reversed(seen):
            if c.published - other.published > STORY_WINDOW:
                continue
            if other.key == c.key or is_same_story(title_key(c.title), [title_key(other.title)]):
                story = other_story
                break
        assigned[c.key] = story
        seen.append((c, story))
    return assigned


def score(
    groups: dict[str, str], event_of: dict[str, str], confusable: set[frozenset[str]]
) -> tuple[float, float, int, int, int, list[tuple[str, str, bool]]]:
    tp = fp = fn = bad = 0
    errors: list[tuple[str, str, bool]] = []
    for a, b in combinations(sorted(groups), 2):
        merged = groups[a] == groups[b]
        truth = event_of[a] == event_of[b]
        if merged and truth:
            tp += 1
        elif merged:
            fp += 1
            errors.append((a, b, True))
            if frozenset((event_of[a], event_of[b])) in confusable:
                bad += 1
        elif truth:
            fn += 1
            errors.append((a, b, False))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, bad, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--pairs", action="store_true", help="list wrong and missed pairs")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    candidates, event_of, confusable = load(args.data)
    events = len(set(event_of.values()))
    by_key = {c.key: c for c in candidates}
    print(f"{len(candidates)} reports, {events} events, {len(confusable)} confusable event pairs")
    print()
    print(f"{'grouping':<34} {'precision':>9} {'recall':>7} {'merged':>7} {'wrong':>6} "
          f"{'confusable':>10} {'ms':>7}")  # fmt: skip
    for name, fn in (
        ("baseline: same link / title", baseline_groups),
        ("stories: find_story", group_stories),
    ):
        start = time.perf_counter()
        groups = fn(candidates)
        ms = (time.perf_counter() - start) * 1000
        p, r, tp, fp, bad, errors = score(groups, event_of, confusable)
        print(f"{name:<34} {p:>9.3f} {r:>7.3f} {tp + fp:>7} {fp:>6} {bad:>10} {ms:>7.1f}")
        if args.pairs and name.startswith("stories"):
            for a, b, merged in errors:
                v = same_story(by_key[a], by_key[b])
                what = "WRONG" if merged else "missed"
                print(f"  {what:6} {a} ~ {b}: {v.score:.2f} {'; '.join(v.reasons)}")
    cost(candidates, args.rounds)


def cost(candidates: list[StoryCandidate], rounds: int) -> None:
    """Time one article against a full window of recent candidates."""
    newest = max(c.published for c in candidates)
    recent = [
        replace(c, key=f"r{i}", story=f"r{i}", published=newest - timedelta(minutes=i % 600))
        for i, c in enumerate(candidates * (MAX_COMPARE // len(candidates) + 1))
    ][:MAX_COMPARE]
    titles = [title_key(c.title) for c in recent]
    probes = candidates[:: max(1, len(candidates) // 10)]
    rows: dict[str, list[float]] = {"baseline: is_same_story": [], "stories: find_story": []}
    for _ in range(rounds):
        for probe in probes:
            start = time.perf_counter()
            is_same_story(title_key(probe.title), titles)
            rows["baseline: is_same_story"].append(time.perf_counter() - start)
            start = time.perf_counter()
            find_story(replace(probe, key="new", published=newest), recent, STORY_WINDOW, newest)
            rows["stories: find_story"].append(time.perf_counter() - start)
    print()
    print(f"{'one article vs ' + str(MAX_COMPARE) + ' recent':<34} {'median ms':>9} {'max ms':>7}")
    for name, times in rows.items():
        print(f"{name:<34} {statistics.median(times) * 1000:>9.2f} {max(times) * 1000:>7.2f}")


if __name__ == "__main__":
    main()
