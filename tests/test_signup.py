import re

import pytest
from django.urls import reverse

from newsletter.models import Delivery, Edition, Subscriber, Suppression, email_hash
from tests.conftest import make_subscriber, topic

pytestmark = pytest.mark.django_db

URL = reverse("newsletter:subscribe")


def signup(client, email="alice@example.org", topics=("robotics",), **extra):
    data = {"email": email, "topics": [topic(s).pk for s in topics], "keywords": "", "frequency": "daily", **extra}
    return client.post(URL, data, REMOTE_ADDR=extra.pop("ip", "203.0.113.7"), HTTP_USER_AGENT="TestBrowser/1.0")


def links(message):
    return re.findall(r"https://paperboy\.test/\S+?/(?=\s|\"|$)", message.body)


def test_signup_stores_consent_and_sends_exactly_one_confirmation(client, mailoutbox):
    response = signup(client, keywords="diffusion, Mamba")
    assert response.status_code == 302 and response.url == reverse("newsletter:subscribe_done")
    subscriber = Subscriber.objects.get(email="alice@example.org")
    assert subscriber.status == "pending"
    assert subscriber.consent_ip == "203.0.113.7"
    assert subscriber.consent_user_agent == "TestBrowser/1.0"
    assert subscriber.consent_version and subscriber.consent_at
    assert list(subscriber.topics.values_list("slug", flat=True)) == ["robotics"]
    assert subscriber.keywords == "diffusion, Mamba"
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["alice@example.org"]
    assert "Confirm" in message.subject
    html = message.alternatives[0][0]
    confirm = [u for u in links(message) if "/confirm/" in u]
    assert len(confirm) == 1 and confirm[0] in html
    assert "style=" in html  # CSS inlined by premailer


def test_addresses_are_matched_case_insensitively(client, mailoutbox):
    signup(client, email="Alice@Example.org")
    signup(client, email="alice@example.org ")
    assert Subscriber.objects.count() == 1


@pytest.mark.parametrize("state", ["unknown", "pending", "active", "unsubscribed", "suppressed"])
def test_the_response_is_the_same_whatever_the_address(client, state):
    if state != "unknown":
        make_subscriber(status=state)
    response = signup(client)
    assert response.status_code == 302 and response.url == reverse("newsletter:subscribe_done")


def test_a_confirmed_address_gets_its_preferences_link_and_nothing_changes(client, mailoutbox):
    alice = make_subscriber(topics=["security"], keywords="jamming")
    signup(client, topics=["robotics"], keywords="drones")
    alice.refresh_from_db()
    assert alice.status == "active"
    assert list(alice.topics.values_list("slug", flat=True)) == ["security"] and alice.keywords == "jamming"
    assert len(mailoutbox) == 1
    assert "already" in mailoutbox[0].body and "/preferences/" in mailoutbox[0].body


def test_a_suppressed_address_gets_no_mail(client, mailoutbox):
    make_subscriber(status="suppressed")
    signup(client)
    assert mailoutbox == []
    Suppression.objects.create(email_hash=email_hash("bob@example.org"), reason="hard bounce")
    signup(client, email="bob@example.org")
    assert mailoutbox == [] and not Subscriber.objects.filter(email="bob@example.org").exists()


def test_at_most_three_confirmation_mails_per_address_per_day(client, mailoutbox):
    for _ in range(5):
        assert signup(client).status_code == 302
    assert len(mailoutbox) == 3


def test_signups_per_ip_are_limited_with_the_same_answer(client, mailoutbox, settings):
    from newsletter import views

    limit = int(views.SIGNUP_RATE.split("/")[0])
    for n in range(limit + 2):
        response = signup(client, email=f"user{n}@example.org")
        assert response.status_code == 302
    assert Subscriber.objects.count() == limit
    assert len(mailoutbox) == limit


def test_the_honeypot_stops_naive_bots_quietly(client, mailoutbox):
    response = signup(client, website="http://spam.example")
    assert response.status_code == 302
    assert not Subscriber.objects.exists() and mailoutbox == []


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("email", "not-an-address", "Enter a valid email address."),
        ("email", "alice@example.org\r\nBcc: victim@example.org", "valid email address"),
        ("email", "", "This field is required."),
        ("keywords", "a\nBcc: x@example.org", "single line"),
        ("keywords", ", ".join(f"k{n}" for n in range(21)), "At most 20 keywords"),
        ("keywords", "x" * 61, "at most 60 characters"),
        ("frequency", "hourly", "Select a valid choice"),
    ],
)
def test_bad_input_gets_a_clear_message_and_changes_nothing(client, mailoutbox, field, value, message):
    response = signup(client, **{field: value})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Subscriber.objects.exists() and mailoutbox == []


def test_unknown_topic_ids_are_refused(client, mailoutbox):
    response = client.post(URL, {"email": "alice@example.org", "topics": ["99999"], "frequency": "daily"})
    assert response.status_code == 400 and "Unknown topic" in response.content.decode()
    response = client.post(URL, {"email": "alice@example.org", "topics": ["<script>"], "frequency": "daily"})
    assert response.status_code == 400 and "&lt;script&gt;" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_the_form_is_on_the_home_page_and_its_own_page(client):
    for url in ["/", URL]:
        page = client.get(url).content.decode()
        assert 'name="email"' in page and 'name="topics"' in page and 'name="frequency"' in page


def test_unconfirmed_signups_are_purged_after_a_week(time_machine):
    from newsletter.tasks import purge_unconfirmed_task

    time_machine.move_to("2026-01-01 12:00Z")
    old = make_subscriber("old@example.org", status="pending")
    kept = make_subscriber("kept@example.org", status="active")
    edition = Edition.objects.create(date="2025-12-31")  # mailed before: subscribed, left, signed up again
    for subscriber in (old, kept):
        Delivery.objects.create(subscriber=subscriber, edition=edition, state="sent")
    time_machine.move_to("2026-01-05 12:00Z")
    make_subscriber("new@example.org", status="pending")
    time_machine.move_to("2026-01-08 13:00Z")
    assert purge_unconfirmed_task.delay().get() == 1
    assert set(Subscriber.objects.values_list("email", flat=True)) == {"kept@example.org", "new@example.org"}
    assert [d.subscriber_id for d in Delivery.objects.all()] == [kept.pk]


def test_a_returning_reader_is_not_purged_before_they_can_confirm(client, mailoutbox, time_machine):
    from newsletter.tasks import purge_unconfirmed_task

    time_machine.move_to("2026-01-01 12:00Z")
    make_subscriber(status="unsubscribed")  # subscribed long ago, then left
    time_machine.move_to("2026-03-02 12:00Z")
    signup(client)
    time_machine.move_to("2026-03-03 03:00Z")  # the nightly purge, the link still valid
    assert purge_unconfirmed_task.delay().get() == 0
    confirm = next(link for link in links(mailoutbox[-1]) if "/confirm/" in link)
    assert "subscribed" in client.post(confirm.removeprefix("https://paperboy.test")).content.decode()
    assert Subscriber.objects.get().status == "active"


def test_a_confirmation_retried_after_a_failure_does_not_use_up_the_addresss_day(client, mailoutbox, settings, monkeypatch):
    # Only mails that went count against the daily limit: an outage's retries must not leave
    # a new reader without their link.
    from tests.backends import FlakyBackend

    settings.EMAIL_BACKEND = "tests.backends.FlakyBackend"
    settings.CONFIRMATIONS_PER_ADDRESS_PER_DAY = 1
    monkeypatch.setattr(FlakyBackend, "failures", 2)
    signup(client)
    assert [m.to for m in mailoutbox] == [["alice@example.org"]]
    signup(client)  # the day's one mail went: nothing more
    assert len(mailoutbox) == 1
