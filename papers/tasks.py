from pathlib import Path

from celery import shared_task
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from config.beat import once_per_tick
from papers.services import (days_to_fetch, papers_embed, papers_fetch_days, papers_import_feed, papers_lexical_refit,
                             papers_retag)


@shared_task
def import_papers_task(path, fmt=None):
    """Import one feed file; the scheduled twin of `manage.py import_papers`."""
    fmt, result = papers_import_feed(data=Path(path).read_bytes(), fmt=fmt)
    embed_after_commit()
    return {"format": fmt, "created": result.created, "updated": result.updated, "rejected": result.rejected}


@shared_task
@once_per_tick
def fetch_papers_task():
    """Beat: today, yesterday and any days missed while down, before the first digests."""
    today = timezone.localdate()
    runs = papers_fetch_days(last_day=today, days=days_to_fetch(today=today))
    embed_after_commit()
    return [f"{r.source} {r.day}: {r.status}" for r in runs if r]


@shared_task
def retag_papers_task(user_id=None):
    """Re-tag every paper (an editor changed a topic's rules); what changed goes to the admin log."""
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return str(papers_retag(user=user))


@shared_task
def embed_papers_task():
    """Give new and changed papers the text model's vectors (queued after each import)."""
    return papers_embed()


def embed_after_commit():
    """Embed new and changed papers in the background once an import is committed: the text
    model takes ~0.1 s of CPU a paper, too long for a request, and a sending worker never runs
    it. Idempotent: the task embeds only papers whose vector is missing or stale."""
    transaction.on_commit(embed_papers_task.delay)


@shared_task
@once_per_tick
def refit_lexical_task():
    """Beat: fit the lexical model on the papers now held (new words, new fields) and re-embed."""
    fit = papers_lexical_refit()
    return str(fit) if fit else "too few papers to fit"
