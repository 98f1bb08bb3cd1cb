from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from newsletter.models import Subscriber
from newsletter.services import schedule_next
from papers.models import Paper, Topic
from papers.services import paper_feature

SAMPLE = settings.BASE_DIR / "sample"
READERS = [
    ("ada@example.org", ["reinforcement-learning", "robotics"], ""),
    ("grace@example.org", ["quantization-compression"], "LLM, distillation"),
    ("alan@example.org", [], ""),
]


class Command(BaseCommand):
    help = "Load the sample papers, feature one, subscribe three readers and send them a digest (to var/mail)."

    def add_arguments(self, parser):
        parser.add_argument("--sample", type=Path, default=SAMPLE, help="Folder with the sample feeds.")

    def handle(self, *args, sample, **options):
        files = sorted(sample.glob("daily_papers_*.json")) + [sample / "daily-papers-page.txt"]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise CommandError(f"sample files not found: {', '.join(missing)}")
        call_command("import_papers", *files, stdout=self.stdout, stderr=self.stderr)
        day = Paper.objects.latest_day()
        top = Paper.objects.listed_on(day).trending().first()
        paper_feature(paper=top, day=day, note="Editor's pick: <b>start here</b> today.")
        for email, slugs, keywords in READERS:
            reader, _ = Subscriber.objects.update_or_create(
                email=email, defaults={"status": Subscriber.Status.ACTIVE, "keywords": keywords, "confirmed_at": timezone.now()}
            )
            schedule_next(reader)
            reader.save()
            reader.topics.set(Topic.objects.filter(slug__in=slugs))
        self.stdout.write(f"\nFeatured {top.title!r} on {day}; {len(READERS)} demo readers subscribed.")
        self.stdout.write(f"Assembling and sending the edition of {day}:")
        call_command("send_digests", date=day, stdout=self.stdout)
        self.stdout.write(f"\nDigests written to the local mail sink: {settings.EMAIL_FILE_PATH}")
        for path in sorted(Path(settings.EMAIL_FILE_PATH).glob("*.log"))[-3:]:
            self.stdout.write(f"  {path}")
