import datetime as dt

from django import template
from django.utils import timezone

from papers.models import FetchRun

register = template.Library()


@register.inclusion_tag("admin/papers/source_health.html")
def source_health():
    """Last success per source on the admin index; a source failing for over a day stands out."""
    now = timezone.now()
    rows = []
    for source, label in FetchRun.Source.choices:
        last = FetchRun.objects.last_success(source)
        latest = FetchRun.objects.filter(source=source).first()
        stale = last is not None and latest is not None and last.finished_at < now - dt.timedelta(days=1)
        never = last is None and latest is not None and latest.status == FetchRun.Status.FAILED
        rows.append({"label": label, "last": last, "latest": latest, "stale": stale, "never": never})
    return {"rows": rows}
