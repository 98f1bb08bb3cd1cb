import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from newsletter.fanout import digests_dispatch, digests_dispatch_day, digests_preview
from newsletter.models import Delivery, Edition
from newsletter.reconcile import deliveries_requeue
from newsletter.tasks import enqueue_deliveries


class Command(BaseCommand):
    help = (
        "Send digests now, synchronously in embedded mode (Celery workers in production). "
        "Without --date: everyone whose local hour has come. With --date: that day's edition to "
        "everyone scheduled that day who has not had it, whatever the hour."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", type=dt.date.fromisoformat, help="Edition day, YYYY-MM-DD.")
        parser.add_argument("--dry-run", action="store_true", help="Show what would be sent; send and change nothing.")
        parser.add_argument(
            "--resend-interrupted", action="store_true",
            help="With --date: send that edition's deliveries interrupted while sending again (their worker's host "
                 "was lost before it recorded them); some may have gone out already and arrive twice.",
        )

    def handle(self, *args, date, dry_run, resend_interrupted, **options):
        if resend_interrupted:
            if not date:
                raise CommandError("--resend-interrupted needs --date: the edition whose interrupted deliveries to send again.")
            interrupted = Delivery.objects.filter(edition__date=date, note__startswith=Delivery.INTERRUPTED)
            count = deliveries_requeue(deliveries=interrupted, enqueue=enqueue_deliveries, duplicates_accepted=True)
            self.stdout.write(f"Sent {count} interrupted deliveries again (some may arrive twice).")
            return
        if dry_run:
            counts, sample = digests_preview(day=date)
            self.stdout.write(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))
            if sample:
                subscriber, offer, picks = sample
                content = offer.renderer.content(picks)
                self.stdout.write(f"\nFor example, to {subscriber.email}:\nSubject: {content.subject}\n\n{content.text}")
            return
        started = timezone.now()
        if date:
            queued = digests_dispatch_day(day=date, enqueue=enqueue_deliveries)
        else:
            queued = digests_dispatch(enqueue=enqueue_deliveries)
        self.stdout.write(f"Queued {queued} digest(s).")
        if not date:  # what became of this run's copies (the workers may still have some)
            self.stdout.write(Delivery.objects.filter(created_at__gte=started).outcome())
        for edition in Edition.objects.filter(date=date) if date else Edition.objects.all()[:3]:
            totals = edition.totals()
            self.stdout.write(f"{edition}: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
            # Put back by a failed try, an attempt charged: sent by the next run (--date) or the reconciler.
            for why, n in edition.deliveries.waiting().items():
                self.stdout.write(f"  {n} waiting, {why}")
