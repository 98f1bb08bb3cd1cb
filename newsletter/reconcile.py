"""What is left behind, and an operator's second try: a dead worker's group recovered from its
progress file, or taken over from the database's checkpoint once it stops beating (its host
lost), waiting rows resumed when a worker starts, stuck rows reconciled, failed rows requeued.
Each takes the enqueue function (tasks.py), as fan-out does.
"""

import datetime as dt
from collections import Counter

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Concat, Left
from django.utils import timezone

from newsletter import sql
from newsletter.models import Delivery, SendingGroup, Subscriber, SubscriberEvent
from newsletter.progress import abandoned
from newsletter.reasons import loaded_picks


# Failures never sent again: the address refused the mail for good (marked so when it failed:
# a hard bounce, or the ESP refusing the recipient; the last three, as rows failed before hard
# bounces were marked read), or the mail may have gone. Any other failure (a refused sender, a
# content filter, a bug) is sent again once an operator has fixed its cause and requeues it.
REFUSED_FOR_GOOD = (
    Delivery.BOUNCED, "the ESP rejected", "the ESP invalid", "AnymailRecipientsRefused", "AnymailInvalidAddress", "SMTPRecipientsRefused",
)
MAY_HAVE_GONE = Delivery.INTERRUPTED
REQUEUED = " · requeued by an operator"


def requeue_verdict(note, status, duplicates_accepted=False):
    """(send again?, why) for a failed delivery, from its note and its subscriber's status.
    Mail that may have gone is sent again only if the operator accepts that it may arrive twice."""
    if status != Subscriber.Status.ACTIVE:
        return False, f"the subscriber is {status or 'erased'} now: not sent"
    if note.startswith(MAY_HAVE_GONE):
        if duplicates_accepted:
            return True, "interrupted while sending: sent again, possibly a second time"
        return False, "the mail may already have been delivered: never sent twice"
    if note.startswith(REFUSED_FOR_GOOD):
        return False, "refused for good (a hard bounce): not sent again"
    return True, "not a refusal of the address: sent again"


def deliveries_requeue_plan(*, deliveries, duplicates_accepted=False):
    """What deliveries_requeue() would do, per reason: [(note, count, send again?, why)]."""
    failed = deliveries.filter(state=Delivery.State.FAILED).values_list("note", "subscriber__status")
    plan = Counter()
    for note, status, n in failed.annotate(n=Count("id")).order_by():
        plan[(note.split(REQUEUED)[0], *requeue_verdict(note, status, duplicates_accepted))] += n
    return sorted(((note, n, again, why) for (note, again, why), n in plan.items()), key=lambda row: (not row[2], -row[1]))


def deliveries_requeue(*, deliveries, enqueue, duplicates_accepted=False):
    """Send failed deliveries again (an operator's decision, e.g. after checking the ESP's log),
    except those requeue_verdict() keeps back (those interrupted while sending too, unless the
    operator accepts duplicates); an event per subscriber keeps why each had failed. Returns
    how many."""
    failed = deliveries.filter(state=Delivery.State.FAILED)
    rows = failed.values_list("pk", "note", "subscriber__status", "subscriber_id", "edition__date")
    again = [row for row in rows if requeue_verdict(row[1], row[2], duplicates_accepted)[0]]
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
    enqueue(ids)
    return count


def deliveries_recover(*, enqueue, now=None):
    """Settle the groups of workers on this machine that died while sending, or whose group
    ended in an error (their progress files, newsletter/progress.py): the deliveries their mail
    server accepted are recorded as sent, the others are charged an attempt and go back to
    pending and to workers, or, once they have had DIGEST_MAX_ATTEMPTS, fail with the error
    that ended the group: an error that repeats ends instead of looping. Each write is
    conditional on the row being still in doubt (DeliveryQuerySet.in_doubt), so a row the ESP's
    webhook settled meanwhile stays as it said. Returns (sent, requeued)."""
    now = now or timezone.now()
    sent_total, requeued = 0, []
    for claim, claimed, sent, error in abandoned():
        # Still as the dead worker left them (or as the reconciler marked them since).
        rows = Delivery.objects.in_doubt().filter(pk__in=claimed, claim=claim)
        attempts = dict(rows.values_list("pk", "attempts"))
        outcomes = [
            (pk, Delivery.State.SENT, loaded_picks(picks), now, "sent; recorded after the worker stopped",
             message_id[:200], attempts[pk] + 1)
            for pk, (picks, message_id) in sent.items() if pk in attempts
        ]
        if outcomes:
            sql.deliveries_finish(outcomes, claim=claim)
        sent_total += len(outcomes)
        requeued += _send_again(rows.filter(pk__in=[pk for pk in attempts if pk not in sent]), error or "its worker stopped", now)
        SendingGroup.objects.filter(pk=claim).delete()
    enqueue(requeued)
    return sent_total, len(requeued)


def _send_again(unsent, why, now):
    """Charge these rows an attempt and put them back to pending, or fail them once they have
    had DIGEST_MAX_ATTEMPTS. Returns the ids of those pending again."""
    unsent.filter(attempts__gte=settings.DIGEST_MAX_ATTEMPTS - 1).update(
        state=Delivery.State.FAILED, attempts=F("attempts") + 1,
        note=f"{why}; failed after {settings.DIGEST_MAX_ATTEMPTS} attempts"[:500],
    )
    again = list(unsent.values_list("pk", flat=True))
    unsent.filter(pk__in=again).update(
        # No longer the dead group's: a late write of its worker, if it lives on, changes nothing.
        state=Delivery.State.PENDING, attempts=F("attempts") + 1, claim="",
        note=f"not sent: {why}; sent again"[:500], created_at=now,
    )
    return again


STOPPED_BEATING = "its worker stopped beating (its host lost?)"


def deliveries_takeover(*, enqueue, now=None):
    """Settle, from any host, the groups whose worker has not beaten for
    DIGEST_HEARTBEAT_TIMEOUT_SECONDS: first those whose progress file is on this machine
    (deliveries_recover: the exact record), then the others from the database's checkpoint:
    the rows it recorded are sent already, and those still in doubt under the dead claim are
    sent again (what the worker sent after its last checkpoint, at most DIGEST_CHECKPOINT_SIZE
    messages or a second's worth, arrives twice). Returns (groups, requeued)."""
    now = now or timezone.now()
    deliveries_recover(enqueue=enqueue, now=now)
    silent = dt.timedelta(seconds=settings.DIGEST_HEARTBEAT_TIMEOUT_SECONDS)
    stale = SendingGroup.objects.filter(beat_at__lt=now - silent)
    groups, requeued = 0, []
    for claim, ids in stale.values_list("claim", "delivery_ids"):
        with transaction.atomic():
            # Decided and written at once: a group that beat meanwhile, or that another worker
            # took over, is left alone; its worker's late writes then change nothing (the claim).
            if not stale.filter(pk=claim).delete()[0]:
                continue
            rows = Delivery.objects.in_doubt().filter(pk__in=[int(pk) for pk in ids.split(",") if pk], claim=claim)
            requeued += _send_again(rows, STOPPED_BEATING, now)
        groups += 1
    enqueue(requeued)
    return groups, len(requeued)


def deliveries_resume(*, enqueue, now=None):
    """Hand every pending row of the last two days to workers again, as a worker starts: the
    tasks a dead worker had taken return only after the broker's visibility timeout. Enqueuing
    twice is harmless (only pending rows are claimed); rows waiting out a retry's backoff are
    left to their retry. Returns how many."""
    now = now or timezone.now()
    pending = Delivery.objects.filter(created_at__gte=now - dt.timedelta(days=2)).resumable(now)
    ids = list(pending.values_list("pk", flat=True).iterator(chunk_size=5000))
    enqueue(ids)
    return len(ids)


def deliveries_reconcile(*, enqueue, now=None):
    """Resolve rows left behind, after recovering what this machine's dead workers left
    (deliveries_recover): 'sending' rows still claimed past the timeout, whose worker's
    progress is nowhere to be read, are marked failed (whether their mail went out is
    unknown until the ESP's webhook says, and a duplicate is worse than a gap); 'pending' rows
    whose task was lost (e.g. Redis restarted) are handed to workers again. Returns (failed,
    requeued).

    Both are looked for in one pass over the rows created in the last two days (an index on
    created_at, which only a requeue or a recovery moves, as they queue a row anew). No index on state: it would keep the claim and the
    outcome from updating a row in place (see Delivery.Meta), and one on pending rows would
    tempt the planner into using it for claims (see sql.deliveries_claim())."""
    now = now or timezone.now()
    deliveries_recover(enqueue=enqueue, now=now)
    cutoff = now - dt.timedelta(minutes=settings.DIGEST_SENDING_TIMEOUT_MINUTES)
    recent = Delivery.objects.filter(created_at__gte=now - dt.timedelta(days=2))
    # Rows waiting out a retry's backoff come back by themselves: only resumable ones are queued.
    stuck = recent.filter(state=Delivery.State.SENDING, claimed_at__lt=cutoff) | recent.resumable(now).filter(created_at__lt=cutoff)
    found = {Delivery.State.SENDING: [], Delivery.State.PENDING: []}
    for pk, state in stuck.values_list("pk", "state").iterator(chunk_size=5000):
        found[state].append(pk)
    failed = 0
    sending = found[Delivery.State.SENDING]
    for start in range(0, len(sending), 5000):
        failed += Delivery.objects.filter(pk__in=sending[start : start + 5000], state=Delivery.State.SENDING).update(
            state=Delivery.State.FAILED, note=f"{Delivery.INTERRUPTED}; not resent: whether it went out is unknown"
        )
    enqueue(found[Delivery.State.PENDING])
    return failed, len(found[Delivery.State.PENDING])
