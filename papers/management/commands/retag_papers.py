from django.core.management.base import BaseCommand

from papers.services import papers_retag


class Command(BaseCommand):
    help = "Re-assign topics to every paper, e.g. after an editor changed topic rules."

    def handle(self, *args, **options):
        self.stdout.write(str(papers_retag()))
