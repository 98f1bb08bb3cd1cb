"""Tracking webhooks, posted as raw ESP payloads (most of them Postmark's) with CSRF checks on,
as production applies them: ESPs post without a token."""

import base64
import datetime as dt
import json
import urllib.request
from pathlib import Path

import pytest
from django.test import Client

from newsletter.models import Subscriber, SubscriberEvent, Suppression, email_hash
from tests.conftest import make_subscriber
from newsletter.tasks import enqueue_deliveries

pytestmark = pytest.mark.django_db

URL = "/anymail/postmark/tracking/"
# A few requests replayed from django-anymail's own test suite (its test keys and addresses).
ANYMAIL_PAYLOADS = [json.loads(line) for line in (Path(__file__).parent / "anymail_payloads.jsonl").open()]


@pytest.fixture
def client():
    """The ESP: Django's default test client skips the CSRF check that production applies."""
    return Client(enforce_csrf_checks=True)


def auth(credentials="hook:secret"):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def bounce(subscriber, type_="HardBounce", event_id=1001, at="2026-03-02T10:00:00Z"):
    return {
        "RecordType": "Bounce", "ID": event_id, "Type": type_, "TypeCode": 1, "Name": type_, "Tag": "digest",
        "MessageID": f"m-{event_id}", "Metadata": {"subscriber": str(subscriber.pk), "edition": "2024-03-14"},
        "Description": "The server was unable to deliver your message", "Details": "smtp;550 5.1.1 unknown user",
        "Email": subscriber.email, "From": "digest@paperboy.test", "BouncedAt": at,
    }


def post(client, payload, credentials="hook:secret"):
    headers = auth(credentials) if credentials else {}
    return client.post(URL, json.dumps(payload), content_type="application/json", **headers)


@pytest.mark.parametrize("credentials", [None, "hook:wrong"])
def test_a_wrong_or_missing_secret_is_refused_and_nothing_stored(client, credentials):
    alice = make_subscriber()
    response = post(client, bounce(alice), credentials)
    assert response.status_code == 400 and b"CSRF" not in response.content
    assert not SubscriberEvent.objects.exists()
    assert Subscriber.objects.get().status == "active"


def test_a_hard_bounce_suppresses_at_once(client):
    alice = make_subscriber()
    assert post(client, bounce(alice)).status_code == 200
    alice.refresh_from_db()
    assert alice.status == "suppressed" and alice.suppressed_reason == "hard bounce" and alice.next_digest_at is None
    assert Suppression.objects.filter(email_hash=email_hash("alice@example.org")).exists()
    assert alice.events.get().kind == "bounced"


def test_the_same_event_twice_is_one_record_and_one_transition(client):
    alice = make_subscriber()
    post(client, bounce(alice))
    post(client, bounce(alice))
    assert SubscriberEvent.objects.count() == 1
    assert Suppression.objects.count() == 1


def test_a_complaint_and_an_esp_unsubscribe_suppress(client):
    alice = make_subscriber()
    make_subscriber("bob@example.org")
    complaint = {**bounce(alice, "SpamComplaint", 7), "RecordType": "SpamComplaint"}
    post(client, complaint)
    change = {"RecordType": "SubscriptionChange", "MessageID": "m-9", "ChangedAt": "2026-03-02T11:00:00Z",
              "Recipient": "bob@example.org", "SuppressSending": True, "SuppressionReason": "ManualSuppression",
              "Metadata": {}}
    post(client, change)
    assert Subscriber.objects.get(email="alice@example.org").suppressed_reason == "spam complaint"
    assert Subscriber.objects.get(email="bob@example.org").suppressed_reason == "unsubscribed at the ESP"


def test_soft_bounces_suppress_only_after_three(client):
    alice = make_subscriber()
    for n in range(2):
        post(client, bounce(alice, "SoftBounce", 200 + n))
        assert Subscriber.objects.get().status == "active"
    post(client, bounce(alice, "SoftBounce", 300))
    alice.refresh_from_db()
    assert alice.status == "suppressed" and "soft bounces" in alice.suppressed_reason
    assert alice.events.filter(kind="soft_bounce").count() == 3


def test_a_late_delivered_or_opened_never_undoes_a_bounce(client):
    alice = make_subscriber()
    post(client, bounce(alice, at="2026-03-02T10:00:00Z"))
    delivered = {"RecordType": "Delivery", "MessageID": "m-1001", "Recipient": alice.email,
                 "DeliveredAt": "2026-03-02T09:00:00Z", "Metadata": {"subscriber": str(alice.pk)}}
    opened = {"RecordType": "Open", "MessageID": "m-1001", "Recipient": alice.email,
              "ReceivedAt": "2026-03-02T12:00:00Z", "Metadata": {"subscriber": str(alice.pk)}}
    assert post(client, delivered).status_code == 200 and post(client, opened).status_code == 200
    alice.refresh_from_db()
    assert alice.status == "suppressed"
    assert set(alice.events.values_list("kind", flat=True)) == {"bounced", "delivered", "opened"}


def test_opens_and_clicks_never_change_consent(client):
    alice = make_subscriber(status="unsubscribed")
    click = {"RecordType": "Click", "MessageID": "m-5", "Recipient": alice.email, "ReceivedAt": "2026-03-02T12:00:00Z",
             "OriginalLink": "https://example.org", "Metadata": {}}
    assert post(client, click).status_code == 200
    assert Subscriber.objects.get().status == "unsubscribed"


def test_a_suppressed_address_cannot_be_resubscribed_by_a_third_party(client, mailoutbox):
    alice = make_subscriber()
    post(client, bounce(alice))
    Client().post("/subscribe/", {"email": "alice@example.org", "frequency": "daily"})
    assert Subscriber.objects.get().status == "suppressed" and mailoutbox == []


def test_events_for_unknown_addresses_are_still_recorded(client):
    ghost = Subscriber(pk=999, email="ghost@example.org")
    assert post(client, bounce(ghost)).status_code == 200
    assert SubscriberEvent.objects.get().subscriber is None


def test_soft_bounces_far_apart_do_not_add_up(client):
    alice = make_subscriber()
    for n, day in enumerate(["2026-01-01", "2026-02-15", "2026-04-01"]):
        assert post(client, bounce(alice, "SoftBounce", 400 + n, at=f"{day}T10:00:00Z")).status_code == 200
    assert Subscriber.objects.get().status == "active"


def test_a_high_complaint_rate_warns_in_the_admin_and_pauses_sending(client, admin_client, time_machine):
    import datetime as dt

    from newsletter.fanout import digests_dispatch
    from newsletter.models import Delivery, Edition

    time_machine.move_to("2026-03-02T10:00Z")
    edition = Edition.objects.create(date="2026-03-02")
    people = [make_subscriber(f"r{n}@example.org") for n in range(200)]
    Delivery.objects.bulk_create([Delivery(subscriber=p, edition=edition, state="sent", sent_at="2026-03-02T07:00Z")
                                  for p in people])
    complaint = {**bounce(people[0], "SpamComplaint", 900, at="2026-03-02T09:00:00Z"), "RecordType": "SpamComplaint"}
    post(client, complaint)
    page = admin_client.get("/admin/").content.decode()
    assert "1 (0.50 %)" in page and "digests are paused" in page
    Subscriber.objects.filter(email="r5@example.org").update(next_digest_at="2026-03-02T09:00Z")
    assert digests_dispatch(enqueue=enqueue_deliveries, now=dt.datetime(2026, 3, 2, 10, tzinfo=dt.timezone.utc)) == 0
    time_machine.move_to("2026-03-04T10:00Z")  # a day later the rate is back to nothing
    assert digests_dispatch(enqueue=enqueue_deliveries, now=dt.datetime(2026, 3, 4, 10, tzinfo=dt.timezone.utc)) > 0


BAD_BODIES = [b"{", b'{"RecordType": "Bounce", "ID": 1', b"", b"\xff\xfe\x00", b'"text"', b"null", b"42", b"[1, 2]"]


@pytest.mark.parametrize("esp", ["postmark", "mailgun", "brevo", "mailjet", "sparkpost", "mailtrap"])
@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_malformed_body_with_valid_credentials_is_a_400_and_stores_nothing(client, settings, esp, body):
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-key"}
    response = client.post(f"/anymail/{esp}/tracking/", body, content_type="application/json", **auth())
    assert response.status_code == 400
    assert not SubscriberEvent.objects.exists()


@pytest.mark.parametrize(
    "change",
    [{"Metadata": "subscriber=1"}, {"Metadata": ["1"]}, {"BouncedAt": 1709373600}, {"Email": 42},
     {"Email": ["alice@example.org"]}],
)
def test_a_postmark_event_of_the_wrong_shape_is_a_400_and_changes_nothing(client, change):
    alice = make_subscriber()
    response = post(client, {**bounce(alice), **change})
    assert response.status_code == 400 and b"Malformed Postmark webhook payload" in response.content
    assert not SubscriberEvent.objects.exists() and Subscriber.objects.get().status == "active"


def test_a_list_of_postmark_events_is_refused(client):
    alice = make_subscriber()
    response = post(client, [bounce(alice)])
    assert response.status_code == 400 and Subscriber.objects.get().status == "active"


def test_a_mailjet_batch_with_one_bad_event_stores_none_of_them(client):
    alice = make_subscriber()
    good = {"event": "bounce", "time": 1709373600, "MessageID": 1, "email": alice.email, "hard_bounce": True}
    batch = [good, {**good, "MessageID": 2}, {**good, "MessageID": 3, "email": ["x@example.org"]}]
    response = client.post("/anymail/mailjet/tracking/", json.dumps(batch), content_type="application/json", **auth())
    assert response.status_code == 400
    assert not SubscriberEvent.objects.exists() and Subscriber.objects.get().status == "active"
    response = client.post("/anymail/mailjet/tracking/", json.dumps(batch[:2]), content_type="application/json", **auth())
    assert response.status_code == 200 and Subscriber.objects.get().status == "suppressed"


@pytest.mark.parametrize("named", ["١٢", "٣", "12 ", "+3", "7"])
def test_a_bounce_acts_on_its_recipient_whatever_subscriber_its_metadata_names(client, named):
    people = [make_subscriber(f"p{n}@example.org") for n in range(13)]
    bob = make_subscriber("bob@example.org")
    assert post(client, {**bounce(bob), "Metadata": {"subscriber": named}}).status_code == 200
    assert list(Subscriber.objects.filter(status="suppressed")) == [bob]
    assert SubscriberEvent.objects.get().subscriber == bob
    assert all(p.events.count() == 0 for p in people)


@pytest.mark.parametrize("spelling", ["IDN@Bu\u0308cher.DE", "\u0130dn@B\u00fccher.de"])  # \u0130: dotted capital I
def test_a_bounce_for_an_idn_address_finds_its_subscriber_in_any_form(client, spelling):
    idn = make_subscriber("idn@xn--bcher-kva.de")
    assert post(client, {**bounce(idn), "Email": spelling}).status_code == 200
    assert Subscriber.objects.get().status == "suppressed"


@pytest.mark.parametrize("esp, missing", [("amazon_ses", "boto3"), ("mailersend", "MAILERSEND_SIGNING_SECRET"),
                                          ("postal", "POSTAL_WEBHOOK_KEY"), ("mandrill", "MANDRILL_WEBHOOK_KEY")])
def test_the_webhook_of_an_esp_this_site_is_not_configured_for_says_what_is_missing_without_a_500(client, esp, missing):
    response = client.post(f"/anymail/{esp}/tracking/", b"{}", content_type="application/json", **auth())
    assert response.status_code == 503 and b"not configured" in response.content and missing.encode() in response.content
    assert not SubscriberEvent.objects.exists()


def test_events_without_metadata_or_with_numeric_message_ids_are_accepted(client):
    alice = make_subscriber()
    event = {"event": "bounce", "timestamp": 1709373600, "message_id": 4711, "event_id": "ev-1",
             "email": alice.email, "custom_variables": None}
    response = client.post("/anymail/mailtrap/tracking/", json.dumps({"events": [event]}),
                           content_type="application/json", **auth())
    assert response.status_code == 200
    assert Subscriber.objects.get().status == "suppressed" and SubscriberEvent.objects.get().message_id == "4711"


def delivered(subscriber, delivery_id, event_id=2001):
    return {
        "RecordType": "Delivery", "ID": event_id, "MessageID": f"m-{event_id}", "Recipient": subscriber.email,
        "Tag": "digest", "DeliveredAt": "2026-03-02T10:00:00Z", "Details": "Test delivery",
        "Metadata": {"subscriber": str(subscriber.pk), "edition": "2024-03-14", "delivery": str(delivery_id)},
    }


def test_the_esps_word_settles_a_delivery_a_dead_worker_left_in_doubt(client):
    from newsletter.models import Delivery, Edition

    alice, bob = make_subscriber(), make_subscriber("bob@example.org")
    edition = Edition.objects.create(date=dt.date(2024, 3, 14))
    doubt = Delivery.objects.create(subscriber=alice, edition=edition, state="failed",
                                    note="interrupted while sending; not resent: whether it went out is unknown")
    other = Delivery.objects.create(subscriber=bob, edition=edition, state="sending")
    assert post(client, delivered(alice, doubt.pk)).status_code == 200
    doubt.refresh_from_db()
    assert doubt.state == "sent" and doubt.note == "sent: the ESP reported it delivered" and doubt.sent_at
    # An event names only its own recipient's deliveries.
    assert post(client, delivered(alice, other.pk, event_id=2002)).status_code == 200
    other.refresh_from_db()
    assert other.state == "sending"


def test_without_a_webhook_secret_the_webhooks_are_closed(client, settings):
    settings.ANYMAIL = {}  # e.g. an SMTP site that never set one: anymail alone would take anyone's posts
    alice = make_subscriber()
    response = post(client, bounce(alice), credentials=None)
    assert response.status_code == 503
    assert not SubscriberEvent.objects.exists() and Subscriber.objects.get().status == "active"


def replay(client, payload):
    body = base64.b64decode(payload["body_b64"])
    return client.post(payload["path"], body, content_type=payload["content_type"], **payload["meta"])


def anymail_payloads(kind):
    return [pytest.param(p, id=p["test"].split(".")[-2]) for p in ANYMAIL_PAYLOADS if kind in p["test"]
            and "amazon_ses" not in p["path"]]


@pytest.fixture
def anymail_test_keys(settings):
    """The credentials django-anymail's test suite signed these payloads with."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": "username:password", "MAILGUN_WEBHOOK_SIGNING_KEY": "TEST_WEBHOOK_SIGNING_KEY"}


@pytest.mark.parametrize("payload", anymail_payloads("bounce"))
def test_each_esps_bounce_suppresses_exactly_its_recipient(client, anymail_test_keys, payload):
    bouncing, bystander = make_subscriber(payload["recipient"]), make_subscriber("bystander@example.org")
    response = replay(client, payload)
    assert response.status_code == 200, response.content
    assert list(Subscriber.objects.filter(status="suppressed")) == [bouncing]
    assert SubscriberEvent.objects.get().subscriber == bouncing and bystander.events.count() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_bounce_posted_to_the_running_server_suppresses_its_recipient(server, anymail_test_keys):
    payload = next(p for p in ANYMAIL_PAYLOADS if p["test"].endswith("PostmarkDeliveryTestCase.test_bounce_event"))
    bouncing, bystander = make_subscriber(payload["recipient"]), make_subscriber("bystander@example.org")
    headers = {"Content-Type": payload["content_type"], "Authorization": payload["meta"]["HTTP_AUTHORIZATION"]}
    request = urllib.request.Request(server.url + payload["path"], base64.b64decode(payload["body_b64"]), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    bouncing.refresh_from_db()
    bystander.refresh_from_db()
    assert bouncing.status == "suppressed" and bouncing.suppressed_reason == "hard bounce"
    assert bystander.status == "active"


@pytest.mark.parametrize("payload", anymail_payloads("misconfigured_inbound"))
def test_inbound_mail_posted_to_a_tracking_url_is_a_400_that_says_so(client, anymail_test_keys, payload):
    make_subscriber("from@example.org")
    response = replay(client, payload)
    # A 5xx would have the ESP retry it for days.
    assert response.status_code == 400 and b"tracking event" in response.content and b"inbound" in response.content
    assert not SubscriberEvent.objects.exists() and Subscriber.objects.get().status == "active"


def test_amazon_ses_without_boto3_says_what_to_install(client, anymail_test_keys, caplog):
    payload = next(p for p in ANYMAIL_PAYLOADS if "amazon_ses" in p["path"])
    make_subscriber(payload["recipient"])
    response = replay(client, payload)
    assert response.status_code == 503 and b"boto3" in response.content
    assert "boto3" in caplog.text and "django-anymail[amazon-ses]" in caplog.text
    assert not SubscriberEvent.objects.exists() and Subscriber.objects.get().status == "active"


def sendgrid(events):
    return Client(enforce_csrf_checks=True).post("/anymail/sendgrid/tracking/", json.dumps(events),
                                                 content_type="application/json", **auth())


def test_ten_thousand_events_in_one_post_are_recorded_once_with_a_bounded_number_of_queries(
    django_assert_max_num_queries,
):
    from newsletter.models import Delivery, Edition

    people = [make_subscriber(f"r{n}@example.org") for n in range(200)]
    edition = Edition.objects.create(date=dt.date(2026, 3, 1))
    Delivery.objects.bulk_create([Delivery(subscriber=p, edition=edition, state="sending" if n < 10 else "sent")
                                  for n, p in enumerate(people)])
    deliveries = dict(Delivery.objects.values_list("subscriber_id", "pk"))
    events, at = [], 1772445600  # 2026-03-02T10:00Z

    def event(person, kind, **fields):
        events.append({"email": person.email, "timestamp": at + len(events), "event": kind,
                       "sg_event_id": f"ev-{len(events)}", "sg_message_id": f"m-{person.pk}",
                       "delivery": str(deliveries[person.pk]), **fields})

    hard, soft, twice = people[:10], people[10:15], people[15:20]  # the first ten are in doubt, too
    for person in hard:
        event(person, "bounce", reason="550 5.1.1 user unknown")
    for person in soft:
        for _ in range(3):
            event(person, "deferred")
    for person in twice:
        for _ in range(2):
            event(person, "deferred")
    events.append({"email": "ghost@example.org", "timestamp": at, "event": "delivered", "sg_event_id": "ghost"})
    while len(events) < 10_000:
        event(people[len(events) % 200], ["delivered", "open", "click"][len(events) % 3])
    posted = events + events[-100:]  # ESPs repeat themselves, even within a post
    with django_assert_max_num_queries(300):
        assert sendgrid(posted).status_code == 200
    assert SubscriberEvent.objects.count() == 10_000 and SubscriberEvent.objects.filter(subscriber=None).count() == 1
    suppressed = dict(Subscriber.objects.filter(status="suppressed").values_list("email", "suppressed_reason"))
    assert suppressed == {p.email: "hard bounce" for p in hard} | {p.email: "3 soft bounces" for p in soft}
    assert Suppression.objects.count() == 15
    settled = Delivery.objects.filter(note__startswith="sent: the ESP reported it")
    assert sorted(settled.values_list("subscriber_id", flat=True)) == [p.pk for p in hard]
    before = list(Subscriber.objects.order_by("pk").values_list("status", "suppressed_at", "updated_at"))
    with django_assert_max_num_queries(30):
        assert sendgrid(posted).status_code == 200
    assert SubscriberEvent.objects.count() == 10_000 and Suppression.objects.count() == 15
    assert list(Subscriber.objects.order_by("pk").values_list("status", "suppressed_at", "updated_at")) == before
