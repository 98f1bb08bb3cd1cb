"""Celery tasks: thin wrappers that take ids, re-read state and call a service."""

from celery import shared_task

from newsletter import delivery, digests, services


@shared_task
def dispatch_digests_task():
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
