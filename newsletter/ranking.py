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


def topic_reason(candidate, topic_ids, topic_names):
    return f"matches your topic {min(topic_names.get(t, 'you follow') for t in candidate.topic_ids & topic_ids)}"


def keyword_reason(candidate, keywords, hits):
    return f"mentions '{next(k for k in keywords if candidate.id in hits[k])}'"


def author_reason(candidate, authors):
    return f"by {next(name for key, name in candidate.authors if key in authors)}, whom you follow"


def similar_reason(liked_title):
    return f"similar to '{liked_title}', which you liked"


def _reasons(candidate, interests, topic_names, hits, similar, weights):
    """(weight, reason) for each way the candidate matches the subscriber, in the order that
    settles ties: topic, keyword, author, profile. Lazily: cold-start ranking needs only the
    first; and each test is skipped when the subscriber follows nothing of its kind."""
    if interests.topic_ids and candidate.topic_ids & interests.topic_ids:
        yield weights.topic, topic_reason(candidate, interests.topic_ids, topic_names)
    if interests.keywords and any(candidate.id in hits[k] for k in interests.keywords):
        yield weights.keyword, keyword_reason(candidate, interests.keywords, hits)
    if interests.authors and any(key in interests.authors for key, _ in candidate.authors):
        yield weights.author, author_reason(candidate, interests.authors)
    if similar and candidate.id in similar:
        cosine, liked_title = similar[candidate.id]
        if cosine >= weights.threshold:
            yield weights.profile * cosine, similar_reason(liked_title)


def _strongest(reasons):
    return max(reasons, key=lambda reason: reason[0])[1]  # the first of equals


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
        if not blended:
            first = next(reasons, None)
            if first is None:
                others.append(candidate)
                continue
            matched.append((0, candidate.id, first[1]))  # upvotes order, as sorted
            if len(matched) == limit:
                break  # the rest could only come later, or fill room there is none of
            continue
        reasons = list(reasons)
        if not reasons:
            others.append(candidate)
        else:
            score = sum(w for w, _ in reasons) + weights.trending * math.log1p(candidate.upvotes) / top_upvotes
            matched.append((-score, candidate.id, _strongest(reasons)))
    matched.sort(key=lambda m: m[0])  # stable: ties keep upvotes order
    picks.extend((paper_id, reason) for _, paper_id, reason in matched[:limit])
    room = limit - min(len(matched), limit)
    if interests.follows_anything or similar:
        room = min(room, trending_fill)
    picks.extend((c.id, trending_reason(c)) for c in others[:room])
    return picks


def _follows(ordered, featured, people, hits):
    """Each subscriber's featured picks, and boolean matrices (subscribers x ordered candidates)
    of the candidates matching their topics, keywords and authors and of those they cannot get."""
    at = {c.id: j for j, c in enumerate(ordered)}
    by_topic, by_author = defaultdict(list), defaultdict(list)
    for j, c in enumerate(ordered):
        for t in c.topic_ids:
            by_topic[t].append(j)
        for key, _ in c.authors:
            by_author[key].append(j)
    by_keyword = {}

    def keyword_columns(keywords):
        for k in keywords:
            if k not in by_keyword:
                by_keyword[k] = [at[i] for i in hits[k] if i in at]
        return [j for k in keywords for j in by_keyword[k]]

    featured_picks = {}  # papers received -> the featured papers still to give

    def taken_columns(exclude):
        featured_picks[exclude], taken = _featured_first(featured, exclude)
        return [at[i] for i in taken if i in at]

    topics = _SharedRows(lambda topic_ids: [j for t in topic_ids for j in by_topic.get(t, ())])
    keywords = _SharedRows(keyword_columns)
    authors = _SharedRows(lambda keys: [j for key in keys for j in by_author.get(key, ())])
    taken = _SharedRows(taken_columns)
    heads = []
    for interests, exclude in people:
        exclude = frozenset(exclude)
        taken.add(exclude)
        heads.append(list(featured_picks[exclude]))
        topics.add(interests.topic_ids)
        keywords.add(interests.keywords)
        authors.add(interests.authors)
    width = len(ordered)
    return heads, topics.matrix(width), keywords.matrix(width), authors.matrix(width), ~taken.matrix(width)


class _SharedRows:
    """Rows of a boolean matrix, one per subscriber, True in the columns that columns_of(value)
    gives for the subscriber's value. What a subscriber follows and received is mostly what
    many others follow and received: a row is worked out once per distinct value and copied."""

    def __init__(self, columns_of):
        self.columns_of, self.numbers, self.columns, self.rows = columns_of, {}, [], []

    def add(self, value):
        number = self.numbers.get(value)
        if number is None:
            number = self.numbers[value] = len(self.columns)
            self.columns.append(self.columns_of(value))
        self.rows.append(number)

    def matrix(self, width):
        distinct = np.zeros((len(self.columns), width), dtype=bool)
        for number, columns in enumerate(self.columns):
            if columns:
                distinct[number, columns] = True
        return distinct[self.rows]


def rank_many(*, candidates, featured, people, topic_names, limit, hits, cosines, closest, trending_fill=3,
              weights=Weights()):
    """rank() for a group of subscribers with profiles, scored together as matrices
    (subscribers x candidates) rather than one subscriber at a time.

    people: [(Interests, exclude set)], one per row of `cosines` (cosine of each subscriber's
    profile to each candidate); closest(rows, columns) gives, for each (row, column of
    `cosines`) pair, the title of that subscriber's liked paper nearest to that candidate.
    Returns what rank() returns for each subscriber (tested to be the same); only the chosen
    papers get reasons.
    """
    if not people:
        return []
    order = sorted(range(len(candidates)), key=lambda j: sort_key(candidates[j]))
    ordered = [candidates[j] for j in order]
    heads, topic, keyword, author, free = _follows(ordered, featured, people, hits)
    shape = topic.shape
    cos = np.asarray(cosines, dtype=np.float64).reshape(shape)[:, order]
    profile = np.where(cos >= weights.threshold, cos, 0.0)
    top_upvotes = math.log1p(max((c.upvotes for c in ordered), default=0)) or 1
    trend = weights.trending * np.log1p([c.upvotes for c in ordered]) / top_upvotes
    matched = (topic | keyword | author | (profile > 0)) & free
    # Summed in rank()'s order, so that equal scores stay equal.
    score = weights.topic * topic + weights.keyword * keyword + weights.author * author + weights.profile * profile + trend
    # Stable: among equal scores, the upvotes order of the columns.
    ranked = np.argsort(np.where(matched, -score, np.inf), axis=1, kind="stable")[:, :limit]
    counts = np.minimum(matched.sum(axis=1), limit)
    # The reason that weighs most for each chosen paper; on ties the first, as in rank().
    rows = np.arange(shape[0])[:, None]
    strengths = np.stack([
        np.where(topic[rows, ranked], weights.topic, -np.inf),
        np.where(keyword[rows, ranked], weights.keyword, -np.inf),
        np.where(author[rows, ranked], weights.author, -np.inf),
        np.where(profile[rows, ranked] > 0, weights.profile * profile[rows, ranked], -np.inf),
    ])
    strongest = strengths.argmax(axis=0)
    similar_rows, similar_ranks = np.nonzero((strongest == 3) & (np.arange(ranked.shape[1]) < counts[:, None]))
    titles = closest(similar_rows, np.asarray(order)[ranked[similar_rows, similar_ranks]]) if len(similar_rows) else []
    # In row-major order, as the loop below meets them.
    next_title = iter(titles).__next__
    others = free & ~matched
    fill = np.argsort(~others, axis=1, kind="stable")[:, :trending_fill].tolist()
    rooms = np.minimum(np.minimum(limit - counts, trending_fill), others.sum(axis=1)).tolist()
    trending = [(c.id, trending_reason(c)) for c in ordered]
    ids = [c.id for c in ordered]
    # (paper, reason) pairs made once and shared: the same topics, or the same liked paper,
    # give many subscribers the same reason for the same paper.
    results, topic_pairs, similar_pairs = [], {}, {}
    for (interests, _), picks, chosen, kinds, count, room, fills in zip(
        people, heads, ranked.tolist(), strongest.tolist(), counts.tolist(), rooms, fill
    ):
        phrased = topic_pairs.get(interests.topic_ids)
        if phrased is None:
            phrased = topic_pairs[interests.topic_ids] = [None] * len(ids)  # by column
        for j, kind in zip(chosen[:count], kinds):
            if kind == 0:
                pair = phrased[j]
                if pair is None:
                    pair = phrased[j] = (ids[j], topic_reason(ordered[j], interests.topic_ids, topic_names))
            elif kind == 3:
                title = next_title()
                pair = similar_pairs.get((j, title))
                if pair is None:
                    pair = similar_pairs[j, title] = (ids[j], similar_reason(title))
            elif kind == 1:
                pair = (ids[j], keyword_reason(ordered[j], interests.keywords, hits))
            else:
                pair = (ids[j], author_reason(ordered[j], interests.authors))
            picks.append(pair)
        picks.extend([trending[j] for j in fills[:room]])
        results.append(picks)
    return results
