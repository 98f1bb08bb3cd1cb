import csv

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import StreamingHttpResponse
from django.utils import timezone

from newsletter.delivery import deliveries_requeue
from newsletter.tasks import enqueue_deliveries
from newsletter.models import Delivery, Edition, Subscriber, SubscriberEvent, Suppression
from papers.models import Topic


class Echo:
    def write(self, value):
        return value


class EventInline(admin.TabularInline):
    model = SubscriberEvent
    extra = 0
    can_delete = False
    fields = ["occurred_at", "kind", "description", "message_id"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "status", "frequency", "hour", "timezone", "created_at", "confirmed_at"]
    list_filter = ["status", "frequency", "topics", "created_at"]
    search_fields = ["email", "keywords"]
    date_hierarchy = "created_at"
    filter_horizontal = ["topics"]
    readonly_fields = [
        "next_digest_at", "created_at", "consent_at", "consent_ip", "consent_user_agent", "consent_version",
        "confirmed_at", "confirm_ip", "confirm_user_agent", "unsubscribed_at", "suppressed_at", "suppressed_reason",
    ]
    inlines = [EventInline]
    actions = ["export_csv"]
    change_list_template = "admin/newsletter/subscriber/change_list.html"

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

    @admin.action(description="Export selected subscribers as CSV")
    def export_csv(self, request, queryset):
        writer = csv.writer(Echo())
        header = ["email", "status", "frequency", "topics", "keywords", "created_at", "confirmed_at"]

        def rows():
            yield writer.writerow(header)
            for s in queryset.prefetch_related("topics").iterator(chunk_size=2000):
                topics = "; ".join(t.slug for t in s.topics.all())
                # A leading =, +, - or @ would run as a formula in a spreadsheet.
                cells = [s.email, s.status, s.frequency, topics, s.keywords, s.created_at, s.confirmed_at]
                yield writer.writerow(["'" + c if isinstance(c, str) and c[:1] in "=+-@" else c for c in cells])

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="subscribers-{timezone.now():%Y%m%d}.csv"'
        return response


@admin.register(Edition)
class EditionAdmin(admin.ModelAdmin):
    list_display = ["date", "due", "sent", "skipped", "failed", "in_progress"]
    readonly_fields = ["date", "created_at", "totals"]

    def get_queryset(self, request):
        def count(state):
            return Count("deliveries", filter=Q(deliveries__state=state))

        return super().get_queryset(request).annotate(
            due=Count("deliveries"),
            sent=count(Delivery.State.SENT),
            skipped=count(Delivery.State.SKIPPED),
            failed=count(Delivery.State.FAILED),
            pending=count(Delivery.State.PENDING),
            sending=count(Delivery.State.SENDING),
        )

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

    def totals(self, edition):
        return ", ".join(f"{k}: {v}" for k, v in edition.deliveries.totals().items())

    def has_add_permission(self, request):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["edition", "subscriber", "state", "attempts", "sent_at", "note"]
    list_filter = ["state", "edition"]
    list_select_related = ["edition", "subscriber"]
    search_fields = ["subscriber__email", "message_id"]
    raw_id_fields = ["subscriber", "edition"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ["requeue"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Send failed deliveries again")
    def requeue(self, request, queryset):
        count = deliveries_requeue(deliveries=queryset, enqueue=enqueue_deliveries)
        self.message_user(request, f"Requeued {count} failed deliveries.", messages.SUCCESS)


@admin.register(SubscriberEvent)
class SubscriberEventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "kind", "subscriber", "description"]
    list_filter = ["kind"]
    list_select_related = ["subscriber"]
    search_fields = ["subscriber__email", "message_id"]
    raw_id_fields = ["subscriber"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email_hash", "reason", "created_at"]
    search_fields = ["email_hash"]
