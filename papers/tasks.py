from pathlib import Path

from celery import shared_task

from papers.services import papers_import_feed


@shared_task
def import_papers_task(path, fmt=None):
    """Import one feed file; the scheduled twin of `manage.py import_papers`."""
    fmt, result = papers_import_feed(data=Path(path).read_bytes(), fmt=fmt)
    return {"format": fmt, "created": result.created, "updated": result.updated, "rejected": result.rejected}
