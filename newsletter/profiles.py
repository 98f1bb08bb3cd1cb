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
    liked: np.ndarray  # subscribers x voted papers: which each liked
    to_candidates: np.ndarray  # voted papers x candidates: cosines
    titles: np.ndarray  # of the voted papers
    candidate_ids: list
    seeded: np.ndarray = None  # subscribers x voted papers: which each gave as their own (seeded)

    def __contains__(self, subscriber):
        return subscriber in self.rows

    def _nearest(self, rows, columns):
        return np.where(self.liked[rows], self.to_candidates[:, columns].T, -np.inf).argmax(axis=1)

    def closest(self, rows, columns):
        """For each (row, candidate column) pair, the title of the paper that row's subscriber
        liked that is closest to the candidate: what "similar to" names."""
        return self.titles[self._nearest(rows, columns)].tolist()

    def closest_seeded(self, rows, columns):
        """For the same pairs as closest(): whether that liked paper is one the subscriber seeded."""
        return self.seeded[rows, self._nearest(rows, columns)].tolist()

    def similar(self, subscriber):
        """{candidate id: (cosine, closest liked title)}, the form rank() takes."""
        row = self.rows[subscriber]
        columns = np.nonzero(self.cosines[row] > 0)[0]
        titles = self.closest(np.full(len(columns), row), columns)
        return {
            self.candidate_ids[j]: (float(self.cosines[row, j]), title) for j, title in zip(columns.tolist(), titles)
        }


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
        nothing, none = np.zeros((0, len(candidate_ids))), np.zeros((0, 0), dtype=bool)
        return Profiles({}, nothing, none, nothing, np.array([], dtype=object), candidate_ids, none)
    # One pass over the numbers, not numpy's conversion of a tuple of objects per column.
    fields = np.fromiter(chain.from_iterable(votes), dtype=np.int64).reshape(len(votes), -1).T
    subscriber_ids, paper_ids, values = fields[:3]
    strength = np.where(values > 0, 1.0, DISLIKE_WEIGHT)
    if len(fields) > 3 and half_life_days:
        strength *= decay(fields[3], now, half_life_days)
    subscribers, rows = np.unique(subscriber_ids, return_inverse=True)
    voted, columns = np.unique(paper_ids, return_inverse=True)
    # Subscribers x voted papers: 1 per like, DISLIKE_WEIGHT per dislike, decayed.
    weights = np.zeros((len(subscribers), len(voted)), dtype=np.float32)
    np.add.at(weights, (rows, columns), strength)
    liked = np.zeros(weights.shape, dtype=bool)
    liked[rows[values > 0], columns[values > 0]] = True
    seeded = np.zeros(weights.shape, dtype=bool)
    if seeds:
        pairs = zip(subscriber_ids.tolist(), paper_ids.tolist())
        mine = np.array([paper in seeds.get(subscriber, ()) for subscriber, paper in pairs])
        seeded[rows[mine], columns[mine]] = True
    # Dense rows: every product below is a small BLAS call.
    zero = np.zeros(candidate_dense.shape[1], dtype=np.float32)
    voted_matrix = np.stack([voted_dense.get(pid, zero) for pid in voted.tolist()])
    centroids = weights @ voted_matrix
    norms = np.sqrt(np.einsum("ij,ij->i", centroids, centroids))[:, None]  # np.linalg.norm's, in one pass
    norms[norms == 0] = 1
    cosines = (centroids / norms) @ candidate_dense.T
    keep = np.nonzero(liked.any(axis=1) & (cosines > 0).any(axis=1))[0]
    return Profiles(
        rows={subscriber: i for i, subscriber in enumerate(subscribers[keep].tolist())},
        cosines=cosines[keep],
        liked=liked[keep],
        to_candidates=voted_matrix @ candidate_dense.T,
        titles=np.array([voted_titles.get(pid, "") for pid in voted.tolist()], dtype=object),
        candidate_ids=list(candidate_ids),
        seeded=seeded[keep],
    )
