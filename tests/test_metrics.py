"""/metrics: what an operator's Prometheus reads, computed from the database at each scrape,
and only for the token's holder or the addresses allowed."""

import datetime as dt

import pytest
from django.utils import timezone

from newsletter.fanout import deliveries_create, edition_get
from newsletter.models import Delivery, Subscriber, SubscriberEvent
from papers.models import FetchRun
from tests.conftest import DAY, make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = "metrics-secret"
    return "metrics-secret"


def test_metrics_are_refused_without_the_token(client, token):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=token).status_code == 403  # a bearer token, said so
    assert b"METRICS_TOKEN" in client.get("/metrics").content


def test_metrics_are_not_served_unless_configured(client):
    assert client.get("/metrics").status_code == 404


def test_an_allowed_address_needs_no_token(client, settings):
    import ipaddress

    settings.METRICS_ALLOWED_IPS = [ipaddress.ip_network("10.0.0.0/8")]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403


def test_metrics_count_digests_latency_esp_errors_and_fetch_runs(client, token):
    readers = [make_subscriber(f"reader{n}@example.org") for n in range(4)]
    deliveries_create(edition_get(DAY), [s.pk for s in readers])
    now = timezone.now()
    sent, failed, skipped, _ = Delivery.objects.order_by("pk")
    Delivery.objects.filter(pk=sent.pk).update(state="sent", sent_at=now + dt.timedelta(seconds=30))
    Delivery.objects.filter(pk=failed.pk).update(state="failed")
    Delivery.objects.filter(pk=skipped.pk).update(state="skipped")
    SubscriberEvent.objects.create(subscriber=readers[0], kind="bounced", occurred_at=now)
    FetchRun.objects.create(source="daily", day=DAY, status="success")
    FetchRun.objects.create(source="daily", day=DAY, status="failed")
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    body = response.content.decode()
    edition = f'edition="{DAY.isoformat()}",mode="message"'
    for state, n in (("sent", 1), ("failed", 1), ("skipped", 1), ("pending", 1)):
        assert f'paperboy_digests{{{edition},state="{state}"}} {n}.0' in body
    assert 'paperboy_send_latency_seconds_bucket{le="10"} 0.0' in body
    assert 'paperboy_send_latency_seconds_bucket{le="60"} 1.0' in body
    assert 'paperboy_esp_errors{kind="bounced"} 1.0' in body
    assert "paperboy_bounce_rate 1.0" in body  # one bounce for one digest sent
    assert "paperboy_complaint_rate 0.0" in body
    assert 'paperboy_fetch_runs_total{source="daily",status="failed"} 1.0' in body
