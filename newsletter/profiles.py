"""Interest profiles from votes, scored against a day's papers with sparse matrix products.

A subscriber's profile is Rocchio's centroid: the sum of the vectors of the papers they
liked minus half those they disliked, normalised. Pure: vectors in, similarities out.
"""

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from papers import vectors

DISLIKE_WEIGHT = -0.5


@dataclass
class Profiles:
    """Cosines of some subscribers' profiles to a day's candidates, row per subscriber."""

    rows: dict  # subscriber -> row
    cosines: np.ndarray  # subscribers x candidates
    nearest_liked: np.ndarray  # subscribers x candidates: title of the liked paper closest to it
    candidate_ids: list

    def __contains__(self, subscriber):
        return subscriber in self.rows

    def closest(self, row, column):
        return self.nearest_liked[row, column]

    def similar(self, subscriber):
        """{candidate id: (cosine, closest liked title)}, the form rank() takes."""
        row = self.rows[subscriber]
        return {
            self.candidate_ids[j]: (float(self.cosines[row, j]), self.nearest_liked[row, j])
            for j in np.nonzero(self.cosines[row] > 0)[0]
        }


def profiles(votes_by_subscriber, voted_dense, voted_titles, candidate_ids, candidate_dense):
    """Profiles of the subscribers who liked something and whose profile is near at least one
    candidate. votes_by_subscriber: {subscriber: [(paper id, +1 or -1), ...]}; voted_dense
    and voted_titles: {paper id: dense vector (papers.vectors.dense) / title}; candidate_dense:
    a dense row per candidate."""
    voted = sorted({paper_id for votes in votes_by_subscriber.values() for paper_id, _ in votes})
    subscribers = [s for s, votes in votes_by_subscriber.items() if any(value > 0 for _, value in votes)]
    if not subscribers or not candidate_ids:
        return Profiles({}, np.zeros((0, len(candidate_ids))), np.zeros((0, len(candidate_ids)), dtype=object), candidate_ids)
    column = {pid: n for n, pid in enumerate(voted)}
    # Dense projections: every product below is a small BLAS call.
    zero = np.zeros(vectors.DENSE_DIMENSIONS, dtype=np.float32)
    voted_matrix = np.stack([voted_dense.get(pid, zero) for pid in voted])
    to_candidates = voted_matrix @ candidate_dense.T  # voted x candidates
    weight_rows, weight_cols, weight_values = [], [], []
    for n, subscriber in enumerate(subscribers):
        for paper_id, value in votes_by_subscriber[subscriber]:
            weight_rows.append(n)
            weight_cols.append(column[paper_id])
            weight_values.append(1.0 if value > 0 else DISLIKE_WEIGHT)
    weights = sparse.csr_matrix((weight_values, (weight_rows, weight_cols)), shape=(len(subscribers), len(voted)))
    weights.sum_duplicates()
    centroids = np.asarray(weights @ voted_matrix)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    norms[norms == 0] = 1
    cosines = (centroids / norms) @ candidate_dense.T
    # For each subscriber and candidate, the liked paper closest to the candidate: what "similar to" names.
    titles = np.array([voted_titles.get(pid, "") for pid in voted], dtype=object)
    keep = [n for n in range(len(subscribers)) if (cosines[n] > 0).any()]
    nearest = np.empty((len(keep), len(candidate_ids)), dtype=object)
    for i, n in enumerate(keep):
        liked = np.array([column[pid] for pid, value in votes_by_subscriber[subscribers[n]] if value > 0])
        nearest[i] = titles[liked[to_candidates[liked].argmax(axis=0)]]
    return Profiles({subscribers[n]: i for i, n in enumerate(keep)}, cosines[keep], nearest, list(candidate_ids))
