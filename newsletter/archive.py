"""What an edition offered, fixed once it went out: the web archive and its feed show this.

The general picks (featured, then trending) are rebuilt from features and upvotes, which keep
changing; so the first time an edition is seen to have gone out (a delivery sent, or its day
over everywhere) they are recorded on the edition, once, and read from there on. The
dispatcher looks every five minutes (editions_record_offered), and an editor's curation in the
admin looks first, so an unfeature made after the first digests went out does not rewrite them.
"""

import datetime as dt

from django.db.models import Exists, OuterRef
from django.utils import timezone

from newsletter.offers import edition_general_picks, features_within, lookback_days, notes_of
from newsletter.models import Delivery, Edition, Subscriber
from newsletter.reasons import Kind, loaded, stored
from papers.models import Paper

RECENT_DAYS = 7  # editions older than this are recorded when first shown (their day is over)


def _went_out(edition):
    sent = Delivery.objects.filter(edition=OuterRef("pk"), state=Delivery.State.SENT)
    return Edition.objects.filter(pk=edition.pk).filter(Exists(sent)).exists()


def _day_over_everywhere(edition, now):
    # Subscribers get the edition of their local date; the last time zone (UTC-12) ends day D
    # at 12:00 UTC on D + 1.
    return edition.date < (now - dt.timedelta(hours=12)).date()


def edition_record_offered(edition, *, now=None):
    """Record what edition offered, if it went out and nothing is recorded yet; returns the edition."""
    now = now or timezone.now()
    if edition.offered is None and edition.pk and (_day_over_everywhere(edition, now) or _went_out(edition)):
        offer, picks = edition_general_picks(edition)
        offered = [{"paper": pid, "reason": stored(reason), "note": offer.notes.get(pid, "")} for pid, reason in picks]
        # Readers' copies: the notes of the widest lookback, which holds every narrower one's.
        widest = max(Subscriber.Frequency, key=lookback_days)
        notes = {pid: note for pid, note in notes_of(features_within(edition, widest)).items() if note}
        # Conditional: two requests recording at once keep the first.
        Edition.objects.filter(pk=edition.pk, offered__isnull=True).update(
            offered=offered, offered_at=now, offered_notes=notes
        )
        edition.refresh_from_db(fields=["offered", "offered_at", "offered_notes"])
    return edition


def editions_record_offered(*, now=None):
    """Record every recent edition that has gone out since the last look; returns how many."""
    now = now or timezone.now()
    sent = Delivery.objects.filter(edition=OuterRef("pk"), state=Delivery.State.SENT)
    fresh = Edition.objects.filter(offered__isnull=True, date__gte=now.date() - dt.timedelta(days=RECENT_DAYS))
    editions = list(fresh.filter(Exists(sent)))
    for edition in editions:
        edition_record_offered(edition, now=now)
    return len(editions)


def items_of(picks, papers, notes):
    """[{paper, reason, note}] for picks, as the pages and digest templates take them; a paper
    deleted since is left out."""
    return [{"paper": papers[pid], "reason": reason, "note": notes.get(pid, "")} for pid, reason in picks if pid in papers]


def edition_items(edition):
    """[{paper, reason, note}] of an edition's web archive: as recorded, or (not gone out yet) as of now."""
    edition = edition_record_offered(edition)
    if edition.offered is None:
        offer, picks = edition_general_picks(edition)
        return items_of(picks, offer.papers, offer.notes)
    papers = Paper.objects.in_bulk([item["paper"] for item in edition.offered])
    # A paper deleted since is left out: there is nothing left to link to.
    return [
        {**item, "paper": papers[item["paper"]], "reason": loaded(item["reason"])}
        for item in edition.offered if item["paper"] in papers
    ]


def copy_items(edition, picks):
    """[{paper, reason, note}] of a reader's copy of edition, as mailed: their picks (papers and
    reasons, kept on the delivery: loaded_picks()), the featured ones with the notes recorded
    when it went out."""
    edition = edition_record_offered(edition)
    return items_of(picks, Paper.objects.in_bulk([pid for pid, _ in picks]), mailed_notes(edition, picks))


def mailed_notes(edition, picks):
    """{paper id: note} of the notes a copy of edition with these picks carried, as recorded
    when the edition went out (edition_record_offered)."""
    recorded = edition.recorded_notes()
    # A paper's note went with it only as a featured pick (a daily digest's window is narrower).
    return {pid: recorded[pid] for pid, reason in picks if reason.kind == Kind.FEATURED and pid in recorded}
