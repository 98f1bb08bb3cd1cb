"""Followed authors, profiles from votes, the blended ranking, similar papers, topic feeds."""

import datetime as dt
import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from newsletter.offers import edition_offer
from newsletter.models import Delivery, Edition, Vote
from newsletter.ranking import Candidate, Interests, rank
from newsletter.reasons import Kind, Reason
from papers.models import Paper, author_key
from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = pytest.mark.django_db

QUANT = "We quantize large language model weights to four bits with tiny accuracy loss and fast kernels."
ROBOT = "A legged robot learns to walk over rough terrain with reinforcement learning in simulation."


def test_author_names_match_without_case_or_accents():
    assert author_key("Zoë  ÜNAL") == author_key("zoe unal") == "zoe unal"


def candidate(id, upvotes=0, authors=(), topics=()):
    return Candidate(id=id, title=f"P{id}", text="", upvotes=upvotes, listed_ordinal=1,
                     topic_ids=frozenset(topics), authors=tuple((author_key(a), a) for a in authors))


def run(candidates, interests, similar=None):
    return rank(candidates=candidates, featured=[], interests=interests, exclude=set(), topic_names={1: "Robotics"},
                limit=10, similar=similar)


def test_each_reason_appears_when_it_should():
    cands = [candidate(1, 500), candidate(2, 1, authors=["Zoë Ünal"]), candidate(3, 2, topics=[1]), candidate(4, 3)]
    picks = dict(run(cands, Interests(topic_ids=frozenset([1]), authors=frozenset(["zoe unal"])),
                     similar={4: (0.9, (9, "Liked paper", 0.613)), 1: (0.05, (9, "Liked paper", 0.1))}))
    assert picks[2] == Reason(Kind.AUTHOR, "Zoë Ünal", 1.5)
    assert picks[3] == Reason(Kind.TOPIC, "Robotics", 1.0)
    assert picks[4] == Reason(Kind.SIMILAR, "9", 0.61, "Liked paper")  # the liked paper it is closest to, and how close
    assert picks[1] == Reason(Kind.TRENDING, "", 500.0)  # too dissimilar to count as a match (threshold 0.35)


def test_the_blend_puts_strong_profile_matches_above_weak_topic_ones():
    cands = [candidate(1, 100, topics=[1]), candidate(2, 1)]
    picks = run(cands, Interests(topic_ids=frozenset([1])), similar={2: (0.8, (9, "Liked", 0.8))})
    assert [p for p, _ in picks] == [2, 1]  # 2.4 * 0.8 > 1.0 + trending
    weak = run(cands, Interests(topic_ids=frozenset([1])), similar={2: (0.15, (9, "Liked", 0.15))})  # 2.4 * 0.15 < 1.0
    assert [p for p, _ in weak] == [1, 2]


def test_without_votes_or_authors_the_ranking_is_exactly_the_topic_one():
    cands = [candidate(n, n, topics=[1] if n % 2 else []) for n in range(1, 8)]
    robotics = Reason(Kind.TOPIC, "Robotics", 1.0)
    assert run(cands, Interests(topic_ids=frozenset([1]))) == [
        (7, robotics), (5, robotics), (3, robotics), (1, robotics), (6, Reason(Kind.TRENDING, "", 6.0)),
        (4, Reason(Kind.TRENDING, "", 4.0)), (2, Reason(Kind.TRENDING, "", 2.0))]


def test_profiles_come_from_liked_minus_disliked_papers():
    liked = make_paper("Four-bit LLM weights", abstract=QUANT, listed_on=DAY - dt.timedelta(days=5))
    disliked = make_paper("Walking robots", abstract=ROBOT, listed_on=DAY - dt.timedelta(days=5))
    quant = make_paper("Quantized language models at four bits", abstract=QUANT.replace("tiny", "small"), listed_on=DAY)
    robot = make_paper("Robots that walk", abstract=ROBOT.replace("legged", "quadruped"), listed_on=DAY)
    offer = edition_offer(Edition.objects.create(date=DAY), "daily")
    similar = offer.profiles_for([(1, liked.pk, 1), (1, disliked.pk, -1)]).similar(1)
    assert similar[quant.pk][0] > 0.3 and similar[quant.pk][1] == liked.pk  # named by its id: see Offer.liked()
    assert robot.pk not in similar or similar[robot.pk][0] < similar[quant.pk][0] / 3
    assert 2 not in offer.profiles_for([(2, disliked.pk, -1)])  # nothing liked: no profile


def test_papers_not_embedded_yet_or_by_another_model_match_no_profile_and_the_digest_still_goes():
    # After a fetch the day's papers wait for the papers worker; after a change of model old
    # vectors wait to be embedded again: neither is compared with the current vectors.
    voter = make_subscriber("voter@example.org")
    liked = [make_paper(f"Four-bit LLM weights {n}", abstract=QUANT, listed_on=DAY - dt.timedelta(days=5)) for n in range(3)]
    for paper in liked:
        Vote.objects.create(subscriber=voter, paper=paper, value=1)
    waiting = make_paper("Quantized language models at four bits", abstract=QUANT.replace("tiny", "small"), listed_on=DAY)
    old = make_paper("Four-bit kernels", abstract=QUANT, listed_on=DAY, upvotes=3)
    Paper.objects.filter(pk=waiting.pk).update(vector=b"", vector_model="")
    Paper.objects.filter(pk=old.pk).update(vector=bytes(256 * 4), vector_model="wordllama l2_supercat 256 0.4.0.post1, centred 1")
    offer = edition_offer(Edition.objects.create(date=DAY), "daily")
    assert 1 not in offer.profiles_for([(1, p.pk, 1) for p in liked])  # nothing comparable to be near
    call_command("send_digests", date=DAY, stdout=StringIO())
    delivery = Delivery.objects.get(subscriber=voter)
    assert delivery.state == Delivery.State.SENT
    assert {pick[1] for pick in delivery.picks} == {"trending"}  # not "similar to": not comparable yet


def test_a_digest_follows_votes_and_authors(settings):
    liked = make_paper("Four-bit LLM weights", abstract=QUANT, listed_on=DAY - dt.timedelta(days=5))
    make_paper("Quantized language models at four bits", abstract=QUANT.replace("tiny", "small"), listed_on=DAY, upvotes=1)
    make_paper("Robots that walk", abstract=ROBOT, listed_on=DAY, upvotes=90, authors=["Grace Hopper"])
    make_paper("Something else entirely", abstract="Graph colouring with SAT solvers.", listed_on=DAY, upvotes=50)
    alice = make_subscriber("alice@example.org")
    Vote.objects.create(subscriber=alice, paper=liked, value=1)
    for title in ("Legged robots", "Walking machines"):  # a profile counts from the third vote
        older = make_paper(title, abstract=ROBOT, listed_on=DAY - dt.timedelta(days=5))
        Vote.objects.create(subscriber=alice, paper=older, value=-1)
    make_subscriber("bob@example.org", authors="grace HOPPER")
    call_command("send_digests", date=DAY, stdout=StringIO())
    bodies = {m.to[0]: m.body for m in mail.outbox}
    assert "\nBECAUSE YOU LIKED “FOUR-BIT LLM WEIGHTS”\n\n1. Quantized language models" in bodies["alice@example.org"]
    alice_text = bodies["alice@example.org"]
    assert alice_text.index("Quantized language models") < alice_text.index("Robots that walk")
    assert "\nAUTHORS YOU FOLLOW\n\n1. Robots that walk\n" in bodies["bob@example.org"]
    assert "   By Grace Hopper, whom you follow\n" in bodies["bob@example.org"]
    assert Delivery.objects.filter(state="sent").count() == 2


def test_the_detail_page_lists_similar_papers(client):
    a = make_paper("Four-bit LLM weights", arxiv_id="2403.00001", abstract=QUANT)
    make_paper("Quantized language models at four bits", abstract=QUANT.replace("tiny", "small"))
    make_paper("Robots that walk", abstract=ROBOT)
    page = client.get(a.get_absolute_url()).content.decode()
    listed = re.findall(r'<li><a href="[^"]+">([^<]+)</a>', page.split("Similar papers", 1)[1])
    assert listed[0] == "Quantized language models at four bits"


def test_each_topic_has_a_feed_of_the_days_papers(client):
    make_paper("Robots that walk", abstract=ROBOT, listed_on=DAY, upvotes=3)
    make_paper("Robot arms", abstract="Robot arms grasp things.", listed_on=DAY - dt.timedelta(days=1))
    make_paper("Four-bit LLM weights", abstract=QUANT, listed_on=DAY)
    feed = client.get("/topics/robotics/feed/").content.decode()
    assert "<feed" in feed and "Robots that walk" in feed
    assert "Robot arms" not in feed and "Four-bit" not in feed
    assert client.get("/topics/nope/feed/").status_code == 404
    page = client.get("/?topic=robotics").content.decode()
    assert 'href="/topics/robotics/feed/"' in page


def test_scoring_many_at_once_gives_what_rank_gives_one_by_one():
    import random

    import numpy as np

    from newsletter.ranking import Pool, Weights, rank_many

    # A profile weight of 2: cosines of 0.5 and 0.75 weigh as much as a topic and an author.
    weights = Weights(topic=1.0, keyword=0.8, author=1.5, profile=2.0, trending=0.5, threshold=0.2)
    rng = random.Random(3)
    names = ["Ada Lovelace", "Zoë Ünal", "Alan Turing", "Grace Hopper"]
    for trial in range(30):
        cands = [
            Candidate(id=n, title=f"P{n}", text=rng.choice(["robots walk", "llm quantization", "graphs"]),
                      upvotes=rng.randint(0, 50), listed_ordinal=rng.randint(1, 3),
                      topic_ids=frozenset(rng.sample([1, 2, 3], rng.randint(0, 2))),
                      authors=tuple((author_key(a), a) for a in rng.sample(names, rng.randint(0, 2))))
            for n in range(1, 25)
        ]
        featured = [cands.pop()] if trial % 3 == 0 else []
        people, cos = [], np.zeros((8, len(cands)))
        for row in range(8):
            interests = Interests(topic_ids=frozenset(rng.sample([1, 2, 3], rng.randint(0, 2))),
                                  keywords=tuple(rng.sample(["robots", "llm", "quantization"], rng.randint(0, 1))),
                                  authors=frozenset(author_key(a) for a in rng.sample(names, rng.randint(0, 2))))
            people.append((interests, set(rng.sample([c.id for c in cands], 3))))
            # 0.5 and 0.75 weigh as much as a topic and an author: ties between reasons.
            cos[row] = [rng.choice([0.5, 0.75, max(0.0, rng.uniform(-0.3, 0.9))]) for _ in cands]
        pool = Pool(cands, featured, {1: "A", 2: "B", 3: "C"}, weights)
        columns = [[c.id for c in cands].index(pid) for pid in pool.ids]
        many = rank_many(pool, people, limit=6, cosines=cos[:, columns],
                         closest=lambda rows, cols: [(r, f"liked {r}-{pool.ids[c]}", 0.5) for r, c in zip(rows, cols)])
        for row, (interests, exclude) in enumerate(people):
            similar = {c.id: (cos[row, j], (row, f"liked {row}-{c.id}", 0.5)) for j, c in enumerate(cands) if cos[row, j] > 0}
            one = rank(candidates=cands, featured=featured, interests=interests, exclude=exclude,
                       topic_names={1: "A", 2: "B", 3: "C"}, limit=6, similar=similar, weights=weights)
            assert many[row] == one, (trial, row)


def test_subscribers_who_share_picks_get_what_rank_gives_each():
    """An offer ranks once for everyone who follows the same of what it holds; what it hands
    out must be what rank() gives each subscriber, whatever they follow beyond that."""
    import random

    from newsletter.offers import Offer
    from newsletter.ranking import Pool

    rng = random.Random(5)
    names = ["Ada Lovelace", "Zoë Ünal", "Alan Turing", "Grace Hopper"]  # Hopper wrote nothing today
    cands = [
        Candidate(id=n, title=f"P{n}", text=rng.choice(["robots walk", "llm quantization", "graphs"]),
                  upvotes=rng.randint(0, 50), listed_ordinal=rng.randint(1, 3),
                  topic_ids=frozenset(rng.sample([1, 2, 3], rng.randint(0, 2))),  # topic 4: no paper today
                  authors=tuple((author_key(a), a) for a in rng.sample(names[:3], rng.randint(0, 2))))
        for n in range(1, 25)
    ]
    topic_names = {1: "A", 2: "B", 3: "C", 4: "D"}
    offer = Offer(Edition(date=DAY), "daily", Pool(cands[:-1], cands[-1:], topic_names), {c.id: None for c in cands}, {})
    for _ in range(400):
        interests = Interests(topic_ids=frozenset(rng.sample([1, 2, 3, 4], rng.randint(0, 2))),
                              keywords=tuple(rng.sample(["robots", "llm", "nothing-today"], rng.randint(0, 2))),
                              authors=frozenset(author_key(a) for a in rng.sample(names, rng.randint(0, 2))))
        received = set(rng.sample([c.id for c in cands], rng.randint(0, 2)))
        expected = rank(candidates=cands[:-1], featured=cands[-1:], interests=interests, exclude=received,
                        topic_names=topic_names, limit=10)
        assert list(offer.picks({1: (interests, frozenset(received))})[1]) == expected, interests
    assert len(offer.memo) < 400  # and it did share
