"""Subscriptions: signup, confirmation, preferences, unsubscribe, erasure, bounces."""

import datetime as dt
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.utils import timezone

from newsletter import sql, tokens
from newsletter.emails import make_message
from newsletter.mailerrors import MailError, mail_error_kind
from newsletter.links import confirm_url, data_url, preferences_url
from newsletter.models import (
    Delivery, Edition, Seed, Subscriber, SubscriberEvent, Suppression, Vote, comma_list, edition_feedback,
    email_canonical, email_hash,
)
from papers.models import Paper, Topic, author_key, title_key
from papers.parsers import FeedError
from papers.services import papers_fetch_arxiv
from papers.sources import SourceError
from newsletter.schedule import next_digest_time

log = logging.getLogger(__name__)

# Bump when the signup form's consent wording changes: each subscriber records the version agreed to.
CONSENT_VERSION = "2026-11-25"
ERASED = "erased at the subscriber's request"


def unmailable(recipients):
    """{subscriber id: why not} for those of recipients, [(id, email, status, confirmed_at)],
    who must not be mailed whatever else their row says: anyone not active, never confirmed,
    or whose address is on the suppression list."""
    reasons = {}
    for pk, email, status, confirmed_at in recipients:
        if status != Subscriber.Status.ACTIVE:
            reasons[pk] = f"subscriber {status} at send time"
        elif confirmed_at is None:
            reasons[pk] = "never confirmed"
    hashes = {email_hash(email): pk for pk, email, _, _ in recipients if pk not in reasons}
    for found in sql.suppressed(hashes):
        reasons[hashes[found]] = "address on the suppression list"
    return reasons


def _record(subscriber, kind, description="", when=None):
    SubscriberEvent.objects.create(
        subscriber=subscriber, kind=kind, description=description[:500], occurred_at=when or timezone.now()
    )


def _send(kind, subscriber, ctx=None):
    """Send a transactional mail. A hard bounce (the mail server refusing the address for
    good) suppresses it as a digest's would; any other error is the caller's to retry or raise."""
    ctx = {"subscriber": subscriber, "preferences_url": preferences_url(subscriber), **(ctx or {})}
    try:
        make_message(kind, subscriber.email, ctx, metadata={"subscriber": str(subscriber.pk)}).send()
    except Exception as error:  # noqa: BLE001 - classified, re-raised unless a hard bounce
        if mail_error_kind(error) is not MailError.HARD_BOUNCE:
            raise
        subscriber_bounced(subscriber=subscriber, description=f"{kind} mail refused: {error}")


def _send_limited(kind, subscriber, ctx=None):
    """_send(), within CONFIRMATIONS_PER_ADDRESS_PER_DAY mails to one address a day, on the
    shared cache, so nobody can use the forms to flood someone else's inbox. A send that fails
    gives its place back: the task's retry must not use up the address's day."""
    key = f"signup-mails:{email_hash(subscriber.email)}:{timezone.now():%Y-%m-%d}"
    cache.add(key, 0, timeout=86400)
    if cache.incr(key) > settings.CONFIRMATIONS_PER_ADDRESS_PER_DAY:
        return
    try:
        _send(kind, subscriber, ctx)
    except BaseException:
        cache.decr(key)
        raise


def next_digest_at(subscriber, now=None):
    """When the subscriber's next digest goes, from their frequency, hour and time zone."""
    weekday = subscriber.weekday if subscriber.frequency == Subscriber.Frequency.WEEKLY else None
    return next_digest_time(now or timezone.now(), tz=subscriber.timezone, hour=subscriber.hour, weekday=weekday)


def schedule_next(subscriber, now=None):
    subscriber.next_digest_at = next_digest_at(subscriber, now)


# Status changes

Status = Subscriber.Status


@dataclass(frozen=True)
class Transition:
    """A status change: from any of `sources` to `target`, recorded as an event of `kind`."""

    kind: str
    sources: tuple
    target: str


# Every status change there is, each made only by _transition(). Only an editor's recorded lift
# leaves SUPPRESSED, and only for UNSUBSCRIBED; only a confirmation leads to ACTIVE from anything
# but PAUSED: no stale copy, retry or race can make someone mailable who left, bounced or never
# confirmed.
SIGNUP = Transition("signup", (Status.PENDING, Status.UNSUBSCRIBED), Status.PENDING)
CONFIRM = Transition("confirmed", (Status.PENDING,), Status.ACTIVE)
PAUSE = Transition("paused", (Status.ACTIVE,), Status.PAUSED)
RESUME = Transition("resumed", (Status.PAUSED,), Status.ACTIVE)
UNSUBSCRIBE = Transition("unsubscribed", (Status.PENDING, Status.ACTIVE, Status.PAUSED), Status.UNSUBSCRIBED)
SUPPRESS = Transition(
    "suppressed", (Status.PENDING, Status.ACTIVE, Status.PAUSED, Status.UNSUBSCRIBED), Status.SUPPRESSED
)
LIFT = Transition("suppression lifted", (Status.SUPPRESSED,), Status.UNSUBSCRIBED)


def _transition(subscriber, transition, description="", *, when=None, record=True, unless=Q(), **fields):
    """Make `transition` if the row's status allows it (and `unless` does not match), deciding
    in the UPDATE, never from the copy in hand, which may be stale; set `fields` with it and
    record the event, both only if the row changed. Returns True if it did."""
    with transaction.atomic():
        changed = (
            Subscriber.objects.filter(pk=subscriber.pk, status__in=transition.sources)
            .exclude(unless)
            .update(status=transition.target, updated_at=timezone.now(), **fields)
        )
        if changed and record:
            _record(subscriber, transition.kind, description, when)
    if changed:
        subscriber.status = transition.target
        for name, value in fields.items():
            setattr(subscriber, name, value)
    return bool(changed)


# Signup and confirmation


def subscriber_signup(*, email, topic_ids=(), keywords="", frequency=Subscriber.Frequency.DAILY, ip=None, user_agent=""):
    """Handle a signup (from subscriber_signup_task: the form's answer never waits for this,
    so it says nothing about whether the address was known).

    A repeat while the first confirmation link still works changes nothing: it only sends the
    link again, within the per-address daily limit."""
    email = email_canonical(email)
    suppression = Suppression.objects.filter(email_hash=email_hash(email)).first()
    if suppression and suppression.reason != ERASED:
        log.info("signup for a suppressed address ignored")
        return
    with transaction.atomic():
        subscriber, _ = Subscriber.objects.select_for_update().get_or_create(email=email)
        if subscriber.status in Subscriber.SUBSCRIBED:
            # Never changes a confirmed subscription: remind them where their settings are.
            kind = "manage"
        elif subscriber.status == Subscriber.Status.SUPPRESSED:
            return
        else:
            kind = "confirm"
            now = timezone.now()
            topics = list(Topic.objects.filter(pk__in=topic_ids))
            # Pending, and the confirmation link of the signup still works: left as it is.
            awaiting = Q(status=Subscriber.Status.PENDING, consent_at__gt=now - dt.timedelta(hours=settings.CONFIRM_MAX_AGE_HOURS))
            signed_up = _transition(
                subscriber, SIGNUP, f"topics: {', '.join(t.slug for t in topics) or 'none'}", unless=awaiting,
                keywords=keywords, frequency=frequency, consent_at=now, consent_ip=ip,
                consent_user_agent=(user_agent or "")[:300], consent_version=CONSENT_VERSION,
            )
            if signed_up:
                subscriber.topics.set(topics)
                subscriber.refresh_interest_key()
    ctx = {"confirm_url": confirm_url(subscriber), "max_age_hours": settings.CONFIRM_MAX_AGE_HOURS}
    _send_limited(kind, subscriber, ctx)


def subscriber_confirm(*, subscriber, ip=None, user_agent=""):
    """Confirm a pending subscription; confirming twice is harmless. Returns True if it was pending."""
    with transaction.atomic():
        # The schedule is computed from the row as it is now (its hour, time zone).
        subscriber = Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()
        if subscriber is None:
            return False
        confirmed = _transition(
            subscriber, CONFIRM, confirmed_at=timezone.now(), confirm_ip=ip,
            confirm_user_agent=(user_agent or "")[:300], next_digest_at=next_digest_at(subscriber),
        )
        if confirmed:
            # An address erased earlier and now confirmed again by its owner may be mailed again.
            Suppression.objects.filter(email_hash=email_hash(subscriber.email), reason=ERASED).delete()
    return confirmed


def subscriber_resend_confirmation(*, subscriber):
    if subscriber.status == Subscriber.Status.PENDING:
        _send_limited("confirm", subscriber, {"confirm_url": confirm_url(subscriber), "max_age_hours": settings.CONFIRM_MAX_AGE_HOURS})


def subscriber_send_link(*, email):
    """'E-mail me my preferences link' (from subscriber_send_link_task): only confirmed
    subscribers get one."""
    subscriber = Subscriber.objects.confirmed().filter(email=email_canonical(email)).first()
    if subscriber:
        _send_limited("manage", subscriber)


def subscriber_send_data_link(*, subscriber_id):
    """'E-mail me a link to export or delete my data' (from subscriber_send_data_link_task):
    the preferences link is in every digest, so whoever a digest is forwarded to has it; this
    link goes to the subscriber's own address only, and expires. Within the daily limit per
    address; never to a suppressed address (it bounced or complained)."""
    subscriber = Subscriber.objects.exclude(status=Subscriber.Status.SUPPRESSED).filter(pk=subscriber_id).first()
    if subscriber:
        _send_limited("data", subscriber, {"data_url": data_url(subscriber), "max_age_minutes": tokens.DATA_MAX_AGE_MINUTES})


def subscribers_purge_unconfirmed(*, now=None):
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.PURGE_UNCONFIRMED_DAYS)
    with transaction.atomic():
        # By the latest sign-up: a returning reader keeps their old row, and its created_at.
        signed_up_before = Q(consent_at__lt=cutoff) | Q(consent_at__isnull=True, created_at__lt=cutoff)
        pending = Subscriber.objects.filter(signed_up_before, status=Subscriber.Status.PENDING)
        # Locked: a sign-up again meanwhile (which locks the row) keeps it.
        stale = list(pending.select_for_update().values_list("pk", flat=True))
        _subscribers_delete(stale)
    return len(stale)


# Preferences


def subscriber_update(*, subscriber, topics, keywords, frequency, weekday, hour, timezone_name, authors=None, by=""):
    """Change what and when a subscriber receives, never their status; the schedule follows
    if they are active when it is written. `by`: who, if not the subscriber (recorded as an
    event). Returns False if the subscriber is gone (erased meanwhile)."""
    fields = {"keywords": keywords, "frequency": frequency, "weekday": weekday, "hour": hour, "timezone": timezone_name}
    if authors is not None:
        fields["authors"] = authors
    for name, value in fields.items():
        setattr(subscriber, name, value)
    with transaction.atomic():
        # Whether the row is active is decided in the UPDATE: the copy may be stale.
        rescheduled = Case(When(status=Subscriber.Status.ACTIVE, then=Value(next_digest_at(subscriber))), default=F("next_digest_at"))
        if not Subscriber.objects.filter(pk=subscriber.pk).update(**fields, next_digest_at=rescheduled, updated_at=timezone.now()):
            return False
        subscriber.topics.set(topics)
        subscriber.refresh_interest_key()
        if by:
            _record(subscriber, "preferences", f"changed by {by}")
    return True


def subscriber_set_timezone(*, subscriber, timezone_name):
    """The time zone alone (the confirmation page offers the browser's), for a confirmed reader
    (active or paused); the schedule follows. Returns True if set."""
    if subscriber.status not in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
        return False
    subscriber.timezone = timezone_name
    if subscriber.status == Subscriber.Status.ACTIVE:
        schedule_next(subscriber)
    return bool(Subscriber.objects.filter(pk=subscriber.pk, status=subscriber.status).update(
        timezone=timezone_name, next_digest_at=subscriber.next_digest_at, updated_at=timezone.now()))


def subscriber_pause(*, subscriber, how=""):
    """Returns True if the subscriber was active (and is now paused)."""
    # None due while paused: resume schedules the next one.
    return _transition(subscriber, PAUSE, how, next_digest_at=None)


def subscriber_resume(*, subscriber, how=""):
    """Only a paused subscriber resumes: never one who unsubscribed, was suppressed or has not
    confirmed. Returns True if resumed."""
    fresh = Subscriber.objects.filter(pk=subscriber.pk).first() or subscriber  # the schedule from today's hour
    return _transition(subscriber, RESUME, how, next_digest_at=next_digest_at(fresh))


def subscriber_unsubscribe(*, subscriber, how="link"):
    """Stop all digests at once. Idempotent: returns False if there was nothing to stop."""
    return _transition(subscriber, UNSUBSCRIBE, how, unsubscribed_at=timezone.now(), next_digest_at=None)


def subscriber_suppress(*, subscriber, reason, when=None, record=True):
    """Never mail the address again. record=False: the caller's event (an ESP's bounce) says why."""
    with transaction.atomic():
        changed = _transition(
            subscriber, SUPPRESS, reason, when=when, record=record,
            suppressed_at=when or timezone.now(), suppressed_reason=reason[:200], next_digest_at=None,
        )
        if changed:
            # An erasure's hash, kept from before this sign-up, would let the address sign up again.
            hashed = email_hash(subscriber.email)
            Suppression.objects.filter(email_hash=hashed, reason=ERASED).delete()
            Suppression.objects.get_or_create(email_hash=hashed, defaults={"reason": reason[:200]})
    return changed


HARD_BOUNCE = "hard bounce"


def subscriber_bounced(*, subscriber, description="", when=None, recorded=False):
    """The address bounced for good, whoever says so: the ESP's webhook or our own mail
    server's 5xx to RCPT or DATA. Suppressed, with a 'bounced' event (the bounce figures count
    these); recorded=True: the caller already stored the ESP's event."""
    when = when or timezone.now()
    subscriber_suppress(subscriber=subscriber, reason=HARD_BOUNCE, when=when, record=False)
    if not recorded:
        SubscriberEvent.objects.create(
            subscriber=subscriber, kind="bounced", description=description[:500], occurred_at=when
        )


# Feedback and followed authors


def vote_record(*, subscriber, paper, value):
    """The subscriber's last word on a paper: +1 more like this, -1 less like this. Counted
    only while subscribed (paused too: their digests resume): None for anyone else."""
    with transaction.atomic():
        # The row's status, locked against an unsubscribe landing meanwhile, not the copy's.
        if not Subscriber.objects.confirmed().select_for_update().filter(pk=subscriber.pk).exists():
            return None
        vote, _ = Vote.objects.update_or_create(subscriber=subscriber, paper=paper, defaults={"value": value})
        _record(subscriber, "voted", f"{'more' if value > 0 else 'less'}: {paper.title}")
    return vote


def vote_remove(*, subscriber, paper_id):
    """Returns how many votes were removed (0 or 1)."""
    removed = Vote.objects.filter(subscriber=subscriber, paper_id=paper_id).delete()[0]
    if removed:
        _record(subscriber, "vote removed", f"paper {paper_id}")
    return removed


# Seeding: the reader's own papers


@dataclass
class SeedResult:
    liked: list  # papers known here, now liked
    fetching: list  # arXiv ids not known here, to fetch (subscriber_seeds_fetch)
    unmatched: list  # references with no arXiv id and no paper of their title here


def _like_seeds(subscriber, papers):
    """Like `papers` as seeds of a subscriber whose row the caller holds locked (and confirmed)."""
    now = timezone.now()
    Vote.objects.bulk_create(
        [Vote(subscriber=subscriber, paper=p, value=1, created_at=now, updated_at=now) for p in papers],
        update_conflicts=True, unique_fields=["subscriber", "paper"], update_fields=["value", "updated_at"],
    )
    # A paper seeded before, as pending, missing or failed, is found now.
    ids = [p.arxiv_id for p in papers if p.arxiv_id]
    Seed.objects.filter(subscriber=subscriber, paper=None, arxiv_id__in=ids).delete()
    Seed.objects.bulk_create(
        [Seed(subscriber=subscriber, paper=p, arxiv_id=p.arxiv_id or "", state=Seed.State.FOUND) for p in papers],
        ignore_conflicts=True,
    )


def subscriber_seed(*, subscriber, references):
    """A reader's own papers (papers.references): those known here (by arXiv id, else by
    title) are liked at once, the arXiv ids not known wait as pending seeds for
    subscriber_seeds_fetch. Only while subscribed; one event. Returns a SeedResult, or None
    if the subscriber is not subscribed."""
    ids = list(dict.fromkeys(r.arxiv_id for r in references if r.arxiv_id))
    by_id = Paper.objects.in_bulk(ids, field_name="arxiv_id")
    titled = [r for r in references if not r.arxiv_id]
    by_title = {p.title_key: p for p in Paper.objects.filter(title_key__in={title_key(r.title) for r in titled})}
    found, unmatched = {p.pk: p for p in by_id.values()}, []
    for reference in titled:
        paper = by_title.get(title_key(reference.title))
        if paper:
            found[paper.pk] = paper
        else:
            unmatched.append(reference)
    found = list(found.values())
    result = SeedResult(liked=found, fetching=[i for i in ids if i not in by_id], unmatched=unmatched)
    with transaction.atomic():
        if not Subscriber.objects.confirmed().select_for_update().filter(pk=subscriber.pk).exists():
            return None
        _like_seeds(subscriber, found)
        # Asked again, what was missing or could not be fetched is tried again.
        Seed.objects.filter(subscriber=subscriber, arxiv_id__in=result.fetching).delete()
        Seed.objects.bulk_create(
            [Seed(subscriber=subscriber, arxiv_id=i, state=Seed.State.PENDING) for i in result.fetching]
        )
        _record(subscriber, "seeded", f"{len(found)} papers liked, {len(result.fetching)} to fetch from arXiv, "
                                      f"{len(result.unmatched)} not found")
    return result


def subscriber_seeds_fetch(*, subscriber_id, http=None):
    """Fetch a subscriber's pending seeds from arXiv and like those it has (from
    subscriber_seeds_fetch_task; running it twice is harmless: only pending seeds move).
    Returns how many were found."""
    pending = Seed.objects.filter(subscriber_id=subscriber_id, state=Seed.State.PENDING)
    pending = dict(pending.values_list("arxiv_id", "pk"))
    if not pending:
        return 0
    try:
        papers = papers_fetch_arxiv(arxiv_ids=pending, http=http)
    except (SourceError, FeedError) as e:
        # urllib3 already retried with backoff: the reader sees it and may paste them again.
        log.warning("seeds of subscriber %s not fetched: %s", subscriber_id, e)
        Seed.objects.filter(pk__in=pending.values(), state=Seed.State.PENDING).update(state=Seed.State.FAILED)
        return 0
    with transaction.atomic():
        subscriber = Subscriber.objects.confirmed().select_for_update().filter(pk=subscriber_id).first()
        missing = [pk for arxiv_id, pk in pending.items() if arxiv_id not in papers]
        Seed.objects.filter(pk__in=missing, state=Seed.State.PENDING).update(state=Seed.State.MISSING)
        # A paper seeded by its title before, which has its arXiv id now: seeded already.
        seeded = Seed.objects.filter(subscriber_id=subscriber_id, paper__in=papers.values())
        again = [pending[seed.paper.arxiv_id] for seed in seeded.select_related("paper")]
        Seed.objects.filter(pk__in=again, state=Seed.State.PENDING).delete()
        arrived = []
        for arxiv_id, paper in papers.items():
            moved = Seed.objects.filter(pk=pending[arxiv_id], state=Seed.State.PENDING)
            if moved.update(state=Seed.State.FOUND, paper=paper):
                arrived.append(paper)
        if subscriber is not None:
            _like_seeds(subscriber, arrived)
            _record(subscriber, "seeds fetched", f"{len(arrived)} found on arXiv and liked, {len(missing)} not on arXiv")
    return len(arrived)


def _following_changed(subscriber, kind, what, field=None):
    if field:  # only that field: never a whole row from a copy that may be stale
        Subscriber.objects.filter(pk=subscriber.pk).update(**{field: getattr(subscriber, field)}, updated_at=timezone.now())
    subscriber.refresh_interest_key()
    _record(subscriber, kind, what)


def subscriber_follow_authors(*, subscriber, names):
    """Add names to the followed authors, once each (compared case- and accent-insensitively).
    Returns the names added."""
    followed = subscriber.author_list()
    known = {author_key(a) for a in followed}
    added = []
    for name in names:
        if author_key(name) not in known and len(", ".join([*followed, name])) <= 1000:
            followed.append(name)
            added.append(name)
            known.add(author_key(name))
    if added:
        subscriber.authors = ", ".join(followed)
        _following_changed(subscriber, "followed", f"authors: {', '.join(added)}", "authors")
    return added


def _unfollow(subscriber, field, item, key, what):
    """Drop `item` from a comma-list preference (`field`), compared by `key`."""
    items = comma_list(getattr(subscriber, field))
    kept = [i for i in items if key(i) != key(item)]
    if len(kept) == len(items):
        return False
    setattr(subscriber, field, ", ".join(kept))
    _following_changed(subscriber, "unfollowed", f"{what}: {item}", field)
    return True


def subscriber_unfollow_author(*, subscriber, name):
    """Stop following an author (matched as ranking matches them). Returns True if followed."""
    return _unfollow(subscriber, "authors", name, author_key, "author")


def subscriber_follow_keyword(*, subscriber, keyword):
    """Follow one more keyword, if not yet followed and it fits. Returns True if added."""
    keywords = subscriber.keyword_list()
    joined = ", ".join([*keywords, keyword])
    if keyword.casefold() in {k.casefold() for k in keywords} or len(joined) > Subscriber._meta.get_field("keywords").max_length:
        return False
    subscriber.keywords = joined
    _following_changed(subscriber, "followed", f"keyword: {keyword}", "keywords")
    return True


def subscriber_unfollow_keyword(*, subscriber, keyword):
    """Stop following a keyword (compared case-insensitively). Returns True if followed."""
    return _unfollow(subscriber, "keywords", keyword, str.casefold, "keyword")


def subscriber_follow_topic(*, subscriber, topic):
    """Returns True if the topic was not followed (and now is)."""
    if subscriber.topics.filter(pk=topic.pk).exists():
        return False
    subscriber.topics.add(topic)
    _following_changed(subscriber, "followed", f"topic: {topic.name}")
    return True


def subscriber_unfollow_topic(*, subscriber, topic):
    """Returns True if the topic was followed (and now is not)."""
    if not subscriber.topics.filter(pk=topic.pk).exists():
        return False
    subscriber.topics.remove(topic)
    _following_changed(subscriber, "unfollowed", f"topic: {topic.name}")
    return True


def subscriber_export(*, subscriber):
    """Everything stored about one subscriber (GDPR Art. 15 and 20)."""

    def iso(value):
        return value.isoformat() if value else None

    return {
        "email": subscriber.email,
        "status": subscriber.status,
        "preferences": {
            "topics": [t.name for t in subscriber.topics.all()],
            "keywords": subscriber.keyword_list(),
            "followed_authors": subscriber.author_list(),
            "frequency": subscriber.frequency,
            "weekday": subscriber.get_weekday_display(),
            "hour": subscriber.hour,
            "timezone": subscriber.timezone,
        },
        "consent": {
            "signed_up_at": iso(subscriber.consent_at),
            "signup_ip": subscriber.consent_ip,
            "signup_user_agent": subscriber.consent_user_agent,
            "form_wording_version": subscriber.consent_version,
            "confirmed_at": iso(subscriber.confirmed_at),
            "confirm_ip": subscriber.confirm_ip,
            "confirm_user_agent": subscriber.confirm_user_agent,
            "unsubscribed_at": iso(subscriber.unsubscribed_at),
            "suppressed_at": iso(subscriber.suppressed_at),
            "suppressed_reason": subscriber.suppressed_reason,
        },
        "deliveries": [
            {"edition": d.edition.date.isoformat(), "state": d.state, "sent_at": iso(d.sent_at), "papers": d.paper_ids()}
            for d in Delivery.objects.of_subscribers([subscriber.pk]).select_related("edition").order_by("edition__date")
        ],
        "votes": [
            {"paper": v.paper.arxiv_id or v.paper.title, "vote": "more" if v.value > 0 else "less", "at": iso(v.updated_at)}
            for v in subscriber.votes.select_related("paper").order_by("created_at")
        ],
        "seeds": [
            {"paper": s.arxiv_id or s.paper.title, "state": s.state, "at": iso(s.created_at)}
            for s in subscriber.seeds.select_related("paper").order_by("created_at", "pk")
        ],
        "events": [
            {"kind": e.kind, "at": iso(e.occurred_at), "description": e.description}
            for e in subscriber.events.order_by("occurred_at")
        ],
    }


def subscriber_erase(*, subscriber):
    """Delete everything about a subscriber; keep only a salted hash so the address is not mailed again."""
    with transaction.atomic():
        # Wait for a fan-out that holds this subscriber (digests_dispatch locks the rows it
        # fans out) so that the deletion below sees all their deliveries. The status is read
        # from the locked row, not the copy: a bounce or complaint may have come since, and an
        # existing suppression stays as it is.
        row = Subscriber.objects.select_for_update().filter(pk=subscriber.pk).values_list("status", "suppressed_reason").first()
        if row:
            reason = row[1] if row[0] == Subscriber.Status.SUPPRESSED else ERASED
            Suppression.objects.get_or_create(email_hash=email_hash(subscriber.email), defaults={"reason": reason})
        _subscribers_delete([subscriber.pk])


def _subscribers_delete(subscriber_ids):
    """Subscribers with all that is theirs. Their deliveries first, to which Django does not
    cascade (see Delivery.subscriber); a hundred at a time, for which the planner probes the
    (edition, subscriber) index rather than read the whole table."""
    for start in range(0, len(subscriber_ids), 100):
        chunk = subscriber_ids[start : start + 100]
        _counts_keep(chunk)
        Delivery.objects.of_subscribers(chunk).delete()
        Subscriber.objects.filter(pk__in=chunk).delete()


# The suppression list


def suppression_lift(*, suppression, by, why):
    """Take an address off the suppression list, the only way it leaves it besides its owner
    confirming again after an erasure. Who and why are recorded in an event of no subscriber,
    which an erasure does not delete. Returns False if it was lifted already."""
    if not why.strip():
        raise ValueError("Say why the suppression is lifted.")
    with transaction.atomic():
        if not Suppression.objects.filter(pk=suppression.pk).delete()[0]:
            return False
        why = f"{suppression.email_hash[:12]}… ({suppression.reason}) lifted by {by}: {why.strip()}"
        _record(None, LIFT.kind, why)
        # The reader behind it, if their row is kept, may now sign up and confirm again (never
        # mailed before they do): the list holds only hashes, so theirs is found by hashing.
        for subscriber in Subscriber.objects.filter(status=Status.SUPPRESSED).only("pk", "email", "status"):
            if email_hash(subscriber.email) == suppression.email_hash:
                _transition(subscriber, LIFT, why, next_digest_at=None)
    return True


# A copy still on its way when its reader is erased is counted as it will end: one a worker holds
# goes out (its outcome then finds no row to record), one not yet claimed never will. Neither
# may count as in progress for ever.
ERASED_IN_FLIGHT = {Delivery.State.SENDING: Delivery.State.SENT, Delivery.State.PENDING: Delivery.State.SKIPPED}


def _counts_keep(subscriber_ids):
    """Before these subscribers are deleted: fold what they count for in each edition (their
    deliveries by state, their feedback) into its erased_counts, and keep their votes as votes
    of no one, so that editors' totals and vote counts stay as they were and nothing of them does."""
    counts = defaultdict(Counter)
    mine = Delivery.objects.of_subscribers(subscriber_ids).values("edition_id", "state").annotate(n=Count("pk"))
    for edition_id, state, n in mine.values_list("edition_id", "state", "n").order_by():
        counts[edition_id].update({ERASED_IN_FLIGHT.get(state, state): n, "due": n})
    feedback = edition_feedback(subscriber_id__in=subscriber_ids)
    for edition_id, *values in Edition.objects.filter(pk__in=counts).annotate(**feedback).values_list("pk", *feedback):
        counts[edition_id].update(dict(zip(feedback, values)))
    # Locked, in one order: two erasures at once both add theirs.
    for edition in Edition.objects.select_for_update().filter(pk__in=counts).order_by("pk").only("erased_counts"):
        Edition.objects.filter(pk=edition.pk).update(erased_counts=dict(Counter(edition.erased_counts) + counts[edition.pk]))
    Vote.objects.filter(subscriber_id__in=subscriber_ids).update(subscriber=None)
