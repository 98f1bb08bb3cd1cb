from django.core.management.base import BaseCommand

from papers.services import papers_embed
from papers.vectors import MODEL


class Command(BaseCommand):
    help = (
        "Compute papers' text vectors with the current model (papers.vectors): those made by another "
        "model or missing, or every paper with --all. Run after upgrading to a new text model."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="re-embed every paper, whatever model made its vector")

    def handle(self, *args, **options):
        count = papers_embed(everything=options["all"])
        self.stdout.write(f"Embedded {count} papers with {MODEL}.")
