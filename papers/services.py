"""Business logic for papers: import, topic tagging, curation."""

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from papers import lexical, vectors
from papers.models import Feature, FeatureChange, FetchRun, LexicalFit, Paper, Topic, title_key
from papers.notes import note_as_text, validate_note
from papers.parsers import FeedError, PaperRecord, detect_format, parse, parse_text
from papers.sources import SOURCES, SourceError, arxiv_by_ids, session

log = logging.getLogger(__name__)

@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list = field(default_factory=list)

    def add_error(self, where, reason):
        self.rejected += 1
        self.errors.append(f"{where}: {reason}")

    def __str__(self):
        return (
            f"{self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.rejected} rejected"
        )


# Tagging


def topics_for(paper, topics):
    text = paper.tagging_text
    return [t for t in topics if t.matches(text, paper.categories)]


def paper_tag(*, paper, topics=None):
    """Give paper the topics whose rules match its title, abstract and categories."""
    topics = list(Topic.objects.all()) if topics is None else topics
    paper.topics.set(topics_for(paper, topics))


@dataclass
class RetagResult:
    papers: int = 0
    changed: int = 0
    added: Counter = field(default_factory=Counter)  # topic name -> papers that gained it
    removed: Counter = field(default_factory=Counter)

    def __str__(self):
        moves = [f"{name} +{self.added[name]} −{self.removed[name]}" for name in sorted(self.added | self.removed)]
        return f"Re-tagged {self.papers} papers: {self.changed} changed" + (f" ({'; '.join(moves)})" if moves else "")


def papers_retag(*, chunk_size=2000, user=None):
    """Re-tag every paper after topic rules change; returns what changed, per topic."""
    topics = list(Topic.objects.all())
    names = {t.pk: t.name for t in topics}
    result = RetagResult()
    for paper in Paper.objects.order_by("pk").prefetch_related("topics").iterator(chunk_size=chunk_size):
        before = {t.pk for t in paper.topics.all()}
        after = {t.pk for t in topics_for(paper, topics)}
        result.papers += 1
        if before != after:
            paper.topics.set(after)
            result.changed += 1
            result.added.update(names[pk] for pk in after - before)
            result.removed.update(names[pk] for pk in before - after)
    for topic in topics:
        if result.added[topic.name] or result.removed[topic.name]:
            curation_log(user, topic, f"Re-tag: +{result.added[topic.name]} papers, −{result.removed[topic.name]} papers")
    return result


def papers_embed(*, everything=False, chunk_size=500, papers=None):
    """Give papers the current vectors (papers.vectors): the text model's beside the latest
    lexical fit's, for those whose vector came from another model or fit (or none), or every
    paper; newest first, as digests offer them. A paper whose text model is current keeps its
    row of it: only the lexical part is computed again after a refit. Returns how many were
    embedded. `papers`: a queryset to embed instead of all papers (a migration passes its
    historical model's, embedded without a lexical fit: its table may not exist yet, and the
    next embedding adds it)."""
    import numpy as np

    if papers is None and not LexicalFit.objects.filter(library=lexical.library()).exists():
        # The first fit once there are papers enough, or one this scikit-learn can read (then
        # weekly: refit_lexical_task); without one the text model's rows are the vectors.
        if not _lexical_fit_new():
            LexicalFit.objects.all().delete()
    papers = Paper.objects.all() if papers is None else papers
    fit = LexicalFit.objects.order_by("-pk").only("pk", "created_at").first() if papers.model is Paper else None
    target = vectors.stored_model(fit and fit.pk)
    if not everything:
        papers = papers.exclude(vector_model=target)
    ids = list(papers.order_by("-pk").values_list("pk", flat=True))
    fitted = fit and _lexical_fit(fit.pk, fit.created_at)
    for start in range(0, len(ids), chunk_size):
        chunk = list(papers.model.objects.filter(pk__in=ids[start : start + chunk_size])
                     .only("id", "title", "abstract", "vector", "vector_model"))
        kept = {p.pk for p in chunk if p.vector_model.startswith(vectors.MODEL) and not everything}
        fresh = [p for p in chunk if p.pk not in kept]
        rows = dict(zip((p.pk for p in fresh), vectors.embeddings([(p.title, p.abstract) for p in fresh]) if fresh else []))
        rows.update((p.pk, vectors.semantic_part(p.vector)) for p in chunk if p.pk in kept)
        semantic = np.stack([rows[p.pk] for p in chunk])
        lexical_rows = lexical.transform(fitted, [(p.title, p.abstract) for p in chunk]) if fitted else None
        with transaction.atomic():
            for paper, row in zip(chunk, vectors.combined(semantic, lexical_rows)):
                # Only if the text is still the one embedded: one edited meanwhile waits for the next run.
                papers.model.objects.filter(pk=paper.pk, title=paper.title, abstract=paper.abstract).update(
                    vector=row.tobytes(), vector_model=target)
    return len(ids)


@lru_cache(maxsize=1)
def _lexical_fit(pk, created_at):
    """The fitted lexical model (unpickled once per process and fit)."""
    return lexical.loads(LexicalFit.objects.get(pk=pk).data)


def papers_lexical_refit():
    """Fit the lexical model on the latest papers held (once there are enough), keep only
    that fit, and give every paper its new vectors. Returns the fit, or None."""
    fit = _lexical_fit_new()
    if fit:
        papers_embed()
    return fit


def _lexical_fit_new(latest=lexical.PAPERS_FITTED):
    pairs = list(Paper.objects.order_by("-pk").values_list("title", "abstract")[:latest])
    if len(pairs) < lexical.MIN_PAPERS:
        return None
    try:
        fitted = lexical.fit(pairs)
    except ValueError as e:  # no word in enough papers, and few enough, to weigh ("no terms remain")
        log.warning("lexical model not fitted on %s papers: %s", len(pairs), e)
        return None
    fit = LexicalFit.objects.create(papers=len(pairs), library=lexical.library(), data=lexical.dumps(fitted))
    LexicalFit.objects.filter(pk__lt=fit.pk).delete()
    return fit


# Import


def _find_existing(record):
    if record.arxiv_id:
        by_id = Paper.objects.filter(arxiv_id=record.arxiv_id).first()
        if by_id:
            return by_id
        # A paper first seen in a listing without identifiers gets its identifier now.
        return Paper.objects.filter(title_key=title_key(record.title), arxiv_id=None).first()
    return Paper.objects.filter(title_key=title_key(record.title)).first()


def _apply(paper, record):
    """Copy what the record knows onto paper; returns True if anything changed."""
    changes = {
        "arxiv_id": record.arxiv_id or paper.arxiv_id,
        "title": record.title,
        "abstract": record.abstract or paper.abstract,
        "authors": record.authors or paper.authors,
        "categories": record.categories or paper.categories,
        "published_on": record.published_on or paper.published_on,
        "pdf_link": record.pdf_link or paper.pdf_link,
        "upvotes": paper.upvotes if record.upvotes is None else record.upvotes,
        # The first day a paper trended: listed again later (or in a page of several days) it stays put.
        "listed_on": min(filter(None, [paper.listed_on, record.listed_on]), default=None),
    }
    changed = False
    for name, value in changes.items():
        if getattr(paper, name) != value:
            setattr(paper, name, value)
            changed = True
    return changed


def paper_upsert(*, record: PaperRecord, source, topics):
    """Create or update the paper a record describes; returns 'created', 'updated' or 'unchanged'."""
    with transaction.atomic():
        paper = _find_existing(record)
        created = paper is None
        if created:
            paper = Paper(source=source)
        if not _apply(paper, record) and not created:
            return "unchanged"
        paper.full_clean(exclude=["topics"])
        paper.save()
        paper_tag(paper=paper, topics=topics)
    return "created" if created else "updated"


def papers_import(*, items, source):
    """Import parsed feed items; bad records are reported by position and the rest still import."""
    result = ImportResult()
    topics = list(Topic.objects.all())
    for item in items:
        ref = item.record.arxiv_id if item.record else item.ref
        where = f"record {item.position}" + (f" ({ref})" if ref else "")
        if item.error:
            result.add_error(where, item.error)
            continue
        try:
            outcome = paper_upsert(record=item.record, source=source, topics=topics)
        except ValidationError as e:
            result.add_error(where, "; ".join(f"{k}: {' '.join(v)}" for k, v in e.message_dict.items()))
            continue
        setattr(result, outcome, getattr(result, outcome) + 1)
    return result


# Curation


def curation_log(user, obj, message, flag=CHANGE):
    """An editor's change in the admin's log (Recent actions, the object's History), where it
    can be traced and undone; without a user (shell, scheduled job) in the application log."""
    if user is None:
        log.info("%s: %s", obj, message)
        return
    LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        action_flag=flag,
        change_message=message,
    )


def _feature_change(user, kind, paper, day, message, **data):
    """Record a change to the features: as data (FeatureChange: what Undo and an empty note
    read) and, for an editor, in words in the admin's log, where Recent actions shows the
    words themselves (the paper's title alone would read as if the paper were added or deleted)."""
    entry = None
    if user is None:
        log.info("%s", message)
    else:
        entry = LogEntry.objects.create(
            user=user, content_type=ContentType.objects.get_for_model(Paper), object_id=str(paper.pk),
            object_repr=message[:200], action_flag=CHANGE, change_message=message,
        )
    return FeatureChange.objects.create(kind=kind, paper=paper, day=day, log=entry, **data)


def _quoted(note):
    return f"“{note_as_text(note)}”" if note else "no note"


def paper_feature(*, paper, day, note="", user=None):
    """Feature paper on day, after the day's other features. An empty note keeps the paper's
    note of that day: the feature's, or the one it had when last unfeatured from that day
    (re-featuring to move a paper, or after an unfeature, must not erase it)."""
    if note:
        validate_note(note)
    with transaction.atomic():
        feature = Feature.objects.select_for_update().filter(paper=paper, day=day).first()
        created = feature is None
        before = "" if created else feature.note
        if created:
            last = Feature.objects.filter(day=day).aggregate(last=Max("position"))["last"]
            feature = Feature(paper=paper, day=day, featured_by=user, position=0 if last is None else last + 1)
            if not note:
                note = FeatureChange.objects.notes().filter(paper=paper, day=day).values_list("note", flat=True).first() or ""
        if note:
            feature.note = note
        feature.save()
        if created:
            with_note = f" with the note {_quoted(feature.note)}" if feature.note else ""
            _feature_change(user, FeatureChange.Kind.FEATURED, paper, day, f"Featured “{paper}” on {day}{with_note}", note=feature.note)
        elif feature.note != before:
            _note_changed(user, feature, before)
    return feature


def paper_unfeature(*, paper, day=None, user=None):
    """Remove paper's feature on day, or on every day it is featured; returns the days removed.
    The change keeps each note, so an unfeature can be undone."""
    features = list(paper.features.filter(day=day) if day else paper.features.all())
    for feature in features:
        feature.delete()
        had = f" (its note was {_quoted(feature.note)})" if feature.note else ""
        _feature_change(user, FeatureChange.Kind.UNFEATURED, paper, feature.day, f"Unfeatured “{paper}” from {feature.day}{had}",
                        note=feature.note)
    return sorted(f.day for f in features)


def _note_changed(user, feature, before):
    message = f"Note on “{feature.paper}” ({feature.day}) changed from {_quoted(before)} to {_quoted(feature.note)}"
    _feature_change(user, FeatureChange.Kind.NOTE, feature.paper, feature.day, message, note=feature.note, note_before=before)


def feature_note_set(*, feature, note, user=None):
    """Replace a feature's note (empty clears it), recorded with the note it had."""
    validate_note(note)
    before = Feature.objects.filter(pk=feature.pk).values_list("note", flat=True).first()  # as stored, not as edited
    feature.note = note
    feature.save(update_fields=["note"])
    if feature.note != before:
        _note_changed(user, feature, before)
    return feature


def features_reorder(*, day, paper_ids, user=None):
    """Put the day's features in this order (papers not listed keep theirs, after these)."""
    features = {f.paper_id: f for f in Feature.objects.filter(day=day).select_related("paper")}
    before = list(features)  # in their current order (Feature's ordering)
    order = [pid for pid in paper_ids if pid in features] + [pid for pid in features if pid not in paper_ids]
    for position, pid in enumerate(order):
        features[pid].position = position
    Feature.objects.bulk_update(features.values(), ["position"])
    if order != before:
        titles = ", ".join(str(features[pid].paper) for pid in order)
        _feature_change(user, FeatureChange.Kind.REORDERED, features[order[0]].paper, day, f"Reordered {day}: {titles}",
                        order=order, order_before=before)
    return [features[pid] for pid in order]


def feature_change_undo(*, change, user=None):
    """Undo a change to the features through the services that made it (so the undo is
    recorded, and can be undone in turn). Refused, with the reason, when the features have
    moved on since in a way the undo would overwrite."""
    Kind = FeatureChange.Kind
    feature = Feature.objects.filter(paper=change.paper, day=change.day).select_related("paper").first()
    if change.kind == Kind.FEATURED:
        if feature is None:
            raise ValidationError(f"“{change.paper}” is not featured on {change.day} any more.")
        paper_unfeature(paper=change.paper, day=change.day, user=user)
    elif change.kind == Kind.UNFEATURED:
        if feature is not None:
            raise ValidationError(f"“{change.paper}” is featured on {change.day} again already.")
        paper_feature(paper=change.paper, day=change.day, note=change.note, user=user)
    elif change.kind == Kind.NOTE:
        if feature is None or feature.note != change.note:
            raise ValidationError(f"The note on “{change.paper}” ({change.day}) has changed since: undo the later change first.")
        feature_note_set(feature=feature, note=change.note_before, user=user)
    elif change.kind == Kind.REORDERED:
        if list(Feature.objects.filter(day=change.day).values_list("paper_id", flat=True)) != change.order:
            raise ValidationError(f"The features of {change.day} have changed since: undo the later changes first.")
        features_reorder(day=change.day, paper_ids=change.order_before, user=user)


SOURCE_BY_FORMAT = {"json": Paper.Source.DAILY, "atom": Paper.Source.ARXIV, "text": Paper.Source.TEXT}


def papers_import_feed(*, data, fmt=None, listed_on=None):
    """Import a whole feed (bytes); returns (format, ImportResult). Raises FeedError if unreadable."""
    fmt = fmt or detect_format(data)
    items = parse_text(data, listed_on=listed_on) if fmt == "text" else parse(data, fmt)
    return fmt, papers_import(items=items, source=SOURCE_BY_FORMAT[fmt])


# Fetching from the paper sources

FETCH_STALE_AFTER = dt.timedelta(hours=1)  # a 'running' run older than this died with its worker
PAPER_SOURCE = {
    FetchRun.Source.DAILY: Paper.Source.DAILY,
    FetchRun.Source.ARXIV: Paper.Source.ARXIV,
    FetchRun.Source.WATCH: Paper.Source.ARXIV,
}


def _claim_run(source, day):
    """A 'running' record for (source, day), or None if another run holds it."""
    FetchRun.objects.filter(
        source=source, day=day, status=FetchRun.Status.RUNNING, started_at__lt=timezone.now() - FETCH_STALE_AFTER
    ).update(status=FetchRun.Status.FAILED, finished_at=timezone.now(), error="abandoned: the run never finished")
    try:
        with transaction.atomic():
            return FetchRun.objects.create(source=source, day=day)
    except IntegrityError:
        return None


def papers_fetch(*, source, day, http=None):
    """Fetch one source for one day and import what it gives. Never raises for a bad answer:
    the run records it. Returns the run, or None if an overlapping run holds that day."""
    run = _claim_run(source, day)
    if run is None:
        log.info("fetch of %s for %s skipped: another run is under way", source, day)
        return None
    previous = (
        FetchRun.objects.filter(source=source, day=day, status=FetchRun.Status.SUCCESS).exclude(pk=run.pk).first()
    )
    try:
        items = SOURCES[source].fetch(http or session(), day, run, previous)
        if items is None:
            run.status = FetchRun.Status.NOT_MODIFIED
        else:
            result = papers_import(items=items, source=PAPER_SOURCE[source])
            run.created, run.updated, run.rejected = result.created, result.updated, result.rejected
            run.error = "\n".join(result.errors)[:5000]
            run.status = FetchRun.Status.SUCCESS
    except (SourceError, FeedError) as e:
        run.status, run.error = FetchRun.Status.FAILED, str(e)[:5000]
    except Exception as e:  # noqa: BLE001 - a scheduled job must record, not crash the beat
        log.exception("fetch of %s for %s failed", source, day)
        run.status, run.error = FetchRun.Status.FAILED, f"unexpected error: {e!r}"[:5000]
    run.finished_at = timezone.now()
    run.save()
    if run.status == FetchRun.Status.FAILED:
        last = FetchRun.objects.last_success(source)
        if last is None:
            log.error("source %s has never succeeded; last error: %s", source, run.error)
        elif last.finished_at < timezone.now() - dt.timedelta(days=1):
            log.error("source %s has not succeeded for more than a day; last error: %s", source, run.error)
    return run


def papers_fetch_days(*, last_day, days, sources=None):
    """Fetch the `days` days ending at last_day, oldest first; the category watch (not per
    day) runs once, for last_day. Returns the runs."""
    sources = sources or list(FetchRun.Source.values)
    http = session()
    runs = []
    for offset in range(days - 1, -1, -1):
        day = last_day - dt.timedelta(days=offset)
        for source in sources:
            if source == FetchRun.Source.WATCH and day != last_day:
                continue
            runs.append(papers_fetch(source=source, day=day, http=http))
    return runs


def papers_fetch_arxiv(*, arxiv_ids, http=None):
    """Import the papers with these arXiv ids from arXiv (not listed on any day: they are
    known, not trending). Returns {arxiv id: paper} of those arXiv knows. Raises SourceError
    or FeedError when arXiv cannot be read; the caller may try again."""
    items = arxiv_by_ids(http or session(), list(arxiv_ids))
    result = papers_import(items=items, source=Paper.Source.ARXIV)
    if result.errors:
        log.warning("arXiv entries rejected: %s", "; ".join(result.errors))
    # Now, not after the commit: a seed is a like, and a like without a vector teaches nothing.
    papers_embed(papers=Paper.objects.filter(arxiv_id__in=list(arxiv_ids)))
    return Paper.objects.in_bulk(list(arxiv_ids), field_name="arxiv_id")


def days_to_fetch(*, today):
    """Today and yesterday (the listing grows during the day), plus any days missed while
    the service was down, up to FETCH_CATCH_UP_DAYS."""
    last = FetchRun.objects.last_success(FetchRun.Source.DAILY)
    missed = (today - last.day).days + 1 if last else settings.FETCH_CATCH_UP_DAYS
    return max(2, min(missed, settings.FETCH_CATCH_UP_DAYS))
