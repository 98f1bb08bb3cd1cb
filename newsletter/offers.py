"""What each subscriber gets from an edition: the papers on offer, what subscribers follow,
already received and voted on, and one ranker call per group of them.

An Offer (an edition's papers for subscribers of one frequency) is loaded once per worker
process and kept in the worker cache; it remembers picks by what ranking reads of a
subscriber (ranking.Pool.key), so subscribers who follow and received the same of it share
one ranking.
"""

import datetime as dt
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from cachetools import LRUCache, TTLCache
from django.conf import settings
from django.db.models import Min

from newsletter import sql
from newsletter.links import digest_message_id_format
from newsletter.models import Edition, Seed, Subscriber, comma_list
from newsletter.profiles import profiles
from newsletter.ranking import Candidate, Interests, Pool, rank_many, ranking_weights, starters
from newsletter.rendering import EditionRenderer
from papers import vectors
from papers.models import Feature, LexicalFit, Paper, Topic, author_key

NO_REPEAT_DAYS = 30
PROFILE_FROM_VOTE = 3  # fewer votes say too little of a reader: their digest stays as before
STARTER_PAPERS = 8  # a new reader's first digest: a few papers across topics, to learn from
PICKS_KEPT = 20_000  # picks an offer remembers, by what ranking reads
VOTED_PAPERS_KEPT = 20_000  # dense vectors of papers voted on, ~1 KB each

# A worker's offers, (edition day, frequency) -> Offer: read again after five minutes (an
# editor may have featured a paper); a few at most, as a worker sends one edition at a time.
worker_cache = TTLCache(maxsize=4, ttl=300)


def lookback_days(frequency):
    if frequency == Subscriber.Frequency.WEEKLY:
        return settings.DIGEST_WEEKLY_LOOKBACK_DAYS
    return settings.DIGEST_DAILY_LOOKBACK_DAYS


@dataclass(eq=False)
class Offer:
    """What one edition offers subscribers of one frequency."""

    edition: Edition
    frequency: str
    pool: Pool
    papers: dict
    notes: dict
    recent_editions: list = field(default_factory=list)
    # Bounded, so a worker's memory stays flat however many subscribers it serves.
    memo: LRUCache = field(default_factory=lambda: LRUCache(maxsize=PICKS_KEPT))
    keys: LRUCache = field(default_factory=lambda: LRUCache(maxsize=PICKS_KEPT))
    voted_papers: LRUCache = field(default_factory=lambda: LRUCache(maxsize=VOTED_PAPERS_KEPT))

    @cached_property
    def renderer(self):
        return EditionRenderer(self.edition, self.papers, self.notes)

    @cached_property
    def edition_iso(self):
        return self.edition.date.isoformat()

    @cached_property
    def message_id_format(self):
        return digest_message_id_format(self.edition.date)

    @cached_property
    def vector_model(self):
        return LexicalFit.objects.vector_model()

    def comparable(self, vector, model):
        """A stored vector, if it is of the current model and fit (else none: not embedded yet)."""
        return vector if model == self.vector_model else b""

    @cached_property
    def candidate_dense(self):
        return vectors.dense([self.comparable(self.papers[pid].vector, self.papers[pid].vector_model) for pid in self.pool.ids])

    def picks(self, people, votes=(), first=frozenset(), seeds=None):
        """{subscriber: picks} for people, {subscriber: (Interests, ids of papers received)};
        votes: [(subscriber, paper id, +1 or -1, time)] of any of them; first: those about to
        get their first digest; seeds: {subscriber: ids of the papers they seeded}.
        Subscribers with a profile (from their third vote, or their first seed: a reader's own
        paper says more than a vote) are ranked together; new readers get starters(); the
        others are ranked by what ranking reads of them, once per key."""
        seeds = seeds or {}
        found = self.profiles_for(votes, seeds) if votes else None
        counted = Counter(vote[0] for vote in votes)
        voters = [
            s for s in people if found is not None and s in found and (counted[s] >= PROFILE_FROM_VOTE or s in seeds)
        ]
        result = {}
        if voters:
            rows = np.array([found.rows[s] for s in voters], dtype=int)
            limit = settings.DIGEST_MAX_PAPERS
            ranked = rank_many(
                self.pool, [people[s] for s in voters], limit=limit, explore=round(settings.EXPLORE_SHARE * limit),
                cosines=found.cosines[rows], closest=lambda r, columns: self.liked(found, rows[r], columns),
                seeded=(lambda r, columns: found.closest_seeded(rows[r], columns)) if seeds else None,
            )
            result.update(zip(voters, map(tuple, ranked)))
        keys, missing = {}, {}
        for subscriber, (interests, received) in people.items():
            if subscriber in result:
                continue
            if subscriber in first and not counted[subscriber]:
                count = min(STARTER_PAPERS, settings.DIGEST_MAX_PAPERS)
                result[subscriber] = tuple(starters(self.pool, interests, received, count))
                continue
            key = self.keys.get((interests, received))
            if key is None:
                key = self.keys[interests, received] = self.pool.key(interests, received)
            keys[subscriber] = key
            if key not in self.memo:
                missing.setdefault(key, (interests, received))
        if missing:
            ranked = rank_many(self.pool, list(missing.values()), limit=settings.DIGEST_MAX_PAPERS)
            for key, picks in zip(missing, ranked):
                self.memo[key] = tuple(picks)
        for subscriber, key in keys.items():
            result[subscriber] = self.memo[key]
        return result

    def profiles_for(self, votes, seeds=None):
        """Profiles (newsletter/profiles.py) of these voters against the offer's papers. The
        voted papers' dense vectors are kept: the same papers recur across subscribers."""
        voted = {vote[1] for vote in votes}
        missing = [pid for pid in voted if pid not in self.voted_papers]
        if missing:
            rows = list(Paper.objects.filter(pk__in=missing).values_list("pk", "vector", "vector_model", "title"))
            if rows:
                projected = vectors.dense([self.comparable(vector, model) for _, vector, model, _ in rows])
                for (pk, _, _, title), row in zip(rows, projected):
                    self.voted_papers[pk] = (row, title)
        known = {pid: self.voted_papers[pid] for pid in voted if pid in self.voted_papers}
        return profiles(
            votes,
            {pid: row for pid, (row, _) in known.items()},
            {pid: pid for pid in known},  # closest() names a voted paper by its id: liked() reads it
            self.pool.ids,
            self.candidate_dense,
            now=time.time(),
            half_life_days=settings.VOTE_HALF_LIFE_DAYS,
            seeds=seeds,
        )

    def liked(self, found, rows, columns):
        """(id, title, cosine to the candidate) of the liked paper closest to each (profile row,
        candidate column) pair of `found`: what a "similar to" reason names. A function of the
        pair, so readers who liked the same paper share the reason."""
        ids = found.closest(rows, columns)
        voted = {pid: n for n, pid in enumerate(found.titles.tolist())}  # profiles_for() names papers by id
        cosines = found.to_candidates[[voted[pid] for pid in ids], columns].tolist()
        return [(pid, self.voted_papers[pid][1], cosine) for pid, cosine in zip(ids, cosines)]


def offer_for(edition, frequency):
    """The worker's offer of `edition` to subscribers of `frequency`."""
    key = (edition.date, frequency)
    offer = worker_cache.get(key)
    if offer is None:
        offer = worker_cache[key] = edition_offer(edition, frequency)
    return offer


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


def features_within(edition, frequency):
    """The features a digest of `frequency` from edition offers, in the editor's order: the
    newest day's first, then as placed on the Today page."""
    first_day = edition.date - dt.timedelta(days=lookback_days(frequency))
    return list(Feature.objects.between(first_day, edition.date).order_by("-day", "position", "created_at"))


def notes_of(features):
    """{paper id: note} of features in the editor's order: a paper featured twice, its newest note."""
    return {f.paper_id: f.note for f in reversed(features)}


def edition_offer(edition, frequency):
    first_day = edition.date - dt.timedelta(days=lookback_days(frequency))
    features = features_within(edition, frequency)
    ids = set(Paper.objects.filter(listed_on__range=(first_day, edition.date)).values_list("id", flat=True))
    ids |= {f.paper_id for f in features}
    papers = Paper.objects.in_bulk(ids)
    topic_ids = defaultdict(set)
    for paper_id, topic_id in Paper.topics.through.objects.filter(paper_id__in=ids).values_list("paper_id", "topic_id"):
        topic_ids[paper_id].add(topic_id)
    featured_ids = list(dict.fromkeys(f.paper_id for f in features))
    pool = Pool(
        [_candidate(p, topic_ids) for pid, p in papers.items() if pid not in featured_ids],
        [_candidate(papers[pid], topic_ids) for pid in featured_ids],
        dict(Topic.objects.values_list("id", "name")),
        ranking_weights(),
    )
    return Offer(edition, frequency, pool, papers, edition_notes(edition, features), recent_editions(edition, papers))


def edition_notes(edition, features):
    """{paper id: note} that digests of edition carry: once it has gone out, the notes recorded
    then (archive.edition_record_offered), so that a reader mailed later gets what the first
    readers got and what every reader's web copy shows; before, the features' own."""
    if edition.offered_notes is None:
        return notes_of(features)
    recorded = edition.recorded_notes()
    return {f.paper_id: recorded.get(f.paper_id, "") for f in features}


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
    # Subscribers who got one digest share its set.
    for subscriber_id, picks in sql.picks_received(subscriber_ids, recent):
        ids = _paper_ids(picks)
        received[subscriber_id] = received[subscriber_id] | ids if subscriber_id in received else ids
    return received


@lru_cache(maxsize=4096)
def _paper_ids(picks):
    return frozenset(pick[0] for pick in json.loads(picks))


def interests_of(preferences):
    """{subscriber id: Interests} from {subscriber id: (keywords, authors)}, topics in one query."""
    topic_ids = defaultdict(set)
    if preferences:
        for subscriber_id, topic_id in sql.topics_followed(list(preferences)):
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
    """These subscribers' latest PROFILE_VOTES_READ votes each, [(subscriber id, paper id, +1 or
    -1, Unix time of the vote)]: as profiles() takes them."""
    return sql.votes(subscriber_ids, settings.PROFILE_VOTES_READ) if subscriber_ids else []


def seeds_of(subscriber_ids):
    """{subscriber id: frozenset of the paper ids they seeded} of those who seeded any."""
    seeds = defaultdict(set)
    if subscriber_ids:
        found = Seed.objects.filter(subscriber_id__in=subscriber_ids, state=Seed.State.FOUND)
        for subscriber_id, paper_id in found.values_list("subscriber_id", "paper_id"):
            seeds[subscriber_id].add(paper_id)
    return {pk: frozenset(ids) for pk, ids in seeds.items()}


def is_first_digest(confirmed_at, received, edition, frequency):
    """Whether a reader's digest of `edition` is their first: confirmed within its lookback
    window, and nothing received in the editions before."""
    if received or confirmed_at is None:  # most readers: no dates to work out
        return False
    return edition.date - dt.timedelta(days=lookback_days(frequency)) <= confirmed_at.date() <= edition.date


def digests_for(edition, recipients, offer_of=offer_for):
    """{subscriber id: picks} for recipients, [(subscriber id, frequency, keywords, authors,
    confirmed_at)]: what each gets of `edition`, as sending and previews work it out.
    offer_of(edition, frequency): the worker's cached offers, or fresh ones for an editor."""
    interests = interests_of({pk: (keywords, authors) for pk, _, keywords, authors, _ in recipients})
    frequencies = {frequency for _, frequency, _, _, _ in recipients}
    # The editions that can hold a paper on offer to any of them (weekly offers reach further back).
    recent = sorted(set().union(*(offer_of(edition, f).recent_editions for f in frequencies)))
    ids = [pk for pk, _, _, _, _ in recipients]
    received = received_papers(ids, edition, recent)
    votes = votes_of(ids)
    seeds = seeds_of(sorted({vote[0] for vote in votes}))  # a seed counts as a like: only voters have any
    picks = {}
    for frequency in frequencies:
        group = [(pk, confirmed_at) for pk, f, _, _, confirmed_at in recipients if f == frequency]
        people = {pk: (interests[pk], received[pk]) for pk, _ in group}
        first = {pk for pk, confirmed_at in group if is_first_digest(confirmed_at, received[pk], edition, frequency)}
        group_votes = [vote for vote in votes if vote[0] in people]
        group_seeds = {pk: seeds[pk] for pk in people if pk in seeds}
        picks.update(offer_of(edition, frequency).picks(people, group_votes, first, group_seeds))
    return picks


def edition_general_picks(edition, *, cached=False):
    """The non-personal version of an edition, for the web archive: featured, then trending.
    cached: from this process's offers (up to a few minutes old), as a public page must."""
    offer = (offer_for if cached else edition_offer)(edition, Subscriber.Frequency.DAILY)
    return offer, offer.picks({0: (Interests(), frozenset())})[0]
