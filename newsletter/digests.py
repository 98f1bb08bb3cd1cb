"""Daily digests: schedule, assembly, rendering and exactly-once delivery.

A Delivery row per (subscriber, edition) is created when the subscriber falls due; sending
claims rows with a conditional UPDATE (pending -> sending) in small groups, so a task that
runs twice, or a worker that dies, never mails anyone twice. Digests with the same papers
share one render; only the per-recipient links are substituted afterwards.
"""

import datetime as dt
import json
import logging
import random
import time
import smtplib
import socket
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from functools import cached_property
from dataclasses import dataclass, field

from cachetools import LRUCache
from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import get_connection
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from newsletter import tokens
from newsletter.models import Delivery, Edition, Subscriber, Vote
from newsletter.profiles import profiles
from newsletter.ranking import Candidate, Interests, Weights, keyword_hits, rank, rank_many
from newsletter.rendering import (
    FEEDBACK_TOKEN,
    PREFERENCES_TOKEN,
    UNSUBSCRIBE_TOKEN,
    EditionRenderer,
    batch_message,
    personal_message,
    site_domain,
)
from newsletter.schedule import local_date
from newsletter.services import COMPLAINT_PAUSE, schedule_next, sending_paused
from papers import vectors
from papers.models import Feature, Paper, Topic, author_key

log = logging.getLogger(__name__)

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


def deliveries_create(edition, subscriber_ids):
    """A pending row per subscriber, in one INSERT ... SELECT (no model per row); rows that
    exist already are left alone, so fanning out twice creates nothing twice."""
    ops = db_connection.ops
    marks = ", ".join(["%s"] * len(subscriber_ids))
    sql = (
        f"INSERT INTO {_table()} (edition_id, subscriber_id, state, picks, attempts, claim, message_id, note, created_at) "
        f"SELECT %s, id, %s, %s, 0, '', '', '', %s FROM {ops.quote_name(Subscriber._meta.db_table)} "
        f"WHERE id IN ({marks}) ON CONFLICT DO NOTHING"
    )
    params = [edition.pk, Delivery.State.PENDING, "[]", ops.adapt_datetimefield_value(timezone.now()), *subscriber_ids]
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)


def digests_dispatch(*, now=None):
    """Create deliveries for every subscriber whose hour has come and hand them to workers in
    batches; each subscriber's schedule moves forward in the same transaction. Returns how many."""
    now = now or timezone.now()
    if sending_paused(now=now):
        log.error("digests paused: spam complaints above %.1f%% in the last day", COMPLAINT_PAUSE * 100)
        return 0
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
                deliveries_create(editions[day], ids)
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
        deliveries_create(edition, new[start : start + size])
    pending = edition.deliveries.filter(state=Delivery.State.PENDING).order_by("subscriber_id")
    ids = list(pending.values_list("subscriber_id", flat=True).iterator(chunk_size=5000))
    deliveries_enqueue(edition, ids)
    return len(ids)


# Assembly


@dataclass
class EditionPapers:
    """What one edition offers subscribers of one frequency: loaded once per worker process
    and used for every subscriber it sends to."""

    edition: Edition
    frequency_key: str
    candidates: list
    featured: list
    papers: dict
    notes: dict
    topic_names: dict = field(default_factory=dict)
    recent_editions: list = field(default_factory=list)
    # Bounded, so a worker's memory stays flat however many subscribers it serves.
    picks_memo: LRUCache = field(default_factory=lambda: LRUCache(maxsize=20_000))
    voted_papers: LRUCache = field(default_factory=lambda: LRUCache(maxsize=20_000))  # id -> (dense, title)
    hits_memo: dict = field(default_factory=dict)
    _renderer: EditionRenderer | None = None

    @property
    def renderer(self):
        if self._renderer is None:
            self._renderer = EditionRenderer(self.edition, self.papers, self.notes)
        return self._renderer

    def picks_for(self, interests, received, similar=None):
        """Subscribers who follow the same things and received the same of these papers get
        the same picks: rank once for all of them. A subscriber with a profile (`similar`)
        is ranked alone."""
        key = (interests, frozenset(received.intersection(self.papers)))
        if similar is None and key in self.picks_memo:
            return self.picks_memo[key]
        for keyword in interests.keywords:
            if keyword not in self.hits_memo:
                self.hits_memo[keyword] = keyword_hits(self.candidates, keyword)
        picks = tuple(
            rank(
                candidates=self.candidates,
                featured=self.featured,
                interests=interests,
                exclude=key[1],
                topic_names=self.topic_names,
                limit=settings.DIGEST_MAX_PAPERS,
                hits=self.hits_memo,
                similar=similar,
                weights=ranking_weights(),
            )
        )
        if similar is None:
            self.picks_memo[key] = picks
        return picks

    @cached_property
    def candidate_dense(self):
        return vectors.dense(vectors.matrix([self.papers[c.id].vector for c in self.candidates]))

    def profiles_for(self, votes_by_subscriber):
        """Profiles (newsletter/profiles.py) of these voters against the offer's papers. The
        voted papers' dense vectors are kept: the same papers recur across subscribers."""
        voted = {paper_id for votes in votes_by_subscriber.values() for paper_id, _ in votes}
        missing = voted - self.voted_papers.keys()
        if missing:
            rows = list(Paper.objects.filter(pk__in=missing).values_list("pk", "vector", "title"))
            if rows:
                projected = vectors.dense(vectors.matrix([vector for _, vector, _ in rows]))
                for (pk, _, title), row in zip(rows, projected):
                    self.voted_papers[pk] = (row, title)
        known = {pid: self.voted_papers[pid] for pid in voted if pid in self.voted_papers}
        return profiles(
            votes_by_subscriber,
            {pid: row for pid, (row, _) in known.items()},
            {pid: title for pid, (_, title) in known.items()},
            [c.id for c in self.candidates],
            self.candidate_dense,
        )

    def picks_with_profiles(self, people, found):
        """rank_many() for subscribers with profiles: {subscriber: picks}."""
        for interests, _ in people.values():
            for keyword in interests.keywords:
                if keyword not in self.hits_memo:
                    self.hits_memo[keyword] = keyword_hits(self.candidates, keyword)
        subscribers = list(people)
        picks = rank_many(
            candidates=self.candidates,
            featured=self.featured,
            people=[(people[s][0], people[s][1] & set(self.papers)) for s in subscribers],
            topic_names=self.topic_names,
            limit=settings.DIGEST_MAX_PAPERS,
            hits=self.hits_memo,
            cosines=found.cosines[[found.rows[s] for s in subscribers]],
            closest=lambda row, column: found.closest(found.rows[subscribers[row]], column),
            weights=ranking_weights(),
        )
        return {s: tuple(p) for s, p in zip(subscribers, picks)}


_OFFERS = {}
OFFER_TTL = 300  # seconds a worker keeps an edition's papers before reading them again


def offer_for(edition, frequency):
    key = (edition.pk, frequency)
    cached = _OFFERS.get(key)
    if cached is None or cached[0] < time.monotonic() - OFFER_TTL:
        for other in [k for k in _OFFERS if k[0] != edition.pk]:
            del _OFFERS[other]  # a worker needs the edition it is sending, not yesterday's
        cached = _OFFERS[key] = (time.monotonic(), edition_papers(edition, frequency))
    return cached[1]


def _candidate(paper, topic_ids):
    return Candidate(
        id=paper.id,
        title=paper.title,
        text=f"{paper.title}\n{paper.abstract}".lower(),
        upvotes=paper.upvotes,
        listed_ordinal=paper.listed_on.toordinal() if paper.listed_on else 0,
        topic_ids=frozenset(topic_ids.get(paper.id, ())),
        authors=tuple((author_key(name), name) for name in paper.authors),
    )


def ranking_weights():
    return Weights(**settings.RANKING_WEIGHTS)


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
        frequency_key=frequency,
        candidates=[_candidate(p, topic_ids) for pid, p in papers.items() if pid not in featured_ids],
        featured=[_candidate(papers[pid], topic_ids) for pid in featured_ids],
        papers=papers,
        notes={f.paper_id: f.note for f in features},
        topic_names=dict(Topic.objects.values_list("id", "name")),
        recent_editions=recent_editions(edition),
    )


def recent_editions(edition):
    return list(
        Edition.objects.filter(
            date__gte=edition.date - dt.timedelta(days=NO_REPEAT_DAYS), date__lt=edition.date
        ).values_list("pk", flat=True)
    )


def received_papers(subscriber_ids, edition, recent=None):
    """Paper ids each subscriber already received in recent editions."""
    received = defaultdict(set)
    recent = recent_editions(edition) if recent is None else recent
    rows = Delivery.objects.filter(subscriber_id__in=subscriber_ids, edition_id__in=recent)
    for subscriber_id, state, picks in rows.values_list("subscriber_id", "state", "picks"):
        if state in (Delivery.State.SENT, Delivery.State.SENDING):
            received[subscriber_id].update(paper_id for paper_id, _ in picks)
    return received


def interests_of(preferences):
    """{subscriber id: Interests} from {subscriber id: (keywords, authors)}, topics in one query."""
    topic_ids = defaultdict(set)
    through = Subscriber.topics.through.objects.filter(subscriber_id__in=list(preferences))
    for subscriber_id, topic_id in through.values_list("subscriber_id", "topic_id"):
        topic_ids[subscriber_id].add(topic_id)
    return {
        pk: Interests(
            topic_ids=frozenset(topic_ids[pk]),
            keywords=tuple(k.strip() for k in keywords.split(",") if k.strip()),
            authors=frozenset(author_key(a) for a in authors.split(",") if a.strip()),
        )
        for pk, (keywords, authors) in preferences.items()
    }


def votes_of(subscriber_ids):
    votes = defaultdict(list)
    for subscriber_id, paper_id, value in Vote.objects.filter(subscriber_id__in=subscriber_ids).values_list(
        "subscriber_id", "paper_id", "value"
    ):
        votes[subscriber_id].append((paper_id, value))
    return votes


# Rendering


def _message_id(offer, subscriber_id):
    # The same id if a copy were ever sent twice, so mail clients fold duplicates.
    return f"<digest.{offer.edition.date:%Y%m%d}.{subscriber_id}@{site_domain()}>"


def digest_message(offer, picks, subscriber_id, email):
    return personal_message(
        offer.renderer.content(picks),
        email=email,
        unsubscribe_token=tokens.make(tokens.UNSUBSCRIBE, subscriber_id),
        preferences_token=tokens.make(tokens.PREFERENCES, subscriber_id),
        feedback_token=tokens.make(tokens.FEEDBACK, subscriber_id),
        message_id=_message_id(offer, subscriber_id),
        metadata={"subscriber": str(subscriber_id), "edition": offer.edition.date.isoformat()},
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


@dataclass(slots=True)
class Claimed:
    """A claimed delivery and what sending it needs of its subscriber: plain values, not
    model instances, because this runs for every recipient."""

    id: int
    attempts: int
    subscriber_id: int
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


def _table():
    return db_connection.ops.quote_name(Delivery._meta.db_table)


def _claim(edition, subscriber_ids):
    """pending -> sending for these subscribers' rows, in one statement that also returns
    them (UPDATE ... RETURNING, on PostgreSQL and SQLite alike): only rows this call moved
    come back, so two workers never get the same row."""
    marks = ", ".join(["%s"] * len(subscriber_ids))
    sql = (
        f"UPDATE {_table()} SET state = %s, claim = %s, claimed_at = %s "
        f"WHERE edition_id = %s AND state = %s AND subscriber_id IN ({marks}) RETURNING id, attempts, subscriber_id"
    )
    params = [Delivery.State.SENDING, uuid.uuid4().hex, db_connection.ops.adapt_datetimefield_value(timezone.now()),
              edition.pk, Delivery.State.PENDING, *subscriber_ids]
    with transaction.atomic(), db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    fields = ("pk", "email", "status", "keywords", "authors", "frequency")
    people = {row[0]: row[1:] for row in Subscriber.objects.filter(pk__in=[r[2] for r in rows]).values_list(*fields)}
    return [Claimed(pk, attempts, subscriber_id, *people[subscriber_id]) for pk, attempts, subscriber_id in rows]


def _finish(claimed):
    """Record every outcome of a group in one UPDATE ... FROM (VALUES ...) statement."""
    postgres = db_connection.vendor == "postgresql"
    jsonb, timestamptz, integer = ("::jsonb", "::timestamptz", "::integer") if postgres else ("", "", "")
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(claimed))
    sql = (
        f"WITH v(id, state, picks, sent_at, message_id, note, attempts) AS (VALUES {values}) "
        f"UPDATE {_table()} SET state = v.state, picks = v.picks{jsonb}, sent_at = v.sent_at{timestamptz}, "
        f"message_id = v.message_id, note = v.note, attempts = v.attempts{integer} "
        f"FROM v WHERE {_table()}.id = v.id{'::bigint' if postgres else ''}"
    )
    adapt = db_connection.ops.adapt_datetimefield_value
    params = [
        value
        for c in claimed
        for value in (c.id, c.state, json.dumps(c.picks), adapt(c.sent_at), c.message_id, c.note, c.attempts)
    ]
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
    # Seconds spent per stage (claim, assemble, render, build and hand-off, record): the benchmark's figures.
    seconds: Counter = field(default_factory=Counter)

    def add(self, other):
        for name in ("sent", "skipped", "failed", "renders"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds.update(other.seconds)

    @contextmanager
    def timing(self, stage):
        start = time.perf_counter()
        yield
        self.seconds[stage] += time.perf_counter() - start


def deliveries_send(*, edition_id, subscriber_ids, connection=None):
    """Send one batch of an edition. Only rows still pending are claimed, so re-running a
    batch is harmless. Raises TransientSendError (after putting unsent rows back to pending)
    when the ESP fails in a way worth retrying."""
    edition = Edition.objects.get(pk=edition_id)
    stats = SendStats()
    connection = connection or get_connection()
    with connection:
        for start in range(0, len(subscriber_ids), settings.DIGEST_CLAIM_SIZE):
            with stats.timing("claim"):
                claimed = _claim(edition, subscriber_ids[start : start + settings.DIGEST_CLAIM_SIZE])
            if claimed:
                stats.add(_send_claimed(edition, claimed, connection))
    return stats


def _send_claimed(edition, claimed, connection):
    stats = SendStats()
    with stats.timing("assemble"):
        interests = interests_of({c.subscriber_id: (c.keywords, c.authors) for c in claimed})
        recent = offer_for(edition, Subscriber.Frequency.DAILY).recent_editions
        received = received_papers([c.subscriber_id for c in claimed], edition, recent)
        votes = votes_of([c.subscriber_id for c in claimed])
        learned = {}  # subscriber -> picks, for those with a profile: scored together
        for frequency in {c.frequency for c in claimed if c.subscriber_id in votes}:
            offer = offer_for(edition, frequency)
            group = [c for c in claimed if c.frequency == frequency and c.subscriber_id in votes]
            found = offer.profiles_for({c.subscriber_id: votes[c.subscriber_id] for c in group})
            people = {
                c.subscriber_id: (interests[c.subscriber_id], received[c.subscriber_id])
                for c in group
                if c.subscriber_id in found
            }
            learned.update(offer.picks_with_profiles(people, found))
    now = timezone.now()
    ready = []  # (delivery, offer, picks) to send
    for delivery in claimed:
        delivery.attempts += 1
        if delivery.status != Subscriber.Status.ACTIVE:
            # Unsubscribed, paused or suppressed after the edition was fanned out.
            delivery.state, delivery.note = Delivery.State.SKIPPED, f"subscriber {delivery.status} at send time"
            stats.skipped += 1
            continue
        with stats.timing("assemble"):
            offer = offer_for(edition, delivery.frequency)
            if delivery.subscriber_id in learned:
                picks = learned[delivery.subscriber_id]
            else:
                picks = offer.picks_for(interests[delivery.subscriber_id], received[delivery.subscriber_id])
        if not picks:
            delivery.state, delivery.note = Delivery.State.SKIPPED, "nothing new"
            stats.skipped += 1
            continue
        if picks not in offer.renderer.contents:
            stats.renders += 1
            with stats.timing("render"):
                offer.renderer.content(picks)
        ready.append((delivery, offer, picks))
    send = _send_batches if settings.DIGEST_SENDING == "batch" else _send_each
    with stats.timing("build and hand-off"):
        pending_error = send(ready, connection, stats, now)
    with stats.timing("record"):
        _finish(claimed)
    if pending_error is not None:
        raise TransientSendError(str(pending_error))
    return stats


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
    for n, (delivery, offer, picks) in enumerate(ready):
        message = digest_message(offer, picks, delivery.subscriber_id, delivery.email)
        try:
            connection.send_messages([message])
        except Exception as error:  # noqa: BLE001 - classified in _failed, never swallowed
            retry = _failed([delivery], error, stats)
            if retry is not None:
                for later, _, _ in ready[n + 1 :]:
                    later.state = Delivery.State.PENDING
                return retry
            continue
        esp_id = getattr(getattr(message, "anymail_status", None), "message_id", None)
        _sent(delivery, picks, now, str(esp_id) if esp_id is not None else message.extra_headers["Message-ID"], stats)
    return None


def _send_batches(ready, connection, stats, now):
    """One ESP API call per group of recipients with identical content (anymail merge data),
    chunked to DIGEST_BATCH_LIMIT. A failed call concerns its recipients only."""
    groups = defaultdict(list)
    for delivery, offer, picks in ready:
        groups[(offer.edition.pk, offer.frequency_key, picks)].append((delivery, offer))
    chunks = [
        (picks, members[i : i + settings.DIGEST_BATCH_LIMIT])
        for (_, _, picks), members in groups.items()
        for i in range(0, len(members), settings.DIGEST_BATCH_LIMIT)
    ]
    for n, (picks, members) in enumerate(chunks):
        offer = members[0][1]
        deliveries = [d for d, _ in members]
        message = batch_message(
            offer.renderer.content(picks),
            [
                (
                    d.email,
                    {
                        UNSUBSCRIBE_TOKEN: tokens.make(tokens.UNSUBSCRIBE, d.subscriber_id),
                        PREFERENCES_TOKEN: tokens.make(tokens.PREFERENCES, d.subscriber_id),
                        FEEDBACK_TOKEN: tokens.make(tokens.FEEDBACK, d.subscriber_id),
                    },
                    _message_id(offer, d.subscriber_id),
                    {"subscriber": str(d.subscriber_id), "edition": offer.edition.date.isoformat()},
                )
                for d in deliveries
            ],
        )
        try:
            connection.send_messages([message])
        except Exception as error:  # noqa: BLE001 - classified in _failed, never swallowed
            retry = _failed(deliveries, error, stats)
            if retry is not None:
                for _, later in chunks[n + 1 :]:
                    for d, _ in later:
                        d.state = Delivery.State.PENDING
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
    return offer, offer.picks_for(Interests(), set())


def digests_preview(*, day):
    """What edition `day` would send to everyone scheduled that day, without sending or writing."""
    edition = Edition(date=day)
    offers, contents = {}, set()
    counts = {"scheduled": 0, "would_send": 0, "nothing_new": 0}
    sample = None
    subscribers = scheduled_on(day).order_by("pk")
    for start in range(0, subscribers.count(), settings.DIGEST_BATCH_SIZE):
        batch = list(subscribers[start : start + settings.DIGEST_BATCH_SIZE])
        interests = interests_of({s.pk: (s.keywords, s.authors) for s in batch})
        received = received_papers([s.pk for s in batch], edition)
        votes = votes_of([s.pk for s in batch])
        for subscriber in batch:
            counts["scheduled"] += 1
            if subscriber.frequency not in offers:
                offers[subscriber.frequency] = edition_papers(edition, subscriber.frequency)
            offer = offers[subscriber.frequency]
            found = offer.profiles_for({subscriber.pk: votes[subscriber.pk]}) if subscriber.pk in votes else None
            similar = found.similar(subscriber.pk) if found and subscriber.pk in found else None
            picks = offer.picks_for(interests[subscriber.pk], received[subscriber.pk], similar)
            if not picks:
                counts["nothing_new"] += 1
                continue
            counts["would_send"] += 1
            contents.add(tuple(picks))
            sample = sample or (subscriber, offers[subscriber.frequency], picks)
    counts["distinct_digests"] = len(contents)
    return counts, sample
