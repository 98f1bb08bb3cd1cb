"""Signup and "send my link" answer alike for every address, and repeats amplify nothing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from newsletter import tasks
from newsletter.models import Subscriber, SubscriberEvent, Suppression, email_hash
from tests.conftest import make_subscriber, topic

pytestmark = pytest.mark.django_db

STATES = ["unknown", "pending", "active", "paused", "unsubscribed", "suppressed", "erased-or-bounced"]


def prepare(state, email):
    if state == "erased-or-bounced":
        Suppression.objects.create(email_hash=email_hash(email), reason="hard bounce")
    elif state != "unknown":
        make_subscriber(email, status=state)


def answer_and_work(client, monkeypatch, task, url, data):
    """The response, the queries the view made and what it enqueued, the task not run."""
    enqueued = []
    monkeypatch.setattr(task, "delay", lambda *args, **kwargs: enqueued.append((args, sorted(kwargs))))
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, data)
    return (response.status_code, response.get("Location"), response.content), len(queries), enqueued


@pytest.mark.parametrize("url, task", [("/subscribe/", tasks.subscriber_signup_task),
                                       ("/preferences/", tasks.subscriber_send_link_task)])
def test_the_form_does_the_same_work_and_answers_the_same_for_every_kind_of_address(client, monkeypatch, url, task):
    outcomes = []
    for n, state in enumerate(STATES):
        email = f"person{n}@example.org"
        prepare(state, email)
        data = {"email": email, "frequency": "daily", "topics": [topic("robotics").pk]}
        response, queries, enqueued = answer_and_work(client, monkeypatch, task, url, data)
        assert len(enqueued) == 1, state
        outcomes.append((state, response, queries, [(len(args), keys) for args, keys in enqueued]))
    first = outcomes[0][1:]
    assert all(outcome[1:] == first for outcome in outcomes), outcomes


def test_a_pending_address_signed_up_again_changes_nothing_but_a_rate_limited_resend(client, mailoutbox, time_machine):
    time_machine.move_to("2026-03-02T10:00Z")
    client.post("/subscribe/", {"email": "alice@example.org", "frequency": "daily", "topics": [topic("robotics").pk]},
                REMOTE_ADDR="203.0.113.7")
    before = Subscriber.objects.values().get()
    for n in range(30):
        time_machine.move_to(f"2026-03-02T11:{n:02d}Z")
        client.post("/subscribe/", {"email": "alice@example.org", "frequency": "weekly", "keywords": f"k{n}",
                                    "topics": [topic("security").pk]}, REMOTE_ADDR=f"198.51.100.{n}")
    alice = Subscriber.objects.get()
    assert Subscriber.objects.values().get() == before
    assert list(alice.topics.values_list("slug", flat=True)) == ["robotics"]
    assert SubscriberEvent.objects.count() == 1
    assert len(mailoutbox) == 3 and all("/confirm/" in m.body for m in mailoutbox)


def test_a_signup_after_the_confirmation_link_expired_starts_afresh(client, mailoutbox, time_machine):
    time_machine.move_to("2026-03-02T10:00Z")
    client.post("/subscribe/", {"email": "alice@example.org", "frequency": "daily"})
    time_machine.move_to("2026-03-05T11:00Z")  # past the 72-hour window
    client.post("/subscribe/", {"email": "alice@example.org", "frequency": "weekly"}, REMOTE_ADDR="198.51.100.1")
    alice = Subscriber.objects.get()
    assert alice.frequency == "weekly" and alice.consent_ip == "198.51.100.1"
    assert alice.events.filter(kind="signup").count() == 2 and len(mailoutbox) == 2


def test_a_mail_server_that_is_down_is_retried_rather_than_the_signup_lost(client, monkeypatch, mailoutbox):
    from newsletter import services

    real_send, calls = services._send, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionRefusedError("mail server down")
        real_send(*args, **kwargs)

    monkeypatch.setattr(services, "_send", flaky)
    assert client.post("/subscribe/", {"email": "alice@example.org", "frequency": "daily"}).status_code == 302
    assert len(calls) == 2 and [m.to for m in mailoutbox] == [["alice@example.org"]]
