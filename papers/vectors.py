"""A text model of papers: a 256-dimension embedding of title and abstract (wordllama).

Chosen by measurement on real abstracts (`bench/ranking.py --real`, README "Ranking"): the
random projection of hashed word counts used before kept too little of what tells papers
apart (cosines between abstracts are 0.05-0.2, its error about as large). wordllama is a
static embedding model (token vectors pooled, no network, its 16 MB of weights ship in its
wheel), so a paper's vector needs no fitting on other papers and is the same in every process.

Every abstract shares a large common direction in wordllama's space (raw cosines between
unrelated ML abstracts are ~0.47): it is subtracted (CENTRE, the mean of the real abstracts
in sample/), so cosines say how alike two papers are rather than that both are ML papers.

Vectors are computed when a paper is saved and stored as float32 bytes with MODEL; after a
change of model, `manage.py embed_papers` re-embeds the papers whose stored model differs.
numpy and wordllama are imported only where used: commands' --help and the web pages that
never score text do not load them.
"""

import json
from functools import lru_cache
from pathlib import Path

DIMENSIONS = 256
MODEL = "wordllama l2_supercat 256 0.4.0.post1, centred 1"
CENTRE_FILE = Path(__file__).with_name("text_centre.json")


@lru_cache(maxsize=1)
def model():
    """The wordllama model, from the files its wheel ships (never downloaded)."""
    import wordllama
    from wordllama import WordLlama

    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, dim=DIMENSIONS, disable_download=True)


@lru_cache(maxsize=1)
def centre():
    import numpy as np

    return np.asarray(json.loads(CENTRE_FILE.read_text()), dtype=np.float32)


def raw_embeddings(texts):
    """wordllama's L2-normalised embeddings of texts, not centred (a float32 row each)."""
    import numpy as np

    return np.asarray(model().embed(list(texts), norm=True), dtype=np.float32)


def embeddings(pairs):
    """The model's vectors of (title, abstract) pairs: a float32 matrix, one L2-normalised
    row per pair. Embedding many at once is much faster than one by one."""
    rows = raw_embeddings(f"{title}. {abstract}" for title, abstract in pairs) - centre()
    return normalised(rows)


def text_vector(title, abstract):
    """What Paper.vector stores: the vector of one paper as float32 bytes."""
    return embeddings([(title, abstract)])[0].tobytes()


def normalised(rows):
    import numpy as np

    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))[:, None]
    norms[norms == 0] = 1
    return (rows / norms).astype(np.float32, copy=False)


def dense(stored):
    """Stored vectors (Paper.vector values) as an L2-normalised float32 matrix, one row per
    paper, so that a dot product is a cosine and many rows score as one BLAS call. A paper
    without a vector gets a row of zeros: similar to nothing."""
    import numpy as np

    rows = [np.frombuffer(vector, dtype=np.float32) if vector else None for vector in stored]
    width = next((len(row) for row in rows if row is not None), DIMENSIONS)
    matrix = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        if row is not None and len(row) == width:
            matrix[i] = row
    return normalised(matrix)


def most_similar(vector, others, n):
    """Indices and cosines of the n stored vectors in `others` closest to the stored `vector`."""
    import numpy as np

    if not others or not vector:
        return []
    scores = dense(others) @ dense([vector])[0]
    order = np.argsort(-scores)[:n]
    return [(int(i), float(scores[i])) for i in order if scores[i] > 0]
