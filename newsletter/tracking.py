"""What the ESP tells us: tracking events (bounces, complaints, unsubscribes, deliveries) and
the complaint rate that pauses sending (Gmail and Yahoo bulk-sender rules).
"""

import datetime as dt
import logging
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from newsletter.models import Delivery, Subscriber, SubscriberEvent, email_canonical
from newsletter.services import subscriber_bounced, subscriber_suppress

log = logging.getLogger(__name__)

SUPPRESSING = {"complained": "spam complaint", "unsubscribed": "unsubscribed at the ESP"}


def _is_soft_bounce(event):
    if event.event_type == "deferred":
        return True
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    # Anymail reports some ESPs' temporary failures as "bounced"; their payload says which.
    return event.event_type == "bounced" and (raw.get("Type") == "SoftBounce" or raw.get("severity") == "temporary")


def _named(event, key):
    """The id an event's metadata names under key, if it is one: ASCII digits ("١٢".isdigit() too)."""
    named = (event.metadata or {}).get(key)
    return int(named) if isinstance(named, str) and named.isascii() and named.isdigit() else None


def _chunks(values, size=900):
    """A long list of values in pieces that fit one IN (...) (SQLite's 999 parameters)."""
    values = list(values)
    return [values[start : start + size] for start in range(0, len(values), size)]


def _event_subscribers(events):
    """{event: subscriber or None}: the subscriber with the event's recipient address, one
    query per 900 addresses. What bounced or complained is that address: metadata naming
    someone else is only logged, an event never acts on someone it was not sent to."""
    events = list(events)
    addresses = {}
    for recipient in {event.recipient for event in events}:
        try:
            addresses[recipient] = email_canonical(recipient or "")
        except ValueError:
            addresses[recipient] = None
    found = {}
    for chunk in _chunks({a for a in addresses.values() if a}):
        found.update((s.email, s) for s in Subscriber.objects.filter(email__in=chunk).only("pk", "email", "status"))
    subscribers = {event: found.get(addresses[event.recipient]) for event in events}
    for event, subscriber in subscribers.items():
        named = (event.metadata or {}).get("subscriber")
        if named is not None and not (subscriber and _named(event, "subscriber") == subscriber.pk):
            log.warning("tracking event for %s names subscriber %r: ignored", event.recipient, named)
    return subscribers


def tracking_events_record(*, events, esp_name):
    """Record a post's anymail tracking events, each once, and apply what they mean for their
    subscribers.

    Events arrive duplicated and out of order; only ever-tightening transitions are applied
    (suppression), so a late 'delivered' cannot undo a bounce. A post may hold thousands of
    events (SendGrid's do): they are inserted in bulk, and the subscribers and deliveries they
    concern are read a few hundred at a time, each changed at most once.
    """
    new = {}  # event key -> (event, when), the first of its duplicates in this post
    for event in events:
        occurred_at = event.timestamp or timezone.now()
        key = f"{esp_name}:{event.event_id}" if event.event_id else (
            f"{esp_name}:{event.message_id}:{event.event_type}:{event.recipient}:{occurred_at.isoformat()}"
        )
        new.setdefault(key[:200], (event, occurred_at))
    for chunk in _chunks(new):
        for seen in SubscriberEvent.objects.filter(event_key__in=chunk).values_list("event_key", flat=True):
            del new[seen]
    subscribers = _event_subscribers(event for event, _ in new.values())
    with transaction.atomic():
        # ignore_conflicts: a concurrent post of the same events inserts each once; both then
        # apply the same transitions, which change nothing the second time.
        SubscriberEvent.objects.bulk_create([
            SubscriberEvent(
                subscriber=subscribers[event],
                kind="soft_bounce" if _is_soft_bounce(event) else event.event_type,
                event_key=key,
                message_id=str(event.message_id or "")[:200],
                description=(event.description or event.reject_reason or "")[:500],
                occurred_at=occurred_at,
            )
            for key, (event, occurred_at) in new.items()
        ], ignore_conflicts=True, batch_size=1000)
        happened = [(event, subscribers[event], when) for event, when in new.values() if subscribers[event]]
        _subscribers_suppress(happened)
        _deliveries_settle(happened)


def _subscribers_suppress(happened):
    """Suppress each subscriber whom one of their new events, (event, subscriber, when) in the
    order posted, suppresses: the first such event says why and when."""
    window = dt.timedelta(days=settings.SOFT_BOUNCE_WINDOW_DAYS)
    pending = [(e, s, when) for e, s, when in happened if s.status != Subscriber.Status.SUPPRESSED]
    soft = [(s, when) for e, s, when in pending if _is_soft_bounce(e)]
    bounced = defaultdict(list)  # subscriber id -> times of their soft bounces near the new ones
    if soft:
        since, until = min(when for _, when in soft) - window, max(when for _, when in soft) + window
        for chunk in _chunks({s.pk for s, _ in soft}):
            rows = SubscriberEvent.objects.filter(
                subscriber__in=chunk, kind="soft_bounce", occurred_at__gt=since, occurred_at__lte=until
            )
            for subscriber_id, occurred_at in rows.values_list("subscriber_id", "occurred_at"):
                bounced[subscriber_id].append(occurred_at)
    done = set()
    for event, subscriber, occurred_at in pending:
        if subscriber.pk in done:
            continue
        if _is_soft_bounce(event):
            recent = [t for t in bounced[subscriber.pk] if occurred_at - window < t <= occurred_at + window]
            if len(recent) >= settings.SOFT_BOUNCE_LIMIT:
                reason = f"{settings.SOFT_BOUNCE_LIMIT} soft bounces"
                subscriber_suppress(subscriber=subscriber, reason=reason, when=occurred_at, record=False)
                done.add(subscriber.pk)
        elif event.event_type == "bounced":
            subscriber_bounced(subscriber=subscriber, when=occurred_at, recorded=True)
            done.add(subscriber.pk)
        elif event.event_type in SUPPRESSING:
            subscriber_suppress(subscriber=subscriber, reason=SUPPRESSING[event.event_type], when=occurred_at, record=False)
            done.add(subscriber.pk)


# What the ESP says when it took a message: it was sent, whatever became of it after.
ACCEPTED = {"sent", "delivered", "deferred", "bounced", "opened", "clicked", "complained", "unsubscribed", "autoresponded"}


def _deliveries_settle(happened):
    """Settle the deliveries in doubt that new events, (event, subscriber, when), name: one
    query finds them among all those named (almost always none), each is settled once."""
    named = {}  # (delivery id, subscriber id) -> the first event of theirs naming it
    for event, subscriber, when in happened:
        if event.event_type in ACCEPTED and _named(event, "delivery") is not None:
            named.setdefault((_named(event, "delivery"), subscriber.pk), (event, subscriber, when))
    for chunk in _chunks({pk for pk, _ in named}):
        for found in Delivery.objects.in_doubt().filter(pk__in=chunk).values_list("pk", "subscriber_id"):
            if found in named:
                _delivery_settle(*named[found])


def _delivery_settle(event, subscriber, when):
    """A delivery left in doubt by a worker that died mid-send (still 'sending', or failed as
    interrupted) is sent if the ESP reports it took the message. Only the delivery the
    event's metadata names, and only if it is this subscriber's."""
    named = _named(event, "delivery")
    if event.event_type not in ACCEPTED or named is None:
        return
    Delivery.objects.in_doubt().filter(pk=named, subscriber=subscriber).update(
        state=Delivery.State.SENT, sent_at=when, note=f"sent: the ESP reported it {event.event_type}"
    )


# Complaint rate (Gmail and Yahoo bulk-sender rules)

COMPLAINT_WARN = 0.001  # 0.1 %: warn in the admin
COMPLAINT_PAUSE = 0.003  # 0.3 %: Gmail's limit; stop sending until someone looks
COMPLAINT_MIN_SENT = 100  # below this many sends a single complaint says little


def complaint_rate(*, now=None):
    """(complaints, digests sent, rate) over the last 24 hours."""
    return esp_event_rate(kind="complained", now=now)


def esp_event_rate(*, kind, now=None):
    """(events of this kind, digests sent, rate) over the last 24 hours."""
    since = (now or timezone.now()) - dt.timedelta(days=1)
    events = SubscriberEvent.objects.filter(kind=kind, occurred_at__gte=since).count()
    sent = digests_sent(since=since)
    return events, sent, events / sent if sent else 0.0


def digests_sent(*, since):
    """Digests sent since then, by when they were sent, whatever the edition (a catch-up of a
    past one counts), read through the rows queued lately (the created_at index), not a scan
    of every delivery ever made: the dispatcher asks every five minutes. A row is sent within
    hours of being queued (retries back off an hour at most), so two days before hold them all."""
    queued = Delivery.objects.filter(created_at__gte=since - dt.timedelta(days=2))
    return queued.filter(state=Delivery.State.SENT, sent_at__gte=since).count()


def hard_bounces(*, now=None):
    """Addresses that bounced for good over the last 24 hours, as the ESP or our mail server said."""
    since = (now or timezone.now()) - dt.timedelta(days=1)
    return SubscriberEvent.objects.filter(kind="bounced", occurred_at__gte=since).count()


def sending_paused(*, now=None):
    complaints, sent, rate = complaint_rate(now=now)
    return sent >= COMPLAINT_MIN_SENT and rate > COMPLAINT_PAUSE
