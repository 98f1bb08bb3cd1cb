"""The client's address behind proxies: rate limits and consent records use the same one."""

import pytest
from django.urls import reverse

from newsletter import views
from newsletter.models import Subscriber

pytestmark = pytest.mark.django_db

URL = reverse("newsletter:subscribe")
PROXY = "10.0.0.2"
LIMIT = int(views.SIGNUP_RATE.split("/")[0])


def signup(client, email="alice@example.org", **meta):
    return client.post(URL, {"email": email, "frequency": "daily"}, **{"REMOTE_ADDR": PROXY, **meta})


def consent_ip(email="alice@example.org"):
    return Subscriber.objects.get(email=email).consent_ip


def test_without_trusted_proxies_the_forwarded_header_is_ignored(client):
    signup(client, HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert consent_ip() == PROXY


@pytest.mark.parametrize("count, header, expected", [
    (1, "198.51.100.9", "198.51.100.9"),
    (1, "203.0.113.66, 198.51.100.9", "198.51.100.9"),  # the client's own entry on the left is not believed
    (2, "203.0.113.66, 198.51.100.9, 10.0.0.1", "198.51.100.9"),
    (1, "junk, 198.51.100.9", "198.51.100.9"),
    (1, "198.51.100.9:4711", "198.51.100.9"),
    (1, "[2001:db8::1]:4711", "2001:db8::1"),
    (2, "198.51.100.9", PROXY),  # shorter than the proxies it should have passed
    (1, "", PROXY),
    (1, "junk", PROXY),
    (1, "unknown, , ;", PROXY),
    (1, ["198.51.100.9"], PROXY),  # not a string: a misbehaving server
    (1, None, PROXY),
])
def test_the_nth_address_from_the_right_is_the_client_else_remote_addr(client, settings, count, header, expected):
    settings.TRUSTED_PROXY_COUNT = count
    meta = {} if header is None else {"HTTP_X_FORWARDED_FOR": header}
    assert signup(client, **meta).status_code == 302
    assert consent_ip() == expected


def test_a_client_rewriting_the_header_cannot_walk_past_the_per_ip_limit(client, settings, mailoutbox):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(LIMIT + 3):
        header = f"203.0.113.{n}, 198.51.100.9"  # a fresh spoofed address each time, then our proxy's entry
        assert signup(client, email=f"user{n}@example.org", HTTP_X_FORWARDED_FOR=header).status_code == 302
    assert Subscriber.objects.count() == LIMIT


def test_clients_behind_the_proxy_are_limited_each_on_their_own(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(LIMIT):
        signup(client, email=f"a{n}@example.org", HTTP_X_FORWARDED_FOR="198.51.100.9")
    signup(client, email="b@example.org", HTTP_X_FORWARDED_FOR="198.51.100.10")
    assert Subscriber.objects.filter(email="b@example.org").exists()


def test_no_address_at_all_is_not_an_error(client):
    assert signup(client, REMOTE_ADDR="").status_code == 302
    assert consent_ip() is None
