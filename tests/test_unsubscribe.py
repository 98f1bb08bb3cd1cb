import re

import pytest
from django.test import Client
from django.urls import reverse

from newsletter import tokens
from newsletter.models import Subscriber
from tests.conftest import make_subscriber

pytestmark = pytest.mark.django_db


def url(subscriber_id, purpose=tokens.UNSUBSCRIBE):
    return reverse("newsletter:unsubscribe", args=[tokens.make(purpose, subscriber_id)])


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


def test_get_and_head_only_show_a_button(csrf_client):
    alice = make_subscriber()
    assert "<button" in csrf_client.get(url(alice.pk)).content.decode()
    assert csrf_client.head(url(alice.pk)).status_code == 200
    assert Subscriber.objects.get().status == "active"


@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_post_unsubscribes_at_once_without_csrf_or_cookies(csrf_client, multipart):
    alice = make_subscriber()
    if multipart:
        response = csrf_client.post(url(alice.pk), {"List-Unsubscribe": "One-Click"})
    else:
        response = csrf_client.post(url(alice.pk), "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.status == "unsubscribed" and alice.unsubscribed_at and alice.next_digest_at is None
    assert alice.events.filter(kind="unsubscribed", description="one-click").exists()


def test_repeating_it_is_a_200_with_no_second_change(csrf_client):
    alice = make_subscriber()
    csrf_client.post(url(alice.pk), {"List-Unsubscribe": "One-Click"})
    first = Subscriber.objects.get().unsubscribed_at
    assert csrf_client.post(url(alice.pk), {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert Subscriber.objects.get().unsubscribed_at == first
    assert Subscriber.objects.get().events.filter(kind="unsubscribed").count() == 1


def test_an_unknown_subscriber_gets_the_same_200(csrf_client):
    assert csrf_client.post(url(424242), {"List-Unsubscribe": "One-Click"}).status_code == 200


def test_a_token_for_another_purpose_or_tampered_is_refused(csrf_client):
    alice = make_subscriber()
    assert csrf_client.post(url(alice.pk, tokens.PREFERENCES)).status_code == 400
    assert csrf_client.post(url(alice.pk) + "x").status_code in (400, 404)
    assert Subscriber.objects.get().status == "active"


def test_the_button_on_the_page_unsubscribes(client):
    alice = make_subscriber()
    page = client.get(url(alice.pk)).content.decode()
    assert 'method="post"' in page
    response = client.post(url(alice.pk))
    assert "unsubscribed" in response.content.decode()
    assert Subscriber.objects.get().status == "unsubscribed"


def test_the_page_names_the_masked_address_and_offers_weekly_or_a_pause_first(client):
    alice = make_subscriber("alice@example.org")
    page = client.get(url(alice.pk)).content.decode()
    assert "a•••e@example.org" in page and "alice@example.org" not in page
    assert page.index("One digest a week instead") < page.index("Pause digests") < page.index(">Unsubscribe</button>")
    offers = re.search(r'<form method="post" action="([^"]+)" class="offers">', page).group(1)
    client.post(offers, {"action": "weekly"})
    alice.refresh_from_db()
    assert (alice.frequency, alice.status) == ("weekly", "active")
    assert "One digest a week instead" not in client.get(url(alice.pk)).content.decode()
    client.post(offers, {"action": "pause"})
    assert Subscriber.objects.get().status == "paused"
