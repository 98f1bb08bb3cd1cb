"""Who is mailed, what a dry run promises, and what a failed send costs."""

import datetime as dt
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from newsletter.models import Delivery, Subscriber, Suppression, email_hash
from tests.backends import FlakyBackend
from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["message", "batch"])
def sending(request, settings):
    settings.DIGEST_SENDING = request.param
    return request.param


@pytest.fixture
def papers():
    return [
        make_paper("Robot arms that learn", upvotes=30, listed_on=DAY),
        make_paper("Jamming attacks on IoT", upvotes=20, listed_on=DAY),
    ]


def recipients():
    return sorted(address for m in mail.outbox for address in m.to)


def send(**options):
    out = StringIO()
    call_command("send_digests", date=DAY, stdout=out, **options)
    return out.getvalue()


def test_nobody_who_left_is_mailed_whatever_their_status_says(papers):
    make_subscriber("alice@example.org")
    # An admin edit turned these back to active; the suppression list and consent still say no.
    complained = make_subscriber("complained@example.org")
    Suppression.objects.create(email_hash=email_hash("complained@example.org"), reason="spam complaint")
    make_subscriber("never-confirmed@example.org", confirmed_at=None)
    assert Subscriber.objects.filter(status="active").count() == 3
    send()
    assert recipients() == ["alice@example.org"]
    notes = dict(Delivery.objects.values_list("subscriber__email", "note"))
    assert notes["complained@example.org"] == "address on the suppression list"
    assert notes["never-confirmed@example.org"] == "never confirmed"
    assert Delivery.objects.get(subscriber=complained).state == "skipped"


def test_attempts_are_charged_only_where_a_send_was_tried(papers, settings):
    make_subscriber("alice@example.org", topics=["robotics"])
    make_subscriber("bob@example.org", topics=["security"])  # another digest: another send
    settings.EMAIL_BACKEND = "tests.backends.FlakyBackend"
    FlakyBackend.failures = 1  # the first send fails; the second was never tried before the retry
    send()
    assert recipients() == ["alice@example.org", "bob@example.org"]
    assert sorted(Delivery.objects.values_list("attempts", flat=True)) == [1, 2]


def test_a_dry_run_with_a_date_counts_only_those_who_have_not_had_that_edition(papers):
    make_subscriber("alice@example.org")
    send()
    make_subscriber("bob@example.org")
    assert "would send: 1," in send(dry_run=True)
    mail.outbox.clear()
    send()
    assert recipients() == ["bob@example.org"]


def test_a_dry_run_without_a_date_counts_those_whose_hour_has_come(papers, time_machine):
    time_machine.move_to(dt.datetime(2024, 3, 13, 12, tzinfo=dt.timezone.utc))
    make_subscriber("early@example.org", hour=7)
    make_subscriber("late@example.org", hour=9)
    time_machine.move_to(dt.datetime(2024, 3, 14, 8, tzinfo=dt.timezone.utc))
    out = StringIO()
    call_command("send_digests", dry_run=True, stdout=out)
    assert "scheduled: 1, would send: 1," in out.getvalue()
    call_command("send_digests", stdout=StringIO())
    assert recipients() == ["early@example.org"]


def test_send_digests_without_a_date_says_what_it_sent_and_skipped(papers, time_machine):
    time_machine.move_to(dt.datetime(2024, 3, 13, 12, tzinfo=dt.timezone.utc))
    make_subscriber("early@example.org", hour=7)
    make_subscriber("also@example.org", hour=7)
    time_machine.move_to(dt.datetime(2024, 3, 14, 8, tzinfo=dt.timezone.utc))
    out = StringIO()
    call_command("send_digests", stdout=out)
    assert "Queued 2 digest(s).\n2 sent, 0 skipped, 0 failed, 0 still to send." in out.getvalue()
    time_machine.move_to(dt.datetime(2024, 3, 15, 8, tzinfo=dt.timezone.utc))  # no paper listed since
    out = StringIO()
    call_command("send_digests", stdout=out)
    assert "Queued 2 digest(s).\n0 sent, 2 skipped (nothing new: 2), 0 failed, 0 still to send." in out.getvalue()
