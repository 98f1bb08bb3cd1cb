"""Subscriptions: signup, confirmation, preferences, unsubscribe, erasure, bounces."""

import datetime as dt
import logging
import smtplib

from anymail.exceptions import AnymailAPIError
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from newsletter import sql
from newsletter.emails import make_message
from newsletter.links import confirm_url, preferences_url
from newsletter.models import (
    Delivery, Subscriber, SubscriberEvent, Suppression, Vote, comma_list, email_canonical, email_hash,
)
from papers.models import Topic, author_key
from newsletter.schedule import next_digest_time

log = logging.getLogger(__name__)

# Bump when the signup form's consent wording changes: each subscriber records the version agreed to.
CONSENT_VERSION = "2026-11-25"
# What a signup or link mail retries on: the mail server or the ESP's API failing to answer.
TRANSIENT_MAIL_ERRORS = (OSError, smtplib.SMTPException, AnymailAPIError)
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


def _may_mail(email):
    """At most CONFIRMATIONS_PER_ADDRESS_PER_DAY signup mails to one address per day, on the
    shared cache, so nobody can use the form to flood someone else's inbox."""
    key = f"signup-mails:{email_hash(email)}:{timezone.now():%Y-%m-%d}"
    cache.add(key, 0, timeout=86400)
    return cache.incr(key) <= settings.CONFIRMATIONS_PER_ADDRESS_PER_DAY


def _send(kind, subscriber, ctx=None):
    ctx = {"subscriber": subscriber, "preferences_url": preferences_url(subscriber), **(ctx or {})}
    make_message(kind, subscriber.email, ctx, metadata={"subscriber": str(subscriber.pk)}).send()


def schedule_next(subscriber, now=None):
    """Set when the subscriber's next digest goes, from their frequency, hour and time zone."""
    weekday = subscriber.weekday if subscriber.frequency == Subscriber.Frequency.WEEKLY else None
    subscriber.next_digest_at = next_digest_time(
        now or timezone.now(), tz=subscriber.timezone, hour=subscriber.hour, weekday=weekday
    )


# Signup and confirmation


def _awaiting_confirmation(subscriber):
    """Pending, and the confirmation link of the signup still works."""
    window = dt.timedelta(hours=settings.CONFIRM_MAX_AGE_HOURS)
    return (
        subscriber.status == Subscriber.Status.PENDING
        and subscriber.consent_at is not None
        and subscriber.consent_at > timezone.now() - window
    )


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
        subscriber, created = Subscriber.objects.select_for_update().get_or_create(email=email)
        if subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
            # Never changes a confirmed subscription: remind them where their settings are.
            kind = "manage"
        elif subscriber.status == Subscriber.Status.SUPPRESSED:
            return
        else:
            kind = "confirm"
            if created or not _awaiting_confirmation(subscriber):
                topics = list(Topic.objects.filter(pk__in=topic_ids))
                subscriber.status = Subscriber.Status.PENDING
                subscriber.keywords = keywords
                subscriber.frequency = frequency
                subscriber.consent_at = timezone.now()
                subscriber.consent_ip = ip
                subscriber.consent_user_agent = (user_agent or "")[:300]
                subscriber.consent_version = CONSENT_VERSION
                subscriber.save()
                subscriber.topics.set(topics)
                subscriber.refresh_interest_key()
                _record(subscriber, "signup", f"topics: {', '.join(t.slug for t in topics) or 'none'}")
    if _may_mail(email):
        ctx = {"confirm_url": confirm_url(subscriber), "max_age_hours": settings.CONFIRM_MAX_AGE_HOURS}
        _send(kind, subscriber, ctx)


def subscriber_confirm(*, subscriber, ip=None, user_agent=""):
    """Confirm a pending subscription; confirming twice is harmless. Returns True if it was pending."""
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if subscriber.status != Subscriber.Status.PENDING:
            return False
        subscriber.status = Subscriber.Status.ACTIVE
        subscriber.confirmed_at = timezone.now()
        subscriber.confirm_ip = ip
        subscriber.confirm_user_agent = (user_agent or "")[:300]
        schedule_next(subscriber)
        subscriber.save()
        # An address erased earlier and now confirmed again by its owner may be mailed again.
        Suppression.objects.filter(email_hash=email_hash(subscriber.email), reason=ERASED).delete()
        _record(subscriber, "confirmed")
    return True


def subscriber_resend_confirmation(*, subscriber):
    if subscriber.status == Subscriber.Status.PENDING and _may_mail(subscriber.email):
        _send("confirm", subscriber, {"confirm_url": confirm_url(subscriber), "max_age_hours": settings.CONFIRM_MAX_AGE_HOURS})


def subscriber_send_link(*, email):
    """'E-mail me my preferences link' (from subscriber_send_link_task): only confirmed
    subscribers get one."""
    subscriber = Subscriber.objects.confirmed().filter(email=email_canonical(email)).first()
    if subscriber and _may_mail(subscriber.email):
        _send("manage", subscriber)


def subscribers_purge_unconfirmed(*, now=None):
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.PURGE_UNCONFIRMED_DAYS)
    with transaction.atomic():
        stale = list(Subscriber.objects.filter(status=Subscriber.Status.PENDING, created_at__lt=cutoff).values_list("pk", flat=True))
        _subscribers_delete(stale)
    return len(stale)


# Preferences


def subscriber_update(*, subscriber, topics, keywords, frequency, weekday, hour, timezone_name, authors=None, by=""):
    """Change what and when a subscriber receives; the schedule follows. `by`: who, if not the
    subscriber (recorded as an event)."""
    subscriber.keywords = keywords
    if authors is not None:
        subscriber.authors = authors
    subscriber.frequency = frequency
    subscriber.weekday = weekday
    subscriber.hour = hour
    subscriber.timezone = timezone_name
    if subscriber.status == Subscriber.Status.ACTIVE:
        schedule_next(subscriber)
    subscriber.save()
    subscriber.topics.set(topics)
    subscriber.refresh_interest_key()
    if by:
        _record(subscriber, "preferences", f"changed by {by}")


def subscriber_pause(*, subscriber, how=""):
    """Returns True if the subscriber was active (and is now paused)."""
    if subscriber.status == Subscriber.Status.ACTIVE:
        subscriber.status, subscriber.next_digest_at = Subscriber.Status.PAUSED, None  # none due: resume schedules one
        subscriber.save(update_fields=["status", "next_digest_at", "updated_at"])
        _record(subscriber, "paused", how)
        return True
    return False


def subscriber_resume(*, subscriber, how=""):
    """Only a paused subscriber resumes: never one who unsubscribed, was suppressed or has not
    confirmed. Returns True if resumed."""
    if subscriber.status == Subscriber.Status.PAUSED:
        subscriber.status = Subscriber.Status.ACTIVE
        schedule_next(subscriber)
        subscriber.save(update_fields=["status", "next_digest_at", "updated_at"])
        _record(subscriber, "resumed", how)
        return True
    return False


def subscriber_unsubscribe(*, subscriber, how="link"):
    """Stop all digests at once. Idempotent: returns False if there was nothing to stop."""
    changed = Subscriber.objects.filter(
        pk=subscriber.pk,
        status__in=[Subscriber.Status.PENDING, Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED],
    ).update(status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at=timezone.now(), next_digest_at=None)
    if changed:
        _record(subscriber, "unsubscribed", how)
    return bool(changed)


def subscriber_suppress(*, subscriber, reason, when=None, record=True):
    """Never mail the address again. record=False: the caller's event (an ESP's bounce) says why."""
    changed = (
        Subscriber.objects.filter(pk=subscriber.pk)
        .exclude(status=Subscriber.Status.SUPPRESSED)
        .update(
            status=Subscriber.Status.SUPPRESSED,
            suppressed_at=when or timezone.now(),
            suppressed_reason=reason[:200],
            next_digest_at=None,
        )
    )
    if changed:
        Suppression.objects.get_or_create(email_hash=email_hash(subscriber.email), defaults={"reason": reason[:200]})
        if record:
            _record(subscriber, "suppressed", reason, when)
    return bool(changed)


# Feedback and followed authors


def vote_record(*, subscriber, paper, value):
    """The subscriber's last word on a paper: +1 more like this, -1 less like this."""
    vote, _ = Vote.objects.update_or_create(subscriber=subscriber, paper=paper, defaults={"value": value})
    _record(subscriber, "voted", f"{'more' if value > 0 else 'less'}: {paper.title}")
    return vote


def vote_remove(*, subscriber, paper_id):
    """Returns how many votes were removed (0 or 1)."""
    removed = Vote.objects.filter(subscriber=subscriber, paper_id=paper_id).delete()[0]
    if removed:
        _record(subscriber, "vote removed", f"paper {paper_id}")
    return removed


def _following_changed(subscriber, kind, what, field=None):
    if field:
        subscriber.save(update_fields=[field, "updated_at"])
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
        "events": [
            {"kind": e.kind, "at": iso(e.occurred_at), "description": e.description}
            for e in subscriber.events.order_by("occurred_at")
        ],
    }


def subscriber_erase(*, subscriber):
    """Delete everything about a subscriber; keep only a salted hash so the address is not mailed again."""
    with transaction.atomic():
        # Wait for a fan-out that holds this subscriber (digests_dispatch locks the rows it
        # fans out) so that the deletion below sees all their deliveries.
        list(Subscriber.objects.select_for_update().filter(pk=subscriber.pk).values_list("pk"))
        reason = subscriber.suppressed_reason if subscriber.status == Subscriber.Status.SUPPRESSED else ERASED
        Suppression.objects.update_or_create(email_hash=email_hash(subscriber.email), defaults={"reason": reason})
        _subscribers_delete([subscriber.pk])


def _subscribers_delete(subscriber_ids):
    """Subscribers with all that is theirs. Their deliveries first, to which Django does not
    cascade (see Delivery.subscriber); a hundred at a time, for which the planner probes the
    (edition, subscriber) index rather than read the whole table."""
    for start in range(0, len(subscriber_ids), 100):
        chunk = subscriber_ids[start : start + 100]
        Delivery.objects.of_subscribers(chunk).delete()
        Subscriber.objects.filter(pk__in=chunk).delete()
