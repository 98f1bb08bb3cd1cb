#!/usr/bin/env python
"""Does the learning ranking beat topic-only? Simulated readers over 20 days.

    .venv/bin/python bench/ranking.py [--readers 300] [--days 20] [--scale 100000]
    .venv/bin/python bench/ranking.py --arxiv [PATH]   # real arXiv listings: bench/arxiv.py

Papers: each day 40 papers whose text is drawn from the real sample abstracts of one topic
(tagged by the project's own topic rules) and whose authors come from a pool where each
author writes mostly on one topic. Readers have hidden interests — one topic and three
favourite authors — but declare two topics (the hidden one and another), as people do. Every
day each reader gets the learning digest and votes on it with noise: more-like-this on
relevant papers (70 %), less-like-this on irrelevant ones (30 %), 10 % of votes flipped; a
reader who likes a paper by a favourite author follows its authors half the time. Both
rankings are scored against the hidden interests: precision@5 and nDCG@10 per day.
Then the time to score --scale subscribers with profiles against one day's papers, against
the same without profiles (the production path, memoised per identical preferences).
"""

import argparse
import atexit
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import arxiv
from realtext import ndcg_at

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample"
FIRST = ["Ada", "Alan", "Grace", "Zoë", "Kenji", "Maria", "Ravi", "Sofia", "Omar", "Chloe", "Lukas", "Hana", "Nadia",
         "Tomasz", "Amara", "Yuki", "Felix", "Arjun", "Ines", "Wei"]
LAST = ["Lovelace", "Turing", "Hopper", "Ünal", "López", "Patel", "Rossi", "Kim", "Zhang", "Müller", "Dubois",
        "Okafor", "Silva", "Kowalski", "Haddad", "Sato", "Martin", "Garcia", "Sharma", "Ivanova"]


def setup_django():
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="paperboy-ranking-")
    atexit.register(shutil.rmtree, os.environ["VAR_DIR"], ignore_errors=True)  # a 100k run leaves ~700 MB
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def sample_by_topic():
    """Real abstracts from the sample feed, grouped by the topics our rules give them."""
    import json

    from papers.models import Topic

    topics = list(Topic.objects.all())
    by_topic = defaultdict(list)
    for path in sorted(SAMPLE.glob("daily_papers_*.json")):
        for item in json.loads(path.read_text()):
            title, abstract = item["paper"]["title"], item["paper"]["summary"]
            text = f"{title}\n{abstract}"
            for topic in topics:
                if topic.matches(text, []):
                    by_topic[topic.pk].append((title, abstract))
    return {t: papers for t, papers in by_topic.items() if len(papers) >= 4}, {t.pk: t.name for t in topics}


class World:
    def __init__(self, rng, by_topic):
        self.rng = rng
        self.by_topic = by_topic
        self.topics = sorted(by_topic)
        names = [f"{f} {l}" for f in FIRST for l in LAST]
        rng.shuffle(names)
        self.authors = {name: rng.choice(self.topics) for name in names[:200]}
        self.by_home = defaultdict(list)
        for name, home in self.authors.items():
            self.by_home[home].append(name)
        self.next_id = 1
        # The papers' vectors as the project stores them: the text model's beside a lexical
        # model fitted on the texts papers are made of (papers.services.papers_embed).
        from papers import lexical

        self.lexical = lexical.fit(sorted({pair for pairs in by_topic.values() for pair in pairs}))

    def paper(self, day):
        from papers.models import author_key
        from papers.services import topics_for
        from papers import lexical, vectors

        topic = self.rng.choice(self.topics)
        title, abstract = self.rng.choice(self.by_topic[topic])
        sentences = abstract.split(". ")
        # Another paper on the topic: the same vocabulary, other sentences.
        for _ in range(2):
            other = self.rng.choice(self.by_topic[topic])[1].split(". ")
            sentences = self.rng.sample(sentences, max(1, len(sentences) // 2)) + self.rng.sample(other, max(1, len(other) // 2))
        abstract = ". ".join(sentences)
        home = self.by_home[topic] or list(self.authors)
        authors = self.rng.sample(home, min(2, len(home))) + [self.rng.choice(list(self.authors))]

        class Tagged:  # what topics_for needs of a paper
            tagging_text = f"{title}\n{abstract}"
            categories = []

        paper = {
            "id": self.next_id, "title": title, "abstract": abstract, "authors": authors, "true_topic": topic,
            "upvotes": int(self.rng.paretovariate(1.2) * 3), "day": day,
            "topic_ids": frozenset(t.pk for t in topics_for(Tagged, TOPICS)),
            "author_keys": tuple((author_key(a), a) for a in authors),
        }
        pair = [(title, abstract)]
        paper["dense"] = vectors.normalised(vectors.combined(vectors.embeddings(pair), lexical.transform(self.lexical, pair)))[0]
        self.next_id += 1
        return paper


def candidates_of(papers):
    from newsletter.ranking import Candidate

    return [
        Candidate(id=p["id"], title=p["title"], text=f"{p['title']}\n{p['abstract']}".lower(), upvotes=p["upvotes"],
                  listed_ordinal=p["day"], topic_ids=p["topic_ids"], authors=p["author_keys"])
        for p in papers
    ]


def relevant(reader, paper):
    return paper["true_topic"] == reader["hidden_topic"] or bool(set(paper["authors"]) & reader["favourites"])


def precision_at(picks, rel, k):
    return sum(1 for p in picks[:k] if p in rel) / k


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="readers voting on the real sample abstracts (bench/realtext.py)")
    parser.add_argument("--readers", type=int, default=300)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--papers", type=int, default=40, help="papers a day")
    parser.add_argument("--scale", type=int, default=100_000, help="subscribers for the timing")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--arxiv", nargs="?", const=arxiv.DEFAULT, type=Path, metavar="PATH",
                        help=f"readers of real arXiv listings (bench/arxiv.py; default {arxiv.DEFAULT})")
    parser.add_argument("--arxiv-readers", type=int, default=40, help="--arxiv: readers per interest")
    parser.add_argument("--per-category", type=int, default=150, help="--arxiv: papers per interest category (0: all)")
    parser.add_argument("--others", type=int, default=12, help="--arxiv: papers per other category")
    parser.add_argument("--shard", type=lambda v: tuple(map(int, v.split("/"))), default=(0, 1), metavar="I/N",
                        help="--arxiv: only embed the I-th of N parts of the papers not yet cached (N processes at once)")
    parser.add_argument("--learners", nargs="+", default=list(arxiv.LEARNERS), choices=list(arxiv.LEARNERS))
    parser.add_argument("--blends", nargs="+", type=float, default=[0.5, 0.6, 0.7], help="--arxiv: MiniLM's weight")
    parser.add_argument("--floors", nargs="+", type=float, default=[0.3, 0.4, 0.5], help="--arxiv: similar papers' floor")
    args = parser.parse_args()
    if args.arxiv:
        return arxiv.run(args)
    setup_django()
    if args.real:
        return real(args)
    global TOPICS
    from newsletter.offers import ranking_weights
    from newsletter.profiles import profiles
    from newsletter.ranking import Interests, rank
    from papers.models import Topic, author_key

    TOPICS = list(Topic.objects.all())
    rng = random.Random(args.seed)
    by_topic, topic_names = sample_by_topic()
    world = World(rng, by_topic)
    readers = []
    for n in range(args.readers):
        hidden = rng.choice(world.topics)
        other = rng.choice([t for t in world.topics if t != hidden])
        readers.append({
            "id": n, "hidden_topic": hidden, "declared": frozenset([hidden, other]),
            "favourites": set(rng.sample(world.by_home[hidden] or list(world.authors), 2) + rng.sample(list(world.authors), 1)),
            "followed": set(), "votes": [],
        })
    weights = ranking_weights()  # the settings', as a send uses them
    vectors_by_id, titles_by_id = {}, {}
    print(f"{args.readers} readers, {args.days} days, {args.papers} papers a day, {len(world.topics)} topics")
    print("day  precision@5 topic-only  learning   nDCG@10 topic-only  learning")
    totals = defaultdict(float)
    for day in range(1, args.days + 1):
        papers = [world.paper(day) for _ in range(args.papers)]
        by_id = {p["id"]: p for p in papers}
        for p in papers:
            vectors_by_id[p["id"]], titles_by_id[p["id"]] = p["dense"], p["title"]
        cands = candidates_of(papers)
        cand_ids = [c.id for c in cands]
        cand_matrix = np.stack([p["dense"] for p in papers])
        found = profiles([(r["id"], pid, value) for r in readers for pid, value in r["votes"]], vectors_by_id, titles_by_id,
                         cand_ids, cand_matrix)
        scores = defaultdict(float)
        for reader in readers:
            rel = {p["id"] for p in papers if relevant(reader, p)}
            common = {"candidates": cands, "featured": [], "exclude": set(), "topic_names": topic_names, "limit": 10,
                      "trending_fill": 10, "weights": weights}
            topic_only = [p for p, _ in rank(interests=Interests(topic_ids=reader["declared"]), **common)]
            interests = Interests(topic_ids=reader["declared"], authors=frozenset(author_key(a) for a in reader["followed"]))
            similar = found.similar(reader["id"]) if reader["id"] in found else None
            # As rank() takes it; the bench reads the picks' papers, not their reasons.
            similar = similar and {pid: (cos, (0, title, 0.0)) for pid, (cos, title) in similar.items()}
            learning = [p for p, _ in rank(interests=interests, similar=similar, **common)]
            scores["p_topic"] += precision_at(topic_only, rel, 5)
            scores["p_learn"] += precision_at(learning, rel, 5)
            scores["n_topic"] += ndcg_at(topic_only, rel, 10)
            scores["n_learn"] += ndcg_at(learning, rel, 10)
            for paper_id in learning:  # the reader reads their digest and votes, with noise
                good = paper_id in rel
                if rng.random() < (0.7 if good else 0.3):
                    value = 1 if good else -1
                    if rng.random() < 0.1:
                        value = -value
                    reader["votes"].append((paper_id, value))
                    if value > 0 and good and set(by_id[paper_id]["authors"]) & reader["favourites"] and rng.random() < 0.5:
                        reader["followed"].update(by_id[paper_id]["authors"])
        n = len(readers)
        print(f"{day:3d}  {scores['p_topic'] / n:22.3f}  {scores['p_learn'] / n:8.3f}   {scores['n_topic'] / n:18.3f}  {scores['n_learn'] / n:8.3f}")
        for key, value in scores.items():
            totals[key] += value / n
    d = args.days
    print(f"mean over {d} days: precision@5 {totals['p_topic'] / d:.3f} -> {totals['p_learn'] / d:.3f} "
          f"({(totals['p_learn'] / totals['p_topic'] - 1) * 100:+.0f} %), nDCG@10 {totals['n_topic'] / d:.3f} -> "
          f"{totals['n_learn'] / d:.3f} ({(totals['n_learn'] / totals['n_topic'] - 1) * 100:+.0f} %)")
    timing(args, world, rng, readers, vectors_by_id, titles_by_id, topic_names, weights)


def timing(args, world, rng, readers, vectors_by_id, titles_by_id, topic_names, weights):
    """Score --scale subscribers against one day's papers, in groups of 500 as the workers do:
    without profiles through the memo of identical preferences, with profiles through
    profiles() and rank_many()."""
    from newsletter.profiles import profiles
    from newsletter.ranking import Interests, Pool, rank_many

    papers = [world.paper(args.days + 1) for _ in range(args.papers)]
    for p in papers:
        vectors_by_id[p["id"]], titles_by_id[p["id"]] = p["dense"], p["title"]
    pool = Pool(candidates_of(papers), [], topic_names, weights)
    cand_ids, cand_matrix = pool.ids, np.stack([vectors_by_id[pid] for pid in pool.ids])
    voted_pool = [pid for pid in vectors_by_id if pid not in set(cand_ids)]
    people = [(frozenset(rng.sample(world.topics, rng.randint(0, 3))), frozenset(rng.sample(voted_pool, 8))) for _ in range(args.scale)]

    def run(with_profiles):
        memo = {}
        start = time.perf_counter()
        for first in range(0, len(people), 500):
            group = people[first:first + 500]
            if with_profiles:
                votes = [(n, pid, 1 if i % 3 else -1) for n, (_, voted) in enumerate(group) for i, pid in enumerate(voted)]
                found = profiles(votes, vectors_by_id, titles_by_id, cand_ids, cand_matrix)
                rows = [n for n in range(len(group)) if n in found]
                profile_rows = np.array([found.rows[n] for n in rows], dtype=int)
                rank_many(pool, [(Interests(topic_ids=group[n][0]), frozenset()) for n in rows], limit=10,
                          cosines=found.cosines[profile_rows],
                          closest=lambda rs, columns: [(0, t, 0.0) for t in found.closest(profile_rows[rs], columns)])
                continue
            missing = {Interests(topic_ids=topics) for topics, _ in group} - memo.keys()
            for interests, picks in zip(missing, rank_many(pool, [(i, frozenset()) for i in missing], limit=10)):
                memo[interests] = picks
        return time.perf_counter() - start

    plain, learned = run(False), run(True)
    print(f"scoring {args.scale:,} subscribers against one day's {args.papers} papers: without profiles {plain:.2f} s "
          f"({plain / args.scale * 1e6:.0f} us each), with profiles of 8 votes each {learned:.2f} s "
          f"({learned / args.scale * 1e6:.0f} us each)")


def real(args):
    """Readers who vote on real abstracts, each text model in turn (bench/realtext.py)."""
    import resource

    import realtext
    from django.conf import settings

    from papers import vectors

    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    vectors.embeddings([("A paper", "loads the model")])
    loaded = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    start = time.perf_counter()
    areas = realtext.import_sample()
    imported = time.perf_counter() - start
    pairs = list(Paper_texts())
    start = time.perf_counter()
    vectors.embeddings(pairs)
    embedded = time.perf_counter() - start
    print(f"text model {vectors.MODEL!r}: loaded in {loaded:.2f} s, +{grown:.0f} MB peak memory; "
          f"{len(pairs)} papers embedded in {embedded * 1000:.0f} ms at once, imported one by one in {imported:.2f} s")
    readers = realtext.make_readers(areas, args.readers, args.seed)
    ids = realtext.subscribe(readers)
    before = dict(settings.RANKING_WEIGHTS, profile=2.0, threshold=0.2)  # the defaults before calibration
    print(f"{len(readers)} readers following nothing: 3 likes in one area ({', '.join(realtext.READER_AREAS)}), "
          f"2 dislikes in others; their next digest (no featured papers), through newsletter.offers")
    print(f"{'model':13} {'weights':28} {'precision@5':>11} {'nDCG@10':>8} {'trending share':>15}")
    for name in realtext.MODELS:
        realtext.store(realtext.model_vectors(name))
        picks, found = realtext.digests(ids, readers, before)
        cosines, same, other = realtext.cosine_distribution(found, ids, readers, areas)
        fitted = dict(before, **realtext.calibrated(cosines))
        for label, weights in (("before", before), ("calibrated", fitted)):
            picks, _ = realtext.digests(ids, readers, weights)
            s = realtext.scores(picks, ids, readers, areas)
            print(f"{name:13} {label + ' ' + str(weights['profile']) + ', ' + str(weights['threshold']):28} "
                  f"{s['precision@5']:11.3f} {s['ndcg@10']:8.3f} {s['trending']:15.3f}")
        if name == "shipped":
            shipped = (fitted["profile"], fitted["threshold"])
            distribution = (cosines, same, other)
    percentiles = [10, 25, 50, 75, 90, 99]
    print(f"cosines of the shipped vectors' profiles to unseen papers, percentiles {percentiles}:")
    for label, values in zip(("all", "reader's area", "other areas"), distribution):
        print(f"  {label:14} {' '.join(f'{v:6.3f}' for v in np.percentile(values, percentiles))}")
    print(f"calibrated for it (bench/realtext.py calibrated()): profile {shipped[0]}, threshold {shipped[1]}; "
          f"settings.RANKING_WEIGHTS: profile {settings.RANKING_WEIGHTS['profile']}, threshold {settings.RANKING_WEIGHTS['threshold']}")


def Paper_texts():
    from papers.models import Paper

    return Paper.objects.order_by("pk").values_list("title", "abstract")


if __name__ == "__main__":
    main()
