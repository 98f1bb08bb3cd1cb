"""A lexical model of papers: TF-IDF fitted on the papers the project holds, projected to
LEXICAL_DIMENSIONS by a truncated SVD (latent semantic analysis) so that its vectors are dense
rows like the text model's and one profile product scores both (papers.vectors).

The sentence model knows what a paper is about in general words; the exact terms a field
uses (a method's name, "qubit", "LiDAR") are what TF-IDF weighs, and with many votes they
separate a reader's field best (bench/ranking.py --arxiv). scikit-learn fits and applies it.
"""

import io

from papers.vectors import normalised, texts

LEXICAL_DIMENSIONS = 128
MIN_PAPERS = 50  # fewer papers make a vocabulary too small to be worth a fit
PAPERS_FITTED = 20_000  # the latest papers a fit reads: the field's current words, in bounded time


def fit(pairs, dimensions=LEXICAL_DIMENSIONS):
    """The fitted (vectoriser, projection) of the texts of (title, abstract) pairs."""
    import numpy as np
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectoriser = TfidfVectorizer(sublinear_tf=True, min_df=2, max_df=0.5, stop_words="english", max_features=50_000,
                                 dtype=np.float32)
    counts = vectoriser.fit_transform(texts(pairs))
    projection = TruncatedSVD(n_components=min(dimensions, counts.shape[1] - 1), random_state=0).fit(counts)
    return vectoriser, projection


def transform(fitted, pairs):
    """L2-normalised float32 rows, one per (title, abstract) pair."""
    import numpy as np

    vectoriser, projection = fitted
    return normalised(projection.transform(vectoriser.transform(texts(pairs))).astype(np.float32))


def library():
    """What a stored fit needs to be read back: the scikit-learn that made it."""
    import sklearn

    return f"scikit-learn {sklearn.__version__}"


def dumps(fitted):
    import joblib

    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    return buffer.getvalue()


def loads(data):
    import joblib

    return joblib.load(io.BytesIO(data))
