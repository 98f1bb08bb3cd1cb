import datetime as dt

from django import template
from django.conf import settings
from django.utils import timezone

from papers.models import FetchRun

register = template.Library()


def configured(source):
    # The category watch fetches nothing (and reports success) until categories are set.
    return source != FetchRun.Source.WATCH or bool(settings.ARXIV_CATEGORIES)


@register.inclusion_tag("admin/papers/source_health.html")
def source_health():
    """Last success per source on the admin index; a source failing for over a day, or that
    never succeeded, stands out."""
    now = timezone.now()
    rows = []
    for source, label in FetchRun.Source.choices:
        last = FetchRun.objects.last_success(source)
        latest = FetchRun.objects.filter(source=source).first()
        failing = latest is not None and latest.status == FetchRun.Status.FAILED
        rows.append({
            "label": label,
            "source": source,
            "configured": configured(source),
            "last": last,
            "latest": latest,
            "never": failing and last is None,
            "stale": failing and last is not None and last.finished_at < now - dt.timedelta(days=1),
        })
    return {"rows": rows}
