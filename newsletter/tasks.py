"""Celery tasks: thin wrappers that take ids, re-read state and call a service."""

from celery import shared_task

from newsletter import archive, delivery, digests, services


@shared_task
def dispatch_digests_task():
    archive.editions_record_offered()  # editions that went out since the last run: their archive is fixed
    return digests.digests_dispatch()


@shared_task(bind=True, max_retries=None, acks_late=True)
def send_deliveries_task(self, delivery_ids):
    try:
        stats = delivery.deliveries_send(delivery_ids=delivery_ids)
    except delivery.TransientSendError as error:
        # Rows not yet sent are pending again; the retry claims only those. throw=False: the
        # retry is scheduled and this run ends cleanly (and in embedded, eager mode Celery
        # runs the retry at once, which a raised Retry would prevent).
        return self.retry(exc=error, countdown=delivery.retry_countdown(self.request.retries), throw=False)
    return {"sent": stats.sent, "skipped": stats.skipped, "failed": stats.failed}


@shared_task
def reconcile_deliveries_task():
    return delivery.deliveries_reconcile()


@shared_task
def purge_unconfirmed_task():
    return services.subscribers_purge_unconfirmed()
