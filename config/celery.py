import ctypes
import gc
import os

from celery import Celery
from celery.signals import before_task_publish, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("paperboy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def worker_process_ready(**kwargs):
    """Garbage collection tuned for a worker that makes many short-lived objects per recipient
    and few reference cycles. What the process holds at start (Django, numpy, the app) lives
    as long as it does: freezing it keeps full collections from scanning it again and again;
    and a young generation of 20,000 objects (default 700) collects far less often
    (docs/performance.md). And the C heap kept rather than handed back whenever its top is
    free: each digest's message takes and frees buffers of tens of KB, and memory handed back
    is faulted in again, page by page, for the next one."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    _keep_heap()


M_TRIM_THRESHOLD, M_TOP_PAD = -1, -2  # glibc's mallopt() parameters (malloc.h)


def _keep_heap():
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_TRIM_THRESHOLD, 64 << 20)
        libc.mallopt(M_TOP_PAD, 16 << 20)
    except (OSError, AttributeError):  # not glibc: its default is kept
        pass


@worker_ready.connect
def worker_started(sender, **kwargs):
    """Deliveries a dead worker left behind are settled as soon as one starts again, here, in
    the starting worker itself: progress files are local to the machine they were written on.
    A worker for transactional mail alone (Procfile: mail) leaves digests to the digest workers."""
    from django.db import connections

    from newsletter import reconcile, tasks  # loaded with the apps, after this module

    if "digest" not in {queue.name for queue in sender.task_consumer.queues}:
        return
    reconcile.deliveries_recover(enqueue=tasks.enqueue_deliveries)
    reconcile.deliveries_resume(enqueue=tasks.enqueue_deliveries)
    connections.close_all()  # the pool's processes have their own


@before_task_publish.connect
def beat_sent(sender=None, headers=None, **kwargs):
    """The beat's heartbeat for /healthz: Celery marks what the beat sends with this header."""
    if (headers or {}).get("celery_beat_task"):
        from config import beat

        beat.record_sent(sender)
