"""Choosing a subscriber's papers: one pure function, no database.

Order: papers the editors featured (with their note), then papers matching the subscriber's
topics or keywords, by upvotes then recency; a subscriber who follows nothing, or whose
matches run short, gets trending papers to fill. Never a paper they already received.
"""

import re
from dataclasses import dataclass, field
from functools import lru_cache

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


@lru_cache(maxsize=4096)
def keyword_pattern(keyword):
    return re.compile(rf"(?<!\w){re.escape(keyword.lower())}(?!\w)")


def keyword_hits(candidates, keyword):
    """Ids of the candidates that mention keyword as a whole word or phrase."""
    pattern = keyword_pattern(keyword)
    return frozenset(c.id for c in candidates if pattern.search(c.text))


def sort_key(candidate):
    return (-candidate.upvotes, -candidate.listed_ordinal, -candidate.id)


def trending_reason(candidate):
    return f"trending: {candidate.upvotes} upvote{'s' if candidate.upvotes != 1 else ''}"


def rank(*, candidates, featured, interests, exclude, topic_names, limit, trending_fill=3, hits=None):
    """Return [(paper_id, reason), ...] for one subscriber's digest; empty means no digest.

    candidates: Candidates in the edition's window; featured: Candidates the editors picked;
    exclude: ids of papers the subscriber already received; hits: optional {keyword: ids},
    keyword_hits() computed once for many subscribers.
    """
    picks = []
    taken = set(exclude)
    for candidate in featured:
        if candidate.id not in taken:
            picks.append((candidate.id, FEATURED))
            taken.add(candidate.id)
    hits = hits if hits is not None else {k: keyword_hits(candidates, k) for k in interests.keywords}
    matched, others = [], []
    for candidate in sorted(candidates, key=sort_key):
        if candidate.id in taken:
            continue
        reason = None
        followed = candidate.topic_ids & interests.topic_ids
        if followed:
            reason = f"matches your topic {min(topic_names.get(t, 'you follow') for t in followed)}"
        else:
            keyword = next((k for k in interests.keywords if candidate.id in hits[k]), None)
            reason = keyword and f"mentions '{keyword}'"
        if reason:
            matched.append((candidate.id, reason))
        else:
            others.append(candidate)
    picks.extend(matched[:limit])
    room = limit - min(len(matched), limit)
    if interests.follows_anything:
        room = min(room, trending_fill)
    picks.extend((c.id, trending_reason(c)) for c in others[:room])
    return picks
