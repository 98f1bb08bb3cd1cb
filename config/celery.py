import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("paperboy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def worker_process_ready(**kwargs):
    """Garbage collection tuned for a worker that makes many short-lived objects per recipient
    and few reference cycles. What the process holds at start (Django, numpy, the app) lives
    as long as it does: freezing it keeps full collections from scanning it again and again;
    and a young generation of 20,000 objects (default 700) collects 30 times less often.
    Measured with bench/digests.py: ~12 % more digests a second, a quarter less time
    assembling digests with profiles."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
