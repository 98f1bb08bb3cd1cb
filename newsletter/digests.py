"""Daily digests: schedule, assembly, rendering and exactly-once delivery.

A Delivery row per (subscriber, edition) is created when the subscriber falls due; sending
claims rows with a conditional UPDATE (pending -> sending) in small groups, so a task that
runs twice, or a worker that dies, never mails anyone twice. Digests with the same papers
share one render; only the per-recipient links are substituted afterwards.
"""

import datetime as dt
import logging
import random
import smtplib
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import get_connection
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from newsletter import tokens
from newsletter.emails import build_message, list_headers, render_parts
from newsletter.models import Delivery, Edition, Subscriber
from newsletter.ranking import Candidate, Interests, rank
from newsletter.schedule import local_date
from newsletter.services import absolute, schedule_next
from papers.models import Feature, Paper, Topic

log = logging.getLogger(__name__)

# Stand-ins for per-recipient values in a shared render: plain letters survive escaping,
# CSS inlining and quoted-printable line breaks untouched.
UNSUBSCRIBE_TOKEN = "xxunsubscribetokenxx"
PREFERENCES_TOKEN = "xxpreferencestokenxx"
NO_REPEAT_DAYS = 30


class TransientSendError(Exception):
    """The ESP or SMTP server failed in a way worth retrying later."""


# Editions and schedule


def lookback_days(frequency):
    if frequency == Subscriber.Frequency.WEEKLY:
        return settings.DIGEST_WEEKLY_LOOKBACK_DAYS
    return settings.DIGEST_DAILY_LOOKBACK_DAYS


def edition_get(day):
    edition, _ = Edition.objects.get_or_create(date=day)
    return edition


def deliveries_enqueue(edition, subscriber_ids):
    """Hand deliveries to workers, a batch per task (never a task per recipient). Call after
    the rows are committed; enqueuing twice is harmless, as only pending rows are claimed."""
    from newsletter.tasks import send_deliveries_task

    size = settings.DIGEST_BATCH_SIZE
    for start in range(0, len(subscriber_ids), size):
        send_deliveries_task.delay(edition.pk, subscriber_ids[start : start + size])


def _create_deliveries(edition, subscriber_ids):
    Delivery.objects.bulk_create(
        [Delivery(edition=edition, subscriber_id=pk) for pk in subscriber_ids],
        ignore_conflicts=True,
        batch_size=1000,
    )


def digests_dispatch(*, now=None):
    """Create deliveries for every subscriber whose hour has come and hand them to workers in
    batches; each subscriber's schedule moves forward in the same transaction. Returns how many."""
    now = now or timezone.now()
    total = 0
    last_pk = 0
    while True:
        with transaction.atomic():
            due = Subscriber.objects.due(now).filter(pk__gt=last_pk).order_by("pk")
            if db_connection.features.has_select_for_update_skip_locked:
                # Two dispatchers running at once split the work instead of waiting.
                due = due.select_for_update(skip_locked=True)
            fields = ("pk", "timezone", "hour", "frequency", "weekday", "next_digest_at")
            batch = list(due.only(*fields)[: settings.DIGEST_BATCH_SIZE])
            if not batch:
                return total
            by_day = defaultdict(list)
            for subscriber in batch:
                by_day[local_date(now, subscriber.timezone)].append(subscriber.pk)
                schedule_next(subscriber, now=now)
            Subscriber.objects.bulk_update(batch, ["next_digest_at"])
            editions = {day: edition_get(day) for day in by_day}
            for day, ids in by_day.items():
                _create_deliveries(editions[day], ids)
        for day, ids in by_day.items():
            deliveries_enqueue(editions[day], ids)
        total += len(batch)
        last_pk = batch[-1].pk


def scheduled_on(day):
    """Active subscribers who get a digest on `day`: daily ones, and weekly ones on their weekday."""
    weekly_today = Q(frequency=Subscriber.Frequency.WEEKLY, weekday=day.weekday())
    return Subscriber.objects.active().filter(Q(frequency=Subscriber.Frequency.DAILY) | weekly_today)


def digests_dispatch_day(*, day):
    """Send edition `day` now to everyone scheduled that day who has not had it, whatever the hour
    (`send_digests --date`); re-running it resumes an interrupted run. Returns how many were queued."""
    edition = edition_get(day)
    new = scheduled_on(day).exclude(deliveries__edition=edition).order_by("pk").values_list("pk", flat=True)
    new = list(new.iterator(chunk_size=5000))
    size = settings.DIGEST_BATCH_SIZE
    for start in range(0, len(new), size):
        _create_deliveries(edition, new[start : start + size])
    pending = edition.deliveries.filter(state=Delivery.State.PENDING).order_by("subscriber_id")
    ids = list(pending.values_list("subscriber_id", flat=True).iterator(chunk_size=5000))
    deliveries_enqueue(edition, ids)
    return len(ids)


# Assembly


@dataclass
class EditionPapers:
    """What one edition offers subscribers of one frequency: loaded once, used for many."""

    edition: Edition
    candidates: list
    featured: list
    papers: dict
    notes: dict
    topic_names: dict = field(default_factory=dict)


def _candidate(paper, topic_ids):
    return Candidate(
        id=paper.id,
        title=paper.title,
        text=f"{paper.title}\n{paper.abstract}".lower(),
        upvotes=paper.upvotes,
        listed_ordinal=paper.listed_on.toordinal() if paper.listed_on else 0,
        topic_ids=frozenset(topic_ids.get(paper.id, ())),
    )


def edition_papers(edition, frequency):
    first_day = edition.date - dt.timedelta(days=lookback_days(frequency))
    features = list(Feature.objects.between(first_day, edition.date).order_by("day", "created_at"))
    ids = set(Paper.objects.filter(listed_on__range=(first_day, edition.date)).values_list("id", flat=True))
    ids |= {f.paper_id for f in features}
    papers = Paper.objects.in_bulk(ids)
    topic_ids = defaultdict(set)
    for paper_id, topic_id in Paper.topics.through.objects.filter(paper_id__in=ids).values_list("paper_id", "topic_id"):
        topic_ids[paper_id].add(topic_id)
    featured_ids = list(dict.fromkeys(f.paper_id for f in features))
    return EditionPapers(
        edition=edition,
        candidates=[_candidate(p, topic_ids) for pid, p in papers.items() if pid not in featured_ids],
        featured=[_candidate(papers[pid], topic_ids) for pid in featured_ids],
        papers=papers,
        notes={f.paper_id: f.note for f in features},
        topic_names=dict(Topic.objects.values_list("id", "name")),
    )


def received_papers(subscriber_ids, edition):
    """Paper ids each subscriber already received in recent editions."""
    received = defaultdict(set)
    rows = Delivery.objects.filter(
        subscriber_id__in=subscriber_ids,
        edition__date__gte=edition.date - dt.timedelta(days=NO_REPEAT_DAYS),
        state__in=[Delivery.State.SENT, Delivery.State.SENDING],
    ).exclude(edition__date=edition.date)
    for subscriber_id, picks in rows.values_list("subscriber_id", "picks"):
        received[subscriber_id].update(paper_id for paper_id, _ in picks)
    return received


def interests_of(subscribers):
    topic_ids = defaultdict(set)
    through = Subscriber.topics.through.objects.filter(subscriber_id__in=[s.pk for s in subscribers])
    for subscriber_id, topic_id in through.values_list("subscriber_id", "topic_id"):
        topic_ids[subscriber_id].add(topic_id)
    return {
        s.pk: Interests(topic_ids=frozenset(topic_ids[s.pk]), keywords=tuple(k.lower() for k in s.keyword_list()))
        for s in subscribers
    }


def digest_picks(offer, interests, received):
    return rank(
        candidates=offer.candidates,
        featured=offer.featured,
        interests=interests,
        exclude=received,
        topic_names=offer.topic_names,
        limit=settings.DIGEST_MAX_PAPERS,
    )


# Rendering


def render_digest(offer, picks):
    """Render the shared parts of a digest with these picks: (subject, text, html) with placeholders."""
    items = [
        {"paper": offer.papers[paper_id], "reason": reason, "note": offer.notes.get(paper_id, "")}
        for paper_id, reason in picks
    ]
    ctx = {
        "edition": offer.edition,
        "items": items,
        "featured_items": [i for i in items if i["note"] or i["reason"] == "featured by the editors"],
        "archive_url": settings.SITE_URL + offer.edition.get_absolute_url(),
        "preferences_url": absolute("newsletter:preferences", PREFERENCES_TOKEN),
        "unsubscribe_url": absolute("newsletter:unsubscribe", UNSUBSCRIBE_TOKEN),
    }
    return render_parts("digest", ctx)


def personalise(part, subscriber_id):
    return part.replace(UNSUBSCRIBE_TOKEN, tokens.make(tokens.UNSUBSCRIBE, subscriber_id)).replace(
        PREFERENCES_TOKEN, tokens.make(tokens.PREFERENCES, subscriber_id)
    )


def digest_message(rendered, subscriber, edition):
    subject, text, html = rendered
    unsubscribe = absolute("newsletter:unsubscribe", tokens.make(tokens.UNSUBSCRIBE, subscriber.pk))
    domain = settings.SITE_URL.split("://", 1)[-1].split("/")[0].split(":")[0]
    headers = list_headers(unsubscribe) | {
        # The same id if a copy were ever sent twice, so mail clients fold duplicates.
        "Message-ID": f"<digest.{edition.date:%Y%m%d}.{subscriber.pk}@{domain}>",
    }
    return build_message(
        subject,
        personalise(text, subscriber.pk),
        personalise(html, subscriber.pk),
        subscriber.email,
        headers=headers,
        tags=["digest"],
        metadata={"subscriber": str(subscriber.pk), "edition": edition.date.isoformat()},
    )


# Delivery


def _is_transient(error):
    if isinstance(error, (AnymailRecipientsRefused, AnymailInvalidAddress)):
        return False
    if isinstance(error, AnymailAPIError):
        status = getattr(error, "status_code", None)
        return status is None or status == 429 or status >= 500
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    return isinstance(error, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, socket.error, TimeoutError))


def _claim(edition, subscriber_ids):
    claim = uuid.uuid4().hex
    Delivery.objects.filter(edition=edition, subscriber_id__in=subscriber_ids, state=Delivery.State.PENDING).update(
        state=Delivery.State.SENDING, claim=claim, claimed_at=timezone.now()
    )
    return list(Delivery.objects.filter(claim=claim, state=Delivery.State.SENDING).select_related("subscriber"))


def _finish(deliveries):
    Delivery.objects.bulk_update(deliveries, ["state", "picks", "sent_at", "message_id", "note", "attempts"])


@dataclass
class SendStats:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    renders: int = 0

    def add(self, other):
        for name in ("sent", "skipped", "failed", "renders"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def deliveries_send(*, edition_id, subscriber_ids, connection=None):
    """Send one batch of an edition. Only rows still pending are claimed, so re-running a
    batch is harmless. Raises TransientSendError (after putting unsent rows back to pending)
    when the ESP fails in a way worth retrying."""
    edition = Edition.objects.get(pk=edition_id)
    offers = {}
    renders = {}
    stats = SendStats()
    connection = connection or get_connection()
    with connection:
        for start in range(0, len(subscriber_ids), settings.DIGEST_CLAIM_SIZE):
            claimed = _claim(edition, subscriber_ids[start : start + settings.DIGEST_CLAIM_SIZE])
            if claimed:
                stats.add(_send_claimed(edition, claimed, offers, renders, connection))
    return stats


def _send_claimed(edition, claimed, offers, renders, connection):
    stats = SendStats()
    subscribers = [d.subscriber for d in claimed]
    interests = interests_of(subscribers)
    received = received_papers([s.pk for s in subscribers], edition)
    now = timezone.now()
    pending_error = None
    for delivery in claimed:
        subscriber = delivery.subscriber
        delivery.attempts += 1
        if pending_error is not None:
            delivery.state = Delivery.State.PENDING
            continue
        if subscriber.status != Subscriber.Status.ACTIVE:
            # Unsubscribed, paused or suppressed after the edition was fanned out.
            delivery.state, delivery.note = Delivery.State.SKIPPED, f"subscriber {subscriber.status} at send time"
            stats.skipped += 1
            continue
        if subscriber.frequency not in offers:
            offers[subscriber.frequency] = edition_papers(edition, subscriber.frequency)
        offer = offers[subscriber.frequency]
        picks = digest_picks(offer, interests[subscriber.pk], received[subscriber.pk])
        if not picks:
            delivery.state, delivery.note = Delivery.State.SKIPPED, "nothing new"
            stats.skipped += 1
            continue
        key = (subscriber.frequency, tuple(picks))
        if key not in renders:
            renders[key] = render_digest(offer, picks)
            stats.renders += 1
        message = digest_message(renders[key], subscriber, edition)
        try:
            connection.send_messages([message])
        except Exception as error:  # noqa: BLE001 - classified below, never swallowed
            if _is_transient(error) and delivery.attempts < settings.DIGEST_MAX_ATTEMPTS:
                delivery.state = Delivery.State.PENDING
                delivery.note = f"will retry: {error}"[:500]
                pending_error = error
                continue
            delivery.state, delivery.note = Delivery.State.FAILED, f"{type(error).__name__}: {error}"[:500]
            stats.failed += 1
            log.warning("digest to subscriber %s failed: %s", subscriber.pk, error)
            continue
        status = getattr(message, "anymail_status", None)
        delivery.state, delivery.picks, delivery.sent_at = Delivery.State.SENT, [list(p) for p in picks], now
        delivery.message_id = (getattr(status, "message_id", None) or message.extra_headers["Message-ID"])[:200]
        stats.sent += 1
    _finish(claimed)
    if pending_error is not None:
        raise TransientSendError(str(pending_error))
    return stats


def retry_countdown(retries):
    """Exponential backoff with full jitter, capped at an hour."""
    return random.uniform(0, min(3600, 30 * 2**retries))


def deliveries_requeue(*, deliveries):
    """Send failed deliveries again (an operator's decision, e.g. after checking the ESP's log)."""
    failed = deliveries.filter(state=Delivery.State.FAILED)
    by_edition = defaultdict(list)
    for edition_id, subscriber_id in failed.values_list("edition_id", "subscriber_id"):
        by_edition[edition_id].append(subscriber_id)
    count = failed.update(state=Delivery.State.PENDING, note="requeued by an operator")
    for edition in Edition.objects.filter(pk__in=by_edition):
        deliveries_enqueue(edition, by_edition[edition.pk])
    return count


def deliveries_reconcile(*, now=None):
    """Resolve rows left behind: 'sending' rows of a worker that died are marked failed (whether
    their mail went out is unknown, and a duplicate is worse than a gap); 'pending' rows whose
    task was lost (e.g. Redis restarted) are handed to workers again. Returns (failed, requeued)."""
    cutoff = (now or timezone.now()) - dt.timedelta(minutes=settings.DIGEST_SENDING_TIMEOUT_MINUTES)
    failed = Delivery.objects.filter(state=Delivery.State.SENDING, claimed_at__lt=cutoff).update(
        state=Delivery.State.FAILED, note="interrupted while sending; not resent to avoid a duplicate"
    )
    stale = Delivery.objects.filter(state=Delivery.State.PENDING, created_at__lt=cutoff)
    by_edition = defaultdict(list)
    for edition_id, subscriber_id in stale.values_list("edition_id", "subscriber_id").iterator(chunk_size=5000):
        by_edition[edition_id].append(subscriber_id)
    for edition in Edition.objects.filter(pk__in=by_edition):
        deliveries_enqueue(edition, by_edition[edition.pk])
    return failed, sum(len(ids) for ids in by_edition.values())


def edition_general_picks(edition):
    """The non-personal version of an edition, for the web archive: featured, then trending."""
    offer = edition_papers(edition, Subscriber.Frequency.DAILY)
    return offer, digest_picks(offer, Interests(), set())


def digests_preview(*, day):
    """What edition `day` would send to everyone scheduled that day, without sending or writing."""
    edition = Edition(date=day)
    offers, contents = {}, set()
    counts = {"scheduled": 0, "would_send": 0, "nothing_new": 0}
    sample = None
    subscribers = scheduled_on(day).order_by("pk")
    for start in range(0, subscribers.count(), settings.DIGEST_BATCH_SIZE):
        batch = list(subscribers[start : start + settings.DIGEST_BATCH_SIZE])
        interests = interests_of(batch)
        received = received_papers([s.pk for s in batch], edition)
        for subscriber in batch:
            counts["scheduled"] += 1
            if subscriber.frequency not in offers:
                offers[subscriber.frequency] = edition_papers(edition, subscriber.frequency)
            picks = digest_picks(offers[subscriber.frequency], interests[subscriber.pk], received[subscriber.pk])
            if not picks:
                counts["nothing_new"] += 1
                continue
            counts["would_send"] += 1
            contents.add(tuple(picks))
            sample = sample or (subscriber, offers[subscriber.frequency], picks)
    counts["distinct_digests"] = len(contents)
    return counts, sample
