"""Daily digests: schedule and fan-out, and what each subscriber gets (assembly).

A Delivery row per (subscriber, edition) is created when the subscriber falls due and handed
to workers in batches; newsletter/delivery.py sends them exactly once. Digests with the same
papers share one render; only the per-recipient parts are filled in afterwards.
"""

import datetime as dt
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from cachetools import LRUCache
from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Func, Min, Q, TextField, Value
from django.db.models.lookups import GreaterThan
from django.utils import timezone

from newsletter import tokens
from newsletter.models import Delivery, Edition, Subscriber, Vote, comma_list
from newsletter.profiles import profiles
from newsletter.ranking import Candidate, Interests, Weights, keyword_hits, rank, rank_many
from newsletter.emails import site_domain
from newsletter.rendering import FEEDBACK_TOKEN, PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN, EditionRenderer, personal_message
from newsletter.schedule import local_date
from newsletter.services import COMPLAINT_PAUSE, schedule_next, sending_paused
from papers import vectors
from papers.models import Feature, Paper, Topic, author_key

log = logging.getLogger(__name__)

NO_REPEAT_DAYS = 30
MEMO_SIZE = 20_000  # picks remembered per offer, by what ranking reads and by exact interests
VOTED_PAPERS_KEPT = 20_000  # dense vectors of papers voted on, ~1 KB each


# Editions and schedule


def lookback_days(frequency):
    if frequency == Subscriber.Frequency.WEEKLY:
        return settings.DIGEST_WEEKLY_LOOKBACK_DAYS
    return settings.DIGEST_DAILY_LOOKBACK_DAYS


def edition_get(day):
    edition, _ = Edition.objects.get_or_create(date=day)
    return edition


def id_list(ids):
    """Ids as SQL integer literals, for IN lists of the statements made per group of recipients.
    int() makes them safe to inline; as parameters, the ORM would prepare and the driver parse
    each of hundreds of placeholders in Python, which costs more than the query itself."""
    return ", ".join([str(int(pk)) for pk in ids])


def select_for(sql, ids, params=None):
    """Rows of a raw SELECT whose `{ids}` is an IN list of these ids."""
    with db_connection.cursor() as cursor:
        cursor.execute(sql.format(ids=id_list(ids)), params)
        return cursor.fetchall()


def table_name(model):
    return db_connection.ops.quote_name(model._meta.db_table)


def deliveries_enqueue(delivery_ids):
    """Hand deliveries to workers, a batch per task (never a task per recipient). Call after
    the rows are committed; enqueuing twice is harmless, as only pending rows are claimed."""
    from newsletter.tasks import send_deliveries_task  # tasks call this module's services

    size = settings.DIGEST_BATCH_SIZE
    for start in range(0, len(delivery_ids), size):
        send_deliveries_task.delay(delivery_ids[start : start + size])


def deliveries_create(edition, subscriber_ids):
    """A pending row per subscriber, in one INSERT ... SELECT (no model per row); rows that
    exist already are left alone, so fanning out twice creates nothing twice. Returns the
    new rows' ids, which workers claim by."""
    sql = (
        f"INSERT INTO {table_name(Delivery)} (edition_id, subscriber_id, state, picks, attempts, claim, message_id, note, created_at) "
        f"SELECT %s, id, %s, %s, 0, '', '', '', %s FROM {table_name(Subscriber)} "
        f"WHERE id IN ({id_list(subscriber_ids)}) ON CONFLICT DO NOTHING RETURNING id"
    )
    params = [edition.pk, Delivery.State.PENDING, "[]", db_connection.ops.adapt_datetimefield_value(timezone.now())]
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [pk for (pk,) in cursor.fetchall()]


def digests_dispatch(*, now=None):
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
            if db_connection.features.has_select_for_update_skip_locked:
                # Two dispatchers running at once split the work instead of waiting.
                due = due.select_for_update(skip_locked=True)
            fields = ("pk", "interest_key", "timezone", "hour", "frequency", "weekday", "next_digest_at")
            batch = list(due.only(*fields)[: settings.DIGEST_BATCH_SIZE])
            if not batch:
                return total
            by_day = defaultdict(list)
            for subscriber in batch:
                by_day[local_date(now, subscriber.timezone)].append(subscriber.pk)
                schedule_next(subscriber, now=now)
            Subscriber.objects.bulk_update(batch, ["next_digest_at"])
            created = [pk for day, ids in by_day.items() for pk in deliveries_create(edition_get(day), ids)]
        deliveries_enqueue(created)
        total += len(batch)
        last = (batch[-1].interest_key, batch[-1].pk)


def scheduled_on(day):
    """Active subscribers who get a digest on `day`: daily ones, and weekly ones on their weekday."""
    weekly_today = Q(frequency=Subscriber.Frequency.WEEKLY, weekday=day.weekday())
    return Subscriber.objects.active().filter(Q(frequency=Subscriber.Frequency.DAILY) | weekly_today)


class Row(Func):
    """A row value such as (interest_key, id)."""

    function = ""
    template = "(%(expressions)s)"
    output_field = TextField()


def after(last, key, pk):
    """Rows after `last` in (key, pk) order, as one row-value comparison: PostgreSQL and SQLite
    turn it into an index range, where the equivalent OR of two conditions scans from the start."""
    return GreaterThan(Row(key, pk), Row(Value(last[0]), Value(last[1])))


def keyset_pages(queryset, key, pk):
    """Ids (pk) of queryset's rows in (key, pk) order, a batch at a time (keyset pagination:
    memory stays flat and rows changing state behind the cursor do not shift the pages)."""
    last = ("", 0)
    while True:
        rows = list(queryset.filter(after(last, key, pk)).order_by(key, pk).values_list(key, pk)[: settings.DIGEST_BATCH_SIZE])
        if not rows:
            return
        yield [row_pk for _, row_pk in rows]
        last = rows[-1]


def digests_dispatch_day(*, day):
    """Send edition `day` now to everyone scheduled that day who has not had it, whatever the hour
    (`send_digests --date`); re-running it resumes an interrupted run. Returns how many were queued."""
    edition = edition_get(day)
    for ids in keyset_pages(scheduled_on(day).exclude(deliveries__edition=edition), "interest_key", "pk"):
        deliveries_create(edition, ids)
    queued = 0
    pending = edition.deliveries.filter(state=Delivery.State.PENDING)
    for ids in keyset_pages(pending, "subscriber__interest_key", "id"):
        deliveries_enqueue(ids)
        queued += len(ids)
    return queued


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
    picks_memo: LRUCache = field(default_factory=lambda: LRUCache(maxsize=MEMO_SIZE))
    voted_papers: dict = field(default_factory=dict)  # id -> (dense, title); bounded below
    hits_memo: dict = field(default_factory=dict)
    exact_memo: dict = field(default_factory=dict)  # (Interests, received) -> picks
    _renderer: EditionRenderer | None = None

    @property
    def renderer(self):
        if self._renderer is None:
            self._renderer = EditionRenderer(self.edition, self.papers, self.notes)
        return self._renderer

    def picks_for(self, interests, received, similar=None):
        """Subscribers who follow the same of what this offer holds (topics its papers are in,
        keywords they mention, authors who wrote them) and received the same of its papers get
        the same picks: rank once for all of them. A subscriber with a profile (`similar`) is
        ranked alone."""
        received = frozenset(received)
        if similar is None:
            picks = self.exact_memo.get((interests, received))  # the same Interests and set as someone before
            if picks is not None:
                return picks
        self._find_keywords(interests.keywords)
        exclude = frozenset(received.intersection(self.papers))
        # Everything rank() reads of the interests, stripped of what cannot match today.
        key = (
            interests.topic_ids & self.candidate_topics,
            tuple(k for k in interests.keywords if self.hits_memo[k]),
            interests.authors & self.candidate_authors,
            bool(interests.authors),
            interests.follows_anything,
            exclude,
        )
        if similar is None and key in self.picks_memo:
            return self.picks_memo[key]
        picks = tuple(
            rank(
                candidates=self.candidates,
                featured=self.featured,
                interests=interests,
                exclude=exclude,
                topic_names=self.topic_names,
                limit=settings.DIGEST_MAX_PAPERS,
                hits=self.hits_memo,
                similar=similar,
                weights=ranking_weights(),
            )
        )
        if similar is None:
            self.picks_memo[key] = picks
            if len(self.exact_memo) >= MEMO_SIZE:
                self.exact_memo.clear()  # bounded; refilled by the next subscribers
            self.exact_memo[interests, received] = picks
        return picks

    def _find_keywords(self, keywords):
        """Fill hits_memo, which rank() reads, for these keywords: once per keyword and offer."""
        for keyword in keywords:
            if keyword not in self.hits_memo:
                self.hits_memo[keyword] = keyword_hits(self.candidates, keyword)

    @cached_property
    def candidate_topics(self):
        return frozenset(t for c in self.candidates for t in c.topic_ids)

    @cached_property
    def candidate_authors(self):
        return frozenset(key for c in self.candidates for key, _ in c.authors)

    @cached_property
    def edition_iso(self):
        return self.edition.date.isoformat()

    @cached_property
    def message_id_format(self):
        # The same id if a copy were ever sent twice, so mail clients fold duplicates.
        return f"<digest.{self.edition.date:%Y%m%d}.{{}}@{site_domain()}>"

    @cached_property
    def candidate_dense(self):
        return vectors.dense(vectors.matrix([self.papers[pid].vector for pid in self.candidate_ids]))

    def profiles_for(self, votes):
        """Profiles (newsletter/profiles.py) of these voters against the offer's papers. The
        voted papers' dense vectors are kept: the same papers recur across subscribers."""
        voted = {paper_id for _, paper_id, _ in votes}
        missing = voted - self.voted_papers.keys()
        if missing:
            if len(self.voted_papers) + len(missing) > VOTED_PAPERS_KEPT:
                self.voted_papers.clear()
                missing = voted
            rows = list(Paper.objects.filter(pk__in=missing).values_list("pk", "vector", "title"))
            if rows:
                projected = vectors.dense(vectors.matrix([vector for _, vector, _ in rows]))
                for (pk, _, title), row in zip(rows, projected):
                    self.voted_papers[pk] = (row, title)
        known = {pid: self.voted_papers[pid] for pid in voted if pid in self.voted_papers}
        return profiles(
            votes,
            {pid: row for pid, (row, _) in known.items()},
            {pid: title for pid, (_, title) in known.items()},
            self.candidate_ids,
            self.candidate_dense,
        )

    @cached_property
    def candidate_ids(self):
        return [c.id for c in self.candidates]

    def picks_with_profiles(self, people, found):
        """rank_many() for subscribers with profiles: {subscriber: picks}."""
        for keywords in {interests.keywords for interests, _ in people.values()}:
            self._find_keywords(keywords)
        subscribers = list(people)
        offered, on_offer = set(self.papers), {}
        for _, received in people.values():  # shared sets (see received_papers): trimmed once each
            if received not in on_offer:
                on_offer[received] = received & offered
        profile_rows = np.array([found.rows[s] for s in subscribers], dtype=int)
        picks = rank_many(
            candidates=self.candidates,
            featured=self.featured,
            people=[(people[s][0], on_offer[people[s][1]]) for s in subscribers],
            topic_names=self.topic_names,
            limit=settings.DIGEST_MAX_PAPERS,
            hits=self.hits_memo,
            cosines=found.cosines[profile_rows],
            closest=lambda rows, columns: found.closest(profile_rows[rows], columns),
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
    features = list(Feature.objects.between(first_day, edition.date).order_by("-day", "position", "created_at"))
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
        notes={f.paper_id: f.note for f in reversed(features)},  # a paper featured twice: the newest note
        topic_names=dict(Topic.objects.values_list("id", "name")),
        recent_editions=recent_editions(edition, papers),
    )


def recent_editions(edition, papers=None):
    """Editions within the no-repeat window before `edition`. Given the papers on offer, only
    those since the earliest day any of them could have been mailed (its listing day, or an
    earlier day an editor featured it): a subscriber's older digests cannot hold them, and
    reading a month of deliveries per recipient would cost more than the rest of the send."""
    first = edition.date - dt.timedelta(days=NO_REPEAT_DAYS)
    if papers is not None and all(p.listed_on for p in papers.values()):
        featured = Feature.objects.filter(paper_id__in=papers).aggregate(first=Min("day"))["first"]
        earliest = min([p.listed_on for p in papers.values()] + ([featured] if featured else []), default=edition.date)
        first = max(first, earliest)
    return list(Edition.objects.filter(date__gte=first, date__lt=edition.date).values_list("pk", flat=True))


def received_papers(subscriber_ids, edition, recent=None):
    """Paper ids (a frozenset) each subscriber already received in recent editions."""
    received = defaultdict(frozenset)
    recent = recent_editions(edition) if recent is None else recent
    if not recent or not subscriber_ids:
        return received
    rows = select_for(
        f"SELECT subscriber_id, CAST(picks AS text) FROM {table_name(Delivery)} WHERE subscriber_id IN ({{ids}}) "
        f"AND state IN (%s, %s) AND edition_id IN ({id_list(recent)})",
        subscriber_ids,
        [Delivery.State.SENT, Delivery.State.SENDING],
    )
    # As text: most subscribers got one of a few digests, so each distinct one is parsed once,
    # and those who got one digest share its set.
    for subscriber_id, picks in rows:
        ids = _paper_ids(picks)
        received[subscriber_id] = received[subscriber_id] | ids if subscriber_id in received else ids
    return received


@lru_cache(maxsize=4096)
def _paper_ids(picks):
    return frozenset(paper_id for paper_id, _ in json.loads(picks))


def interests_of(preferences):
    """{subscriber id: Interests} from {subscriber id: (keywords, authors)}, topics in one query."""
    topic_ids = defaultdict(set)
    through = Subscriber.topics.through
    if preferences:
        for subscriber_id, topic_id in select_for(
            f"SELECT subscriber_id, topic_id FROM {table_name(through)} WHERE subscriber_id IN ({{ids}})", list(preferences)
        ):
            topic_ids[subscriber_id].add(topic_id)
    return {pk: _interests(frozenset(topic_ids[pk]), keywords, authors) for pk, (keywords, authors) in preferences.items()}


@lru_cache(maxsize=20_000)
def _interests(topic_ids, keywords, authors):
    # Shared: most subscribers follow what many others follow.
    return Interests(
        topic_ids=topic_ids,
        keywords=tuple(comma_list(keywords)),
        authors=frozenset(author_key(a) for a in comma_list(authors)),
    )


def votes_of(subscriber_ids):
    """These subscribers' votes, [(subscriber id, paper id, +1 or -1)]: as profiles() takes them."""
    if not subscriber_ids:
        return []
    return select_for(f"SELECT subscriber_id, paper_id, value FROM {table_name(Vote)} WHERE subscriber_id IN ({{ids}})", subscriber_ids)


# Rendering


def _message_id(offer, subscriber_id):
    return offer.message_id_format.format(subscriber_id)


LINK_PURPOSES = {UNSUBSCRIBE_TOKEN: tokens.UNSUBSCRIBE, PREFERENCES_TOKEN: tokens.PREFERENCES, FEEDBACK_TOKEN: tokens.FEEDBACK}


def recipient_links(subscriber_id):
    """{placeholder: the subscriber's signed token} for each link in a digest."""
    return dict(zip(LINK_PURPOSES, tokens.make_many(LINK_PURPOSES.values(), subscriber_id)))


def recipient_metadata(offer, subscriber_id):
    """What ESP tracking webhooks hand back, to map an event to (subscriber, edition)."""
    return {"subscriber": str(subscriber_id), "edition": offer.edition_iso}


def digest_message(offer, content, subscriber_id, email):
    return personal_message(
        content,
        email=email,
        links=recipient_links(subscriber_id),
        message_id=_message_id(offer, subscriber_id),
        metadata=recipient_metadata(offer, subscriber_id),
    )


def edition_general_picks(edition):
    """The non-personal version of an edition, for the web archive: featured, then trending."""
    offer = edition_papers(edition, Subscriber.Frequency.DAILY)
    return offer, offer.picks_for(Interests(), frozenset())


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
        votes = defaultdict(list)
        for vote in votes_of([s.pk for s in batch]):
            votes[vote[0]].append(vote)
        for subscriber in batch:
            counts["scheduled"] += 1
            if subscriber.frequency not in offers:
                offers[subscriber.frequency] = edition_papers(edition, subscriber.frequency)
            offer = offers[subscriber.frequency]
            found = offer.profiles_for(votes[subscriber.pk]) if subscriber.pk in votes else None
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
