"""Periodic tasks run once per tick of their beat schedule, however many beat processes send
them (a deploy that overlaps runs two for a while); and when the beat last sent each one, which
the health check reads.

The first run for a tick takes a short-lived key in the shared cache with cache.add(), which
is atomic (SET NX EX on Redis); a second run for the same tick finds it taken and does nothing.
"""

import datetime as dt
import functools
import logging

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

log = logging.getLogger(__name__)
CLOCK_SKEW = dt.timedelta(seconds=10)


def schedule_of(task_name):
    """The beat schedule (a crontab) of a periodic task."""
    return next(entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == task_name)


def tick_after(schedule, when):
    start, ffwd, _ = schedule.remaining_delta(when)
    return start + ffwd


def tick_of(schedule, now):
    """The tick a run at `now` was sent for: the latest one, allowing for a worker whose clock
    is a little behind the beat's (CLOCK_SKEW)."""
    following = tick_after(schedule, now + CLOCK_SKEW)
    return following - (tick_after(schedule, following) - following)


def record_sent(task_name):
    """In the beat process, as it sends a periodic task: its heartbeat. When the task runs is
    no measure of the beat, as it waits its turn behind a morning's digests."""
    cache.set(f"beat:{task_name}:sent", timezone.now(), timeout=None)


def last_sent(task_name):
    return cache.get(f"beat:{task_name}:sent")


def once_per_tick(task):
    """Decorate a periodic task (under @shared_task): it runs once per tick of its schedule."""
    name = f"{task.__module__}.{task.__name__}"

    @functools.wraps(task)
    def run(*args, **kwargs):
        now = timezone.now()
        schedule = schedule_of(name)
        tick = tick_of(schedule, now)
        period = tick_after(schedule, tick) - tick
        if not cache.add(f"beat:{name}:{tick.isoformat()}", 1, timeout=period.total_seconds() * 2):
            log.info("%s has already run for %s", name, tick)
            return None
        return task(*args, **kwargs)

    return run
