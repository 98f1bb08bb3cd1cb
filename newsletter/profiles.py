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
    liked: np.ndarray  # subscribers x most likes: the voted papers (indices) each liked, -1 after the last
    to_candidates: np.ndarray  # voted papers x candidates: cosines
    titles: np.ndarray  # of the voted papers
    candidate_ids: list

    def __contains__(self, subscriber):
        return subscriber in self.rows

    def closest(self, rows, columns):
        """For each (row, candidate column) pair, the title of the paper that row's subscriber
        liked that is closest to the candidate: what "similar to" names. The first liked of equals."""
        liked = self.liked[rows]
        near = np.where(liked >= 0, self.to_candidates[liked, np.asarray(columns)[:, None]], -np.inf)
        return self.titles[liked[np.arange(len(liked)), near.argmax(axis=1)]].tolist()

    def similar(self, subscriber):
        """{candidate id: (cosine, closest liked title)}, the form rank() takes."""
        row = self.rows[subscriber]
        columns = np.nonzero(self.cosines[row] > 0)[0]
        titles = self.closest(np.full(len(columns), row), columns)
        return {
            self.candidate_ids[j]: (float(self.cosines[row, j]), title) for j, title in zip(columns.tolist(), titles)
        }


def profiles(votes_by_subscriber, voted_dense, voted_titles, candidate_ids, candidate_dense):
    """Profiles of the subscribers who liked something and whose profile is near at least one
    candidate. votes_by_subscriber: {subscriber: [(paper id, +1 or -1), ...]}; voted_dense
    and voted_titles: {paper id: dense vector (papers.vectors.dense) / title}; candidate_dense:
    a dense row per candidate."""
    voted = sorted({paper_id for votes in votes_by_subscriber.values() for paper_id, _ in votes})
    subscribers = [s for s, votes in votes_by_subscriber.items() if any(value > 0 for _, value in votes)]
    if not subscribers or not candidate_ids:
        nothing = np.zeros((0, len(candidate_ids)))
        return Profiles({}, nothing, np.zeros((0, 1), dtype=int), nothing, np.array([], dtype=object), candidate_ids)
    column = {pid: n for n, pid in enumerate(voted)}
    # Dense projections: every product below is a small BLAS call.
    zero = np.zeros(vectors.DENSE_DIMENSIONS, dtype=np.float32)
    voted_matrix = np.stack([voted_dense.get(pid, zero) for pid in voted])
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
    keep = np.nonzero((cosines > 0).any(axis=1))[0].tolist()
    likes = [[column[pid] for pid, value in votes_by_subscriber[subscribers[n]] if value > 0] for n in keep]
    liked = np.full((len(keep), max(map(len, likes), default=1)), -1)
    for i, row in enumerate(likes):
        liked[i, : len(row)] = row
    return Profiles(
        rows={subscribers[n]: i for i, n in enumerate(keep)},
        cosines=cosines[keep],
        liked=liked,
        to_candidates=voted_matrix @ candidate_dense.T,
        titles=np.array([voted_titles.get(pid, "") for pid in voted], dtype=object),
        candidate_ids=list(candidate_ids),
    )
