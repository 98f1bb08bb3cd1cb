"""Choosing a subscriber's papers: pure functions, no database.

Order: papers the editors featured, then papers that match the subscriber, then (for a
subscriber who follows nothing, or whose matches run short) trending papers to fill. Never a
paper they already received; nothing new means no digest.

Cold start (no votes, no followed authors): a paper matches on a followed topic or keyword,
and matches are ordered by upvotes, then recency. Once a subscriber follows authors or has
voted, matches are ordered by a blended score (weights in settings, see README):

    score = topic * [a followed topic] + keyword * [a keyword] + author * [a followed author]
            + profile * cosine(paper, profile of liked minus disliked papers)
            + trending * log(1 + upvotes) / log(1 + most upvotes that day)

and a paper also matches when its cosine to the profile reaches `threshold`. Every pick
carries the reason that weighed most.
"""

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

FEATURED = "featured by the editors"


@dataclass(frozen=True)
class Weights:
    topic: float = 1.0
    keyword: float = 0.8
    author: float = 1.5
    profile: float = 2.0
    trending: float = 0.5
    threshold: float = 0.2


@dataclass(frozen=True)
class Candidate:
    id: int
    title: str
    text: str  # title and abstract, lower-cased
    upvotes: int
    listed_ordinal: int  # recency: date.toordinal() of the listing day
    topic_ids: frozenset = field(default_factory=frozenset)
    authors: tuple = ()  # (matching key, name as printed) per author


@dataclass(frozen=True)
class Interests:
    topic_ids: frozenset = frozenset()
    keywords: tuple = ()
    authors: frozenset = frozenset()  # matching keys of followed authors

    @property
    def follows_anything(self):
        return bool(self.topic_ids or self.keywords or self.authors)


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


def _reasons(candidate, interests, topic_names, hits, similar, weights):
    """(weight, reason) for each way the candidate matches the subscriber."""
    found = []
    followed = candidate.topic_ids & interests.topic_ids
    if followed:
        found.append((weights.topic, f"matches your topic {min(topic_names.get(t, 'you follow') for t in followed)}"))
    keyword = next((k for k in interests.keywords if candidate.id in hits[k]), None)
    if keyword:
        found.append((weights.keyword, f"mentions '{keyword}'"))
    author = next((name for key, name in candidate.authors if key in interests.authors), None)
    if author:
        found.append((weights.author, f"by {author}, whom you follow"))
    if similar and candidate.id in similar:
        cosine, liked_title = similar[candidate.id]
        if cosine >= weights.threshold:
            found.append((weights.profile * cosine, f"similar to '{liked_title}', which you liked"))
    return found


def _featured_first(featured, exclude):
    """The editors' picks not yet received, and every paper now taken."""
    picks, taken = [], set(exclude)
    for candidate in featured:
        if candidate.id not in taken:
            picks.append((candidate.id, FEATURED))
            taken.add(candidate.id)
    return picks, taken


def rank(*, candidates, featured, interests, exclude, topic_names, limit, trending_fill=3, hits=None, similar=None,
         weights=Weights()):
    """Return [(paper_id, reason), ...] for one subscriber's digest; empty means no digest.

    candidates: Candidates in the edition's window; featured: Candidates the editors picked;
    exclude: ids of papers the subscriber already received; hits: optional {keyword: ids},
    keyword_hits() computed once for many subscribers; similar: {paper id: (cosine to the
    subscriber's profile, title of the liked paper closest to it)} for a subscriber who voted.
    """
    picks, taken = _featured_first(featured, exclude)
    hits = hits if hits is not None else {k: keyword_hits(candidates, k) for k in interests.keywords}
    blended = bool(interests.authors or similar)
    top_upvotes = math.log1p(max((c.upvotes for c in candidates), default=0)) or 1
    matched, others = [], []
    for candidate in sorted(candidates, key=sort_key):
        if candidate.id in taken:
            continue
        reasons = _reasons(candidate, interests, topic_names, hits, similar, weights)
        if not reasons:
            others.append(candidate)
        elif not blended:
            matched.append((0, candidate.id, reasons[0][1]))  # upvotes order, as sorted
        else:
            score = sum(w for w, _ in reasons) + weights.trending * math.log1p(candidate.upvotes) / top_upvotes
            matched.append((-score, candidate.id, max(reasons)[1]))
    matched.sort(key=lambda m: m[0])  # stable: ties keep upvotes order
    picks.extend((paper_id, reason) for _, paper_id, reason in matched[:limit])
    room = limit - min(len(matched), limit)
    if interests.follows_anything or similar:
        room = min(room, trending_fill)
    picks.extend((c.id, trending_reason(c)) for c in others[:room])
    return picks


def rank_many(*, candidates, featured, people, topic_names, limit, hits, cosines, closest, trending_fill=3,
              weights=Weights()):
    """rank() for a group of subscribers with profiles, the scores computed as matrices.

    people: [(Interests, exclude set)], one per row of `cosines` (subscribers x candidates,
    cosine to each profile); closest(row, column) gives the title of that subscriber's liked
    paper nearest to that candidate. Returns what rank() returns for each subscriber (tested
    to be the same); only the chosen papers get reasons.
    """
    order = sorted(range(len(candidates)), key=lambda j: sort_key(candidates[j]))
    ordered = [candidates[j] for j in order]
    cos = np.asarray(cosines, dtype=np.float64)[:, order] if len(people) else np.zeros((0, len(ordered)))
    topic_index = {t: n for n, t in enumerate(sorted({t for c in ordered for t in c.topic_ids}))}
    has_topic = np.zeros((len(ordered), len(topic_index) + 1), dtype=bool)
    for j, c in enumerate(ordered):
        for t in c.topic_ids:
            has_topic[j, topic_index[t]] = True
    by_author = defaultdict(list)
    for j, c in enumerate(ordered):
        for key, _ in c.authors:
            by_author[key].append(j)
    top_upvotes = math.log1p(max((c.upvotes for c in ordered), default=0)) or 1
    trend = weights.trending * np.log1p([c.upvotes for c in ordered]) / top_upvotes
    position = np.arange(len(ordered))
    at = {c.id: j for j, c in enumerate(ordered)}
    topic_masks = {}
    results = []
    for row, (interests, exclude) in enumerate(people):
        picks, taken = _featured_first(featured, exclude)
        free = np.ones(len(ordered), dtype=bool)
        free[[at[i] for i in taken if i in at]] = False
        if interests.topic_ids not in topic_masks:
            followed = [topic_index[t] for t in interests.topic_ids if t in topic_index]
            topic_masks[interests.topic_ids] = has_topic[:, followed].any(axis=1)
        topic = topic_masks[interests.topic_ids]
        keyword = np.zeros(len(ordered), dtype=bool)
        for k in interests.keywords:
            keyword[[at[i] for i in hits[k] if i in at]] = True
        author = np.zeros(len(ordered), dtype=bool)
        author[[j for key in interests.authors for j in by_author.get(key, ())]] = True
        profile = np.where(cos[row] >= weights.threshold, cos[row], 0.0)
        matched = (topic | keyword | author | (profile > 0)) & free
        score = weights.topic * topic + weights.keyword * keyword + weights.author * author + weights.profile * profile + trend
        chosen = position[matched][np.lexsort((position[matched], -score[matched]))][:limit]
        for j in chosen:
            similar = {ordered[j].id: (cos[row, j], closest(row, order[j]))} if profile[j] > 0 else None
            picks.append((ordered[j].id, max(_reasons(ordered[j], interests, topic_names, hits, similar, weights))[1]))
        room = min(limit - len(chosen), trending_fill)
        rest = position[free & ~matched][:room]
        picks.extend((ordered[j].id, trending_reason(ordered[j])) for j in rest)
        results.append(picks)
    return results
