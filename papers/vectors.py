"""A text model of papers: hashed TF-IDF-like vectors of title and abstract.

scikit-learn's HashingVectorizer needs no fitting, so a new paper gets its vector at import
without refitting anything, and nothing is downloaded. Vectors are L2-normalised, so a dot
product is a cosine; many subscribers are scored against a day's papers with one sparse
matrix product.
"""

from functools import lru_cache

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.random_projection import SparseRandomProjection

N_FEATURES = 2**18
VECTORIZER = HashingVectorizer(
    n_features=N_FEATURES, alternate_sign=False, norm="l2", stop_words="english", ngram_range=(1, 2), dtype=np.float32
)


def text_vector(title, abstract):
    """{"i": indices, "v": values} for storing in a JSONField; the title counts twice."""
    row = VECTORIZER.transform([f"{title}. {title}. {abstract}"])
    return {"i": row.indices.tolist(), "v": [round(float(x), 5) for x in row.data]}


def matrix(vectors):
    """A CSR matrix with one row per stored vector (empty rows for missing ones)."""
    indptr, indices, data = [0], [], []
    for vector in vectors:
        indices.extend((vector or {}).get("i", ()))
        data.extend((vector or {}).get("v", ()))
        indptr.append(len(indices))
    return sparse.csr_matrix(
        (np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int32), np.asarray(indptr)),
        shape=(len(vectors), N_FEATURES),
    )


DENSE_DIMENSIONS = 256


@lru_cache(maxsize=1)
def projection():
    # A fixed sparse random projection (Johnson-Lindenstrauss): the same seed gives the same
    # matrix in every process, so dense vectors are comparable everywhere; nothing is fitted.
    # Drawing it takes ~0.2 s: Celery workers draw it before their pool forks (config/celery.py).
    projector = SparseRandomProjection(n_components=DENSE_DIMENSIONS, random_state=0)
    projector.fit(sparse.csr_matrix((1, N_FEATURES), dtype=np.float32))
    return projector.components_.T.tocsr().astype(np.float32)


def dense(m):
    """Rows of a hashed matrix projected to DENSE_DIMENSIONS and L2-normalised: cosines are
    preserved to within a few hundredths, and products of many rows become BLAS calls."""
    rows = (m @ projection()).toarray()
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return rows / norms


def most_similar(vector, others, n):
    """Indices and cosines of the n rows of `others` (a matrix) closest to vector."""
    if others.shape[0] == 0:
        return []
    scores = (others @ matrix([vector]).T).toarray().ravel()
    order = np.argsort(-scores)[:n]
    return [(int(i), float(scores[i])) for i in order if scores[i] > 0]
