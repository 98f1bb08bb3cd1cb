import re
import unicodedata
from functools import cached_property

from django.conf import settings
from django.db import models
from django.db.models import DEFERRED
from django.urls import reverse

from papers.arxiv_ids import validate_arxiv_id
from papers.notes import NOTE_MAX_STORED, sanitize_note, validate_note
from papers.vectors import SIMILAR_FLOOR, most_similar, stored_model


def title_key(title):
    """A paper's title folded for matching listings that carry no identifier."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()[:200]


def author_key(name):
    """An author's name folded for matching: case- and accent-insensitive ("Zoë" = "zoe")."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(text.casefold().split())


def search_key(*texts):
    """Texts folded for the admin's search, stored in a column: "LÓPEZ", "López" and "lopez"
    match alike on SQLite and PostgreSQL (LIKE folds neither accents nor, on SQLite, non-ASCII case)."""
    text = unicodedata.normalize("NFKD", "\n".join(texts).casefold())
    return "".join(c for c in text if not unicodedata.combining(c))


class Topic(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True)
    keywords = models.TextField(
        blank=True,
        help_text="One word or phrase per line, matched case-insensitively as whole words "
        "in the title and abstract.",
    )
    categories = models.CharField(
        max_length=300, blank=True, help_text="arXiv categories separated by spaces, e.g. cs.CV cs.RO"
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name

    def keyword_list(self):
        return [line.strip() for line in self.keywords.splitlines() if line.strip()]

    def category_set(self):
        return set(self.categories.replace(",", " ").split())

    @cached_property
    def pattern(self):
        phrases = sorted(self.keyword_list(), key=len, reverse=True)
        if not phrases:
            return None
        alternatives = "|".join(re.escape(p).replace(r"\ ", r"[\s\-]+") for p in phrases)
        return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def matches(self, text, categories):
        if self.category_set() & set(categories):
            return True
        return bool(self.pattern and self.pattern.search(text))


class PaperQuerySet(models.QuerySet):
    def listed_on(self, day):
        return self.filter(listed_on=day)

    def listing_days(self):
        return self.exclude(listed_on=None).order_by("-listed_on").values_list("listed_on", flat=True).distinct()

    def latest_day(self):
        return self.listing_days().first()

    def trending(self):
        return self.order_by("-upvotes", "-published_on", "-id")


class Paper(models.Model):
    class Source(models.TextChoices):
        DAILY = "daily", "Daily papers listing"
        ARXIV = "arxiv", "arXiv"
        TEXT = "text", "Plain-text listing"
        ADMIN = "admin", "Entered by an editor"

    arxiv_id = models.CharField(
        "arXiv id", max_length=40, unique=True, null=True, blank=True, validators=[validate_arxiv_id]
    )
    title = models.CharField(max_length=500)
    title_key = models.CharField(max_length=200, db_index=True, editable=False)
    authors = models.JSONField(default=list, blank=True, help_text="Author names, in order.")
    abstract = models.TextField(blank=True)
    categories = models.JSONField(default=list, blank=True, help_text="arXiv categories, primary first.")
    published_on = models.DateField(null=True, blank=True)
    listed_on = models.DateField(
        null=True, blank=True, db_index=True, help_text="The first day the paper was listed as trending."
    )
    upvotes = models.PositiveIntegerField(default=0)
    search_text = models.TextField(blank=True, editable=False, help_text="Title, authors and arXiv id, folded (search_key).")
    pdf_link = models.URLField("PDF link", blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.ADMIN)
    topics = models.ManyToManyField(Topic, blank=True, related_name="papers")
    vector = models.BinaryField(default=b"", blank=True, editable=False, help_text="Text vector (papers.vectors).")
    vector_model = models.CharField(max_length=100, blank=True, editable=False, help_text="The model that made `vector`.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PaperQuerySet.as_manager()

    class Meta:
        ordering = ["-listed_on", "-upvotes", "-id"]

    def __str__(self):
        return self.title

    @classmethod
    def from_db(cls, db, field_names, values):
        paper = super().from_db(db, field_names, values)
        # The text its stored vector was made from; a field not loaded is as stored.
        paper._embedded_text = tuple(paper.__dict__.get(name, DEFERRED) for name in ("title", "abstract"))
        return paper

    def save(self, *args, **kwargs):
        self.title_key = title_key(self.title)
        self.search_text = search_key(self.title, *self.authors, self.arxiv_id or "")
        # A new text needs a new vector: none until the background task embeds it
        # (papers.services.papers_embed), as the text model is too slow to run here.
        embedded = getattr(self, "_embedded_text", None)
        text = (self.title, self.abstract)
        if embedded is None or any(old is not DEFERRED and old != new for old, new in zip(embedded, text)):
            self.vector, self.vector_model = b"", ""
        super().save(*args, **kwargs)
        self._embedded_text = text

    def get_absolute_url(self):
        if self.arxiv_id:
            return reverse("papers:detail", args=[self.arxiv_id])
        return reverse("papers:detail_by_pk", args=[self.pk])

    @property
    def abs_url(self):
        return f"https://arxiv.org/abs/{self.arxiv_id}" if self.arxiv_id else ""

    @property
    def pdf_url(self):
        if self.pdf_link:
            return self.pdf_link
        return f"https://arxiv.org/pdf/{self.arxiv_id}" if self.arxiv_id else ""

    @property
    def authors_display(self):
        if len(self.authors) > 4:
            return ", ".join(self.authors[:3]) + f" and {len(self.authors) - 3} others"
        return ", ".join(self.authors)

    @property
    def tagging_text(self):
        return f"{self.title}\n{self.abstract}"

    def similar(self, n=5):
        """Up to n papers closest in text (cosine on the vectors), among recent ones, and only
        those close enough to be on the same subject (SIMILAR_FLOOR): fewer rather than wrong."""
        if not self.vector_model:
            return []
        recent = Paper.objects.exclude(pk=self.pk).filter(vector_model=self.vector_model).order_by("-listed_on", "-id")
        pool = list(recent.only("id", "arxiv_id", "title", "authors", "upvotes", "listed_on", "vector")[:2000])
        found = most_similar(self.vector, [p.vector for p in pool], n, floor=SIMILAR_FLOOR)
        return [(pool[i], score) for i, score in found]


class FeatureQuerySet(models.QuerySet):
    def between(self, first_day, last_day):
        return self.filter(day__gte=first_day, day__lte=last_day)


class Feature(models.Model):
    """An editor's pick: shown on top of every subscriber's next digest."""

    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="features")
    day = models.DateField(db_index=True)
    note = models.CharField(
        max_length=NOTE_MAX_STORED, blank=True, validators=[validate_note], help_text="Short; plain text or simple markup (sanitised)."
    )
    featured_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The editor's order within a day: on the site, in the digest and on the Today page.
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FeatureQuerySet.as_manager()

    class Meta:
        ordering = ["-day", "position", "created_at"]
        constraints = [models.UniqueConstraint(fields=["paper", "day"], name="one_feature_per_paper_and_day")]

    def __str__(self):
        return f"{self.paper} on {self.day}"

    def save(self, *args, **kwargs):
        # Sanitised on every path (admin, services, shell): templates render it as markup.
        self.note = sanitize_note(self.note)
        super().save(*args, **kwargs)


class FeatureChangeQuerySet(models.QuerySet):
    def notes(self):
        """The changes that say what a paper's note on a day was, newest first."""
        return self.exclude(kind=FeatureChange.Kind.REORDERED)


class FeatureChange(models.Model):
    """A change to a day's features, kept as data beside the admin log's words: what Undo
    reverses, and the note a removed feature had (featuring it again with an empty note keeps it)."""

    class Kind(models.TextChoices):
        FEATURED = "featured", "Featured"
        UNFEATURED = "unfeatured", "Unfeatured"
        NOTE = "note", "Note changed"
        REORDERED = "reordered", "Reordered"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="feature_changes", help_text="For a reorder, the first paper.")
    day = models.DateField()
    note = models.CharField(max_length=NOTE_MAX_STORED, blank=True, help_text="The note after the change; for an unfeature, the note it had.")
    note_before = models.CharField(max_length=NOTE_MAX_STORED, blank=True)
    order = models.JSONField(null=True, blank=True, help_text="A reorder: the day's paper ids after it, and before.")
    order_before = models.JSONField(null=True, blank=True)
    log = models.OneToOneField("admin.LogEntry", null=True, blank=True, on_delete=models.SET_NULL, related_name="feature_change")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FeatureChangeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["paper", "day"])]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.paper_id} on {self.day}"


class FetchRunQuerySet(models.QuerySet):
    def last_success(self, source):
        return self.filter(source=source, status=FetchRun.Status.SUCCESS).order_by("-finished_at").first()


class FetchRun(models.Model):
    """One fetch of one source for one day: what came in, and what went wrong."""

    class Source(models.TextChoices):
        DAILY = "daily", "Daily papers listing"
        ARXIV = "arxiv", "arXiv enrichment"
        WATCH = "watch", "arXiv category watch"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        NOT_MODIFIED = "not_modified", "Not modified"
        FAILED = "failed", "Failed"

    source = models.CharField(max_length=10, choices=Source.choices)
    day = models.DateField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    etag = models.CharField(max_length=200, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)

    objects = FetchRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # The claim that keeps two overlapping runs from importing the same day twice.
            models.UniqueConstraint(
                fields=["source", "day"], condition=models.Q(status="running"), name="one_running_fetch_per_source_day"
            )
        ]

    def __str__(self):
        return f"{self.get_source_display()} {self.day}: {self.status}"


class LexicalFitQuerySet(models.QuerySet):
    def vector_model(self):
        """The Paper.vector_model of current vectors: the text model's beside the latest fit's.
        Vectors of another model or fit are not comparable with them (other rows, other bases)."""
        return stored_model(self.order_by("-pk").values_list("pk", flat=True).first())


class LexicalFit(models.Model):
    """The lexical model (papers/lexical.py) fitted on the papers held at `created_at`: the
    latest is what papers' vectors combine with their text model's (papers.services.papers_embed)."""

    created_at = models.DateTimeField(auto_now_add=True)
    papers = models.PositiveIntegerField(help_text="How many papers it was fitted on.")
    library = models.CharField(max_length=40, help_text="The scikit-learn that fitted it: another may not read it.")
    data = models.BinaryField(help_text="The fitted vectoriser and projection (papers.lexical.dumps).")

    objects = LexicalFitQuerySet.as_manager()

    class Meta:
        get_latest_by = "pk"

    def __str__(self):
        return f"lexical fit {self.pk} ({self.papers} papers)"
