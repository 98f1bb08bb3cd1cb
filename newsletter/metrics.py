"""/metrics for Prometheus (prometheus-client): read from the database and the broker at each
scrape by a collector, rather than counted in the hot path, so every worker on every host is
included and nothing is lost with a process. Only the rows of the last days are read (the
deliveries' created_at index). Reachable with METRICS_TOKEN as a bearer token or from
METRICS_ALLOWED_IPS; not served at all when neither is set."""

import datetime as dt
import hmac
import ipaddress

import redis
from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import Http404, HttpResponse, HttpResponseForbidden
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from config.client_ip import client_ip
from newsletter import tracking
from newsletter.models import Delivery, SubscriberEvent
from papers.models import FetchRun

RECENT = dt.timedelta(days=2)  # editions reported: those queued in the last two days
LATENCY_BUCKETS = (10, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600)
# What anymail reports as an ESP's failure to deliver (tracking.py records each as a kind).
ESP_ERRORS = ("bounced", "soft_bounce", "rejected", "failed", "complained")


class Collector:
    def collect(self):
        now = timezone.now()
        yield self._digests(now)
        yield self._latency(now)
        yield from self._esp(now)
        yield self._fetch_runs()
        if settings.REDIS_URL:
            yield self._queues()

    def _digests(self, now):
        family = GaugeMetricFamily(
            "paperboy_digests", "Deliveries of the editions queued lately, by state", labels=["edition", "mode", "state"]
        )
        rows = Delivery.objects.filter(created_at__gte=now - RECENT).values_list("edition__date", "state")
        for day, state, n in rows.annotate(n=Count("id")).order_by():
            family.add_metric([day.isoformat(), settings.DIGEST_SENDING, state], n)
        return family

    def _latency(self, now):
        """From being queued to the mail server taking it, for the digests sent in the last day."""
        latency = ExpressionWrapper(F("sent_at") - F("created_at"), output_field=DurationField())
        sent = Delivery.objects.filter(created_at__gte=now - RECENT, state=Delivery.State.SENT, sent_at__gte=now - dt.timedelta(days=1))
        within = {f"le{b}": Count("id", filter=Q(sent_at__lte=F("created_at") + dt.timedelta(seconds=b))) for b in LATENCY_BUCKETS}
        totals = sent.aggregate(n=Count("id"), total=Sum(latency), **within)
        buckets = [(str(b), totals[f"le{b}"]) for b in LATENCY_BUCKETS] + [("+Inf", totals["n"])]
        total = totals["total"].total_seconds() if totals["total"] else 0.0
        return HistogramMetricFamily("paperboy_send_latency_seconds", "Digests sent in the last day: queued to sent",
                                     buckets=buckets, sum_value=total)

    def _esp(self, now):
        since = now - dt.timedelta(days=1)
        errors = GaugeMetricFamily("paperboy_esp_errors", "ESP failure events in the last day, by kind", labels=["kind"])
        counts = dict(SubscriberEvent.objects.filter(kind__in=ESP_ERRORS, occurred_at__gte=since)
                      .values_list("kind").annotate(n=Count("id")).order_by())
        for kind in ESP_ERRORS:
            errors.add_metric([kind], counts.get(kind, 0))
        yield errors
        sent = tracking.digests_sent(since=since)
        for kind, name in (("bounced", "bounce"), ("complained", "complaint")):
            rate = counts.get(kind, 0) / sent if sent else 0.0
            yield GaugeMetricFamily(f"paperboy_{name}_rate", f"{kind.capitalize()} events per digest sent, last day", value=rate)

    def _fetch_runs(self):
        family = CounterMetricFamily("paperboy_fetch_runs", "Paper source fetches, by source and outcome", labels=["source", "status"])
        for source, status, n in FetchRun.objects.values_list("source", "status").annotate(n=Count("id")).order_by():
            family.add_metric([source, status], n)
        return family

    def _queues(self):
        family = GaugeMetricFamily("paperboy_queue_depth", "Tasks waiting on the broker, by queue", labels=["queue"])
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        with client:
            for queue in settings.CELERY_TASK_QUEUES:  # each Procfile worker's (tests/test_settings.py)
                family.add_metric([queue.name], client.llen(queue.name))
        return family


def _allowed(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if settings.METRICS_TOKEN and scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), settings.METRICS_TOKEN.encode()):
        return True
    ip = client_ip(request)
    return ip is not None and any(ipaddress.ip_address(ip) in network for network in settings.METRICS_ALLOWED_IPS)


def metrics(request):
    if not (settings.METRICS_TOKEN or settings.METRICS_ALLOWED_IPS):
        raise Http404("/metrics is off: set METRICS_TOKEN or METRICS_ALLOWED_IPS")
    if not _allowed(request):
        return HttpResponseForbidden("/metrics needs the bearer token (METRICS_TOKEN) or an address in METRICS_ALLOWED_IPS\n",
                                     content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
