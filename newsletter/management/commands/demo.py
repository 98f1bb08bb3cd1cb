from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from newsletter.models import Subscriber
from newsletter.services import subscriber_confirm, subscriber_signup
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
        paper_feature(paper=top, day=day, note="<b>Start here</b> today: one clear idea, carefully tested.")
        for email, slugs, keywords in READERS:
            self._subscribe(email, Topic.objects.filter(slug__in=slugs), keywords)
        self.stdout.write(f"\nFeatured {top.title!r} on {day}.")
        self.stdout.write(f"Assembling and sending the edition of {day}:")
        call_command("send_digests", date=day, stdout=self.stdout)
        self.stdout.write(f"\nMail written to the local mail sink: {settings.EMAIL_FILE_PATH}")
        for path in sorted(Path(settings.EMAIL_FILE_PATH).glob("*.log")):
            kind = "digests" if b"List-Unsubscribe:" in path.read_bytes() else "confirmations and reminders"
            self.stdout.write(f"  {path} ({kind})")

    def _subscribe(self, email, topics, keywords):
        """As a reader would: sign up, then confirm (the confirmation mail goes to the sink too).
        A demo reader from an earlier run is left as they are: one who unsubscribed stays so."""
        if Subscriber.objects.filter(email=email).exists():
            self.stdout.write(f"Demo reader {email} exists already; left as is.")
            return
        subscriber_signup(email=email, topic_ids=[t.pk for t in topics], keywords=keywords)
        subscriber_confirm(subscriber=Subscriber.objects.get(email=email))
        self.stdout.write(f"Demo reader {email} signed up and confirmed.")
