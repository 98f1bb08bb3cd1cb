"""Ranking measured on real arXiv listings (`bench/ranking.py --arxiv [PATH]`).

The corpus (../shared/data/arxiv-10k.json.gz, see its README) is never a test dependency.
Readers are interested in one category (or two); their likes are earlier papers of it,
their dislikes earlier papers of other categories; their day is 60 later papers of which 10
are in their interest (chance precision 10/60 = 0.167). A paper is relevant when the interest
is among its categories; the other 50 have none of the reader's categories.

Papers are taken evenly from each primary category (the first two thirds by arXiv id are
"earlier", the rest "later"), at most --per-category of an interest and --others of other
categories; --per-category 0 takes the whole corpus. Vectors are cached on disk per model
(var/bench/), so reruns only embed what is new.

Text models: the shipped and previous models behind papers.vectors' interface (wordllama,
MiniLM), a TF-IDF fitted on the earlier papers (as the project fits its lexical model on the
papers it holds), and blends a * model + (1 - a) * TF-IDF of the profiles' cosines.
Learners: Rocchio's centroid (likes minus half the dislikes), the most similar liked paper,
and a per-reader logistic regression on the blended cosines to each voted paper.
"""

import gzip
import json
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "arxiv-10k.json.gz"
CACHE = ROOT / "var" / "bench"
# Categories with a clear subject (cs.LG and cs.AI are catch-alls, README of the data).
INTERESTS = ["cs.CV", "cs.CL", "cs.RO", "quant-ph", "cond-mat.mtrl-sci", "cs.CR", "cs.GR", "physics.chem-ph"]
PAIRS = [("cs.CL", "quant-ph"), ("cs.RO", "cs.CR"), ("cs.CV", "physics.chem-ph"), ("cs.GR", "cond-mat.mtrl-sci")]
CURVE = [(1, 1), (3, 2), (5, 3), (10, 7)]
DAY, RELEVANT = 60, 10


def load(path, per_category, others):
    papers = json.load(gzip.open(path))["papers"]
    by_primary = defaultdict(list)
    for paper in sorted(papers, key=lambda p: p["id"]):
        by_primary[paper["categories"][0]].append(paper)
    chosen = []
    for category, group in by_primary.items():
        cap = per_category if category in INTERESTS else others
        if cap and len(group) > cap:
            group = [group[round(i * (len(group) - 1) / (cap - 1))] for i in range(cap)]
        cut = round(len(group) * 2 / 3)
        for i, paper in enumerate(group):
            chosen.append(dict(paper, earlier=i < cut))
    return chosen


def cached_vectors(name, embed, papers, shard=(0, 1), chunk=64):
    """{paper id: vector} of a model, embedding only papers not in its cache files. shard
    (i, n): embed the i-th of n parts of what is missing, into a file of its own (n processes
    at once), and return nothing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = f"arxiv-{''.join(c if c.isalnum() else '_' for c in name)}"
    known = {}
    for path in sorted(CACHE.glob(stem + "*.npz")):
        stored = np.load(path)
        known.update(zip(stored["ids"].tolist(), stored["vectors"]))
    missing = [p for p in papers if p["id"] not in known][shard[0] :: shard[1]]
    path = CACHE / f"{stem}{'' if shard[1] == 1 else f'-{shard[0]}'}.npz"
    mine = dict(np.load(path).items()) if path.exists() else {"ids": np.array([]), "vectors": np.zeros((0, 1))}
    mine = dict(zip(mine["ids"].tolist(), mine["vectors"]))
    start, done = time.perf_counter(), 0
    for i in range(0, len(missing), chunk):
        part = missing[i : i + chunk]
        made = dict(zip([p["id"] for p in part], embed([(p["title"], p["abstract"]) for p in part])))
        known.update(made)
        mine.update(made)
        done += len(part)
        np.savez(path, ids=np.array(list(mine)), vectors=np.stack(list(mine.values())))
        if done % (chunk * 8) == 0:
            print(f"  {done}/{len(missing)} embedded, {done / (time.perf_counter() - start):.1f} papers/s", flush=True)
    if shard[1] > 1:
        return None, (len(missing), time.perf_counter() - start)
    return {p["id"]: known[p["id"]] for p in papers}, (len(missing), time.perf_counter() - start)


def tfidf_vectors(papers):
    """A TF-IDF fitted on the earlier papers (the project fits on those it holds), applied to
    all: its full rows, and their projection (papers.lexical, what the project stores)."""
    from papers import lexical, vectors

    fitted = lexical.fit([(p["title"], p["abstract"]) for p in papers if p["earlier"]])
    pairs = [(p["title"], p["abstract"]) for p in papers]
    full = fitted[0].transform(vectors.texts(pairs)).toarray().astype(np.float32)  # before the projection
    ids = [p["id"] for p in papers]
    return dict(zip(ids, full)), dict(zip(ids, lexical.transform(fitted, pairs)))


def make_readers(papers, count, seed):
    """Readers per interest (a category or a pair) and per number of votes: likes, dislikes, day."""
    rng = random.Random(seed)
    readers = []
    for interest in [(c,) for c in INTERESTS] + PAIRS:
        inside = lambda p: any(c in p["categories"] for c in interest)  # noqa: E731
        liked_pool = [p["id"] for p in papers if p["earlier"] and p["categories"][0] in interest]
        disliked_pool = [p["id"] for p in papers if p["earlier"] and not inside(p)]
        relevant_pool = [p["id"] for p in papers if not p["earlier"] and inside(p)]
        other_pool = [p["id"] for p in papers if not p["earlier"] and not inside(p)]
        for _ in range(count):
            day = rng.sample(relevant_pool, RELEVANT) + rng.sample(other_pool, DAY - RELEVANT)
            likes, dislikes = rng.sample(liked_pool, CURVE[-1][0]), rng.sample(disliked_pool, CURVE[-1][1])
            readers.append({"interest": interest, "likes": likes, "dislikes": dislikes, "day": day,
                            "relevant": set(day[:RELEVANT])})
    return readers


def matrix(vectors, ids):
    rows = np.stack([vectors[i] for i in ids]).astype(np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1, norms)


def rocchio(models, weights, likes, dislikes, day):
    """Blend of each model's Rocchio cosines (centroid of likes minus half the dislikes)."""
    score = 0
    for vectors, weight in zip(models, weights):
        centroid = matrix(vectors, likes).sum(0) - 0.5 * matrix(vectors, dislikes).sum(0) if dislikes else matrix(vectors, likes).sum(0)
        score = score + weight * (matrix(vectors, day) @ (centroid / (np.linalg.norm(centroid) or 1)))
    return score


def nearest(models, weights, likes, dislikes, day):
    """Blended cosine to the most similar liked paper, minus half that to the most similar disliked."""
    score = 0
    for vectors, weight in zip(models, weights):
        candidates = matrix(vectors, day)
        part = (candidates @ matrix(vectors, likes).T).max(1)
        if dislikes:
            part = part - 0.5 * (candidates @ matrix(vectors, dislikes).T).max(1)
        score = score + weight * part
    return score


def logistic(models, weights, likes, dislikes, day):
    """Rocchio, plus a per-reader logistic regression (features: each model's cosines to the
    centroid of likes and to that of dislikes) once there are 5 votes of each kind."""
    base = rocchio(models, weights, likes, dislikes, day)
    if len(dislikes) < 5:
        return base
    from sklearn.linear_model import LogisticRegression

    def features(ids):
        columns = []
        for vectors in models:
            rows = matrix(vectors, ids)
            for group in (likes, dislikes):
                centroid = matrix(vectors, group).mean(0)
                columns.append(rows @ (centroid / (np.linalg.norm(centroid) or 1)))
        return np.stack(columns, 1)

    voted = likes + dislikes
    model = LogisticRegression(C=1.0).fit(features(voted), [1] * len(likes) + [0] * len(dislikes))
    return model.decision_function(features(day))


LEARNERS = {"rocchio": rocchio, "nearest": nearest, "logistic": logistic}


def evaluate(readers, models, weights, learner, likes, dislikes):
    """Mean precision@5 and nDCG@10 per interest, for readers with that many votes."""
    from realtext import ndcg_at

    results = defaultdict(list)
    for reader in readers:
        score = LEARNERS[learner](models, weights, reader["likes"][:likes], reader["dislikes"][:dislikes], reader["day"])
        order = [reader["day"][j] for j in np.argsort(-np.asarray(score), kind="stable")]
        p5 = sum(1 for pid in order[:5] if pid in reader["relevant"]) / 5
        results[reader["interest"]].append((p5, ndcg_at(order, reader["relevant"], 10)))
    return {interest: np.mean(values, axis=0) for interest, values in results.items()}


def summary(by_interest):
    single = [v for k, v in by_interest.items() if len(k) == 1]
    pair = [v for k, v in by_interest.items() if len(k) == 2]
    return np.mean(single, axis=0), np.mean(pair, axis=0)


def neighbours_share(papers, vectors, floor=None, n=5):
    """Share of each later paper's n nearest earlier-or-later papers sharing its primary
    category; with a floor, neighbours below it are not listed (and the share is of those
    listed; also the mean number listed)."""
    ids = [p["id"] for p in papers]
    primary = np.array([p["categories"][0] for p in papers])
    rows = matrix(vectors, ids)
    cos = rows @ rows.T
    np.fill_diagonal(cos, -np.inf)
    top = np.argsort(-cos, axis=1)[:, :n]
    same = primary[top] == primary[:, None]
    listed = np.take_along_axis(cos, top, 1) >= (floor if floor is not None else -np.inf)
    return float((same & listed).sum() / max(listed.sum(), 1)), float(listed.sum(1).mean())


def run(args):
    import os
    import sys

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from papers import vectors

    papers = load(args.arxiv, args.per_category, args.others)
    print(f"{len(papers)} arXiv papers ({sum(p['earlier'] for p in papers)} earlier), interests {', '.join(INTERESTS)}; "
          f"pairs {', '.join('+'.join(p) for p in PAIRS)}; {args.arxiv_readers} readers per interest and number of votes")
    models = {}
    for name in ("wordllama", "minilm"):
        models[name], (count, seconds) = cached_vectors(vectors.MODELS[name], lambda pairs: vectors.embeddings(pairs, name),
                                                        papers, args.shard)
        if count:
            print(f"{name}: embedded {count} papers in {seconds:.0f} s, {count / seconds:.1f} papers/s")
    if args.shard[1] > 1:
        return
    start = time.perf_counter()
    models["tfidf"], models["lsa"] = tfidf_vectors(papers)
    print(f"tfidf: fitted and applied in {time.perf_counter() - start:.1f} s")
    for a in args.blends:  # what the project stores: one row, the two models' rows side by side
        models[f"stored {a}"] = {pid: np.concatenate([math.sqrt(a) * models["minilm"][pid], math.sqrt(1 - a) * row])
                                 for pid, row in models["lsa"].items()}
    readers = make_readers(papers, args.arxiv_readers, args.seed)
    variants = [("wordllama", ("wordllama",), (1,)), ("minilm", ("minilm",), (1,)), ("tfidf", ("tfidf",), (1,))]
    variants += [(f"wordllama+tfidf .5", ("wordllama", "tfidf"), (.5, .5))]
    variants += [("lsa", ("lsa",), (1,))]
    variants += [(f"minilm+tfidf {a}", ("minilm", "tfidf"), (a, 1 - a)) for a in args.blends]
    variants += [(f"minilm|lsa {a}", (f"stored {a}",), (1,)) for a in args.blends]
    print(f"\nprecision@5 / nDCG@10, single-category readers | pairs (chance {RELEVANT / DAY:.3f}), after likes+dislikes")
    print(f"{'model':20} {'learner':9} " + " ".join(f"{f'{l}+{d}':>15}" for l, d in CURVE) + f" {'pairs 3+2':>11}")
    detail = {}
    for label, names, weights in variants:
        for learner in args.learners:
            cells, pairs = [], None
            for likes, dislikes in CURVE:
                by_interest = evaluate(readers, [models[n] for n in names], weights, learner, likes, dislikes)
                single, pair = summary(by_interest)
                cells.append(f"{single[0]:.3f} / {single[1]:.3f}")
                if (likes, dislikes) == (3, 2):
                    pairs, detail[label, learner] = pair, by_interest
            print(f"{label:20} {learner:9} " + " ".join(f"{c:>15}" for c in cells) + f" {pairs[0]:5.3f}/{pairs[1]:5.3f}",
                  flush=True)
    print("\nby interest after 3+2 votes (precision@5), Rocchio:")
    shown = [key for key in detail if key[1] == "rocchio"]
    print(f"{'interest':28} " + " ".join(f"{label[:14]:>14}" for label, _ in shown))
    for interest in detail[shown[0]]:
        print(f"{'+'.join(interest):28} " + " ".join(f"{detail[key][interest][0]:14.3f}" for key in shown))
    print("\nsimilar papers: share of a paper's 5 nearest neighbours sharing its primary category "
          "(with a floor: share of those listed, and how many are listed)")
    for label, names, weights in variants:
        if len(names) == 1:
            share, _ = neighbours_share(papers, models[names[0]])
            print(f"  {label:20} no floor {share:.3f}")
    shipped = f"stored {vectors.SEMANTIC_WEIGHT}"
    for name in ("minilm", shipped) if shipped in models else ("minilm",):
        for floor in args.floors:
            share, listed = neighbours_share(papers, models[name], floor)
            print(f"  {name:14} floor {floor:.2f} {share:.3f}, {listed:.1f} listed")
    if shipped in models:
        before, after = scoring(models["wordllama"], papers, args.scale), scoring(models[shipped], papers, args.scale)
        print(f"\nscoring {args.scale:,} profiles (8 votes each) against 60 papers, in groups of 500: "
              f"{before:.2f} s with wordllama's 256-d vectors, {after:.2f} s with the stored {len(models[shipped][papers[0]['id']])}-d")
    speed(papers)


def speed(papers, count=64):
    """The text model's speed on these abstracts: per CPU second (what two cores multiply) and
    by the clock (what this machine's other processes leave)."""
    from papers import vectors

    pairs = [(p["title"], p["abstract"]) for p in papers[:count]]
    vectors.embeddings(pairs[:2])  # loaded
    cpu, wall = time.process_time(), time.perf_counter()
    vectors.embeddings(pairs)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"\ntext model {vectors.MODEL}: {count} abstracts at {count / cpu:.1f} papers per CPU second, "
          f"{count / wall:.1f} papers/s by the clock here; a day of 1,000 papers takes {1000 / count * cpu / 60:.1f} "
          f"CPU minutes ({1000 / count * cpu / 120:.1f} min on two cores)")


def scoring(stored, papers, scale, votes=8, day=60):
    """Scoring `scale` profiles of `votes` votes against a day, with the shipped stored vectors."""
    from newsletter.profiles import profiles

    rng = np.random.default_rng(1)
    dense = dict(enumerate(stored.values()))  # numbered, as the database numbers papers
    candidate_ids = list(range(day))
    candidates = np.stack([dense[pid] for pid in candidate_ids])
    voted = np.arange(day, len(dense))
    picks = rng.choice(voted, (500, votes))
    signs = np.where(rng.random((500, votes)) < 0.6, 1, -1)
    cast = [(i, int(picks[i, j]), int(signs[i, j])) for i in range(500) for j in range(votes)]  # as read from the database
    start = time.perf_counter()
    for _ in range(0, scale, 500):  # the send path's groups
        profiles(cast, dense, {}, candidate_ids, candidates)
    return time.perf_counter() - start
