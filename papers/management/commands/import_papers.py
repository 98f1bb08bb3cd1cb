import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from papers.parsers import FORMATS, FeedError
from papers.services import papers_import_feed
from papers.tasks import embed_after_commit


class Command(BaseCommand):
    help = "Import papers from daily-papers JSON, arXiv Atom or plain-text listing files."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--format", choices=FORMATS, help="Skip detection and read every file as this format.")
        parser.add_argument(
            "--date",
            type=dt.date.fromisoformat,
            help="Listing day (YYYY-MM-DD) for plain-text listings; overrides the date line in the file.",
        )

    def handle(self, *args, files, format, date, **options):
        failed = False
        for path in files:
            try:
                fmt, result = papers_import_feed(data=path.read_bytes(), fmt=format, listed_on=date)
            except OSError as e:
                self.stderr.write(f"{path}: cannot read: {e.strerror}")
                failed = True
                continue
            except FeedError as e:
                self.stderr.write(f"{path}: {e}")
                failed = True
                continue
            if not (result.created or result.updated or result.unchanged or result.rejected):
                self.stderr.write(f"{path}: no papers found in it (read as {fmt})")
                failed = True
                continue
            for error in result.errors:
                self.stderr.write(f"{path}: {error}")
            self.stdout.write(f"{path} ({fmt}): {result}")
            failed = failed or result.rejected > 0
        embed_after_commit()
        if failed:
            raise CommandError("some records or files could not be imported (see above)")
