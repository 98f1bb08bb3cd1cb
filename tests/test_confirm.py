import datetime as dt

import pytest
from django.core import signing
from django.urls import reverse

from newsletter import tokens
from newsletter.models import Subscriber
from tests.conftest import make_subscriber

pytestmark = pytest.mark.django_db


def confirm_url(subscriber):
    return reverse("newsletter:confirm", args=[tokens.make(tokens.CONFIRM, subscriber.pk)])


def test_the_link_shows_a_button_and_does_not_confirm(client):
    alice = make_subscriber(status="pending")
    for method in (client.get, client.head):
        response = method(confirm_url(alice))
        assert response.status_code == 200
    assert "Yes, subscribe me" in client.get(confirm_url(alice)).content.decode()
    alice.refresh_from_db()
    assert alice.status == "pending"


def test_posting_confirms_and_records_when_and_where(client, time_machine):
    time_machine.move_to("2026-03-02 10:00Z")
    alice = make_subscriber(status="pending")
    response = client.post(confirm_url(alice), REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="Phone/2")
    assert response.status_code == 200 and "subscribed" in response.content.decode()
    alice.refresh_from_db()
    assert alice.status == "active"
    assert alice.confirm_ip == "198.51.100.4" and alice.confirm_user_agent == "Phone/2"
    assert alice.confirmed_at.isoformat().startswith("2026-03-02T10:00")
    assert alice.next_digest_at.isoformat() == "2026-03-03T07:00:00+00:00"  # next 07:00 UTC


def test_confirming_twice_is_harmless(client):
    alice = make_subscriber(status="pending")
    client.post(confirm_url(alice))
    first = Subscriber.objects.get().confirmed_at
    assert client.post(confirm_url(alice)).status_code == 200
    assert Subscriber.objects.get().confirmed_at == first


def test_an_unsubscribed_address_is_not_revived_by_an_old_link(client):
    alice = make_subscriber(status="unsubscribed")
    client.post(confirm_url(alice))
    assert Subscriber.objects.get().status == "unsubscribed"


def test_an_expired_link_offers_to_resend(client, mailoutbox, time_machine):
    time_machine.move_to("2026-03-01 10:00Z")
    alice = make_subscriber(status="pending")
    url = confirm_url(alice)
    time_machine.move_to("2026-03-04 10:01Z")  # 72 h later
    response = client.post(url)
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert Subscriber.objects.get().status == "pending"
    resend = reverse("newsletter:confirm_resend", args=[url.split("/")[-2]])
    assert resend in response.content.decode()
    assert client.post(resend).status_code == 302
    assert len(mailoutbox) == 1 and "/confirm/" in mailoutbox[0].body
    fresh = [w for w in mailoutbox[0].body.split() if "/confirm/" in w][0].replace("https://paperboy.test", "")
    client.post(fresh)
    assert Subscriber.objects.get().status == "active"


def other_payload(token):
    """Someone else's id with this token's signature."""
    payload, rest = token.split(":", 1)
    return tokens.make(tokens.CONFIRM, 10**6).split(":", 1)[0] + ":" + rest


def flip_last(token):
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.mark.parametrize("mangle", [flip_last, lambda t: "garbage", other_payload])
def test_a_tampered_link_is_refused_kindly(client, mangle):
    alice = make_subscriber(status="pending")
    response = client.post(reverse("newsletter:confirm", args=[mangle(tokens.make(tokens.CONFIRM, alice.pk))]))
    assert response.status_code == 400
    assert "not valid" in response.content.decode() and "E-mail me" in response.content.decode()
    assert Subscriber.objects.get().status == "pending"


def test_a_token_made_for_another_purpose_is_refused(client):
    alice = make_subscriber(status="pending")
    unsubscribe_token = tokens.make(tokens.UNSUBSCRIBE, alice.pk)
    assert client.post(reverse("newsletter:confirm", args=[unsubscribe_token])).status_code == 400
    assert Subscriber.objects.get().status == "pending"


def test_tokens_expire_only_where_they_should():
    token = tokens.make(tokens.UNSUBSCRIBE, 7)
    assert tokens.read(tokens.UNSUBSCRIBE, token) == 7
    with pytest.raises(tokens.BadToken):
        tokens.read(tokens.PREFERENCES, token)
    with pytest.raises(tokens.BadToken) as error:
        tokens.read(tokens.UNSUBSCRIBE, token, max_age=dt.timedelta(seconds=-1))
    assert error.value.expired


@pytest.mark.parametrize("purpose", [tokens.CONFIRM, tokens.PREFERENCES, tokens.UNSUBSCRIBE, tokens.FEEDBACK])
def test_tokens_are_the_ones_djangos_signing_makes(purpose, time_machine, settings):
    time_machine.move_to(dt.datetime(2026, 3, 14, 7, 0, 3, tzinfo=dt.timezone.utc), tick=False)
    for subscriber_id in (1, 42, 10**9):
        assert tokens.make(purpose, subscriber_id) == signing.dumps(subscriber_id, salt=purpose)
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert tokens.make(purpose, 5) == signing.dumps(5, salt=purpose)
    purposes = [tokens.UNSUBSCRIBE, tokens.PREFERENCES, tokens.FEEDBACK]
    assert tokens.make_many(purposes, 77) == [signing.dumps(77, salt=p) for p in purposes]


@pytest.mark.parametrize("salt", ["short", "a-salt-longer-than-sha256s-64-byte-block-" * 3])
def test_what_is_kept_of_an_address_is_its_salted_hmac(salt, settings):
    # Suppression rows hold these: the hash must stay the standard HMAC of the normalised address.
    import hashlib
    import hmac

    from newsletter.models import email_hash

    settings.SUPPRESSION_SALT = salt
    expected = hmac.new(salt.encode(), b"reader@example.org", hashlib.sha256).hexdigest()
    assert email_hash(" Reader@Example.org ") == expected


def test_an_unknown_time_zone_or_an_unconfirmed_reader_changes_no_time_zone(client):
    zoe = make_subscriber("zoe@example.org")
    response = client.post(confirm_url(zoe), {"timezone": "Mars/Olympus"})
    assert response.status_code == 400 and "We do not know that time zone" in response.content.decode()
    pending = make_subscriber("yan@example.org", status="pending")
    assert client.post(confirm_url(pending), {"timezone": "Europe/Berlin"}).status_code == 400
    assert list(Subscriber.objects.values_list("timezone", flat=True)) == ["UTC", "UTC"]
