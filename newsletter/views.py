import json

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_ratelimit.decorators import ratelimit

from config.client_ip import client_ip
from newsletter import controls, outline, services, tasks, tokens
from newsletter.links import preferences_path, unsubscribe_path
from newsletter.archive import copy_items, edition_items, items_of
from newsletter.offers import edition_general_picks
from newsletter.forms import EmailForm, PreferencesForm, SeedForm, SubscribeForm, TimezoneForm, VoteForm
from newsletter.models import Delivery, Edition, Seed, Subscriber
from newsletter.reasons import loaded_picks
from newsletter.rendering import outlined
from papers.models import Paper

SIGNUP_RATE = f"{settings.SIGNUPS_PER_IP_PER_HOUR}/h"


def _client(request):
    return {"ip": client_ip(request), "user_agent": request.META.get("HTTP_USER_AGENT", "")}


@ratelimit(key="ip", rate=SIGNUP_RATE, method="POST", block=False)
@require_http_methods(["GET", "POST"])
def subscribe(request):
    form = SubscribeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Rate-limited and bot submissions get the same answer as everyone else, and nothing happens.
        if not getattr(request, "limited", False) and not form.is_bot():
            # The same work for every address before answering: enqueue, never look it up.
            fields = {
                "email": form.cleaned_data["email"],
                "topic_ids": [t.pk for t in form.cleaned_data["topics"]],
                "keywords": form.cleaned_data["keywords"],
                "frequency": form.cleaned_data["frequency"],
                **_client(request),
            }
            transaction.on_commit(lambda: tasks.subscriber_signup_task.delay(**fields))
        return redirect("newsletter:subscribe_done")
    status = 400 if request.method == "POST" else 200
    return render(request, "newsletter/subscribe.html", {"form": form, **_sample()}, status=status)


def _sample():
    """The latest edition's first picks, to show beside the form what a digest is like."""
    edition = Edition.objects.first()
    if edition is None:
        return {}
    offer, picks = edition_general_picks(edition, cached=True)  # a public GET must not rebuild an edition
    picks = picks[:4]
    return {
        "sample": _items(picks, offer.papers, offer.notes),
        "sample_day": edition.date,
        "sample_summary": _summary(picks),
    }


def subscribe_done(request):
    return render(request, "newsletter/subscribe_done.html")


def _subscriber_from(purpose, token, max_age=None):
    """(subscriber or None, error) for a signed link; error is '', 'expired' or 'invalid'."""
    try:
        pk = tokens.read(purpose, token, max_age=max_age)
    except tokens.BadToken as e:
        return None, "expired" if e.expired else "invalid"
    return Subscriber.objects.filter(pk=pk).first(), ""


def _bad_link(request, error, *, resend_url=None, data=False):
    ctx = {"expired": error == "expired", "resend_url": resend_url, "form": EmailForm(), "data": data}
    return render(request, "newsletter/bad_link.html", ctx, status=410 if error == "expired" else 400)


@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request, token):
    subscriber, error = _subscriber_from(tokens.CONFIRM, token, max_age=tokens.confirm_max_age())
    if error == "expired":
        return _bad_link(request, error, resend_url=reverse("newsletter:confirm_resend", args=[token]))
    if error or subscriber is None:
        return _bad_link(request, "invalid")
    ctx = {"token": token, "preferences_url": preferences_path(subscriber), "timezone_form": TimezoneForm()}
    if request.method == "POST" and "timezone" in request.POST:  # the browser's zone, offered once confirmed
        ctx["timezone_form"] = form = TimezoneForm(request.POST)
        if not (form.is_valid() and services.subscriber_set_timezone(subscriber=subscriber,
                                                                     timezone_name=form.cleaned_data["timezone"])):
            return render(request, "newsletter/confirm.html", {**ctx, "subscriber": subscriber}, status=400)
        ctx["timezone_set"] = True
    elif request.method == "POST":
        ctx["just_confirmed"] = services.subscriber_confirm(subscriber=subscriber, **_client(request))
        subscriber.refresh_from_db()
    return render(request, "newsletter/confirm.html", {**ctx, "subscriber": subscriber, "seed_form": SeedForm()})


@require_http_methods(["POST"])
def confirm_resend(request, token):
    # An expired link is still a genuine one: it may ask for a fresh confirmation mail.
    subscriber, error = _subscriber_from(tokens.CONFIRM, token)
    if error:
        return _bad_link(request, error)
    if subscriber:
        services.subscriber_resend_confirmation(subscriber=subscriber)
    return redirect("newsletter:subscribe_done")


@require_http_methods(["GET", "POST"])
def send_link(request):
    form = EmailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        transaction.on_commit(lambda: tasks.subscriber_send_link_task.delay(email))
        return render(request, "newsletter/send_link.html", {"sent": True})
    return render(request, "newsletter/send_link.html", {"form": form}, status=400 if request.method == "POST" else 200)


def _preferences_subscriber(token):
    subscriber, error = _subscriber_from(tokens.PREFERENCES, token, max_age=tokens.PREFERENCES_MAX_AGE)
    return subscriber, error or ("invalid" if subscriber is None else "")


@require_http_methods(["GET", "POST"])
def preferences(request, token):
    subscriber, error = _preferences_subscriber(token)
    if error:
        return _bad_link(request, error)
    action = request.POST.get("action", "save")
    if request.method == "POST" and action in ("unvote", "follow"):
        return _preferences_vote_action(request, subscriber, action, token)
    form = PreferencesForm.for_subscriber(subscriber, data=request.POST if action == "save" and request.method == "POST" else None)
    saved, seeded, seed_form = "", None, SeedForm()
    if request.method == "POST":
        if action == "seed":
            seed_form = SeedForm(request.POST, request.FILES)
            if seed_form.is_valid():
                seeded = services.subscriber_seed(subscriber=subscriber, references=seed_form.cleaned_data["references"])
                if seeded is None:
                    return HttpResponse("Only subscribed readers can add papers.", status=409, content_type="text/plain")
                if seeded.fetching:
                    transaction.on_commit(lambda: tasks.subscriber_seeds_fetch_task.delay(subscriber.pk))
                seed_form = SeedForm()
        elif action == "pause":
            services.subscriber_pause(subscriber=subscriber)
            saved = "Digests paused. Nothing more will arrive until you resume."
        elif action == "resume":
            services.subscriber_resume(subscriber=subscriber)
            saved = "Digests resumed."
        elif action == "weekly":  # offered on the unsubscribe page: the rest stays as it is
            _switch_to_weekly(subscriber)
            saved = "You now get one digest a week, on " + subscriber.get_weekday_display() + "s."
        elif action == "save" and form.is_valid():
            data = form.cleaned_data
            services.subscriber_update(
                subscriber=subscriber,
                topics=data["topics"],
                keywords=data["keywords"],
                frequency=data["frequency"],
                weekday=data["weekday"],
                hour=data["hour"],
                timezone_name=data["timezone"],
                authors=data["authors"],
            )
            saved = "Your preferences are saved."
        elif action not in ("save", "pause", "resume", "weekly", "seed"):
            return HttpResponse("Unknown action.", status=400, content_type="text/plain")
        if saved:
            subscriber = Subscriber.objects.filter(pk=subscriber.pk).first()
            if subscriber is None:  # erased meanwhile: nothing was saved
                return _bad_link(request, "invalid")
            form = PreferencesForm.for_subscriber(subscriber)
    ctx = {
        "subscriber": subscriber,
        "form": form,
        "saved": saved,
        "token": token,
        "unsubscribe_url": unsubscribe_path(subscriber),
        "votes": subscriber.votes.select_related("paper").order_by("-updated_at")[:100],
        "seed_form": seed_form,
        "seeded": seeded,
        "seeds": subscriber.seeds.states(),
        "guess_timezone": subscriber.timezone == "UTC" and not form.is_bound,
        "data_max_age_minutes": tokens.DATA_MAX_AGE_MINUTES,
    }
    return render(request, "newsletter/preferences.html", ctx, status=400 if form.errors or seed_form.errors else 200)


def _switch_to_weekly(subscriber):
    services.subscriber_update(
        subscriber=subscriber,
        topics=list(subscriber.topics.all()),
        keywords=subscriber.keywords,
        frequency=Subscriber.Frequency.WEEKLY,
        weekday=subscriber.weekday,
        hour=subscriber.hour,
        timezone_name=subscriber.timezone,
    )


def _preferences_vote_action(request, subscriber, action, token):
    try:
        paper = Paper.objects.get(pk=int(request.POST.get("paper", "")))
    except (ValueError, Paper.DoesNotExist):
        return HttpResponse("Unknown paper.", status=400, content_type="text/plain")
    if action == "unvote":
        services.vote_remove(subscriber=subscriber, paper_id=paper.pk)
    else:
        services.subscriber_follow_authors(subscriber=subscriber, names=paper.authors)
    return redirect("newsletter:preferences", token=token)


@require_http_methods(["GET", "HEAD", "POST"])
def feedback(request, token, paper_id, vote):
    """'More/less like this' from a digest, and why the paper was picked with a button to stop
    each reason. Mail scanners open links, so GET only shows the paper with the choice
    pre-selected (none for the reason line's 'why' link); the buttons POST."""
    subscriber, error = _subscriber_from(tokens.FEEDBACK, token)
    if error or subscriber is None:
        return _bad_link(request, "invalid")
    paper = get_object_or_404(Paper, pk=paper_id)
    if request.method == "POST" and "control" in request.POST:
        return _feedback_control(request, subscriber, paper)
    initial = {"more": 1, "less": -1}.get(vote)
    form = VoteForm(request.POST or None, initial={"vote": initial})
    ctx = {"paper": paper, "form": form, "current": subscriber.votes.filter(paper=paper).first(),
           "why": controls.why_picked(subscriber, paper), "not_subscribed": subscriber.status not in Subscriber.SUBSCRIBED}
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "newsletter/feedback.html", ctx, status=400)
        if services.vote_record(subscriber=subscriber, paper=paper, value=form.cleaned_data["vote"]) is None:
            return render(request, "newsletter/feedback.html", {"paper": paper, "not_subscribed": True}, status=403)
        ctx = {"paper": paper, "recorded": form.cleaned_data["vote"], "preferences_url": preferences_path(subscriber)}
    return render(request, "newsletter/feedback.html", ctx)


def _feedback_control(request, subscriber, paper):
    """A "why this paper" button: stop a reason, or (undo) restore it."""
    undo = request.POST.get("undo") == "1"
    try:
        control = controls.control_from(request.POST["control"], request.POST.get("value"), subscriber)
    except controls.BadControl as e:
        return HttpResponse(str(e), status=400, content_type="text/plain")
    changed = controls.control_apply(control, subscriber, undo=undo)
    ctx = {"paper": paper, "control": control, "undone": undo, "changed": changed,
           "preferences_url": preferences_path(subscriber)}
    return render(request, "newsletter/feedback.html", ctx)


# Export and erasure: behind a link mailed on request to the subscriber's own address and valid
# for an hour, not the preferences link, which is in every digest and so in every forwarded one.


@ratelimit(key="ip", rate=SIGNUP_RATE, method="POST", block=False)
@require_http_methods(["POST"])
def data_link(request, token):
    """'E-mail me a link to export or delete my data', from the preferences page."""
    subscriber, error = _preferences_subscriber(token)
    if error:
        return _bad_link(request, error)
    return _data_link_sent(request, subscriber)


@ratelimit(key="ip", rate=SIGNUP_RATE, method="POST", block=False)
@require_http_methods(["POST"])
def data_resend(request, token):
    # An expired link is still a genuine one: it may ask for a fresh one, to the same address.
    subscriber, error = _subscriber_from(tokens.DATA, token)
    if error or subscriber is None:
        return _bad_link(request, "invalid", data=True)
    return _data_link_sent(request, subscriber)


def _data_link_sent(request, subscriber):
    pk = subscriber.pk
    # Per IP, as sign-ups: whoever holds a forwarded digest cannot spend the address's daily
    # mails from one machine. A limited request gets the same page, and nothing is sent.
    if not getattr(request, "limited", False):
        transaction.on_commit(lambda: tasks.subscriber_send_data_link_task.delay(pk))
    ctx = {"subscriber": subscriber, "masked_email": masked(subscriber.email),
           "max_age_minutes": tokens.DATA_MAX_AGE_MINUTES}
    return render(request, "newsletter/data_link_sent.html", ctx)


def _data_subscriber(request, token):
    """(subscriber, None) for a fresh data link, else (None, the page that says why)."""
    subscriber, error = _subscriber_from(tokens.DATA, token, max_age=tokens.DATA_MAX_AGE)
    if error == "expired":
        return None, _bad_link(request, error, resend_url=reverse("newsletter:data_resend", args=[token]), data=True)
    if error or subscriber is None:
        return None, _bad_link(request, "invalid", data=True)
    return subscriber, None


# The consent record and the export are personal data: no browser or proxy keeps a copy.
@never_cache
@require_http_methods(["GET", "HEAD"])
def my_data(request, token):
    subscriber, refused = _data_subscriber(request, token)
    if refused:
        return refused
    ctx = {"subscriber": subscriber, "token": token, "max_age_minutes": tokens.DATA_MAX_AGE_MINUTES}
    return render(request, "newsletter/data.html", ctx)


@never_cache
def preferences_export(request, token):
    subscriber, refused = _data_subscriber(request, token)
    if refused:
        return refused
    data = json.dumps(services.subscriber_export(subscriber=subscriber), indent=2)
    response = HttpResponse(data, content_type="application/json")
    response["Content-Disposition"] = 'attachment; filename="paperboy-my-data.json"'
    return response


@require_http_methods(["GET", "POST"])
def preferences_delete(request, token):
    subscriber, refused = _data_subscriber(request, token)
    if refused:
        return refused
    if request.method == "POST":
        if request.POST.get("confirm") != "yes":
            return render(request, "newsletter/delete.html", {"subscriber": subscriber, "error": True}, status=400)
        services.subscriber_erase(subscriber=subscriber)
        return render(request, "newsletter/deleted.html")
    return render(request, "newsletter/delete.html", {"subscriber": subscriber})


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    """RFC 8058: POST unsubscribes at once (no CSRF token, no login, no cookies); GET and HEAD
    only show a button, because mail scanners open links."""
    subscriber, error = _subscriber_from(tokens.UNSUBSCRIBE, token)
    if error:
        return _bad_link(request, "invalid")
    if request.method == "POST":
        if subscriber:
            how = "one-click" if request.POST.get("List-Unsubscribe") == "One-Click" else "link"
            services.subscriber_unsubscribe(subscriber=subscriber, how=how)
        ctx = {"done": True, "preferences_url": preferences_path(subscriber) if subscriber else None}
        return render(request, "newsletter/unsubscribe.html", ctx)
    ctx = {"token": token, "subscriber": subscriber}
    if subscriber:
        ctx |= {"masked_email": masked(subscriber.email), "preferences_url": preferences_path(subscriber)}
    return render(request, "newsletter/unsubscribe.html", ctx)


def masked(email):
    """a•••e@example.org: enough for readers to know which address, little for anyone else."""
    local, _, domain = email.rpartition("@")
    shown = local[0] + "•••" + (local[-1] if len(local) > 2 else "")
    return f"{shown}@{domain}"


# Web archive


def editions(request):
    editions = list(Edition.objects.all()[:30])
    for each in editions:
        items = edition_items(each)  # as it went out
        each.size, each.leads = len(items), [item["paper"] for item in items[:3]]
    return render(request, "newsletter/editions.html", {"editions": editions})


def _items(picks, papers, notes):
    return outlined(items_of(picks, papers, notes))


def _summary(picks):
    return outline.summary([reason for _, reason in picks])


def edition(request, day):
    edition = get_object_or_404(Edition, date=day)
    items = edition_items(edition)
    ctx = {"edition": edition, "items": outlined(items), "summary": outline.summary([item["reason"] for item in items])}
    return render(request, "newsletter/edition.html", ctx)


def edition_copy(request, day, token):
    """The reader's own copy of a digest: the "View in browser" link of each digest."""
    subscriber, error = _subscriber_from(tokens.VIEW, token)
    if error or subscriber is None:
        return _bad_link(request, "invalid")
    edition = get_object_or_404(Edition, date=day)
    delivery = Delivery.objects.filter(edition=edition, subscriber=subscriber, state=Delivery.State.SENT).first()
    if delivery is None:  # e.g. sent, then erased and subscribed anew: the general edition, said so
        return render(request, "newsletter/edition.html", {"edition": edition, "items": [], "missing_copy": True}, status=404)
    picks = loaded_picks(delivery.picks)
    ctx = {
        "edition": edition,
        "items": outlined(copy_items(edition, picks)),
        "summary": _summary(picks),
        "copy": True,
        "feedback_token": tokens.make(tokens.FEEDBACK, subscriber.pk),
        "preferences_url": preferences_path(subscriber),
    }
    return render(request, "newsletter/edition.html", ctx)
