"""Story identity: when two articles are the same story (pure).

Today a story is the same canonical link or GUID, or a near-identical
normalised title within a day in the same channel (``is_same_story``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

from rapidfuzz import fuzz, process

from monitor.models import Article
from monitor.text import words

SAME_STORY_WINDOW = timedelta(hours=24)
SAME_STORY_SCORE = 92.0  # rapidfuzz ratio of normalised titles
SAME_STORY_MIN_LENGTH = 24  # shorter titles ("Breaking news") must match exactly
_NUMBER = re.compile(r"\d+")


def story_key(article: Article) -> str:
    """Identity of a story across feeds: canonical link, else GUID, else feed+key."""
    if article.link:
        return article.link
    if article.guid:
        return f"guid:{article.guid}"
    return f"{article.feed_id}:{article.key}"


def title_key(title: str) -> str:
    """A title reduced for comparison: normalised words (same rules as ``match.py``)."""
    return " ".join(words(title))


def is_same_story(key: str, seen: Sequence[str]) -> bool:
    """Near-identical normalised titles are one story (another feed's copy of a wire).

    Titles whose numbers differ ("round 3" / "round 4", "12 killed" / "15 killed")
    are different stories however alike the words.
    """
    if len(key) < SAME_STORY_MIN_LENGTH:
        return key in seen
    numbers = _NUMBER.findall(key)
    candidates = [s for s in seen if _NUMBER.findall(s) == numbers]
    best = process.extractOne(key, candidates, scorer=fuzz.ratio, score_cutoff=SAME_STORY_SCORE)
    return best is not None
