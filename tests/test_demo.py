"""manage.py demo: the sample papers, three readers signed up and confirmed, a digest each."""

from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from newsletter.models import Subscriber
from newsletter.services import subscriber_unsubscribe

pytestmark = pytest.mark.django_db


def demo():
    out = StringIO()
    call_command("demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_demo_signs_readers_up_through_the_front_door_and_mails_them_a_digest():
    demo()
    ada = Subscriber.objects.get(email="ada@example.org")
    assert ada.status == "active" and ada.confirmed_at and ada.next_digest_at
    assert list(ada.events.values_list("kind", flat=True).order_by("occurred_at")) == ["signup", "confirmed"]
    digests = [m for m in mail.outbox if "digest" in getattr(m, "tags", [])]
    assert sorted(m.to[0] for m in digests) == ["ada@example.org", "alan@example.org", "grace@example.org"]


def test_running_the_demo_again_leaves_a_reader_who_left_unsubscribed():
    demo()
    subscriber_unsubscribe(subscriber=Subscriber.objects.get(email="ada@example.org"))
    mail.outbox.clear()
    out = demo()
    assert Subscriber.objects.get(email="ada@example.org").status == "unsubscribed"
    assert "ada@example.org exists already" in out
    assert all(m.to != ["ada@example.org"] for m in mail.outbox)
