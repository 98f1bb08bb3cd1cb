"""Interests drift: votes fade with a half-life, and only each subscriber's latest votes count."""

import datetime as dt

import numpy as np
import pytest
import time_machine
from django.utils import timezone

from newsletter.offers import edition_offer, votes_of
from newsletter.models import Edition
from newsletter.profiles import decay, profiles
from newsletter.services import vote_record
from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = pytest.mark.django_db

DAYS = 86400
QUANT = "We quantize large language model weights to four bits with small accuracy loss and fast kernels."
ROBOT = "A legged robot learns to walk over rough terrain with reinforcement learning in simulation."


def test_a_vote_weighs_half_as_much_each_half_life():
    now = 1_000 * DAYS
    assert decay([now, now - 30 * DAYS, now - 60 * DAYS], now, 30).tolist() == [1.0, 0.5, 0.25]


def test_with_decay_the_recent_like_outranks_the_old_one():
    # Two liked papers, one a year ago and one today, each like one of two candidates.
    voted = {1: np.array([1, 0], dtype=np.float32), 2: np.array([0, 1], dtype=np.float32)}
    candidates = np.array([[0.8, 0.6], [0.6, 0.8]], dtype=np.float32)  # 10 is nearer paper 1, 20 paper 2
    now = 1_000 * DAYS
    votes = [(7, 1, 1, now - 365 * DAYS), (7, 2, 1, now)]
    undecayed = profiles(votes, voted, {1: "Old", 2: "New"}, [10, 20], candidates).similar(7)
    assert undecayed[10][0] == pytest.approx(undecayed[20][0])  # both likes weigh the same
    decayed = profiles(votes, voted, {1: "Old", 2: "New"}, [10, 20], candidates, now=now, half_life_days=90).similar(7)
    assert decayed[20][0] > decayed[10][0]
    assert decayed[20][1] == "New"


def test_a_digest_follows_what_the_reader_liked_lately(settings):
    settings.VOTE_HALF_LIFE_DAYS = 30
    quant = make_paper("Four-bit LLM weights", abstract=QUANT, listed_on=DAY - dt.timedelta(days=400))
    robot = make_paper("Walking robots", abstract=ROBOT, listed_on=DAY - dt.timedelta(days=400))
    new_quant = make_paper("Quantized language models at four bits", abstract=QUANT.replace("small", "tiny"), listed_on=DAY)
    new_robot = make_paper("Robots that walk", abstract=ROBOT.replace("legged", "quadruped"), listed_on=DAY)
    then_quant, then_robot = make_subscriber("then-quant@example.org"), make_subscriber("then-robot@example.org")
    with time_machine.travel(timezone.make_aware(dt.datetime(2023, 3, 1)), tick=False):
        vote_record(subscriber=then_quant, paper=quant, value=1)
        vote_record(subscriber=then_robot, paper=robot, value=1)
    with time_machine.travel(timezone.make_aware(dt.datetime(2024, 3, 14)), tick=False):
        vote_record(subscriber=then_quant, paper=robot, value=1)
        vote_record(subscriber=then_robot, paper=quant, value=1)
        found = edition_offer(Edition.objects.create(date=DAY), "daily").profiles_for(votes_of([then_quant.pk, then_robot.pk]))
    now_robot, now_quant = found.similar(then_quant.pk), found.similar(then_robot.pk)
    assert now_robot[new_robot.pk][0] > now_robot.get(new_quant.pk, (-1,))[0]
    assert now_quant[new_quant.pk][0] > now_quant.get(new_robot.pk, (-1,))[0]


def test_only_each_subscribers_latest_votes_are_read(settings):
    settings.PROFILE_VOTES_READ = 2
    papers = [make_paper(f"Paper {n}", listed_on=DAY) for n in range(4)]
    alice, bob = make_subscriber("alice@example.org"), make_subscriber("bob@example.org")
    for n, paper in enumerate(papers):
        with time_machine.travel(timezone.make_aware(dt.datetime(2024, 3, 1 + n)), tick=False):
            vote_record(subscriber=alice, paper=paper, value=1)
    with time_machine.travel(timezone.make_aware(dt.datetime(2024, 3, 10)), tick=False):
        vote_record(subscriber=alice, paper=papers[0], value=-1)  # changing a vote makes it recent
        vote_record(subscriber=bob, paper=papers[1], value=1)
    votes = votes_of([alice.pk, bob.pk])
    assert sorted(v[:3] for v in votes) == sorted([(alice.pk, papers[3].pk, 1), (alice.pk, papers[0].pk, -1),
                                                   (bob.pk, papers[1].pk, 1)])
    assert {v[3] for v in votes if v[0] == bob.pk} == {int(dt.datetime(2024, 3, 10, tzinfo=dt.timezone.utc).timestamp())}
