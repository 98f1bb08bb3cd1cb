"""Choosing subscribers' papers: pure functions, no database.

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
carries the reason that weighed most (on cold start, the first that applies), as data: a
Reason (kind, subject, strength), stored with the delivery; how it reads to a reader is
newsletter.reasons' business (said()), never parsed back.

One ranker: rank_many() scores a group of subscribers as matrices (subscribers x papers);
rank() is the group of one. A Pool holds what every ranking of an edition shares, and
Pool.key() what ranking reads of a cold-start subscriber, so equal keys get equal picks.
"""

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from cachetools import LRUCache
from django.conf import settings

from newsletter.reasons import FEATURED, Kind, Reason

KEYWORDS_KEPT = 20_000  # keywords whose matching papers a pool remembers


@dataclass(frozen=True)
class Weights:
    topic: float
    keyword: float
    author: float
    profile: float
    trending: float
    threshold: float


def ranking_weights():
    """The weights sending uses: settings.RANKING_WEIGHTS, their one home."""
    return Weights(**settings.RANKING_WEIGHTS)


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


def sort_key(candidate):
    return (-candidate.upvotes, -candidate.listed_ordinal, -candidate.id)


def topic_reason(candidate, topic_ids, topic_names, weight):
    return Reason(Kind.TOPIC, min(topic_names.get(t, "") for t in candidate.topic_ids & topic_ids), weight)


def keyword_reason(candidate, keywords, weight):
    return Reason(Kind.KEYWORD, next(k for k in keywords if keyword_pattern(k).search(candidate.text)), weight)


def author_reason(candidate, authors, weight):
    return Reason(Kind.AUTHOR, next(name for key, name in candidate.authors if key in authors), weight)


class Pool:
    """The papers an edition offers, prepared once for every subscriber ranked against them:
    candidates in upvotes order (a column each), the columns of each topic and author, the
    trending term of the score, and the columns each keyword matches (remembered)."""

    def __init__(self, candidates, featured, topic_names, weights=None):
        weights = weights or ranking_weights()
        self.ordered = sorted(candidates, key=sort_key)
        self.featured = list(featured)
        self.topic_names = topic_names
        self.weights = weights
        self.ids = [c.id for c in self.ordered]
        self.column = {pid: j for j, pid in enumerate(self.ids)}
        self.by_topic, self.by_author = defaultdict(list), defaultdict(list)
        for j, c in enumerate(self.ordered):
            for t in c.topic_ids:
                self.by_topic[t].append(j)
            for key, _ in c.authors:
                self.by_author[key].append(j)
        self.topics, self.authors = frozenset(self.by_topic), frozenset(self.by_author)
        self.offered = frozenset(self.ids) | {c.id for c in self.featured}
        top = math.log1p(max((c.upvotes for c in self.ordered), default=0)) or 1
        self.trend = weights.trending * np.log1p([c.upvotes for c in self.ordered]) / top
        self.trending = [(c.id, Reason(Kind.TRENDING, "", float(c.upvotes))) for c in self.ordered]
        self.outside = [(c.id, Reason(Kind.EXPLORE, "", float(c.upvotes))) for c in self.ordered]
        self._keywords = LRUCache(maxsize=KEYWORDS_KEPT)

    def keyword_columns(self, keyword):
        columns = self._keywords.get(keyword)
        if columns is None:
            pattern = keyword_pattern(keyword)
            columns = self._keywords[keyword] = [j for j, c in enumerate(self.ordered) if pattern.search(c.text)]
        return columns

    def key(self, interests, received):
        """Everything ranking reads of a cold-start subscriber, stripped of what cannot match
        in this pool: subscribers with equal keys get equal picks."""
        return (
            interests.topic_ids & self.topics,
            tuple(k for k in interests.keywords if self.keyword_columns(k)),
            interests.authors & self.authors,
            bool(interests.authors),
            interests.follows_anything,
            frozenset(received) & self.offered,
        )

    def featured_first(self, received):
        """The editors' picks not yet received, and every paper now taken."""
        picks, taken = [], set(received)
        for candidate in self.featured:
            if candidate.id not in taken:
                picks.append((candidate.id, FEATURED))
                taken.add(candidate.id)
        return picks, taken


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


def _follows(pool, people):
    """Each subscriber's featured picks, and boolean matrices (subscribers x pool columns) of
    the papers matching their topics, keywords and authors and of those they cannot get."""
    featured_picks = {}

    def taken_columns(received):
        featured_picks[received], taken = pool.featured_first(received)
        return [pool.column[i] for i in taken if i in pool.column]

    topics = _SharedRows(lambda topic_ids: [j for t in topic_ids for j in pool.by_topic.get(t, ())])
    keywords = _SharedRows(lambda words: [j for k in words for j in pool.keyword_columns(k)])
    authors = _SharedRows(lambda keys: [j for key in keys for j in pool.by_author.get(key, ())])
    taken = _SharedRows(taken_columns)
    heads = []
    for interests, received in people:
        received = frozenset(received)
        taken.add(received)
        heads.append(list(featured_picks[received]))
        topics.add(interests.topic_ids)
        keywords.add(interests.keywords)
        authors.add(interests.authors)
    width = len(pool.ordered)
    return heads, topics.matrix(width), keywords.matrix(width), authors.matrix(width), ~taken.matrix(width)


def rank_many(pool, people, *, limit, trending_fill=3, cosines=None, closest=None, seeded=None, explore=0):
    """[(paper_id, Reason), ...] for each subscriber of a group; an empty list means no digest.

    people: [(Interests, ids of papers already received)]. cosines: for subscribers with a
    profile, a row per subscriber of cosines to the pool's columns; closest(rows, columns)
    then gives, for each (row, column) pair, that subscriber's liked paper nearest to that
    paper as (id, title, cosine of the two): what "similar to" names, and how similar;
    and seeded(rows, columns), if given, whether that liked paper is one the subscriber seeded
    (named as theirs: "close to your paper");
    `explore` of the slots of a subscriber with a profile go to papers outside it (the most
    upvoted that match nothing), so that a profile does not close in on itself. Only the chosen papers get reasons.
    """
    if not people:
        return []
    weights = pool.weights
    heads, topic, keyword, author, free = _follows(pool, people)
    shape = topic.shape
    if cosines is None:
        profile = np.zeros(shape)
    else:
        cos = np.asarray(cosines, dtype=np.float64).reshape(shape)
        profile = np.where(cos >= weights.threshold, cos, 0.0)
    has_profile = cosines is not None
    blended = np.array([has_profile or bool(interests.authors) for interests, _ in people])[:, None]
    matched = (topic | keyword | author | (profile > 0)) & free
    # Summed in this order, so that equal scores stay equal; cold start orders matches by
    # upvotes alone, which is the columns' order.
    score = weights.topic * topic + weights.keyword * keyword + weights.author * author + weights.profile * profile
    score = np.where(blended, score + pool.trend, 0.0)
    # Stable: among equal scores, the upvotes order of the columns.
    ranked = np.argsort(np.where(matched, -score, np.inf), axis=1, kind="stable")[:, :limit]
    others = free & ~matched
    explored = np.minimum(others.sum(axis=1), explore if has_profile else 0)
    counts = np.minimum(matched.sum(axis=1), limit - explored)
    # The reason that weighs most for each chosen paper (on cold start the first that applies);
    # on ties the first: topic, keyword, author, profile.
    rows = np.arange(shape[0])[:, None]
    strengths = np.stack([
        np.where(topic[rows, ranked], weights.topic, -np.inf),
        np.where(keyword[rows, ranked], weights.keyword, -np.inf),
        np.where(author[rows, ranked], weights.author, -np.inf),
        np.where(profile[rows, ranked] > 0, weights.profile * profile[rows, ranked], -np.inf),
    ])
    strengths = np.where(blended[None] | np.isinf(strengths), strengths, 0.0)
    strongest = strengths.argmax(axis=0)
    similar_rows, similar_ranks = np.nonzero((strongest == 3) & (np.arange(ranked.shape[1]) < counts[:, None]))
    similar_columns = ranked[similar_rows, similar_ranks]
    liked = closest(similar_rows, similar_columns) if len(similar_rows) else []
    seeds = seeded(similar_rows, similar_columns) if seeded and len(similar_rows) else [False] * len(liked)
    next_liked = zip(liked, seeds).__next__  # in row-major order, as the loop below meets them
    fill = np.argsort(~others, axis=1, kind="stable")[:, :limit].tolist()
    # Followers (and voters) get at most trending_fill papers beside their matches.
    caps = [trending_fill if has_profile or interests.follows_anything else limit for interests, _ in people]
    rooms = np.minimum(np.minimum(limit - counts - explored, caps), others.sum(axis=1) - explored).tolist()
    return _phrase(pool, people, heads, ranked.tolist(), strongest.tolist(), counts.tolist(), rooms, fill, next_liked,
                   explored.tolist())


def _phrase(pool, people, heads, ranked, strongest, counts, rooms, fill, next_liked, explored):
    """The picks with their reasons. (paper, reason) pairs are made once and shared: the same
    topics, or the same liked paper, give many subscribers the same reason for the same paper."""
    weights = pool.weights
    results, topic_pairs, similar_pairs, pairs = [], {}, {}, {}
    ids, ordered = pool.ids, pool.ordered
    for (interests, _), picks, chosen, kinds, count, room, fills, explore in zip(
        people, heads, ranked, strongest, counts, rooms, fill, explored
    ):
        phrased = topic_pairs.get(interests.topic_ids)
        if phrased is None:
            phrased = topic_pairs[interests.topic_ids] = [None] * len(ids)  # by column
        for j, kind in zip(chosen[:count], kinds):
            if kind == 0:
                pair = phrased[j]
                if pair is None:
                    reason = topic_reason(ordered[j], interests.topic_ids, pool.topic_names, weights.topic)
                    pair = phrased[j] = (ids[j], reason)
            elif kind == 3:
                liked, seed = next_liked()
                pair = similar_pairs.get((j, liked, seed))
                if pair is None:
                    liked_id, title, cosine = liked
                    kind = Kind.SEED if seed else Kind.SIMILAR
                    pair = similar_pairs[j, liked, seed] = (ids[j], Reason(kind, str(liked_id), round(cosine, 2), title))
            else:
                what = interests.keywords if kind == 1 else interests.authors
                pair = pairs.get((what, j))
                if pair is None:
                    if kind == 1:
                        reason = keyword_reason(ordered[j], what, weights.keyword)
                    else:
                        reason = author_reason(ordered[j], what, weights.author)
                    pair = pairs[what, j] = (ids[j], reason)
            picks.append(pair)
        picks.extend([pool.outside[j] for j in fills[:explore]])
        picks.extend([pool.trending[j] for j in fills[explore : explore + room]])
        results.append(picks)
    return results


def starters(pool, interests, received, count):
    """A first digest, to learn what a new reader likes: the editors' picks, then the most
    upvoted paper of one topic after another (those they follow first, then the others, the
    topics with most papers first), up to `count` papers across as many topics as there are."""
    picks, taken = pool.featured_first(received)
    followed = sorted(pool.topics & interests.topic_ids, key=lambda t: -len(pool.by_topic[t]))
    others = sorted(pool.topics - interests.topic_ids, key=lambda t: (-len(pool.by_topic[t]), t))
    queues = [[j for j in pool.by_topic[t] if pool.ids[j] not in taken] for t in followed + others]
    topics = followed + others
    while len(picks) < count and any(queues):
        for topic, queue in zip(topics, queues):
            while queue and pool.ids[queue[0]] in taken:
                queue.pop(0)
            if queue and len(picks) < count:
                j = queue.pop(0)  # columns are in upvotes order
                picks.append((pool.ids[j], Reason(Kind.FIRST_TASTE, pool.topic_names.get(topic, ""))))
                taken.add(pool.ids[j])
    return picks


def rank(*, candidates, featured, interests, exclude, topic_names, limit, trending_fill=3, similar=None,
         weights=None):
    """rank_many() for one subscriber. similar: {paper id: (cosine to the subscriber's
    profile, the liked paper closest to it as closest() gives it in rank_many)} for a
    subscriber who voted."""
    pool = Pool(candidates, featured, topic_names, weights)
    cosines = closest = None
    if similar:
        cosines = [[similar.get(pid, (0.0, None))[0] for pid in pool.ids]]
        closest = lambda rows, columns: [similar[pool.ids[j]][1] for j in columns]  # noqa: E731
    return rank_many(pool, [(interests, exclude)], limit=limit, trending_fill=trending_fill, cosines=cosines,
                     closest=closest)[0]
