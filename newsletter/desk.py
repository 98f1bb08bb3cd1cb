"""The editor's desk: the Today page of the admin, and the day at a glance on its index.

The Today page shows a day's features in the order readers see them (reorderable), the papers
leading by upvotes not yet featured (one click to feature), how the day's edition is going,
and the digest a chosen subscriber would receive, made by the same code as sending.
"""

import datetime as dt

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date

from newsletter.archive import edition_record_offered, editions_record_offered, mailed_notes
from newsletter.offers import digests_for, edition_offer
from newsletter.models import Delivery, Edition, Subscriber, Vote
from newsletter.reasons import loaded_picks
from newsletter.rendering import EditionRenderer
from papers.models import Feature, FeatureChange, Paper
from papers.forms import FeatureNoteForm
from papers.notes import NOTE_MAX_LENGTH, cleaned_away, note_source, sanitize_note
from papers.services import features_reorder, paper_feature, paper_unfeature

LEADERS = 15  # papers offered for featuring
CHANGES = 10  # the day's latest changes to its features, each with Undo


def _day(value):
    """The day asked for, or today in the site's time zone (also for a day that does not exist)."""
    try:
        return parse_date(value or "") or timezone.localdate()
    except ValueError:
        return timezone.localdate()


def today(request):
    """The admin's Today page (GET); its buttons POST here and come back."""
    if not request.user.has_perm("papers.change_feature"):
        return redirect("admin:index")
    day = _day(request.GET.get("day") or request.POST.get("day"))
    drafts = {}  # paper pk -> a note refused, shown again in its box to be fixed, not retyped
    if request.method == "POST":
        drafts = _act(request, day)
        if not drafts:
            return redirect(f"{reverse('admin:newsletter_edition_today')}?day={day}")
    edition = Edition.objects.filter(date=day).first()
    features = list(Feature.objects.filter(day=day).select_related("paper"))
    ctx = {
        **request_context(request),
        "title": f"Today: {day:%A %-d %B %Y}",
        "day": day,
        "is_today": day == timezone.localdate(),
        "time_zone": settings.TIME_ZONE,
        "features": [(f, votes_since(f), drafts.get(f.paper_id, note_source(f.note))) for f in features],
        "leaders": [(p, drafts.get(p.pk, "")) for p in leaders(day, exclude=[f.paper_id for f in features])],
        "note_limit": NOTE_MAX_LENGTH,
        "changes": FeatureChange.objects.filter(day=day).select_related("paper", "log__user")[:CHANGES],
        "edition": edition,
        "totals": edition.totals() if edition else None,
        "preview_email": request.GET.get("subscriber", "").strip(),
    }
    ctx["went_out"] = bool(ctx["totals"] and ctx["totals"]["sent"])
    if ctx["preview_email"]:
        ctx["preview_now"] = request.GET.get("now") == "1"
        ctx.update(preview(day, edition, ctx["preview_email"], mailed=not ctx["preview_now"]))
    return TemplateResponse(request, "admin/newsletter/today.html", ctx, status=400 if drafts else 200)


def request_context(request):
    return {**admin.site.each_context(request), "opts": Edition._meta}


def _act(request, day):
    """Do what a button asks; returns {paper pk: note} for a note refused (else nothing)."""
    raw = request.POST.get("paper", "")
    paper = Paper.objects.filter(pk=int(raw)).first() if raw.isascii() and raw.isdigit() else None
    op = request.POST.get("op")
    if paper is None:
        messages.error(request, "That paper no longer exists.")
        return
    editions_record_offered()  # editions already sent keep what they offered
    if op in ("feature", "note"):
        form = FeatureNoteForm(request.POST)
        if not form.is_valid():
            refused = f"“{paper}” not featured" if op == "feature" else f"Note of “{paper}” not saved"
            messages.error(request, f"{refused}: {' '.join(form.errors['note'])}")
            return {paper.pk: request.POST.get("note", "")}
        note = form.cleaned_data["note"]
        if op == "note" and not note:
            messages.warning(request, "The note is unchanged: an empty note keeps the current one.")
            return
        paper_feature(paper=paper, day=day, note=note, user=request.user)
        messages.success(request, f"“{paper}” featured on {day}." if op == "feature" else f"Note of “{paper}” saved.")
        if note and cleaned_away(note):
            messages.warning(request, f"Markup that is not allowed was removed; the note now reads: {sanitize_note(note)}")
    elif op == "unfeature":
        removed = paper_unfeature(paper=paper, day=day, user=request.user)
        messages.success(request, f"“{paper}” unfeatured from {day}." if removed else f"“{paper}” was not featured on {day}.")
    elif op in ("up", "down"):
        order = list(Feature.objects.filter(day=day).values_list("paper_id", flat=True))
        if paper.pk in order:
            i = order.index(paper.pk)
            j = max(0, min(len(order) - 1, i - 1 if op == "up" else i + 1))
            order[i], order[j] = order[j], order[i]
            features_reorder(day=day, paper_ids=order, user=request.user)
    else:
        messages.error(request, "Unknown action.")


def votes_since(feature):
    """'More' and 'less' votes a featured paper got since it was featured."""
    since = timezone.make_aware(dt.datetime.combine(feature.day, dt.time.min))
    votes = Vote.objects.filter(paper_id=feature.paper_id, updated_at__gte=since)
    return votes.aggregate(more=Count("pk", filter=Q(value=1)), less=Count("pk", filter=Q(value=-1)))


def leaders(day, exclude):
    """The papers of the day's daily digest window leading by upvotes, not featured that day."""
    first = day - dt.timedelta(days=settings.DIGEST_DAILY_LOOKBACK_DAYS)
    window = Paper.objects.filter(listed_on__range=(first, day)).exclude(pk__in=exclude)
    return list(window.trending()[:LEADERS])


def preview(day, edition, email, mailed=True):
    """The digest `email` would get from edition `day`, made as sending makes it (an Offer's
    picks, its renderer's content), or with `mailed`, the copy they were sent if they were:
    {preview_*} for the template."""
    subscriber = Subscriber.objects.filter(email__iexact=email).first()
    if subscriber is None:
        return {"preview_error": f"No subscriber {email}."}
    edition = edition or Edition(date=day)
    sent = edition.pk and Delivery.objects.filter(edition=edition, subscriber=subscriber, state=Delivery.State.SENT).first()
    if sent and mailed:
        return mailed_copy(edition, sent)
    # Read afresh (not the sending workers' five-minute cache): the editor's changes show at once.
    offer = edition_offer(edition, subscriber.frequency)
    recipient = (subscriber.pk, subscriber.frequency, subscriber.keywords, subscriber.authors, subscriber.confirmed_at)
    picks = digests_for(edition, [recipient], offer_of=lambda *_: offer)[subscriber.pk]
    status = "" if subscriber.status == Subscriber.Status.ACTIVE else f"{subscriber} is {subscriber.get_status_display().lower()}: no digest goes to them."
    if not picks:
        return {"preview_error": status or f"Nothing new for {subscriber}: no digest would go."}
    content = offer.renderer.content(picks)
    return {"preview_subscriber": subscriber, "preview_note": status, "preview_subject": content.subject,
            "preview_html": content.html, "preview_text": content.text, "preview_sent_at": sent.sent_at if sent else None}


def mailed_copy(edition, delivery):
    """The copy `delivery` mailed: its picks, with the notes recorded when the edition went out
    (as the reader's web copy shows them)."""
    edition = edition_record_offered(edition)
    picks = loaded_picks(delivery.picks)
    notes = mailed_notes(edition, picks)
    content = EditionRenderer(edition, Paper.objects.in_bulk([pid for pid, _ in picks]), notes).content(picks)
    return {"preview_subscriber": delivery.subscriber, "preview_mailed_at": delivery.sent_at, "preview_subject": content.subject,
            "preview_html": content.html, "preview_text": content.text}


def day_summary():
    """The admin index's view of the day: features, edition, subscribers, failures, sending."""
    day = timezone.localdate()
    edition = Edition.objects.filter(date=day).first()
    per_status = dict(Subscriber.objects.values_list("status").annotate(n=Count("pk")).order_by())
    return {
        "day": day,
        "features": list(Feature.objects.filter(day=day).select_related("paper")),
        "edition": edition,
        "totals": edition.totals() if edition else None,
        "subscribers": [(value, label, per_status.get(value, 0)) for value, label in Subscriber.Status.choices],
        "failed": Delivery.objects.filter(state=Delivery.State.FAILED, created_at__gte=timezone.now() - dt.timedelta(days=7)).count(),
    }
