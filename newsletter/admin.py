import csv

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, OuterRef, Q
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from newsletter import desk
from newsletter.archive import edition_items, edition_record_offered, editions_record_offered
from newsletter.reconcile import deliveries_requeue, deliveries_requeue_plan
from newsletter.forms import TIMEZONES
from newsletter.models import (
    Delivery, Edition, Subscriber, SubscriberEvent, Suppression, Vote, count_of, email_canonical, email_hash,
)
from newsletter.reasons import said
from newsletter.tasks import enqueue_deliveries
from newsletter.services import (
    subscriber_erase, subscriber_pause, subscriber_resume, subscriber_suppress, subscriber_unsubscribe, subscriber_update,
    suppression_lift,
)
from papers.admin import FeatureAdmin, PaperAdmin
from papers.models import Feature, Paper, Topic, search_key
from papers.services import curation_log

READERS_FOUND = 200  # by part of an address, in the delivery list: a probe per edition each


class Echo:
    def write(self, value):
        return value


def spreadsheet_safe(value):
    # A leading =, +, - or @ would run as a formula in a spreadsheet.
    return "'" + value if isinstance(value, str) and value.startswith(("=", "+", "-", "@")) else value


class EventInline(admin.TabularInline):
    model = SubscriberEvent
    extra = 0
    can_delete = False
    fields = ["occurred_at", "kind", "description", "message_id"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class SubscriberForm(forms.ModelForm):
    hour = forms.TypedChoiceField(choices=[(h, f"{h:02d}:00") for h in range(24)], coerce=int, help_text="Local hour.")
    timezone = forms.ChoiceField(choices=[(tz, tz) for tz in TIMEZONES], label="Time zone")

    class Meta:
        model = Subscriber
        fields = ["topics", "keywords", "authors", "frequency", "weekday", "hour", "timezone"]


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    """Status changes only through the actions (the services, which record an event); edits of
    what and when through the same service as the preferences page, so the schedule follows."""

    form = SubscriberForm
    list_display = ["email", "status", "schedule", "joined"]
    list_filter = ["status", "frequency", "topics", "created_at"]
    search_fields = ["search_text"]
    search_help_text = "Address, keyword or followed author, or part of one; case and accents do not matter."
    date_hierarchy = "created_at"
    filter_horizontal = ["topics"]
    readonly_fields = [
        "email", "status", "next_digest_at", "created_at", "consent_at", "consent_ip", "consent_user_agent",
        "consent_version", "confirmed_at", "confirm_ip", "confirm_user_agent", "unsubscribed_at", "suppressed_at",
        "suppressed_reason",
    ]
    inlines = [EventInline]
    actions = ["pause", "resume", "unsubscribe", "suppress", "erase", "export_csv"]
    change_list_template = "admin/newsletter/subscriber/change_list.html"

    def has_add_permission(self, request):
        return False  # subscribers sign up themselves: consent is theirs to give

    # Compact cells, so that every column is in sight at a laptop's width.
    @admin.display(description="schedule", ordering="next_digest_at")
    def schedule(self, s):
        when = f"{s.get_frequency_display().lower()} at {s.hour:02d}:00 {s.timezone}"
        upcoming = f"next {timezone.localtime(s.next_digest_at):%-d %b %H:%M}" if s.next_digest_at else "no digest due"
        return format_html("{}<br><small>{}</small>", when, upcoming)

    @admin.display(description="joined", ordering="created_at")
    def joined(self, s):
        confirmed = f"confirmed {s.confirmed_at:%-d %b %Y}" if s.confirmed_at else "not confirmed"
        return format_html("{}<br><small>{}</small>", f"{s.created_at:%-d %b %Y}", confirmed)

    def has_delete_permission(self, request, obj=None):
        return False  # "Erase" below keeps the suppression hash a plain delete would lose

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, search_key(search_term))

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        subscriber_update(
            subscriber=obj, topics=data["topics"], keywords=data["keywords"], authors=data["authors"],
            frequency=data["frequency"], weekday=data["weekday"], hour=data["hour"], timezone_name=data["timezone"],
            by=f"editor {request.user.get_username()}",
        )

    def save_related(self, request, form, formsets, change):
        # Topics were set by subscriber_update(); the events inline is read-only (saved: no rows).
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def changelist_view(self, request, extra_context=None):
        per_status = dict(Subscriber.objects.values_list("status").annotate(n=Count("id")))
        extra_context = {
            **(extra_context or {}),
            "status_counts": [(label, per_status.get(value, 0)) for value, label in Subscriber.Status.choices],
            "topic_counts": Topic.objects.annotate(
                n=Count("subscribers", filter=Q(subscribers__status=Subscriber.Status.ACTIVE))
            ).values_list("name", "n"),
        }
        return super().changelist_view(request, extra_context)

    def _apply(self, request, queryset, change, done, left):
        changed = sum(bool(change(subscriber)) for subscriber in queryset)
        skipped = queryset.count() - changed
        self.message_user(request, f"{done} {changed} subscriber(s)." + (f" {skipped} left alone ({left})." if skipped else ""),
                          messages.SUCCESS if changed else messages.WARNING)

    @staticmethod
    def _left_alone(queryset, why):
        n = queryset.count()
        return f" {n} of them {'is' if n == 1 else 'are'} left alone ({why})." if n else ""

    @staticmethod
    def _by(request):
        return f"by editor {request.user.get_username()}"

    @admin.action(description="Pause digests of selected subscribers")
    def pause(self, request, queryset):
        how = self._by(request)
        self._apply(request, queryset, lambda s: subscriber_pause(subscriber=s, how=how), "Paused", "not active")

    @admin.action(description="Resume digests of selected paused subscribers")
    def resume(self, request, queryset):
        how = self._by(request)
        self._apply(request, queryset, lambda s: subscriber_resume(subscriber=s, how=how), "Resumed",
                    "only paused subscribers resume; unconfirmed, unsubscribed and suppressed ones never do")

    @admin.action(description="Unsubscribe selected subscribers…")
    def unsubscribe(self, request, queryset):
        if request.POST.get("post") != "yes":
            left = queryset.exclude(status__in=[Subscriber.Status.PENDING, Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED])
            return confirmation(request, self, queryset, "unsubscribe", "Unsubscribe these subscribers?", consequence=(
                "They get no more digests, and each one's history records that you unsubscribed them. They can "
                "subscribe again themselves." + self._left_alone(left, "already unsubscribed or suppressed")))
        how = self._by(request)
        self._apply(request, queryset, lambda s: subscriber_unsubscribe(subscriber=s, how=how), "Unsubscribed",
                    "already unsubscribed or suppressed")

    @admin.action(description="Suppress selected addresses (never mail them again)…")
    def suppress(self, request, queryset):
        if request.POST.get("post") != "yes":
            left = queryset.filter(status=Subscriber.Status.SUPPRESSED)
            return confirmation(request, self, queryset, "suppress", "Suppress these addresses?", consequence=(
                "Nothing is mailed to these addresses again, not even a confirmation if they sign up anew; each "
                "one's history records that you suppressed it." + self._left_alone(left, "already suppressed")))
        reason = f"suppressed {self._by(request)}"
        self._apply(request, queryset, lambda s: subscriber_suppress(subscriber=s, reason=reason), "Suppressed",
                    "already suppressed")

    @admin.action(description="Erase selected subscribers (GDPR; the address stays suppressed)")
    def erase(self, request, queryset):
        if request.POST.get("post") != "yes":
            return confirmation(request, self, queryset, "erase", "Erase these subscribers and everything about them?")
        count = 0
        for subscriber in queryset:
            subscriber_erase(subscriber=subscriber)
            count += 1
        self.message_user(request, f"Erased {count} subscriber(s).", messages.SUCCESS)

    @admin.action(description="Export selected subscribers as CSV")
    def export_csv(self, request, queryset):
        writer = csv.writer(Echo())
        header = [
            "email", "status", "frequency", "weekday", "hour", "timezone", "topics", "keywords", "authors",
            "created_at", "confirmed_at", "unsubscribed_at", "suppressed_at", "suppressed_reason",
        ]

        def rows():
            yield writer.writerow(header)
            for s in queryset.prefetch_related("topics").iterator(chunk_size=2000):
                topics = "; ".join(t.slug for t in s.topics.all())
                weekday = s.get_weekday_display() if s.frequency == Subscriber.Frequency.WEEKLY else ""
                cells = [
                    s.email, s.status, s.frequency, weekday, s.hour, s.timezone, topics, s.keywords, s.authors,
                    s.created_at, s.confirmed_at, s.unsubscribed_at, s.suppressed_at, s.suppressed_reason,
                ]
                yield writer.writerow([spreadsheet_safe(c) for c in cells])

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="subscribers-{timezone.now():%Y%m%d}.csv"'
        return response


def confirmation(request, model_admin, queryset, action, question, **ctx):
    """An action's intermediate page: the question, the selected rows, Yes re-posts the action."""
    return TemplateResponse(request, "admin/newsletter/confirm_action.html", {
        **model_admin.admin_site.each_context(request),
        "title": question,
        "opts": model_admin.model._meta,
        "queryset": queryset,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        # "Select all N" in the list: the action applies to the whole (filtered) list again.
        "select_across": request.POST.get("select_across") == "1",
        **ctx,
    })


@admin.register(Edition)
class EditionAdmin(admin.ModelAdmin):
    list_display = ["date", "due", "sent", "skipped", "failed", "in_progress", "more", "less", "unsubscribes"]
    readonly_fields = ["date", "pages", "progress", "papers_offered", "offered_at", "created_at"]

    def get_object(self, request, object_id, from_field=None):
        edition = super().get_object(request, object_id, from_field)
        # Gone out: what it offered is recorded now, if no one has looked since (Offered at).
        return edition_record_offered(edition) if edition else edition

    def get_urls(self):
        today = self.admin_site.admin_view(desk.today)
        return [path("today/", today, name="newsletter_edition_today"), *super().get_urls()]

    def get_queryset(self, request):
        return super().get_queryset(request).with_counts()

    @admin.display(ordering="due")
    def due(self, edition):
        return edition.due

    @admin.display(ordering="sent")
    def sent(self, edition):
        return edition.sent

    @admin.display(ordering="skipped")
    def skipped(self, edition):
        return edition.skipped

    @admin.display(ordering="failed")
    def failed(self, edition):
        return edition.failed

    @admin.display(description="pending / sending")
    def in_progress(self, edition):
        return f"{edition.pending} / {edition.sending}"

    @admin.display(description="“more” votes", ordering="more")
    def more(self, edition):
        return edition.more

    @admin.display(description="“less” votes", ordering="less")
    def less(self, edition):
        return edition.less

    @admin.display(description="unsubscribes", ordering="unsubscribes")
    def unsubscribes(self, edition):
        return edition.unsubscribes

    @admin.display(description="see also")
    def pages(self, edition):
        return format_html('<a href="{}?day={}">Today page</a> · <a href="{}">Public archive</a>',
                           reverse("admin:newsletter_edition_today"), edition.date, edition.get_absolute_url())

    @admin.display(description="progress")
    def progress(self, edition):
        """Deliveries by state, each a link to those deliveries."""
        url = reverse("admin:newsletter_delivery_changelist")
        totals = edition.totals()
        states = [(f"{url}?edition__id__exact={edition.pk}", "Due", totals["due"])] + [
            (f"{url}?edition__id__exact={edition.pk}&state__exact={value}", label, totals[value])
            for value, label in Delivery.State.choices
        ]
        return format_html_join(" · ", '<a href="{}">{} {}</a>', states)

    @admin.display(description="papers offered")
    def papers_offered(self, edition):
        """The general edition's papers (as recorded once it went out), with the votes the
        readers it was sent to gave each."""
        items = edition_items(edition)
        readers = edition.deliveries.filter(state=Delivery.State.SENT).values("subscriber_id")
        votes = Vote.objects.filter(paper__in=[item["paper"].pk for item in items], subscriber__in=readers).order_by()
        counts = {pid: (more, less) for pid, more, less in votes.values("paper").annotate(
            more=Count("pk", filter=Q(value=1)), less=Count("pk", filter=Q(value=-1))).values_list("paper", "more", "less")}
        rows = [(item["paper"].title, said(item["reason"]), *counts.get(item["paper"].pk, (0, 0))) for item in items]
        listed = format_html_join("", "<li>{} <small>· {} · {} more, {} less</small></li>", rows)
        return format_html('<ol class="wrap" style="margin:0;padding-left:1.2em">{}</ol>', listed) if rows else "—"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # nothing on it is edited: a page to read, with no Save button

    def has_delete_permission(self, request, obj=None):
        return False  # its deliveries go with it, and their readers would get the edition again


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["edition_day", "subscriber", "outcome", "sent", "note"]
    list_filter = ["state", "edition"]
    list_select_related = ["edition", "subscriber"]
    search_fields = ["message_id"]
    search_help_text = f"(Part of) a reader's address (the first {READERS_FOUND} readers found), or of a Message-ID."
    raw_id_fields = ["subscriber", "edition"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ["requeue", "resend_interrupted"]

    def get_search_results(self, request, queryset, search_term):
        """A reader's deliveries by their address, through the (edition, subscriber) index:
        deliveries have none on the subscriber alone, and a join on the address would read
        them all. Anything else is looked for in Message-IDs."""
        try:
            reader = Subscriber.objects.filter(email=email_canonical(search_term)).values_list("pk", flat=True).first()
        except ValueError:  # not an address
            reader = None
        if reader is not None:
            return queryset.of_subscribers([reader]), False
        term = search_term.strip()
        readers = list(Subscriber.objects.filter(email__icontains=term).values_list("pk", flat=True)[:READERS_FOUND]) if term else []
        by_message, _ = super().get_search_results(request, queryset, search_term)
        return (queryset.of_subscribers(readers) | by_message) if readers else by_message, False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a deleted row makes its reader eligible for that edition again

    # Short cells, so that the reason (note) stays in sight beside the filters.
    @admin.display(description="edition", ordering="edition__date")
    def edition_day(self, delivery):
        return f"{delivery.edition.date:%-d %b %Y}"

    @admin.display(description="state", ordering="state")
    def outcome(self, delivery):
        return f"{delivery.get_state_display()} ({delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''})"

    @admin.display(description="sent", ordering="sent_at")
    def sent(self, delivery):
        return f"{timezone.localtime(delivery.sent_at):%-d %b %H:%M}" if delivery.sent_at else "—"

    @admin.action(description="Send failed deliveries again…")
    def requeue(self, request, queryset):
        return self._requeue(request, queryset, "requeue", duplicates_accepted=False)

    @admin.action(description="Send failed deliveries again, those interrupted while sending too (they may arrive twice)…")
    def resend_interrupted(self, request, queryset):
        return self._requeue(request, queryset, "resend_interrupted", duplicates_accepted=True)

    def _requeue(self, request, queryset, action, duplicates_accepted):
        if request.POST.get("post") != "yes":
            plan = deliveries_requeue_plan(deliveries=queryset, duplicates_accepted=duplicates_accepted)
            return confirmation(
                request, self, queryset, action, "Send failed deliveries again?", plan=plan,
                again=sum(n for _, n, yes, _ in plan if yes), kept=sum(n for _, n, yes, _ in plan if not yes),
                not_failed=queryset.exclude(state=Delivery.State.FAILED).count(), duplicates_accepted=duplicates_accepted,
            )
        editions = list(Edition.objects.filter(deliveries__in=queryset.filter(state=Delivery.State.FAILED)).distinct())
        count = deliveries_requeue(deliveries=queryset, enqueue=enqueue_deliveries, duplicates_accepted=duplicates_accepted)
        what = "failed deliveries, those interrupted while sending too," if duplicates_accepted else "failed deliveries"
        for edition in editions:
            curation_log(request.user, edition, f"Requeued {what} ({count} in this request)")
        self.message_user(request, f"Requeued {count} failed deliveries.", messages.SUCCESS if count else messages.WARNING)


@admin.register(SubscriberEvent)
class SubscriberEventAdmin(admin.ModelAdmin):
    """The audit trail: read only, written by the services alone."""

    list_display = ["occurred_at", "kind", "subscriber", "description"]
    list_filter = ["kind"]
    list_select_related = ["subscriber"]
    search_fields = ["subscriber__email", "message_id"]
    raw_id_fields = ["subscriber"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LiftForm(forms.Form):
    why = forms.CharField(
        max_length=300, label="Why may these addresses be mailed again?",
        error_messages={"required": "Say why: it is recorded with your name."},
    )


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Never changed or deleted here: a suppression is lifted by the action, which asks why and
    records it (suppression_lift)."""

    list_display = ["email_hash", "reason", "created_at"]
    search_fields = ["email_hash"]
    search_help_text = "An address, or (the start of) its hash."
    actions = ["lift"]

    def get_search_results(self, request, queryset, search_term):
        try:  # an address is found by its hash, all that is kept of it
            return queryset.filter(email_hash=email_hash(email_canonical(search_term))), False
        except ValueError:
            return queryset.filter(email_hash__startswith=search_term.strip().lower()), False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_lift_permission(self, request):
        return request.user.has_perm("newsletter.delete_suppression")

    @admin.action(description="Lift selected suppressions (asks why)…", permissions=["lift"])
    def lift(self, request, queryset):
        form = LiftForm(request.POST if request.POST.get("post") == "yes" else None)
        if not form.is_valid():
            return confirmation(request, self, queryset, "lift", "Lift these suppressions?", form=form)
        by = f"editor {request.user.get_username()}"
        count = sum(suppression_lift(suppression=s, by=by, why=form.cleaned_data["why"]) for s in queryset)
        self.message_user(request, f"Lifted {count} suppression(s); who and why are in the subscriber events.", messages.SUCCESS)


class PaperReadersAdmin(PaperAdmin):
    """The papers list with what readers make of each paper (papers/ knows nothing of readers)."""

    list_display = [*PaperAdmin.list_display, "readers"]

    def get_queryset(self, request):
        votes = Vote.objects.filter(paper=OuterRef("pk"))
        following = Subscriber.objects.active().filter(topics__papers=OuterRef("pk"))
        return super().get_queryset(request).annotate(
            more=count_of(votes.filter(value=1)), less=count_of(votes.filter(value=-1)),
            followers=count_of(following, distinct=True),
        )

    @admin.display(description="readers", ordering="more")
    def readers(self, paper):
        return format_html(
            "{} more · {} less<br><small>{} follow its topics</small>", paper.more, paper.less, paper.followers
        )

    @admin.action(description="Feature selected papers (day and note above)")
    def feature(self, request, queryset):
        editions_record_offered()  # editions already sent keep what they offered
        return super().feature(request, queryset)

    @admin.action(description="Unfeature selected papers (the day above, or every day)")
    def unfeature(self, request, queryset):
        editions_record_offered()
        return super().unfeature(request, queryset)

    def undo_view(self, request, change_id):
        editions_record_offered()
        return super().undo_view(request, change_id)


class FeatureRecordingAdmin(FeatureAdmin):
    """Features, with the editions already sent recorded before a note changes or a feature goes."""

    def save_model(self, request, obj, form, change):
        editions_record_offered()
        super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        editions_record_offered()
        super().delete_model(request, obj)


admin.site.unregister([Paper, Feature])
admin.site.register(Paper, PaperReadersAdmin)
admin.site.register(Feature, FeatureRecordingAdmin)
