"""Interest profiles from votes, scored against a day's papers with matrix products.

A subscriber's profile is Rocchio's centroid: the sum of the vectors of the papers they
liked minus half those they disliked, normalised. Interests drift: each vote weighs half as
much every `half_life_days` of its age, so recent votes lead. Pure: vectors in, similarities out.
"""

from dataclasses import dataclass
from itertools import chain

import numpy as np

DISLIKE_WEIGHT = -0.5


@dataclass
class Profiles:
    """Cosines of some subscribers' profiles to a day's candidates, row per subscriber."""

    rows: dict  # subscriber -> row
    cosines: np.ndarray  # subscribers x candidates
    liked: np.ndarray  # subscribers x their most likes: the voted papers each liked (columns of
    # to_candidates, ascending), -1 past a subscriber's last: a few a reader, not a row of every voted paper
    to_candidates: np.ndarray  # voted papers x candidates: cosines (of liked papers; 0 for the rest)
    titles: np.ndarray  # of the voted papers
    candidate_ids: list
    seeded: np.ndarray = None  # as liked: whether each liked paper is one the subscriber gave as their own

    def __contains__(self, subscriber):
        return subscriber in self.rows

    def _nearest(self, rows, columns):
        """(voted paper, place in liked) of each pair's liked paper closest to its candidate."""
        liked = self.liked[rows]
        cosines = np.where(liked >= 0, self.to_candidates[liked, np.asarray(columns)[:, None]], -np.inf)
        places = cosines.argmax(axis=1)
        return liked[np.arange(len(liked)), places], places

    def closest(self, rows, columns):
        """For each (row, candidate column) pair, the title of the paper that row's subscriber
        liked that is closest to the candidate: what "similar to" names."""
        return self.titles[self._nearest(rows, columns)[0]].tolist()

    def closest_seeded(self, rows, columns):
        """For the same pairs as closest(): whether that liked paper is one the subscriber seeded."""
        return self.seeded[rows, self._nearest(rows, columns)[1]].tolist()

    def similar(self, subscriber):
        """{candidate id: (cosine, closest liked title)}, the form rank() takes."""
        row = self.rows[subscriber]
        columns = np.nonzero(self.cosines[row] > 0)[0]
        titles = self.closest(np.full(len(columns), row), columns)
        return {
            self.candidate_ids[j]: (float(self.cosines[row, j]), title) for j, title in zip(columns.tolist(), titles)
        }


def _by_subscriber(rows, *columns):
    """Votes sorted by subscriber row (then by the first of `columns`), each vote's place among
    its subscriber's, and the sorted columns."""
    order = np.lexsort((columns[0], rows))
    rows = rows[order]
    return rows, np.arange(len(rows)) - np.searchsorted(rows, rows), [c[order] for c in columns]


def _centroids(rows, columns, strength, voted_matrix, subscribers):
    """Each subscriber's sum of their voted papers' rows times the votes' strengths. A reader
    has a few dozen votes among the thousands of papers a group of readers voted on: adding
    each vote's row (one pass per place in the readers' lists) does a hundredth of the work of
    a subscribers x voted papers matrix product, which would be almost all multiplications by 0."""
    rows, places, (columns, strength) = _by_subscriber(rows, columns, strength)
    centroids = np.zeros((subscribers, voted_matrix.shape[1]), dtype=np.float32)
    for k in range(places.max() + 1):
        at = places == k  # at most one vote of each reader: no two additions to one row here
        centroids[rows[at]] += strength[at, None] * voted_matrix[columns[at]]
    return centroids


def _liked(rows, columns, seeded, subscribers):
    """Each subscriber's liked columns, ascending, padded with -1; and which were seeded."""
    rows, places, (columns, seeded) = _by_subscriber(rows, columns, seeded)
    width = places.max() + 1 if len(places) else 0
    liked, mine = np.full((subscribers, width), -1), np.zeros((subscribers, width), dtype=bool)
    liked[rows, places], mine[rows, places] = columns, seeded
    return liked, mine


def decay(times, now, half_life_days):
    """The weight of votes cast at `times` (Unix seconds) at `now`: halved every half-life."""
    age_days = np.maximum(now - np.asarray(times, dtype=np.float64), 0) / 86400
    return np.exp2(-age_days / half_life_days)


def profiles(votes, voted_dense, voted_titles, candidate_ids, candidate_dense, now=None, half_life_days=None,
             seeds=None):
    """Profiles of the subscribers who liked something and whose profile is near at least one
    candidate. votes: [(subscriber, paper id, +1 or -1, when), ...], as read from the database
    (when: Unix seconds; votes without it, or without a half-life, do not decay);
    voted_dense and voted_titles: {paper id: dense vector (papers.vectors.dense) / title};
    candidate_dense: a dense row per candidate; seeds: {subscriber: paper ids they seeded}."""
    if not votes or not candidate_ids:
        nothing, none = np.zeros((0, len(candidate_ids))), np.zeros((0, 0), dtype=int)
        return Profiles({}, nothing, none, nothing, np.array([], dtype=object), candidate_ids, none.astype(bool))
    # One pass over the numbers, not numpy's conversion of a tuple of objects per column.
    fields = np.fromiter(chain.from_iterable(votes), dtype=np.int64).reshape(len(votes), -1).T
    subscriber_ids, paper_ids, values = fields[:3]
    strength = np.where(values > 0, 1.0, DISLIKE_WEIGHT)
    if len(fields) > 3 and half_life_days:
        strength *= decay(fields[3], now, half_life_days)
    subscribers, rows = np.unique(subscriber_ids, return_inverse=True)
    voted, columns = np.unique(paper_ids, return_inverse=True)
    likes = values > 0
    mine = np.zeros(len(votes), dtype=bool)
    if seeds:
        pairs = zip(subscriber_ids.tolist(), paper_ids.tolist())
        mine = np.array([paper in seeds.get(subscriber, ()) for subscriber, paper in pairs])
    liked, seeded = _liked(rows[likes], columns[likes], mine[likes], len(subscribers))
    # Dense rows: every product below is a small BLAS call. Filled row by row: np.stack's
    # checks of each row cost more than the copy.
    voted_matrix = np.zeros((len(voted), candidate_dense.shape[1]), dtype=np.float32)
    for i, pid in enumerate(voted.tolist()):
        row = voted_dense.get(pid)
        if row is not None and len(row) == voted_matrix.shape[1]:  # else not embedded as the candidates are yet
            voted_matrix[i] = row
    centroids = _centroids(rows, columns, strength.astype(np.float32), voted_matrix, len(subscribers))
    norms = np.sqrt(np.einsum("ij,ij->i", centroids, centroids))[:, None]  # np.linalg.norm's, in one pass
    norms[norms == 0] = 1
    cosines = (centroids / norms) @ candidate_dense.T
    keep = np.nonzero((liked[:, :1] >= 0).any(axis=1) & (cosines > 0).any(axis=1))[0]
    # Cosines of voted papers to the candidates, for closest(): only a liked paper is named.
    to_candidates = np.zeros((len(voted), len(candidate_ids)), dtype=np.float32)
    named = np.unique(liked[keep][liked[keep] >= 0])
    to_candidates[named] = voted_matrix[named] @ candidate_dense.T
    return Profiles(
        rows={subscriber: i for i, subscriber in enumerate(subscribers[keep].tolist())},
        cosines=cosines[keep],
        liked=liked[keep],
        to_candidates=to_candidates,
        titles=np.array([voted_titles.get(pid, "") for pid in voted.tolist()], dtype=object),
        candidate_ids=list(candidate_ids),
        seeded=seeded[keep],
    )
