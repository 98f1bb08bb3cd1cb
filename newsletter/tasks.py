"""Celery tasks: thin wrappers that take ids, re-read state and call a service.

The only module that knows Celery tasks: fan-out and delivery are handed enqueue_deliveries().
"""

from celery import shared_task
from django.conf import settings

from config.beat import once_per_tick
from newsletter import archive, delivery, fanout, reconcile, services


def enqueue_deliveries(delivery_ids):
    """Hand deliveries to workers, a batch per task (never a task per recipient). Call after
    the rows are committed; enqueuing twice is harmless, as only pending rows are claimed."""
    size = settings.DIGEST_BATCH_SIZE
    for start in range(0, len(delivery_ids), size):
        send_deliveries_task.delay(delivery_ids[start : start + size])


@shared_task
@once_per_tick
def dispatch_digests_task():
    archive.editions_record_offered()  # editions that went out since the last run: their archive is fixed
    return fanout.digests_dispatch(enqueue=enqueue_deliveries)


@shared_task(bind=True, max_retries=None, acks_late=True)
def send_deliveries_task(self, delivery_ids):
    try:
        stats = delivery.deliveries_send(delivery_ids=delivery_ids)
    except delivery.TransientSendError as error:
        # Rows not yet sent are pending again; the retry claims only those. throw=False: the
        # retry is scheduled and this run ends cleanly (and in embedded, eager mode Celery
        # runs the retry at once, which a raised Retry would prevent).
        countdown = delivery.retry_countdown(self.request.retries)
        delivery.deliveries_await_retry(delivery_ids=delivery_ids, countdown=countdown)
        return self.retry(exc=error, countdown=countdown, throw=False)
    return {"sent": stats.sent, "skipped": stats.skipped, "failed": stats.failed}


@shared_task
@once_per_tick
def reconcile_deliveries_task():
    return reconcile.deliveries_reconcile(enqueue=enqueue_deliveries)


@shared_task
@once_per_tick
def purge_unconfirmed_task():
    return services.subscribers_purge_unconfirmed()


# Signup and "send my link" mail from here, so the form answers at once and alike for every
# address. A mail server that is down is retried (throw=False: see send_deliveries_task); a
# repeated signup changes nothing, so the retry only sends the mail.
@shared_task(bind=True, max_retries=5)
def subscriber_signup_task(self, **fields):
    try:
        services.subscriber_signup(**fields)
    except services.TRANSIENT_MAIL_ERRORS as error:
        return self.retry(exc=error, countdown=30 * 2**self.request.retries, throw=False)


@shared_task(bind=True, max_retries=5)
def subscriber_send_link_task(self, email):
    try:
        services.subscriber_send_link(email=email)
    except services.TRANSIENT_MAIL_ERRORS as error:
        return self.retry(exc=error, countdown=30 * 2**self.request.retries, throw=False)
