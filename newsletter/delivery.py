"""Sending deliveries once: claim, send, record.

Rows are claimed with a conditional UPDATE (pending -> sending ... RETURNING) in groups, so a
task that runs twice never mails anyone twice; each message the mail server accepts is
recorded at once in the group's progress file (newsletter/progress.py), and the rows sent so
far in the database every DIGEST_CHECKPOINT_SIZE messages or second, with the group's
heart-beat (Record), the rest of its outcomes in one statement at its end; transient errors
(newsletter/mailerrors.py: the server down, refusing or dropping the connection, a 4xx) put
unsent rows back to pending for a retry with backoff, an attempt charged, and a 5xx to RCPT
or DATA is a hard bounce that suppresses the address (services.subscriber_bounced). When a
worker dies mid-group, recovery settles its rows from the progress file: what was sent is
recorded, the rest is sent again, so only a message in flight at the instant of the kill can
arrive twice; when its host is lost with the file, any worker takes the group over once it
stops beating, from the database's checkpoint: what was sent since may arrive twice
(newsletter/reconcile.py: recovery, takeover, the reconciler, requeues).
"""

import datetime as dt
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import get_connection
from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone

from newsletter import sql
from newsletter.digest_mail import batch_message, personal_message
from newsletter.links import digest_metadata, recipient_links
from newsletter.mailerrors import MailError, is_transient, mail_error_kind
from newsletter.models import Delivery, Edition, SendingGroup, Subscriber
from newsletter.offers import digests_for, offer_for
from newsletter.progress import Progress, clock
from newsletter.services import subscriber_bounced, unmailable

log = logging.getLogger(__name__)


class TransientSendError(Exception):
    """The ESP or SMTP server failed in a way worth retrying later; the rows not sent are
    pending again."""


class GroupTakenOver(Exception):
    """The group stopped beating long enough for another worker to take it over (this one was
    paused or cut off from the database): its rows are someone else's now, so it stops."""


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
    confirmed_at: dt.datetime | None
    keywords: str
    authors: str
    frequency: str
    state: str = Delivery.State.SENDING
    picks: tuple = ()
    sent_at: dt.datetime | None = None
    message_id: str = ""
    note: str = ""
    checkpointed: bool = False


def _claim(delivery_ids, claim):
    """Claim those of these rows still pending (sql.deliveries_claim), with their recipients."""
    rows = sql.deliveries_claim(delivery_ids, claim=claim, now=timezone.now())
    people = sql.recipients([subscriber_id for _, _, subscriber_id, _ in rows])
    gone = [pk for pk, _, subscriber_id, _ in rows if subscriber_id not in people]
    if gone:  # deleted behind the fan-out's back (the database does not check: see Delivery)
        log.warning("deleting %d deliveries whose subscriber no longer exists", len(gone))
        Delivery.objects.filter(pk__in=gone).delete()
    return [
        Claimed(pk, attempts, subscriber_id, edition_id, *people[subscriber_id])
        for pk, attempts, subscriber_id, edition_id in rows
        if subscriber_id in people
    ]


def _outcomes(claimed):
    return [(c.id, c.state, c.picks, c.sent_at, c.note, c.message_id, c.attempts) for c in claimed]


# Waits between tries of a group's last write while the database is away (a restart, say):
# the rows it records would otherwise wait for recovery as 'sending'.
FINISH_RETRIES = (1, 2, 4, 8, 15)
CHECKPOINT_SECONDS = 1.0


class Record:
    """What a group has sent, recorded as it sends: each accepted message in the local progress
    file at once (the exact record after a process crash, read on this host), and the rows
    sent so far in the database every DIGEST_CHECKPOINT_SIZE messages or CHECKPOINT_SECONDS,
    whichever comes first, with the group's heart-beat: what any worker on any host goes by
    when this one's host is lost (reconcile.deliveries_takeover). A checkpoint that fails
    (the database restarting) is tried again with the next; since an asynchronous commit
    may then have been lost, the group's last write records every outcome again."""

    def __init__(self, progress, delivery_ids):
        self.progress, self.claim = progress, progress.path.stem
        self.unrecorded, self.at, self.doubt = [], clock(), False
        # No checkpoints (DIGEST_CHECKPOINT_SIZE 0, on one machine): the progress file alone.
        self.beating = settings.DIGEST_CHECKPOINT_SIZE > 0
        if not self.beating:
            return
        # Before the claim, as the progress file: whatever happens after, the group is known.
        SendingGroup.objects.create(
            claim=self.claim, node=f"{socket.gethostname()}:{os.getpid()}"[:200],  # a pool process, not its parent
            delivery_ids=",".join(map(str, delivery_ids)), beat_at=timezone.now(),
        )

    def sent(self, deliveries):
        """Record these deliveries (Claimed, marked sent) as accepted by the mail server."""
        self.progress.sent([(d.id, d.picks, d.message_id) for d in deliveries])
        self.unrecorded += deliveries
        if self.beating and (len(self.unrecorded) >= settings.DIGEST_CHECKPOINT_SIZE or clock() - self.at >= CHECKPOINT_SECONDS):
            self._checkpoint()

    def _checkpoint(self):
        self.at = clock()
        try:
            beating = sql.deliveries_finish(_outcomes(self.unrecorded), claim=self.claim, beat=timezone.now())
        except DatabaseError as error:
            log.warning("checkpoint of group %s failed, tried again with the next: %s", self.claim, error)
            _reconnect()
            self.doubt = True
            return
        if not beating:
            raise GroupTakenOver(self.claim)
        for delivery in self.unrecorded:
            delivery.checkpointed = True
        self.unrecorded = []

    def finish(self, claimed):
        """Record the outcomes not yet checkpointed (all of them, after a failed checkpoint),
        trying again while the database is away."""
        outcomes = _outcomes([c for c in claimed if self.doubt or not c.checkpointed])
        if not outcomes:
            return
        for wait in (*FINISH_RETRIES, None):
            try:
                sql.deliveries_finish(outcomes, claim=self.claim if self.beating else None)
                break
            except DatabaseError as error:
                if wait is None:
                    raise
                log.warning("recording group %s failed, trying again in %d s: %s", self.claim, wait, error)
                _reconnect()
                time.sleep(wait)

    def ended(self):
        """The group's heart-beat removed: a synchronous commit, which makes the asynchronous
        writes of its outcomes before it durable too."""
        if self.beating:
            SendingGroup.objects.filter(pk=self.claim).delete()


def _reconnect():
    """After a database error: a connection the server dropped (a restart) is closed, so that
    the next statement connects afresh."""
    if not connection.is_usable():
        connection.close()


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
    # Progress files flushed to the disk (msync) and the wall time spent waiting for it: I/O,
    # which the CPU figures above do not show.
    flushes: int = 0
    flush_seconds: float = 0.0

    def add(self, other):
        for name in ("sent", "skipped", "failed", "renders", "flushes", "flush_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds.update(other.seconds)

    @contextmanager
    def timing(self, stage):
        start = time.thread_time()
        yield
        self.seconds[stage] += time.thread_time() - start


UNREACHABLE = "the mail server was unreachable"


def _unreachable(delivery_ids, error, stats):
    """The connection could not be opened, so nothing was tried. A transient cause (the server
    down or refusing connections) charges no attempt: an outage says nothing about the
    messages, and an edition outlasts one (the task retries with backoff, capped at an hour)
    of up to DIGEST_UNREACHABLE_HOURS since its rows were queued; older rows fail, so that a
    server that never comes back ends the retries. A permanent cause (a wrong certificate,
    say) fails the rows still pending at once, with the error, for an operator to requeue once
    it is fixed. Raises TransientSendError if rows wait."""
    note = f"{UNREACHABLE}: {type(error).__name__}: {error}"
    pending = Delivery.objects.filter(pk__in=delivery_ids, state=Delivery.State.PENDING)
    if is_transient(error):
        queued_before = timezone.now() - dt.timedelta(hours=settings.DIGEST_UNREACHABLE_HOURS)
        given_up = f"{note}; given up {settings.DIGEST_UNREACHABLE_HOURS} h after it was queued"
        stats.failed += pending.filter(created_at__lt=queued_before).update(state=Delivery.State.FAILED, note=given_up[:500])
        if pending.update(note=f"will retry: {note}"[:500]):
            raise TransientSendError(note) from error
    else:
        stats.failed += pending.update(state=Delivery.State.FAILED, attempts=F("attempts") + 1, note=note[:500])
    if stats.failed:
        log.warning("%d digest(s) failed: %s", stats.failed, note)
    return stats


def deliveries_send(*, delivery_ids, connection=None):
    """Send one batch of deliveries. Only rows still pending are claimed, so re-running a
    batch is harmless. Raises TransientSendError (after putting unsent rows back to pending)
    when the mail server fails in a way worth retrying."""
    stats = SendStats()
    size = settings.DIGEST_CLAIM_SIZE
    retry = None
    connection = connection or get_connection()
    try:
        connection.open()
    except Exception as error:  # noqa: BLE001 - classified in _unreachable, re-raised if transient
        return _unreachable(delivery_ids, error, stats)
    try:
        for start in range(0, len(delivery_ids), size):
            with Progress(uuid.uuid4().hex) as progress:
                with stats.timing("claim"):
                    # Named before they are claimed: whatever happens after, recovery finds them.
                    progress.claimed(delivery_ids[start : start + size])
                    record = Record(progress, delivery_ids[start : start + size])
                    claimed = _claim(delivery_ids[start : start + size], progress.path.stem)
                by_edition = defaultdict(list)  # one, unless an operator requeued several editions' rows
                for delivery in claimed:
                    by_edition[delivery.edition_id].append(delivery)
                for edition in Edition.objects.filter(pk__in=by_edition):
                    try:
                        stats.add(_send_claimed(edition, by_edition[edition.pk], connection, record))
                    except TransientSendError as error:
                        retry = error  # this edition's unsent rows are pending again; the others go on
                    except GroupTakenOver:
                        log.warning("group %s was taken over after it stopped beating; it stops", record.claim)
                        break
                record.ended()
            stats.flushes += progress.flushes
            stats.flush_seconds += progress.flush_seconds
            if retry is not None:
                raise retry
    finally:
        connection.close()
    return stats


def _send_claimed(edition, claimed, connection, record):
    stats = SendStats()
    with stats.timing("assemble"):
        # Unsubscribed, paused, suppressed or never confirmed, whatever happened since the fan-out.
        skip = unmailable([(c.subscriber_id, c.email, c.status, c.confirmed_at) for c in claimed])
        for delivery in claimed:
            if delivery.subscriber_id in skip:
                delivery.state, delivery.note = Delivery.State.SKIPPED, skip[delivery.subscriber_id]
                stats.skipped += 1
        recipients = [
            (c.subscriber_id, c.frequency, c.keywords, c.authors, c.confirmed_at) for c in claimed if c.subscriber_id not in skip
        ]
        picks = digests_for(edition, recipients) if recipients else {}
    now = timezone.now()
    ready = _ready(edition, [c for c in claimed if c.subscriber_id not in skip], picks, stats)
    send = _send_batches if settings.DIGEST_SENDING == "batch" else _send_each
    before = stats.seconds["render"]
    with stats.timing("build and hand-off"):
        pending_error = send(ready, connection, stats, now, record)
    # Rendering happens inside send() as it consumes `ready`; count it once.
    stats.seconds["build and hand-off"] -= stats.seconds["render"] - before
    if pending_error is not None:
        for delivery in claimed:
            if delivery.state == Delivery.State.SENDING:  # not reached: back to pending, unattempted
                delivery.state = Delivery.State.PENDING
    with stats.timing("record"):
        record.finish(claimed)
    if pending_error is not None:
        raise TransientSendError(str(pending_error))
    return stats


RENDER_BATCH = 32


def _ready(edition, claimed, picks, stats):
    """(delivery, offer, picks, content) for each claimed delivery that gets a digest, made as
    the sender asks for them, RENDER_BATCH at a time: a content that one recipient gets need
    not outlive its message, and the render stage is timed once a batch, not once a reader
    with a profile (reading the CPU clock is a system call)."""
    offers, recipients, batch = {}, Counter(picks.values()), []
    for delivery in claimed:
        mine = picks[delivery.subscriber_id]
        if not mine:
            delivery.state, delivery.note = Delivery.State.SKIPPED, "nothing new"
            stats.skipped += 1
            continue
        offer = offers.get(delivery.frequency)
        if offer is None:
            offer = offers[delivery.frequency] = offer_for(edition, delivery.frequency)
        batch.append((delivery, offer, mine))
        if len(batch) == RENDER_BATCH:
            yield from _rendered(batch, recipients, stats)
            batch = []
    yield from _rendered(batch, recipients, stats)


def _rendered(batch, recipients, stats):
    start, ready = time.thread_time(), []
    for delivery, offer, mine in batch:
        content = offer.renderer.contents.get(mine)
        if content is None:
            stats.renders += 1
            content = offer.renderer.assembled(mine, keep=recipients[mine] > 1)
        ready.append((delivery, offer, mine, content))
    stats.seconds["render"] += time.thread_time() - start
    return ready


def _failed(deliveries, error, stats):
    """Record a failed send; returns the error if the deliveries go back to pending for a retry.
    A hard bounce suppresses the address, as the ESP's bounce webhook does."""
    kind = mail_error_kind(error)
    if kind is MailError.TRANSIENT and all(d.attempts < settings.DIGEST_MAX_ATTEMPTS for d in deliveries):
        for d in deliveries:
            d.state, d.note = Delivery.State.PENDING, f"will retry: {error}"[:500]
        return error
    note = f"{type(error).__name__}: {error}"
    if kind is MailError.HARD_BOUNCE:
        note = f"{Delivery.BOUNCED}: {note}"
        for subscriber in Subscriber.objects.filter(pk__in=[d.subscriber_id for d in deliveries]):
            subscriber_bounced(subscriber=subscriber, description=note, when=timezone.now())
    for d in deliveries:
        d.state, d.note = Delivery.State.FAILED, note[:500]
    stats.failed += len(deliveries)
    log.warning("digest to %d subscriber(s) failed: %s", len(deliveries), error)
    return None


def _sent(delivery, picks, now, message_id, stats):
    delivery.state, delivery.picks, delivery.sent_at, delivery.message_id = Delivery.State.SENT, picks, now, message_id[:200]
    stats.sent += 1


def _message_id(offer, subscriber_id):
    return offer.message_id_format.format(subscriber_id)


def _send_each(ready, connection, stats, now, record):
    """One message per recipient (SMTP, and any ESP without batch sending)."""
    for delivery, offer, picks, content in ready:
        message = personal_message(
            content,
            email=delivery.email,
            links=recipient_links(delivery.subscriber_id),
            message_id=_message_id(offer, delivery.subscriber_id),
            metadata=digest_metadata(offer.edition_iso, delivery.subscriber_id, delivery.id),
        )
        delivery.attempts += 1  # charged where a send is tried
        try:
            connection.send_messages([message])
        except Exception as error:  # noqa: BLE001 - classified in _failed, never swallowed
            retry = _failed([delivery], error, stats)
            if retry is not None:
                return retry
            continue
        esp_id = getattr(getattr(message, "anymail_status", None), "message_id", None)
        _sent(delivery, picks, now, str(esp_id) if esp_id is not None else message.message_id, stats)
        record.sent([delivery])
    return None


def _send_batches(ready, connection, stats, now, record):
    """One ESP API call per group of recipients with identical content (anymail merge data),
    chunked to DIGEST_BATCH_LIMIT. A failed call concerns its recipients only."""
    groups = {}
    for delivery, offer, picks, content in ready:
        groups.setdefault((offer.edition.pk, offer.frequency, picks), (offer, content, []))[2].append(delivery)
    chunks = [
        (picks, offer, content, members[i : i + settings.DIGEST_BATCH_LIMIT])
        for (_, _, picks), (offer, content, members) in groups.items()
        for i in range(0, len(members), settings.DIGEST_BATCH_LIMIT)
    ]
    for picks, offer, content, deliveries in chunks:
        for d in deliveries:
            d.attempts += 1  # charged where a send is tried
        message = batch_message(
            content,
            [
                (
                    d.email,
                    recipient_links(d.subscriber_id),
                    _message_id(offer, d.subscriber_id),
                    digest_metadata(offer.edition_iso, d.subscriber_id, d.id),
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
        record.sent([d for d in deliveries if d.state == Delivery.State.SENT])
    return None


def deliveries_await_retry(*, delivery_ids, countdown):
    """Record when the retry of these rows (those pending again) is due, so that a worker
    starting meanwhile leaves them to it (reconcile.deliveries_resume)."""
    retry_at = timezone.now() + dt.timedelta(seconds=countdown)
    Delivery.objects.filter(pk__in=delivery_ids, state=Delivery.State.PENDING).update(retry_at=retry_at)


def retry_countdown(retries):
    """Exponential backoff with full jitter, capped at an hour."""
    return random.uniform(0, min(3600, 30 * 2**retries))
