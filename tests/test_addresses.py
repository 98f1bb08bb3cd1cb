"""One mailbox, one subscriber: addresses are stored and looked up in one canonical form."""

import pytest

from newsletter.models import Subscriber
from tests.conftest import make_subscriber

pytestmark = pytest.mark.django_db

FORMS = ["idn@b\u00fccher.de", "idn@bu\u0308cher.de", "idn@xn--bcher-kva.de", "IDN@B\u00dcCHER.DE"]


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
