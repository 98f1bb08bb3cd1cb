"""Transactional mail on a queue of its own: a sign-up's confirmation never waits behind digests."""

import os
import subprocess
import sys

import pytest
import redis

from newsletter.models import Delivery, Subscriber
from tests.conftest import DAY, make_paper, make_subscriber
from tests.test_integration_health import celery
from tests.test_integration_worker import ROOT, mails, production_env, stop, wait_until  # noqa: F401 - a fixture

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def worker(env, queue):
    """A worker of the Procfile's: `worker` (the digest queue) or `mail`."""
    return celery(env, "worker", "-Q", queue, "--hostname", f"{queue}@%h",
                  "--pool", "solo", "--without-heartbeat", "--without-mingle", "--without-gossip")


def manage(env, *args):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)


def test_a_signup_is_confirmed_while_the_digest_queue_is_full(production_env, tmp_path):
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete("digest", "mail", "celery")  # nothing left from an earlier run
    make_paper("Robot arms that learn", upvotes=5, listed_on=DAY)
    for n in range(10):
        make_subscriber(f"reader{n}@example.org")
    mail_worker = worker(production_env, "mail")
    try:
        # The morning's digests are queued, and no digest worker has taken them yet.
        assert "Queued 10 digest(s)" in manage(production_env, "send_digests", "--date", DAY.isoformat()).stdout
        manage(production_env, "shell", "-c",
               "from newsletter.tasks import subscriber_signup_task as t; t.delay(email='new@example.org', frequency='daily')")
        confirmed = wait_until(lambda: any(m["To"] == "new@example.org" for m in mails(tmp_path)))
        assert confirmed, stop(mail_worker)
        assert Subscriber.objects.get(email="new@example.org").status == "pending"
        assert Delivery.objects.filter(state="pending").count() == 10  # the mail worker left digests alone
        digest_worker = worker(production_env, "digest")
        try:
            assert wait_until(lambda: Delivery.objects.filter(state="sent").count() == 10), Delivery.objects.totals()
        finally:
            stop(digest_worker)
    finally:
        stop(mail_worker)
    assert sorted(m["To"] for m in mails(tmp_path)) == ["new@example.org"] + [f"reader{n}@example.org" for n in range(10)]
