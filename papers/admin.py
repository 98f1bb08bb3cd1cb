from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils import timezone

from papers.models import Feature, FetchRun, Paper, Topic
from papers.services import paper_feature, paper_tag, paper_unfeature, papers_retag


class FeatureActionForm(ActionForm):
    day = forms.DateField(required=False, help_text="Day to feature on (default today)", widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(required=False, max_length=1000, widget=forms.TextInput(attrs={"size": 50, "placeholder": "Editor's note (optional, short)"}))


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
    model = Feature
    extra = 0
    fields = ["day", "note", "featured_by", "created_at"]
    readonly_fields = ["featured_by", "created_at"]


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = ["title", "arxiv_id", "listed_on", "upvotes", "topic_names", "is_featured"]
    list_filter = [FeaturedFilter, "topics", "listed_on", "source"]
    search_fields = ["title", "arxiv_id", "authors"]
    date_hierarchy = "listed_on"
    readonly_fields = ["topics", "source", "created_at", "updated_at"]
    inlines = [FeatureInline]
    action_form = FeatureActionForm
    actions = ["feature", "unfeature"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics").annotate(feature_count=Count("features"))

    @admin.display(description="topics")
    def topic_names(self, paper):
        return ", ".join(t.name for t in paper.topics.all())

    @admin.display(description="featured", boolean=True)
    def is_featured(self, paper):
        return paper.feature_count > 0

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        paper_tag(paper=form.instance)

    def _action_day_and_note(self, request):
        form = FeatureActionForm(request.POST)
        form.is_valid()
        return form.cleaned_data.get("day") or timezone.localdate(), form.cleaned_data.get("note", "")

    @admin.action(description="Feature selected papers (day and note above)")
    def feature(self, request, queryset):
        day, note = self._action_day_and_note(request)
        try:
            for paper in queryset:
                paper_feature(paper=paper, day=day, note=note, user=request.user)
        except ValidationError as e:
            self.message_user(request, " ".join(e.messages), messages.ERROR)
            return
        self.message_user(request, f"Featured {queryset.count()} paper(s) on {day}.")

    @admin.action(description="Unfeature selected papers for the day above")
    def unfeature(self, request, queryset):
        day, _ = self._action_day_and_note(request)
        removed = sum(paper_unfeature(paper=paper, day=day) for paper in queryset)
        self.message_user(request, f"Removed {removed} feature(s) on {day}.")


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "categories", "paper_count", "position"]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug", "keywords"]
    actions = ["retag"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(paper_count=Count("papers"))

    @admin.display(description="papers", ordering="paper_count")
    def paper_count(self, topic):
        return topic.paper_count

    @admin.action(description="Re-tag all papers with the current rules")
    def retag(self, request, queryset):
        self.message_user(request, f"Re-tagged {papers_retag()} papers.")


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ["paper", "day", "note", "featured_by"]
    list_filter = ["day"]
    list_select_related = ["paper", "featured_by"]
    raw_id_fields = ["paper"]
    search_fields = ["paper__title", "paper__arxiv_id", "note"]
    readonly_fields = ["featured_by"]

    def save_model(self, request, obj, form, change):
        obj.featured_by = obj.featured_by or request.user
        super().save_model(request, obj, form, change)


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
