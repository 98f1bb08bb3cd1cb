from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from papers.forms import PaperForm
from papers.models import Feature, FeatureChange, FetchRun, Paper, Topic, search_key
from papers.notes import cleaned_away, sanitize_note
from papers.services import feature_change_undo, feature_note_set, paper_feature, paper_tag, paper_unfeature
from papers.tasks import embed_after_commit, retag_papers_task


class FeatureActionForm(ActionForm):
    day = forms.DateField(
        required=False,
        help_text=f"Day to feature on; empty: today in {settings.TIME_ZONE}. Unfeature without a day: every day.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    # No maxlength: the one limit (what readers see) is the services' (papers.notes), and the
    # admin would drop the whole action, silently, on a form error here.
    note = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "Editor's note (optional; empty keeps the current one)"}),
    )


class FeaturedFilter(admin.SimpleListFilter):
    title = "featured"
    parameter_name = "featured"

    def lookups(self, request, model_admin):
        return [("yes", "Featured"), ("no", "Not featured")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(features__isnull=False).distinct()
        if self.value() == "no":
            return queryset.filter(features__isnull=True)
        return queryset


class FeatureInline(admin.TabularInline):
    """Features are made and removed through the actions and the Today page (which log them)."""

    model = Feature
    extra = 0
    can_delete = False
    fields = ["day", "position", "note", "featured_by", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


def today_label():
    return f"{timezone.localdate()} (today, {settings.TIME_ZONE})"


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = ["paper", "upvotes", "topic_names", "featured_on"]
    list_filter = [FeaturedFilter, "topics", "listed_on", "source"]
    search_fields = ["search_text"]
    search_help_text = "Title, author or arXiv id; case and accents do not matter."
    date_hierarchy = "listed_on"
    readonly_fields = ["topics", "source", "created_at", "updated_at"]
    form = PaperForm
    inlines = [FeatureInline]
    action_form = FeatureActionForm
    actions = ["feature", "unfeature"]
    object_history_template = "admin/papers/paper/object_history.html"

    def get_urls(self):
        undo = self.admin_site.admin_view(require_POST(self.undo_view))
        return [path("undo/<int:change_id>/", undo, name="papers_featurechange_undo"), *super().get_urls()]

    def undo_view(self, request, change_id):
        """Undo a change to the features (from a paper's History or the Today page), then go back."""
        if not request.user.has_perm("papers.change_feature"):
            raise PermissionDenied
        change = get_object_or_404(FeatureChange.objects.select_related("paper", "log"), pk=change_id)
        try:
            feature_change_undo(change=change, user=request.user)
        except ValidationError as e:
            self.message_user(request, f"Not undone: {' '.join(e.messages)}", messages.ERROR)
        else:
            self.message_user(request, f"Undone: {change.log.change_message if change.log else change}", messages.SUCCESS)
        back = request.POST.get("next", "")
        if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            return redirect(back)
        return redirect("admin:papers_paper_history", change.paper_id)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics", "features")

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, search_key(search_term))

    @admin.display(description="paper", ordering="title")
    def paper(self, paper):
        listed = f"listed {paper.listed_on:%-d %b %Y}" if paper.listed_on else "not listed"
        return format_html("{}<br><small>{} · {}</small>", paper.title, paper.arxiv_id or "no arXiv id", listed)

    @admin.display(description="topics")
    def topic_names(self, paper):
        return ", ".join(t.name for t in paper.topics.all())

    @admin.display(description="featured on")
    def featured_on(self, paper):
        days = [f.day for f in paper.features.all()]
        # A day a line: the list keeps its width beside the filters at a laptop's width.
        return mark_safe("<br>".join(f"{d:%-d %b %Y}" for d in days[:3]) + (" …" if len(days) > 3 else "")) if days else "—"  # dates only

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        paper_tag(paper=form.instance)
        embed_after_commit()  # a new title or abstract left the paper without a vector (Paper.save)

    def _action_day_and_note(self, request):
        form = FeatureActionForm(request.POST)
        form.is_valid()
        return form.cleaned_data.get("day"), form.cleaned_data.get("note", "")

    @admin.action(description="Feature selected papers (day and note above)")
    def feature(self, request, queryset):
        day, note = self._action_day_and_note(request)
        day_label = str(day) if day else today_label()
        day = day or timezone.localdate()
        try:
            for paper in queryset:
                paper_feature(paper=paper, day=day, note=note, user=request.user)
        except ValidationError as e:
            self.message_user(request, " ".join(e.messages), messages.ERROR)
            return
        kept = " (existing notes kept)" if not note else ""
        self.message_user(request, f"Featured {queryset.count()} paper(s) on {day_label}{kept}.", messages.SUCCESS)
        if note and cleaned_away(note):
            self.message_user(
                request, f"Markup that is not allowed was removed from the note; it now reads: {sanitize_note(note)}", messages.WARNING
            )

    @admin.action(description="Unfeature selected papers (the day above, or every day)")
    def unfeature(self, request, queryset):
        day, _ = self._action_day_and_note(request)
        removed = {paper: paper_unfeature(paper=paper, day=day, user=request.user) for paper in queryset}
        done = [f"{paper} ({', '.join(map(str, days))})" for paper, days in removed.items() if days]
        if not done:
            where = f"on {day}" if day else "on any day"
            self.message_user(request, f"Nothing removed: the selected papers are not featured {where}.", messages.WARNING)
            return
        self.message_user(request, f"Removed {sum(map(len, removed.values()))} feature(s): {'; '.join(done)}.", messages.SUCCESS)


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "categories", "paper_count", "position"]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug", "keywords"]
    actions = None
    change_list_template = "admin/papers/topic/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(paper_count=Count("papers"))

    @admin.display(description="papers", ordering="paper_count")
    def paper_count(self, topic):
        return topic.paper_count

    def get_urls(self):
        retag = self.admin_site.admin_view(require_POST(self.retag_view))
        return [path("retag/", retag, name="papers_topic_retag"), *super().get_urls()]

    def retag_view(self, request):
        if not self.has_change_permission(request):
            return redirect("admin:index")
        result = retag_papers_task.delay(request.user.pk)
        if result.ready():  # run at once (embedded, eager Celery)
            self.message_user(request, result.get(), messages.SUCCESS)
        else:
            self.message_user(request, "Re-tagging all papers in the background; what changed will appear in Recent actions.")
        return redirect("admin:papers_topic_changelist")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if {"keywords", "categories"} & set(form.changed_data):
            self.message_user(
                request,
                f"The rules of “{obj}” changed: papers already imported keep their topics until you re-tag them "
                "(“Re-tag all papers” on the topic list).",
                messages.WARNING,
            )


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    """A feature's note is edited (or cleared) here; features are made, reordered and removed on
    the paper list and the Today page. Every change goes through a service that logs it."""

    list_display = ["paper", "day", "position", "note", "featured_by"]
    list_filter = ["day"]
    list_select_related = ["paper", "featured_by"]
    search_fields = ["paper__title", "paper__arxiv_id", "note"]
    fields = ["paper", "day", "position", "note", "featured_by"]
    readonly_fields = ["paper", "day", "position", "featured_by"]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        feature_note_set(feature=obj, note=form.cleaned_data["note"], user=request.user)

    def delete_model(self, request, obj):
        paper_unfeature(paper=obj.paper, day=obj.day, user=request.user)

    def delete_queryset(self, request, queryset):
        for feature in queryset.select_related("paper"):
            self.delete_model(request, feature)


@admin.register(FetchRun)
class FetchRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "source", "day", "status", "created", "updated", "rejected", "requests", "short_error"]
    list_filter = ["source", "status", "day"]
    readonly_fields = [f.name for f in FetchRun._meta.fields]

    @admin.display(description="error")
    def short_error(self, run):
        return run.error[:120]

    def has_add_permission(self, request):
        return False
