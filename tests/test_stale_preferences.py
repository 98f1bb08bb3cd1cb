"""A preferences page acts on the row as it is when written, not as the request read it: an
unsubscribe, a complaint or an erasure that lands in between is never undone."""

import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from newsletter import services, tokens, views
from newsletter.models import Subscriber, SubscriberEvent
from tests.conftest import make_subscriber

pytestmark = pytest.mark.django_db

FORM = {"topics": [], "keywords": "drones", "frequency": "daily", "weekday": "0", "hour": "9", "timezone": "UTC"}


@pytest.fixture
def alice():
    return make_subscriber(topics=["security"])


def open_page(client, subscriber):
    url = reverse("newsletter:preferences", args=[tokens.make(tokens.PREFERENCES, subscriber.pk)])
    assert client.get(url).status_code == 200
    return url


def submit(client, url, **data):
    """The page's form, posted as a browser does: with the CSRF token the page gave."""
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def meanwhile(monkeypatch, act):
    """`act` happens after the page's request has read the subscriber and before it writes."""
    read = views._preferences_subscriber

    def read_then_act(token):
        subscriber, error = read(token)
        act(Subscriber.objects.get(pk=subscriber.pk))
        return subscriber, error

    monkeypatch.setattr(views, "_preferences_subscriber", read_then_act)


def one_click(subscriber):
    services.subscriber_unsubscribe(subscriber=subscriber, how="one-click")


def complaint(subscriber):
    services.subscriber_suppress(subscriber=subscriber, reason="spam complaint")


@pytest.mark.parametrize("act, status", [(one_click, "unsubscribed"), (complaint, "suppressed")])
@pytest.mark.parametrize("action", [{"action": "save", **FORM}, {"action": "weekly"}, {"action": "pause"}])
def test_a_page_saved_after_an_unsubscribe_or_complaint_never_makes_the_reader_active(alice, monkeypatch, act, status, action):
    client = Client(enforce_csrf_checks=True)
    url = open_page(client, alice)
    meanwhile(monkeypatch, act)
    assert submit(client, url, **action).status_code == 200
    monkeypatch.undo()
    assert submit(client, url, action="resume").status_code == 200  # the stale page's next button
    alice.refresh_from_db()
    assert alice.status == status and alice.next_digest_at is None
    assert not Subscriber.objects.due(alice.created_at.replace(year=2100)).exists()
    assert not SubscriberEvent.objects.filter(kind__in=["paused", "resumed"]).exists()


def test_a_page_saved_after_the_reader_was_erased_does_not_bring_them_back(alice, monkeypatch):
    client = Client(enforce_csrf_checks=True)
    url = open_page(client, alice)
    meanwhile(monkeypatch, lambda s: services.subscriber_erase(subscriber=s))
    response = submit(client, url, action="save", **FORM)
    assert response.status_code == 400 and "link" in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("stale", ["update", "resume"])
def test_an_unsubscribe_wins_over_a_stale_save_on_another_connection(stale):
    """Two connections: one holds a copy read while the reader was active (paused, for a resume)
    and writes it after the other has unsubscribed them."""
    reader = make_subscriber(status="active" if stale == "update" else "paused")
    read, unsubscribed = threading.Barrier(2), threading.Barrier(2)
    errors = []

    def page():
        try:
            copy = Subscriber.objects.get(pk=reader.pk)
            read.wait()
            unsubscribed.wait()
            if stale == "update":
                services.subscriber_update(
                    subscriber=copy, topics=[], keywords="arms", frequency="daily", weekday=0,
                    hour=8, timezone_name="UTC",
                )
            else:
                services.subscriber_resume(subscriber=copy)
        except Exception as e:  # reported by the test, not lost in the thread
            errors.append(e)
        finally:
            connection.close()

    def one_click_unsubscribe():
        try:
            read.wait()
            one_click(Subscriber.objects.get(pk=reader.pk))
            unsubscribed.wait()
        except Exception as e:
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=page), threading.Thread(target=one_click_unsubscribe)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reader.refresh_from_db()
    assert reader.status == "unsubscribed" and reader.next_digest_at is None
