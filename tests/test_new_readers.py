"""What votes and a new reader's first days change: a profile from the third vote, a share of
papers outside it, and a first digest that spreads over topics to learn from."""

import datetime as dt
import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from newsletter.models import Vote
from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = pytest.mark.django_db

QUANT = "We quantize large language models to four bits with little loss, on tiny chips and phones."
ROBOT = "A legged robot learns to walk on rough terrain with reinforcement learning and a simulator."


def send(day=DAY):
    mail.outbox.clear()
    call_command("send_digests", date=day, stdout=StringIO())
    return {m.to[0]: m.body for m in mail.outbox}


@pytest.fixture
def day_of_papers():
    liked = [make_paper(f"Quantized models {n}", abstract=QUANT, listed_on=DAY - dt.timedelta(days=5)) for n in range(3)]
    make_paper("Quantized language models at four bits", abstract=QUANT.replace("tiny", "small"), listed_on=DAY, upvotes=1)
    for n in range(12):
        make_paper(f"Robots that walk {n}", abstract=ROBOT.replace("rough", f"rough {n}"), listed_on=DAY, upvotes=50 + n)
    return liked


def vote(subscriber, papers):
    for paper in papers:
        Vote.objects.create(subscriber=subscriber, paper=paper, value=1)


def test_a_profile_counts_from_the_third_vote(day_of_papers):
    two, three = make_subscriber("two@example.org"), make_subscriber("three@example.org")
    vote(two, day_of_papers[:2])
    vote(three, day_of_papers)
    bodies = send()
    assert "BECAUSE YOU LIKED" not in bodies["two@example.org"]
    assert "BECAUSE YOU LIKED" in bodies["three@example.org"]


@pytest.mark.parametrize("percent, outside", [(20, 2), (0, 0)])
def test_a_share_of_a_voters_digest_is_outside_their_profile_and_says_so(day_of_papers, settings, percent, outside):
    settings.EXPLORE_SHARE = percent / 100
    reader = make_subscriber("reader@example.org")
    vote(reader, day_of_papers)
    body = send()["reader@example.org"]
    rest = body.split("SOMETHING DIFFERENT", 1)[1] if outside else ""
    section = re.split(r"\n\n[A-Z][A-Z “”'&-]+\n|\n-- \n", rest)[0]  # up to the next heading
    assert ("SOMETHING DIFFERENT" in body) == bool(outside)
    assert section.count("Robots that walk") == outside


def test_a_new_readers_first_digest_spreads_over_topics_and_says_why(time_machine):
    for slug, title in [("robotics", "Robot arms"), ("security-privacy", "Jamming attacks"),
                        ("quantization-compression", "Quantization for tiny chips")]:
        for n in range(4):
            make_paper(f"{title} {n}", abstract=f"We study {title.lower()}.", listed_on=DAY, upvotes=10 + n)
    time_machine.move_to(timezone.make_aware(dt.datetime.combine(DAY - dt.timedelta(days=1), dt.time(18))))
    make_subscriber("new@example.org", topics=["robotics"])
    first = send()["new@example.org"]
    assert "Your first digest: 8 papers across" in first and "from your third vote" in first
    assert first.index("ROBOTICS") < first.index("SECURITY")  # what they follow comes first
    assert first.count("\nROBOTICS\n") == 1 and "Jamming attacks 3" in first  # the best of each topic
    second = send(DAY + dt.timedelta(days=1))["new@example.org"]  # received something: an ordinary digest
    assert "Your first digest" not in second
