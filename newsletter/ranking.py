"""Choosing a subscriber's papers: one pure function, no database.

Order: papers the editors featured (with their note), then papers matching the subscriber's
topics or keywords, by upvotes then recency; a subscriber who follows nothing, or whose
matches run short, gets trending papers to fill. Never a paper they already received.
"""

import re
from dataclasses import dataclass, field

FEATURED = "featured by the editors"


@dataclass(frozen=True)
class Candidate:
    id: int
    title: str
    text: str  # title and abstract, lower-cased
    upvotes: int
    listed_ordinal: int  # recency: date.toordinal() of the listing day
    topic_ids: frozenset = field(default_factory=frozenset)


@dataclass(frozen=True)
class Interests:
    topic_ids: frozenset = frozenset()
    keywords: tuple = ()

    @property
    def follows_anything(self):
        return bool(self.topic_ids or self.keywords)


def keyword_pattern(keyword):
    return re.compile(rf"(?<!\w){re.escape(keyword.lower())}(?!\w)")


def sort_key(candidate):
    return (-candidate.upvotes, -candidate.listed_ordinal, -candidate.id)


def match_reason(candidate, interests, topic_names, patterns):
    for topic_id in sorted(candidate.topic_ids & interests.topic_ids, key=lambda t: topic_names.get(t, "")):
        return f"matches your topic {topic_names.get(topic_id, 'you follow')}"
    for keyword, pattern in patterns:
        if pattern.search(candidate.text):
            return f"mentions '{keyword}'"
    return None


def trending_reason(candidate):
    return f"trending: {candidate.upvotes} upvote{'s' if candidate.upvotes != 1 else ''}"


def rank(*, candidates, featured, interests, exclude, topic_names, limit, trending_fill=3):
    """Return [(paper_id, reason), ...] for one subscriber's digest; empty means no digest.

    candidates: Candidates in the edition's window; featured: Candidates the editors picked;
    exclude: ids of papers the subscriber already received.
    """
    picks = []
    taken = set(exclude)
    for candidate in featured:
        if candidate.id not in taken:
            picks.append((candidate.id, FEATURED))
            taken.add(candidate.id)
    patterns = [(k, keyword_pattern(k)) for k in interests.keywords]
    fresh = sorted((c for c in candidates if c.id not in taken), key=sort_key)
    matched, others = [], []
    for candidate in fresh:
        reason = match_reason(candidate, interests, topic_names, patterns) if interests.follows_anything else None
        (matched if reason else others).append((candidate.id, reason))
    picks.extend(matched[:limit])
    room = limit - min(len(matched), limit)
    if interests.follows_anything:
        room = min(room, trending_fill)
    by_id = {c.id: c for c in fresh}
    picks.extend((paper_id, trending_reason(by_id[paper_id])) for paper_id, _ in others[:room])
    return picks
