"""Celery tasks: thin wrappers that take ids, re-read state and call a service.

The only module that knows Celery tasks: fan-out and delivery are handed enqueue_deliveries().
"""

from celery import shared_task
from django.conf import settings

from config.beat import once_per_tick
from newsletter import archive, delivery, fanout, reconcile, services
from newsletter.mailerrors import is_transient


def enqueue_deliveries(delivery_ids):
    """Hand deliveries to workers, a batch per task (never a task per recipient). Call after
    the rows are committed; enqueuing twice is harmless, as only pending rows are claimed."""
    size = settings.DIGEST_BATCH_SIZE
    for start in range(0, len(delivery_ids), size):
        send_deliveries_task.delay(delivery_ids[start : start + size])


@shared_task
@once_per_tick
def dispatch_digests_task():
    return fanout.digests_dispatch(enqueue=enqueue_deliveries)


# Its own beat entry, apart from dispatching: an archive that cannot be recorded must not stop
# a single digest.
@shared_task
def record_offered_task():
    return archive.editions_record_offered()  # editions that went out since the last run: their archive is fixed


# In embedded (eager) mode there is no worker to run a retry later: Celery runs it at once,
# nested in this run (a server that was down recursed until Python gave up). So a few, then
# the rows wait, their attempts charged, for the next send_digests or the reconciler.
EAGER_RETRIES = 2


@shared_task(bind=True, max_retries=None, acks_late=True)
def send_deliveries_task(self, delivery_ids):
    try:
        stats = delivery.deliveries_send(delivery_ids=delivery_ids)
    except delivery.TransientSendError as error:
        if self.request.is_eager and self.request.retries >= EAGER_RETRIES:
            return {"waiting": str(error)}
        # Rows not yet sent are pending again; the retry claims only those. throw=False: the
        # retry is scheduled and this run ends cleanly.
        countdown = delivery.retry_countdown(self.request.retries)
        delivery.deliveries_await_retry(delivery_ids=delivery_ids, countdown=countdown)
        return self.retry(exc=error, countdown=countdown, throw=False)
    return {"sent": stats.sent, "skipped": stats.skipped, "failed": stats.failed}


@shared_task
@once_per_tick
def takeover_deliveries_task():
    return reconcile.deliveries_takeover(enqueue=enqueue_deliveries)


@shared_task
@once_per_tick
def reconcile_deliveries_task():
    return reconcile.deliveries_reconcile(enqueue=enqueue_deliveries)


@shared_task
@once_per_tick
def purge_unconfirmed_task():
    return services.subscribers_purge_unconfirmed()


# Signup and "send my link" mail from here, so the form answers at once and alike for every
# address. A mail server that is down is retried (throw=False: see send_deliveries_task), any
# other error is raised as it is; a repeated signup changes nothing, so the retry only sends the mail.
def _mail_retried(task, send, **fields):
    try:
        send(**fields)
    except Exception as error:  # noqa: BLE001 - classified, re-raised unless transient
        if not is_transient(error):
            raise
        return task.retry(exc=error, countdown=30 * 2**task.request.retries, throw=False)


@shared_task(bind=True, max_retries=5)
def subscriber_signup_task(self, **fields):
    return _mail_retried(self, services.subscriber_signup, **fields)


@shared_task(bind=True, max_retries=5)
def subscriber_send_link_task(self, email):
    return _mail_retried(self, services.subscriber_send_link, email=email)


@shared_task(bind=True, max_retries=5)
def subscriber_send_data_link_task(self, subscriber_id):
    return _mail_retried(self, services.subscriber_send_data_link, subscriber_id=subscriber_id)


@shared_task
def subscriber_seeds_fetch_task(subscriber_id):
    """A reader's seeded arXiv ids not known here, fetched from arXiv in the background."""
    return services.subscriber_seeds_fetch(subscriber_id=subscriber_id)
