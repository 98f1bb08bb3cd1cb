"""One mailbox, one subscriber: addresses are stored and looked up in one canonical form."""

import pytest

from newsletter.models import Subscriber
from tests.conftest import make_subscriber

pytestmark = pytest.mark.django_db

# \u0130: the dotted capital I a Turkish keyboard types for I, which lower() makes i + U+0307.
FORMS = ["idn@b\u00fccher.de", "idn@bu\u0308cher.de", "idn@xn--bcher-kva.de", "IDN@B\u00dcCHER.DE", "\u0130dn@b\u00fccher.de"]


def test_an_idn_address_typed_composed_decomposed_or_in_punycode_is_one_subscriber(client, mailoutbox):
    for address in FORMS:
        assert client.post("/subscribe/", {"email": address, "frequency": "daily"}).status_code == 302
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["idn@xn--bcher-kva.de"]
    assert len(mailoutbox) == 3  # the per-address daily limit counts one mailbox


@pytest.mark.parametrize("address", FORMS)
def test_send_my_link_finds_the_subscriber_in_any_form_of_the_address(client, mailoutbox, address):
    make_subscriber("idn@xn--bcher-kva.de")
    client.post("/preferences/", {"email": address})
    assert [m.to for m in mailoutbox] == [["idn@xn--bcher-kva.de"]]


@pytest.mark.parametrize("url", ["/subscribe/", "/preferences/"])
def test_a_local_part_over_64_characters_is_refused_with_a_form_error(client, mailoutbox, url):
    response = client.post(url, {"email": "a" * 65 + "@example.org", "frequency": "daily"})
    assert response.status_code == 400
    assert "at most 64 characters" in response.content.decode()
    assert not Subscriber.objects.exists() and mailoutbox == []


def test_an_address_cannot_be_rewritten_in_the_admin(admin_client):
    alice = make_subscriber()
    data = {"email": "Alice@B\u00fccher.DE", "status": "active", "frequency": "daily", "weekday": 0, "hour": 7,
            "timezone": "UTC", "events-TOTAL_FORMS": 0, "events-INITIAL_FORMS": 0}
    response = admin_client.post(f"/admin/newsletter/subscriber/{alice.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    alice.refresh_from_db()
    assert alice.email == "alice@example.org"  # read-only: the address is the subscriber's own, confirmed



def test_addresses_stored_with_a_dotted_i_are_found_by_any_spelling_after_the_migration(client, mailoutbox, settings):
    import hmac
    import importlib

    from django.apps import apps

    from newsletter.models import Suppression
    from newsletter.services import subscriber_signup

    # As İdn@bücher.de and Kİya@example.org were stored before: lower(), i + U+0307.
    idn, kiya = make_subscriber("x@example.org"), make_subscriber("y@example.org", status="suppressed")
    Subscriber.objects.filter(pk=idn.pk).update(email="i\u0307dn@xn--bcher-kva.de")
    Subscriber.objects.filter(pk=kiya.pk).update(email="ki\u0307ya@example.org")
    salt = settings.SUPPRESSION_SALT.encode()
    Suppression.objects.create(email_hash=hmac.new(salt, "ki\u0307ya@example.org".encode(), "sha256").hexdigest(),
                               reason="hard bounce")
    importlib.import_module("newsletter.migrations.0014_addresses_dotted_i").fold_dotted_i(apps, None)
    client.post("/preferences/", {"email": "\u0130dn@b\u00fccher.de"})
    assert [m.to for m in mailoutbox] == [["idn@xn--bcher-kva.de"]]
    Subscriber.objects.filter(pk=kiya.pk).delete()  # erased: only the hash is left
    subscriber_signup(email="kiya@example.org")
    assert not Subscriber.objects.filter(email="kiya@example.org").exists() and len(mailoutbox) == 1
