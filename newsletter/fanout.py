"""Fan-out: who falls due, a Delivery row per (subscriber, edition), and the hand-off to workers.

Callers pass `enqueue` (a function taking a list of delivery ids, in tasks.py), so this module
never imports Celery tasks. newsletter/delivery.py sends the rows exactly once.
"""

import logging
from collections import defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Func, Q, TextField, Value
from django.db.models.lookups import GreaterThan
from django.utils import timezone

from newsletter import sql
from newsletter.models import Delivery, Edition, Subscriber
from newsletter.offers import digests_for, offer_for
from newsletter.schedule import local_date
from newsletter.services import schedule_next, unmailable
from newsletter.tracking import COMPLAINT_PAUSE, sending_paused

log = logging.getLogger(__name__)


def edition_get(day):
    edition, _ = Edition.objects.get_or_create(date=day)
    return edition


def deliveries_create(edition, subscriber_ids):
    """A pending row per subscriber (none twice); returns the new rows' ids."""
    return sql.deliveries_insert(edition.pk, subscriber_ids, state=Delivery.State.PENDING, now=timezone.now())


class Row(Func):
    """A row value such as (interest_key, id)."""

    function = ""
    template = "(%(expressions)s)"
    output_field = TextField()


def after(last, key, pk):
    """Rows after `last` in (key, pk) order, as one row-value comparison: PostgreSQL and SQLite
    turn it into an index range, where the equivalent OR of two conditions scans from the start."""
    return GreaterThan(Row(key, pk), Row(Value(last[0]), Value(last[1])))


def keyset_pages(queryset, key, pk, fields=None):
    """queryset's rows in (key, pk) order, a batch at a time (keyset pagination: memory stays
    flat and rows changing state behind the cursor do not shift the pages): their ids (pk),
    or model instances with only `fields`."""
    last = ("", 0)
    while True:
        page = queryset.filter(after(last, key, pk)).order_by(key, pk)[: settings.DIGEST_BATCH_SIZE]
        rows = list(page.only(*fields) if fields else page.values_list(key, pk))
        if not rows:
            return
        yield rows if fields else [row_pk for _, row_pk in rows]
        last = (getattr(rows[-1], key), rows[-1].pk) if fields else rows[-1]


SCHEDULE_FIELDS = ("pk", "interest_key", "timezone", "hour", "frequency", "weekday", "next_digest_at")


def digests_dispatch(*, enqueue, now=None):
    """Create deliveries for every subscriber whose hour has come and hand them to workers in
    batches; each subscriber's schedule moves forward in the same transaction. Returns how many."""
    now = now or timezone.now()
    if sending_paused(now=now):
        log.error("digests paused: spam complaints above %.1f%% in the last day", COMPLAINT_PAUSE * 100)
        return 0
    total = 0
    last = ("", 0)  # keyset: (interest_key, pk), so alike subscribers land in the same batch
    while True:
        with transaction.atomic():
            due = Subscriber.objects.due(now).filter(after(last, "interest_key", "pk")).order_by("interest_key", "pk")
            if connection.features.has_select_for_update_skip_locked:
                # Two dispatchers running at once split the work instead of waiting.
                due = due.select_for_update(skip_locked=True)
            batch = list(due.only(*SCHEDULE_FIELDS)[: settings.DIGEST_BATCH_SIZE])
            if not batch:
                return total
            by_day = defaultdict(list)
            for subscriber in batch:
                by_day[local_date(now, subscriber.timezone)].append(subscriber.pk)
                schedule_next(subscriber, now=now)
            Subscriber.objects.bulk_update(batch, ["next_digest_at"])
            created = [pk for day, ids in by_day.items() for pk in deliveries_create(edition_get(day), ids)]
        enqueue(created)
        total += len(batch)
        last = (batch[-1].interest_key, batch[-1].pk)


def scheduled_on(day):
    """Active subscribers who get a digest on `day`: daily ones, and weekly ones on their weekday."""
    weekly_today = Q(frequency=Subscriber.Frequency.WEEKLY, weekday=day.weekday())
    return Subscriber.objects.active().filter(Q(frequency=Subscriber.Frequency.DAILY) | weekly_today)


def _not_yet_sent(day):
    """Subscribers scheduled on `day` whose digest of that day has not gone (or is still pending)."""
    done = Delivery.objects.filter(edition__date=day).exclude(state=Delivery.State.PENDING)
    return scheduled_on(day).exclude(pk__in=done.values("subscriber_id"))


def digests_dispatch_day(*, day, enqueue):
    """Send edition `day` now to everyone scheduled that day who has not had it, whatever the hour
    (`send_digests --date`); re-running it resumes an interrupted run. Returns how many were queued."""
    edition = edition_get(day)
    for ids in keyset_pages(scheduled_on(day).exclude(deliveries__edition=edition), "interest_key", "pk"):
        deliveries_create(edition, ids)
    queued = 0
    pending = edition.deliveries.filter(state=Delivery.State.PENDING)
    for ids in keyset_pages(pending, "subscriber__interest_key", "id"):
        enqueue(ids)
        queued += len(ids)
    return queued


def digests_preview(*, day=None, now=None):
    """What `send_digests` would send, without sending or writing: with `day`, that edition to
    everyone scheduled that day who has not had it; without, each subscriber whose hour has
    come their local day's edition. Returns (counts, a sample (subscriber, offer, picks))."""
    now = now or timezone.now()
    subscribers = _not_yet_sent(day) if day else Subscriber.objects.due(now)
    counts = {"scheduled": 0, "would_send": 0, "not_mailable": 0, "nothing_new": 0}
    contents, sample = set(), None
    fields = SCHEDULE_FIELDS + ("email", "status", "confirmed_at", "keywords", "authors")
    for batch in keyset_pages(subscribers, "interest_key", "pk", fields):
        counts["scheduled"] += len(batch)
        skipped = unmailable([(s.pk, s.email, s.status, s.confirmed_at) for s in batch])
        counts["not_mailable"] += len(skipped)
        by_day = defaultdict(list)
        for s in batch:
            if s.pk not in skipped:
                by_day[day or local_date(now, s.timezone)].append(s)
        for edition_day, group in by_day.items():
            edition = Edition.objects.filter(date=edition_day).first() or Edition(date=edition_day)
            picks = digests_for(edition, [(s.pk, s.frequency, s.keywords, s.authors, s.confirmed_at) for s in group])
            for s in group:
                if not picks[s.pk]:
                    counts["nothing_new"] += 1
                    continue
                counts["would_send"] += 1
                contents.add(picks[s.pk])
                if sample is None:
                    sample = (s, offer_for(edition, s.frequency), picks[s.pk])
    counts["distinct_digests"] = len(contents)
    return counts, sample
