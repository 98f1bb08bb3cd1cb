import datetime as dt
import json
import re

import pytest
from django.urls import reverse

from newsletter import tokens
from newsletter.models import Delivery, Edition, Subscriber, Suppression, email_hash
from tests.conftest import make_subscriber, topic

pytestmark = pytest.mark.django_db


def url(subscriber, name="newsletter:preferences"):
    return reverse(name, args=[tokens.make(tokens.PREFERENCES, subscriber.pk)])


def data_url(subscriber, name):
    """A link to export or erase, as mailed on request (tests/test_my_data.py asks for it)."""
    return reverse(name, args=[tokens.make(tokens.DATA, subscriber.pk)])


def form(**overrides):
    data = {"topics": [topic("robotics").pk], "keywords": "drones", "frequency": "weekly", "weekday": "4", "hour": "9",
            "timezone": "Asia/Tokyo", "action": "save"}
    return {**data, **overrides}


def test_the_page_shows_current_choices(client):
    alice = make_subscriber(topics=["security"], keywords="jamming")
    page = client.get(url(alice)).content.decode()
    assert "alice@example.org" in page and 'value="jamming"' in page
    assert re.search(rf'value="{topic("security").pk}"[^>]*checked', page)
    assert not re.search(rf'value="{topic("robotics").pk}"[^>]*checked', page)


def test_changes_are_saved_and_the_schedule_follows(client, time_machine):
    time_machine.move_to("2026-03-02 10:00Z")  # a Monday
    alice = make_subscriber(topics=["security"])
    response = client.post(url(alice), form())
    assert response.status_code == 200 and "saved" in response.content.decode()
    alice.refresh_from_db()
    assert list(alice.topics.values_list("slug", flat=True)) == ["robotics"]
    assert (alice.keywords, alice.frequency, alice.weekday, alice.hour, alice.timezone) == ("drones", "weekly", 4, 9, "Asia/Tokyo")
    assert alice.next_digest_at.isoformat() == "2026-03-06T00:00:00+00:00"  # Friday 09:00 in Tokyo


@pytest.mark.parametrize(
    "field, value, message",
    [("timezone", "Mars/Olympus", "Select a valid choice"), ("hour", "25", "Select a valid choice"),
     ("topics", "99999", "Unknown topic"), ("keywords", "x" * 61, "at most 60 characters"),
     ("keywords", "ok\r\nBcc: a@b.c", "single line")],
)
def test_bad_input_changes_nothing(client, field, value, message):
    alice = make_subscriber(topics=["security"], keywords="jamming")
    response = client.post(url(alice), form(**{field: value}))
    assert response.status_code == 400 and message in response.content.decode()
    alice.refresh_from_db()
    assert alice.keywords == "jamming" and alice.timezone == "UTC"
    assert list(alice.topics.values_list("slug", flat=True)) == ["security"]


def test_pause_and_resume(client):
    alice = make_subscriber()
    client.post(url(alice), {"action": "pause"})
    alice.refresh_from_db()
    assert alice.status == "paused"
    assert "Resume digests" in client.get(url(alice)).content.decode()
    client.post(url(alice), {"action": "resume"})
    alice.refresh_from_db()
    assert alice.status == "active" and alice.next_digest_at


def test_an_unknown_action_is_a_400(client):
    alice = make_subscriber()
    assert client.post(url(alice), {"action": "explode"}).status_code == 400


def test_export_is_that_subscribers_data_only(client):
    alice = make_subscriber(topics=["robotics"], keywords="drones", consent_ip="192.0.2.1")
    bob = make_subscriber("bob@example.org")
    edition = Edition.objects.create(date="2024-03-14")
    Delivery.objects.create(subscriber=alice, edition=edition, state="sent", picks=[[1, "trending", "", 3.0]])
    Delivery.objects.create(subscriber=bob, edition=edition, state="sent", picks=[[2, "trending", "", 1.0]])
    response = client.get(data_url(alice, "newsletter:export"))
    assert response["Content-Type"] == "application/json" and "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["email"] == "alice@example.org"
    assert data["preferences"]["topics"] == ["Robotics"] and data["preferences"]["keywords"] == ["drones"]
    assert data["consent"]["signup_ip"] == "192.0.2.1"
    assert data["deliveries"] == [{"edition": "2024-03-14", "state": "sent", "sent_at": None, "papers": [1]}]
    assert "bob@example.org" not in response.content.decode()


def test_erasure_removes_personal_data_and_keeps_only_a_salted_hash(client, mailoutbox):
    alice = make_subscriber(topics=["robotics"])
    bob = make_subscriber("bob@example.org")
    for day in ("2024-03-14", "2024-03-15"):
        Delivery.objects.create(subscriber=alice, edition=Edition.objects.create(date=day), state="sent")
    Delivery.objects.create(subscriber=bob, edition=Edition.objects.get(date="2024-03-15"), state="sent")
    assert "Delete everything" in client.get(data_url(alice, "newsletter:delete")).content.decode()
    assert client.post(data_url(alice, "newsletter:delete")).status_code == 400  # box not ticked
    assert Subscriber.objects.exists()
    response = client.post(data_url(alice, "newsletter:delete"), {"confirm": "yes"})
    assert response.status_code == 200
    assert list(Subscriber.objects.all()) == [bob]
    assert [d.subscriber_id for d in Delivery.objects.all()] == [bob.pk]
    suppression = Suppression.objects.get()
    assert suppression.email_hash == email_hash("alice@example.org") and "alice" not in suppression.email_hash
    # The link is dead now.
    assert client.get(url(alice)).status_code == 400
    # The owner may subscribe again, through confirmation.
    client.post(reverse("newsletter:subscribe"), {"email": "alice@example.org", "frequency": "daily"})
    assert len(mailoutbox) == 1 and "Confirm" in mailoutbox[0].subject


def test_a_subscribers_deliveries_are_found_through_an_index():
    """Deliveries have no index on the subscriber alone (the fan-out would write a page of it
    for every row): export and erasure find a subscriber's through the (edition, subscriber) one."""
    from django.db import connection

    alice = make_subscriber()
    for day in ("2024-03-14", "2024-03-15"):
        Delivery.objects.create(subscriber=alice, edition=Edition.objects.create(date=day), state="sent")
    found = Delivery.objects.of_subscribers([alice.pk])
    assert found.count() == 2
    if connection.vendor == "postgresql":  # a table this small is read whole unless told not to
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
    plan = found.explain()
    # Both columns of the index searched, not the whole index walked for the subscriber's.
    assert "(edition_id=? AND subscriber_id=?)" in plan or "Index Cond: ((edition_id = ANY" in plan


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_erasure_during_a_fan_out_leaves_no_delivery_behind(monkeypatch):
    """The database does not check deliveries' subscribers (see Delivery): erasure waits for
    a fan-out holding the subscriber, so that it deletes the row the fan-out adds."""
    import threading
    import time

    from django.db import connection
    from django.utils import timezone

    from newsletter import fanout
    from newsletter.services import subscriber_erase

    alice = make_subscriber(topics=["robotics"])
    fanned_out = threading.Event()
    create = fanout.deliveries_create

    def create_and_linger(edition, ids):
        created = create(edition, ids)
        fanned_out.set()
        time.sleep(0.5)  # the dispatch's transaction, and its lock on alice, still open
        return created

    monkeypatch.setattr(fanout, "deliveries_create", create_and_linger)

    def dispatch():
        try:
            fanout.digests_dispatch(enqueue=lambda ids: None, now=timezone.now() + dt.timedelta(days=2))
        finally:
            connection.close()

    thread = threading.Thread(target=dispatch)
    thread.start()
    assert fanned_out.wait(10)
    subscriber_erase(subscriber=alice)
    thread.join()
    assert not Subscriber.objects.exists()
    assert not Delivery.objects.exists()


def test_a_tampered_preferences_link_is_refused(client):
    alice = make_subscriber()
    assert client.get(url(alice) + "x").status_code in (400, 404)
    token = tokens.make(tokens.UNSUBSCRIBE, alice.pk)
    assert client.get(reverse("newsletter:preferences", args=[token])).status_code == 400


def test_send_me_my_link_answers_the_same_for_everyone(client, mailoutbox):
    make_subscriber()
    make_subscriber("pending@example.org", status="pending")
    pages = [
        client.post(reverse("newsletter:send_link"), {"email": email}).content.decode()
        for email in ["alice@example.org", "pending@example.org", "nobody@example.org"]
    ]
    assert pages[0] == pages[1] == pages[2]
    assert [m.to for m in mailoutbox] == [["alice@example.org"]]
    assert "/preferences/" in mailoutbox[0].body
    assert client.post(reverse("newsletter:send_link"), {"email": "bad"}).status_code == 400


def test_the_record_has_no_empty_placeholders_and_the_weekday_shows_for_weekly_readers_only(client):
    alice = make_subscriber(consent_ip=None)
    record = client.get(data_url(alice, "newsletter:data")).content.decode()
    assert "Signed up" in record and "— from —" not in record and " from None" not in record
    page = client.get(url(alice)).content.decode()
    assert '<p id="weekday" hidden>' in page
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in page and "if (true" in page  # UTC: not chosen yet
    alice.frequency, alice.timezone = "weekly", "Europe/Paris"
    alice.save()
    page = client.get(url(alice)).content.decode()
    assert '<p id="weekday">' in page and "if (false" in page
