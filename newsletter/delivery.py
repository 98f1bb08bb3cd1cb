"""Sending deliveries exactly once.

Rows are claimed with a conditional UPDATE (pending -> sending ... RETURNING) in groups, so a
task that runs twice, or a worker that dies, never mails anyone twice; outcomes are recorded
in one statement; transient ESP errors put unsent rows back to pending for a retry with
backoff; the reconciler resolves what a dead worker left behind.
"""

import datetime as dt
import json
import logging
import random
import re
import smtplib
import socket
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import get_connection
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, Q, Value
from django.db.models.functions import Concat, Left
from django.utils import timezone

from newsletter.digests import (
    _message_id,
    deliveries_enqueue,
    digest_message,
    interests_of,
    id_list,
    offer_for,
    received_papers,
    recipient_links,
    recipient_metadata,
    select_for,
    table_name,
    votes_of,
)
from newsletter.models import Delivery, Edition, Subscriber, SubscriberEvent
from newsletter.rendering import batch_message

log = logging.getLogger(__name__)


class TransientSendError(Exception):
    """The ESP or SMTP server failed in a way worth retrying later."""


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


@dataclass(slots=True)
class Claimed:
    """A claimed delivery and what sending it needs of its subscriber: plain values, not
    model instances, because this runs for every recipient."""

    id: int
    attempts: int
    subscriber_id: int
    edition_id: int
    email: str
    status: str
    keywords: str
    authors: str
    frequency: str
    state: str = Delivery.State.SENDING
    picks: tuple = ()
    sent_at: dt.datetime | None = None
    message_id: str = ""
    note: str = ""


def _claim(delivery_ids):
    """pending -> sending for these rows, in one statement that also returns them (UPDATE ...
    RETURNING, on PostgreSQL and SQLite alike): only rows this call moved come back, so two
    workers never get the same row. By primary key: whatever the planner's statistics say
    (they lag behind a burst of new rows), that is one index probe per row."""
    sql = (
        f"UPDATE {table_name(Delivery)} SET state = %s, claim = %s, claimed_at = %s "
        f"WHERE state = %s AND id IN ({id_list(delivery_ids)}) RETURNING id, attempts, subscriber_id, edition_id"
    )
    params = [Delivery.State.SENDING, uuid.uuid4().hex, db_connection.ops.adapt_datetimefield_value(timezone.now()),
              Delivery.State.PENDING]
    with transaction.atomic(), db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    people = {
        row[0]: row[1:]
        for row in select_for(
            f"SELECT id, email, status, keywords, authors, frequency FROM {table_name(Subscriber)} WHERE id IN ({{ids}})",
            [r[2] for r in rows],
        )
    } if rows else {}
    gone = [pk for pk, _, subscriber_id, _ in rows if subscriber_id not in people]
    if gone:  # deleted behind the fan-out's back (the database does not check: see Delivery)
        log.warning("deleting %d deliveries whose subscriber no longer exists", len(gone))
        Delivery.objects.filter(pk__in=gone).delete()
    return [
        Claimed(pk, attempts, subscriber_id, edition_id, *people[subscriber_id])
        for pk, attempts, subscriber_id, edition_id in rows
        if subscriber_id in people
    ]


def _finish(claimed):
    """Record every outcome of a group in one UPDATE ... FROM (VALUES ...) statement. What
    recipients share (state, picks, time sent, note) is listed once and referred to by number,
    and numbers are inlined: the statement stays small, with one parameter a row (its
    Message-ID), and each distinct picks is parsed as JSON once, not once per row. (A
    parameter a row more, the note, made PostgreSQL's share ~a third larger.)"""
    postgres = db_connection.vendor == "postgresql"
    jsonb, timestamptz = ("::jsonb", "::timestamptz") if postgres else ("", "")
    outcomes = {}
    for c in claimed:
        outcomes.setdefault((c.state, c.picks, c.sent_at, c.note), len(outcomes))
    table = table_name(Delivery)
    rows = ", ".join(
        f"({int(c.id)}, {outcomes[c.state, c.picks, c.sent_at, c.note]}, %s, {int(c.attempts)})" for c in claimed
    )
    shared = ", ".join(f"({n}, %s, %s{jsonb}, %s{timestamptz}, %s)" for n in outcomes.values())
    sql = (
        f"WITH o(n, state, picks, sent_at, note) AS (VALUES {shared}), "
        f"v(id, o, message_id, attempts) AS (VALUES {rows}) "
        f"UPDATE {table} SET state = o.state, picks = o.picks, sent_at = o.sent_at, note = o.note, "
        f"message_id = v.message_id, attempts = v.attempts FROM v JOIN o ON o.n = v.o WHERE {table}.id = v.id"
    )
    adapt = db_connection.ops.adapt_datetimefield_value
    params = [value for state, picks, sent_at, note in outcomes for value in (state, json.dumps(picks), adapt(sent_at), note)]
    params += [c.message_id for c in claimed]
    with transaction.atomic(), db_connection.cursor() as cursor:
        if postgres:
            # Safe to lose in a database crash: the rows stay 'sending' and the reconciler marks
            # them failed, never resends them. The claim, which must not be lost, stays synchronous.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(sql, params)


@dataclass
class SendStats:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    renders: int = 0
    # CPU seconds per stage (claim, assemble, render, build and hand-off, record): the benchmark's
    # figures. CPU, not wall time: a stage must not look slower because the process was
    # descheduled or waited for the database server (whose share the benchmark shows apart).
    seconds: Counter = field(default_factory=Counter)

    def add(self, other):
        for name in ("sent", "skipped", "failed", "renders"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds.update(other.seconds)

    @contextmanager
    def timing(self, stage):
        start = time.thread_time()
        yield
        self.seconds[stage] += time.thread_time() - start


def deliveries_send(*, delivery_ids, connection=None):
    """Send one batch of deliveries. Only rows still pending are claimed, so re-running a
    batch is harmless. Raises TransientSendError (after putting unsent rows back to pending)
    when the ESP fails in a way worth retrying."""
    stats = SendStats()
    connection = connection or get_connection()
    size = settings.DIGEST_CLAIM_SIZE
    with connection:
        for start in range(0, len(delivery_ids), size):
            with stats.timing("claim"):
                claimed = _claim(delivery_ids[start : start + size])
            by_edition = defaultdict(list)  # one, unless an operator requeued several editions' rows
            for delivery in claimed:
                by_edition[delivery.edition_id].append(delivery)
            for edition in Edition.objects.filter(pk__in=by_edition):
                stats.add(_send_claimed(edition, by_edition[edition.pk], connection))
    return stats


def _send_claimed(edition, claimed, connection):
    stats = SendStats()
    with stats.timing("assemble"):
        interests = interests_of({c.subscriber_id: (c.keywords, c.authors) for c in claimed})
        # The editions that can hold a paper on offer to any of them (weekly offers reach further back).
        recent = sorted(set().union(*(offer_for(edition, f).recent_editions for f in {c.frequency for c in claimed})))
        received = received_papers([c.subscriber_id for c in claimed], edition, recent)
        votes = votes_of([c.subscriber_id for c in claimed])
        voters = {subscriber_id for subscriber_id, _, _ in votes}
        learned = {}  # subscriber -> picks, for those with a profile: scored together
        for frequency in {c.frequency for c in claimed if c.subscriber_id in voters}:
            offer = offer_for(edition, frequency)
            group = {c.subscriber_id for c in claimed if c.frequency == frequency and c.subscriber_id in voters}
            found = offer.profiles_for(votes if group == voters else [vote for vote in votes if vote[0] in group])
            people = {s: (interests[s], received[s]) for s in group if s in found}
            learned.update(offer.picks_with_profiles(people, found))
    now = timezone.now()
    ready = _ready(edition, claimed, interests, received, learned, stats)
    send = _send_batches if settings.DIGEST_SENDING == "batch" else _send_each
    before = stats.seconds["assemble"] + stats.seconds["render"]
    with stats.timing("build and hand-off"):
        pending_error = send(ready, connection, stats, now)
    # Preparing recipients happens inside send() as it consumes them; count it once.
    stats.seconds["build and hand-off"] -= stats.seconds["assemble"] + stats.seconds["render"] - before
    if pending_error is not None:
        for delivery in claimed:
            if delivery.state == Delivery.State.SENDING:  # not reached: back to pending, unattempted
                delivery.state = Delivery.State.PENDING
    with stats.timing("record"):
        _finish(claimed)
    if pending_error is not None:
        raise TransientSendError(str(pending_error))
    return stats


def _ready(edition, claimed, interests, received, learned, stats):
    """(delivery, offer, picks, content) for each claimed delivery that gets a digest, made as
    the sender asks for them: a distinct content need not outlive its message."""
    offers = {}
    for delivery in claimed:
        delivery.attempts += 1
        if delivery.status != Subscriber.Status.ACTIVE:
            # Unsubscribed, paused or suppressed after the edition was fanned out.
            delivery.state, delivery.note = Delivery.State.SKIPPED, f"subscriber {delivery.status} at send time"
            stats.skipped += 1
            continue
        start = time.thread_time()  # cheaper than a stats.timing() context for every recipient
        if delivery.frequency not in offers:
            offers[delivery.frequency] = offer_for(edition, delivery.frequency)
        offer = offers[delivery.frequency]
        if delivery.subscriber_id in learned:
            picks = learned[delivery.subscriber_id]
        else:
            picks = offer.picks_for(interests[delivery.subscriber_id], received[delivery.subscriber_id])
        stats.seconds["assemble"] += time.thread_time() - start
        if not picks:
            delivery.state, delivery.note = Delivery.State.SKIPPED, "nothing new"
            stats.skipped += 1
            continue
        content = offer.renderer.contents.get(picks)
        if content is None:
            stats.renders += 1
            with stats.timing("render"):
                content = offer.renderer.content(picks)
        yield delivery, offer, picks, content


def _failed(deliveries, error, stats):
    """Record a failed send; returns the error if the deliveries go back to pending for a retry."""
    if _is_transient(error) and all(d.attempts < settings.DIGEST_MAX_ATTEMPTS for d in deliveries):
        for d in deliveries:
            d.state, d.note = Delivery.State.PENDING, f"will retry: {error}"[:500]
        return error
    for d in deliveries:
        d.state, d.note = Delivery.State.FAILED, f"{type(error).__name__}: {error}"[:500]
    stats.failed += len(deliveries)
    log.warning("digest to %d subscriber(s) failed: %s", len(deliveries), error)
    return None


def _sent(delivery, picks, now, message_id, stats):
    delivery.state, delivery.picks, delivery.sent_at, delivery.message_id = Delivery.State.SENT, picks, now, message_id[:200]
    stats.sent += 1


def _send_each(ready, connection, stats, now):
    """One message per recipient (SMTP, and any ESP without batch sending)."""
    for delivery, offer, picks, content in ready:
        message = digest_message(offer, content, delivery.subscriber_id, delivery.email)
        try:
            connection.send_messages([message])
        except Exception as error:  # noqa: BLE001 - classified in _failed, never swallowed
            retry = _failed([delivery], error, stats)
            if retry is not None:
                return retry
            continue
        esp_id = getattr(getattr(message, "anymail_status", None), "message_id", None)
        _sent(delivery, picks, now, str(esp_id) if esp_id is not None else message.message_id, stats)
    return None


def _send_batches(ready, connection, stats, now):
    """One ESP API call per group of recipients with identical content (anymail merge data),
    chunked to DIGEST_BATCH_LIMIT. A failed call concerns its recipients only."""
    groups = {}
    for delivery, offer, picks, content in ready:
        groups.setdefault((offer.edition.pk, offer.frequency_key, picks), (offer, content, []))[2].append(delivery)
    chunks = [
        (picks, offer, content, members[i : i + settings.DIGEST_BATCH_LIMIT])
        for (_, _, picks), (offer, content, members) in groups.items()
        for i in range(0, len(members), settings.DIGEST_BATCH_LIMIT)
    ]
    for picks, offer, content, deliveries in chunks:
        message = batch_message(
            content,
            [
                (
                    d.email,
                    recipient_links(d.subscriber_id),
                    _message_id(offer, d.subscriber_id),
                    recipient_metadata(offer, d.subscriber_id),
                )
                for d in deliveries
            ],
        )
        try:
            connection.send_messages([message])
        except Exception as error:  # noqa: BLE001 - classified in _failed, never swallowed
            retry = _failed(deliveries, error, stats)
            if retry is not None:
                return retry
            continue
        recipients = getattr(getattr(message, "anymail_status", None), "recipients", {})
        for d in deliveries:
            status = recipients.get(d.email)
            if status is not None and status.status in ("rejected", "invalid", "failed"):
                d.state, d.note = Delivery.State.FAILED, f"the ESP {status.status} this recipient"
                stats.failed += 1
            else:
                esp_id = status.message_id if status is not None else None
                _sent(d, picks, now, str(esp_id) if esp_id is not None else _message_id(offer, d.subscriber_id), stats)
    return None


def retry_countdown(retries):
    """Exponential backoff with full jitter, capped at an hour."""
    return random.uniform(0, min(3600, 30 * 2**retries))


# Failures never sent again: the address refused the mail for good, or the mail may have gone.
REFUSED_FOR_GOOD = ("the ESP rejected", "the ESP invalid", "AnymailRecipientsRefused", "AnymailInvalidAddress", "SMTPRecipientsRefused")
MAY_HAVE_GONE = "interrupted while sending"
REQUEUED = " · requeued by an operator"


def requeue_verdict(note, status):
    """(send again?, why) for a failed delivery, from its note and its subscriber's status."""
    if status != Subscriber.Status.ACTIVE:
        return False, f"the subscriber is {status or 'erased'} now: not sent"
    if note.startswith(MAY_HAVE_GONE):
        return False, "the mail may already have been delivered: never sent twice"
    if note.startswith(REFUSED_FOR_GOOD) or re.match(r"SMTP\w*: \(5\d\d,", note):
        return False, "refused for good (a hard bounce): not sent again"
    return True, "a temporary failure: sent again"


def deliveries_requeue_plan(*, deliveries):
    """What deliveries_requeue() would do, per reason: [(note, count, send again?, why)]."""
    failed = deliveries.filter(state=Delivery.State.FAILED).values_list("note", "subscriber__status")
    plan = Counter()
    for note, status, n in failed.annotate(n=Count("id")).order_by():
        plan[(note.split(REQUEUED)[0], *requeue_verdict(note, status))] += n
    return sorted(((note, n, again, why) for (note, again, why), n in plan.items()), key=lambda row: (not row[2], -row[1]))


def deliveries_requeue(*, deliveries):
    """Send failed deliveries again (an operator's decision, e.g. after checking the ESP's log),
    except those requeue_verdict() keeps back; an event per subscriber keeps why each had
    failed. Returns how many."""
    failed = deliveries.filter(state=Delivery.State.FAILED)
    rows = failed.values_list("pk", "note", "subscriber__status", "subscriber_id", "edition__date")
    again = [row for row in rows if requeue_verdict(row[1], row[2])[0]]
    ids = [row[0] for row in again]
    now = timezone.now()
    # The sender overwrites the note when the copy goes: the subscriber's events keep the history.
    SubscriberEvent.objects.bulk_create([
        SubscriberEvent(subscriber_id=subscriber_id, kind="requeued", occurred_at=now,
                        description=f"edition {day}, which had failed: {note.split(REQUEUED)[0]}"[:500])
        for _, note, _, subscriber_id, day in again
    ], batch_size=5000)
    suffix = f"{REQUEUED} {now:%Y-%m-%d %H:%M}"
    count = 0
    for start in range(0, len(ids), 5000):
        # Queued anew: the reconciler looks for lost rows by when they were queued.
        count += Delivery.objects.filter(pk__in=ids[start : start + 5000], state=Delivery.State.FAILED).update(
            state=Delivery.State.PENDING,
            note=Concat(Left("note", 500 - len(suffix)), Value(suffix)),
            created_at=now,
        )
    deliveries_enqueue(ids)
    return count


def deliveries_reconcile(*, now=None):
    """Resolve rows left behind: 'sending' rows of a worker that died are marked failed (whether
    their mail went out is unknown, and a duplicate is worse than a gap); 'pending' rows whose
    task was lost (e.g. Redis restarted) are handed to workers again. Returns (failed, requeued).

    Both are looked for in one pass over the rows created in the last two days (an index on
    created_at, which no update changes). No index on state: it would keep the claim and the
    outcome from updating a row in place (see Delivery.Meta), and one on pending rows would
    tempt the planner into using it for claims (see _claim())."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=settings.DIGEST_SENDING_TIMEOUT_MINUTES)
    stuck = Delivery.objects.filter(created_at__gte=now - dt.timedelta(days=2)).filter(
        Q(state=Delivery.State.SENDING, claimed_at__lt=cutoff) | Q(state=Delivery.State.PENDING, created_at__lt=cutoff)
    )
    found = {Delivery.State.SENDING: [], Delivery.State.PENDING: []}
    for pk, state in stuck.values_list("pk", "state").iterator(chunk_size=5000):
        found[state].append(pk)
    failed = 0
    sending = found[Delivery.State.SENDING]
    for start in range(0, len(sending), 5000):
        failed += Delivery.objects.filter(pk__in=sending[start : start + 5000], state=Delivery.State.SENDING).update(
            state=Delivery.State.FAILED, note="interrupted while sending; not resent to avoid a duplicate"
        )
    deliveries_enqueue(found[Delivery.State.PENDING])
    return failed, len(found[Delivery.State.PENDING])
