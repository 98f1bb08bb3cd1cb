"""Recommendations on real abstracts: do votes bring a reader the papers of their area?

The 64 real papers of sample/ are imported through the real import (their vectors computed
there), each labelled with a research area by hand (bench/labels.csv: how, in its header).
Simulated readers follow no topic, press "More like this" on 3 papers of one area and "Less
like this" on 2 papers of other areas (newsletter.services.vote_record), and get their next
digest through the path a real send takes (newsletter.offers: the edition's offer, votes_of
and Offer.picks, with given ranking weights). They received
the five papers they voted on, so those are not offered again; no paper is featured, so every
pick in the digest is the reader's. Scored: precision@5 (share of the first five picks in the
reader's area), nDCG@10 (against the area's other papers), and the share of trending fill.

Text models compared, each written into the papers' stored vectors in turn: "old" (hashed
word counts and a 256-d random projection, the model before), "lexical" (TF-IDF fitted on
these papers, kept whole: as wide as their vocabulary), "lexical-svd" (the same reduced by
TruncatedSVD fitted on them, to 32 dimensions: a reduction needs fewer dimensions than
papers), "wordllama" (the text model before, centred), "minilm" (the shipped text model
alone) and "shipped" (what the project stores: MiniLM beside the lexical row of its fit on
the papers held, papers.services.papers_embed).
"""

import csv
import datetime as dt
import math
import random
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample"
LABELS = Path(__file__).with_name("labels.csv")
READER_AREAS = ("rl", "llm", "efficient")  # the areas with enough papers to like three and find more
EDITION_DAY = dt.date(2024, 3, 14)  # the last sample day: its daily offer holds all 64 papers
MODELS = ("old", "lexical", "lexical-svd", "wordllama", "minilm", "shipped")


def labels():
    """{arXiv id: area} from bench/labels.csv."""
    with LABELS.open() as f:
        return {row["arxiv_id"]: row["area"] for row in csv.DictReader(line for line in f if not line.startswith("#"))}


def import_sample():
    """The sample feeds through the real import; returns {paper id: area}."""
    from papers.models import Paper
    from papers.services import papers_embed, papers_import_feed

    for path in sorted(SAMPLE.glob("daily_papers_*.json")):
        papers_import_feed(data=path.read_bytes())
    papers_embed()  # what the background task does once the import is committed
    area = labels()
    return {pk: area[arxiv_id] for pk, arxiv_id in Paper.objects.values_list("pk", "arxiv_id")}


def sample_centre():
    """The mean of wordllama's raw embeddings of the sample abstracts: papers/text_centre.json."""
    from papers import vectors
    from papers.models import Paper

    rows = Paper.objects.order_by("arxiv_id").values_list("title", "abstract")
    return vectors.raw_embeddings(f"{title}. {abstract}" for title, abstract in rows).mean(axis=0)


def make_readers(areas, n, seed):
    """n readers: (area, 3 papers of it liked, 2 papers of other areas disliked)."""
    rng = random.Random(seed)
    by_area = {a: sorted(pk for pk, area in areas.items() if area == a) for a in set(areas.values())}
    readers = []
    for i in range(n):
        area = READER_AREAS[i % len(READER_AREAS)]
        others = sorted(pk for pk, a in areas.items() if a != area)
        readers.append((area, rng.sample(by_area[area], 3), rng.sample(others, 2)))
    return readers


def subscribe(readers):
    """A subscriber per reader, following nothing, with their votes; returns their ids."""
    from newsletter.models import Subscriber
    from newsletter.services import vote_record
    from papers.models import Paper

    papers = Paper.objects.in_bulk()
    ids = []
    for n, (_, liked, disliked) in enumerate(readers):
        subscriber = Subscriber.objects.create(email=f"reader{n}@example.org", status=Subscriber.Status.ACTIVE)
        for pk in liked:
            vote_record(subscriber=subscriber, paper=papers[pk], value=1)
        for pk in disliked:
            vote_record(subscriber=subscriber, paper=papers[pk], value=-1)
        ids.append(subscriber.pk)
    return ids


def model_vectors(name):
    """{paper id: float32 row} of a text model over the sample papers."""
    from papers import vectors
    from papers.models import Paper

    rows = list(Paper.objects.order_by("pk").values_list("pk", "title", "abstract"))
    if name in ("wordllama", "minilm"):
        matrix = vectors.embeddings([(title, abstract) for _, title, abstract in rows], name)
    elif name == "shipped":
        from papers.services import papers_embed

        papers_embed(everything=True)
        stored = dict(Paper.objects.values_list("pk", "vector"))
        matrix = vectors.dense([stored[pk] for pk, _, _ in rows])
    elif name == "old":
        from sklearn.feature_extraction.text import HashingVectorizer
        from sklearn.random_projection import SparseRandomProjection

        hashed = HashingVectorizer(n_features=2**18, alternate_sign=False, stop_words="english", ngram_range=(1, 2))
        counts = hashed.transform([f"{title}. {title}. {abstract}" for _, title, abstract in rows])
        matrix = SparseRandomProjection(n_components=256, random_state=0).fit(counts[:1]).transform(counts).toarray()
    elif name.startswith("lexical"):
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", ngram_range=(1, 2))
        matrix = tfidf.fit_transform([f"{title}. {title}. {abstract}" for _, title, abstract in rows])
        # Reduced, as the send path's dense rows need: to half as many dimensions as papers.
        matrix = TruncatedSVD(len(rows) // 2, random_state=0).fit_transform(matrix) if name == "lexical-svd" else matrix.toarray()
    matrix = vectors.normalised(np.asarray(matrix, dtype=np.float32))
    return {pk: row for (pk, _, _), row in zip(rows, matrix)}


def store(by_id):
    """Write a model's vectors into the papers' stored vectors, as embed_papers would."""
    from papers.models import Paper

    for pk, row in by_id.items():
        Paper.objects.filter(pk=pk).update(vector=row.tobytes())


def digests(subscriber_ids, readers, weights):
    """{subscriber: picks} of the next digest of each simulated reader, as a send makes them,
    and the profiles found (for the distribution of cosines)."""
    from django.test import override_settings

    from newsletter.fanout import edition_get
    from newsletter.models import Subscriber
    from newsletter.offers import edition_offer, interests_of, votes_of

    interests = interests_of({pk: ("", "") for pk in subscriber_ids})
    received = {pk: frozenset(liked + disliked) for pk, (_, liked, disliked) in zip(subscriber_ids, readers)}
    with override_settings(RANKING_WEIGHTS=weights):
        offer = edition_offer(edition_get(EDITION_DAY), Subscriber.Frequency.DAILY)
        votes = votes_of(subscriber_ids)
        picks = offer.picks({pk: (interests[pk], received[pk]) for pk in subscriber_ids}, votes)
        found = offer.profiles_for(votes)
    return picks, found


def ndcg_at(picks, relevant, k):
    dcg = sum(1 / math.log2(i + 2) for i, paper in enumerate(picks[:k]) if paper in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def scores(picks, subscriber_ids, readers, areas):
    """Mean precision@5, nDCG@10 and share of trending picks over the readers."""
    from newsletter.reasons import Kind

    p5 = ndcg = trending = 0.0
    for pk, (area, liked, disliked) in zip(subscriber_ids, readers):
        ids = [paper for paper, _ in picks[pk]]
        relevant = {paper for paper, a in areas.items() if a == area} - set(liked)
        p5 += sum(1 for paper in ids[:5] if areas[paper] == area) / 5
        ndcg += ndcg_at(ids, relevant, 10)
        trending += sum(1 for _, reason in picks[pk] if reason.kind == Kind.TRENDING) / max(len(ids), 1)
    n = len(readers)
    return {"precision@5": p5 / n, "ndcg@10": ndcg / n, "trending": trending / n}


def cosine_distribution(found, subscriber_ids, readers, areas):
    """Cosines of the readers' profiles to the papers they were not shown yet: (all, of their
    area, of other areas), as arrays."""
    same, other = [], []
    for pk, (area, liked, disliked) in zip(subscriber_ids, readers):
        if pk not in found:
            continue
        for paper, cosine in zip(found.candidate_ids, found.cosines[found.rows[pk]].tolist()):
            if paper not in liked and paper not in disliked:
                (same if areas[paper] == area else other).append(cosine)
    return np.array(same + other), np.array(same), np.array(other)


def calibrated(cosines, topic=1.0):
    """Ranking weights fitted to a model's cosines of profiles to papers (`cosines`, all of
    them, labels unused): a paper counts as similar from the 75th percentile on, so a profile
    matches about a quarter of what is on offer (enough for a digest of 10 out of ~40-60
    papers, few enough to choose); and a paper at the 90th percentile weighs as much as a
    followed topic, so the cosine's spread above the threshold outweighs trending's (0.5 at
    most) and a voter's digest is led by what they like."""
    threshold, top = np.percentile(cosines, [75, 90])
    return {"profile": round(float(topic / top), 1), "threshold": round(float(threshold), 2)}
