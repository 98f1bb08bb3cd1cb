"""What the ESP tells us: tracking events (bounces, complaints, unsubscribes, deliveries) and
the complaint rate that pauses sending (Gmail and Yahoo bulk-sender rules).
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from newsletter.models import Delivery, Subscriber, SubscriberEvent, email_canonical
from newsletter.services import subscriber_suppress

log = logging.getLogger(__name__)

SUPPRESSING = {"bounced": "hard bounce", "complained": "spam complaint", "unsubscribed": "unsubscribed at the ESP"}


def _is_soft_bounce(event):
    if event.event_type == "deferred":
        return True
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    # Anymail reports some ESPs' temporary failures as "bounced"; their payload says which.
    return event.event_type == "bounced" and (raw.get("Type") == "SoftBounce" or raw.get("severity") == "temporary")


def _event_subscriber(event):
    """The subscriber with the event's recipient address: what bounced or complained is that
    address. Metadata naming someone else (or not in ASCII digits: "١٢".isdigit()) is only
    logged: an event never acts on someone it was not sent to."""
    try:
        subscriber = Subscriber.objects.filter(email=email_canonical(event.recipient or "")).first()
    except ValueError:
        return None
    named = (event.metadata or {}).get("subscriber")
    if named is not None and not (isinstance(named, str) and named.isascii() and named.isdigit()
                                  and subscriber and int(named) == subscriber.pk):
        log.warning("tracking event for %s names subscriber %r: ignored", event.recipient, named)
    return subscriber


def tracking_event_record(*, event, esp_name):
    """Record an anymail tracking event once and apply what it means for the subscriber.

    Events arrive duplicated and out of order; only ever-tightening transitions are applied
    (suppression), so a late 'delivered' cannot undo a bounce.
    """
    occurred_at = event.timestamp or timezone.now()
    key = f"{esp_name}:{event.event_id}" if event.event_id else (
        f"{esp_name}:{event.message_id}:{event.event_type}:{event.recipient}:{occurred_at.isoformat()}"
    )
    subscriber = _event_subscriber(event)
    soft = _is_soft_bounce(event)
    kind = "soft_bounce" if soft else event.event_type
    try:
        with transaction.atomic():
            SubscriberEvent.objects.create(
                subscriber=subscriber,
                kind=kind,
                event_key=key[:200],
                message_id=str(event.message_id or "")[:200],
                description=(event.description or event.reject_reason or "")[:500],
                occurred_at=occurred_at,
            )
    except IntegrityError:
        return False  # seen before
    if subscriber is None:
        return True
    if soft:
        window = dt.timedelta(days=settings.SOFT_BOUNCE_WINDOW_DAYS)
        recent = subscriber.events.filter(
            kind="soft_bounce", occurred_at__gt=occurred_at - window, occurred_at__lte=occurred_at + window
        )
        if recent.count() >= settings.SOFT_BOUNCE_LIMIT:
            reason = f"{settings.SOFT_BOUNCE_LIMIT} soft bounces"
            subscriber_suppress(subscriber=subscriber, reason=reason, when=occurred_at, record=False)
    elif event.event_type in SUPPRESSING:
        subscriber_suppress(subscriber=subscriber, reason=SUPPRESSING[event.event_type], when=occurred_at, record=False)
    _delivery_settle(event, subscriber, occurred_at)
    return True


# What the ESP says when it took a message: it was sent, whatever became of it after.
ACCEPTED = {"sent", "delivered", "deferred", "bounced", "opened", "clicked", "complained", "unsubscribed", "autoresponded"}


def _delivery_settle(event, subscriber, when):
    """A delivery left in doubt by a worker that died mid-send (still 'sending', or failed as
    interrupted) is sent if the ESP reports it took the message. Only the delivery the
    event's metadata names, and only if it is this subscriber's."""
    named = (event.metadata or {}).get("delivery")
    if event.event_type not in ACCEPTED or not (isinstance(named, str) and named.isascii() and named.isdigit()):
        return
    in_doubt = Q(state=Delivery.State.SENDING) | Q(state=Delivery.State.FAILED, note__startswith=Delivery.INTERRUPTED)
    Delivery.objects.filter(in_doubt, pk=int(named), subscriber=subscriber).update(
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
    # By when they were sent, whatever the edition (a catch-up of a past one counts), read
    # through the rows queued lately (the created_at index), not a scan of every delivery ever
    # made: the dispatcher asks every five minutes. A row is sent within hours of being queued
    # (retries back off an hour at most), so two days before the window hold them all.
    queued = Delivery.objects.filter(created_at__gte=since - dt.timedelta(days=2))
    sent = queued.filter(state=Delivery.State.SENT, sent_at__gte=since).count()
    return events, sent, events / sent if sent else 0.0


def sending_paused(*, now=None):
    complaints, sent, rate = complaint_rate(now=now)
    return sent >= COMPLAINT_MIN_SENT and rate > COMPLAINT_PAUSE
