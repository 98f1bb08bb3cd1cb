import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from papers.models import FetchRun
from papers.services import papers_fetch_days
from papers.tasks import embed_after_commit


class Command(BaseCommand):
    help = "Fetch the daily trending listing and arXiv metadata for one or more days, and import them."

    def add_arguments(self, parser):
        parser.add_argument("--source", choices=[*FetchRun.Source.values, "all"], default="all")
        parser.add_argument("--date", type=dt.date.fromisoformat, help="Last day to fetch (YYYY-MM-DD); default today.")
        parser.add_argument("--days", type=int, default=1, help="How many days ending at --date.")

    def handle(self, *args, source, date, days, **options):
        if days < 1:
            raise CommandError("--days must be at least 1")
        sources = None if source == "all" else [source]
        runs = papers_fetch_days(last_day=date or timezone.localdate(), days=days, sources=sources)
        embed_after_commit()
        failed = False
        for run in runs:
            if run is None:
                self.stdout.write("skipped: another run is fetching that day")
                continue
            line = f"{run.get_source_display()} {run.day}: {run.get_status_display().lower()}"
            if run.status == FetchRun.Status.FAILED:
                failed = True
                self.stderr.write(f"{line} - {run.error}")
            else:
                self.stdout.write(f"{line}, {run.created} created, {run.updated} updated, {run.rejected} rejected")
                if run.error:
                    self.stderr.write(run.error)
        if failed:
            raise CommandError("some fetches failed (see above); they are recorded in the admin")
