"""/healthz (django-health-check): 200 only when the database, the broker, a worker for each
queue and the beat are alive; 503 naming the failing check otherwise. Embedded (no REDIS_URL)
there is no broker, worker or beat to ask after: only the database is checked."""

import dataclasses
import datetime as dt

from django.conf import settings
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.contrib.celery import Ping
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView
from redis.asyncio import Redis as RedisClient

from config import beat

# Past the tick the beat should have sent the dispatch at, before it counts as stopped.
BEAT_GRACE = dt.timedelta(minutes=1)
DISPATCH = "newsletter.tasks.dispatch_digests_task"


@dataclasses.dataclass
class Beat(HealthCheck):
    """The beat sent the digest dispatch at its last tick (config.celery.beat_sent)."""

    def run(self):
        sent = beat.last_sent(DISPATCH)
        if sent is None:
            raise ServiceUnavailable("the beat has not sent the digest dispatch")
        if timezone.now() > beat.tick_after(beat.schedule_of(DISPATCH), sent) + BEAT_GRACE:
            raise ServiceUnavailable(f"the beat has sent no digest dispatch since {sent:%Y-%m-%d %H:%M:%S}")


def _broker():
    return RedisClient.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


class HealthView(HealthCheckView):
    @property
    def checks(self):
        if settings.CELERY_TASK_ALWAYS_EAGER:
            return [Database]
        # Ping: at least one worker answers, and every queue (digest, mail) has one.
        return [Database, (Redis, {"client_factory": _broker}), (Ping, {"timeout": dt.timedelta(seconds=2)}), Beat]

    async def get(self, request, *args, **kwargs):
        response = await super().get(request, *args, **kwargs)
        if response.status_code == 500:  # the library's answer to a failed check
            response.status_code = 503  # what load balancers and uptime monitors expect
        return response
