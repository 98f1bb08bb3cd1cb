"""The production path: a real Celery worker process on Redis and PostgreSQL."""

import email
import os
import signal
import subprocess
import sys
import time
from email import policy
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from newsletter.models import Delivery, Subscriber
from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def production_env(tmp_path):
    """The environment of the production processes, pointed at the test database."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VAR_DIR": str(tmp_path),
        "DIGEST_BATCH_SIZE": "7",
        "DIGEST_CLAIM_SIZE": "3",
        "SITE_URL": settings.SITE_URL,
    }
    return env


def mails(folder):
    messages = []
    for path in sorted((folder / "mail").glob("*.log")):
        for chunk in path.read_bytes().split(b"-" * 79):
            if chunk.strip():
                messages.append(email.message_from_bytes(chunk.strip(), policy=policy.default))
    return messages


def run_worker(env):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "warning",
         "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def wait_until(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def stop(worker):
    worker.send_signal(signal.SIGTERM)
    try:
        return worker.communicate(timeout=20)[0].decode()
    except subprocess.TimeoutExpired:
        worker.kill()
        return worker.communicate()[0].decode()


def test_every_due_subscriber_gets_exactly_one_digest_from_real_workers(production_env, tmp_path):
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete("celery")  # no task left over from an earlier run
    make_paper("Robot arms that learn", upvotes=5, listed_on=DAY)
    make_paper("Quantized chips", upvotes=9, listed_on=DAY)
    for n in range(30):
        make_subscriber(f"reader{n}@example.org", topics=["robotics"] if n % 2 else [])
    make_subscriber("pending@example.org", status="pending")
    worker = run_worker(production_env)
    try:
        sent = subprocess.run(
            [sys.executable, "manage.py", "send_digests", "--date", DAY.isoformat()],
            cwd=ROOT, env=production_env, capture_output=True, text=True, timeout=120,
        )
        assert sent.returncode == 0, sent.stderr
        assert "Queued 30 digest(s)" in sent.stdout
        assert wait_until(lambda: Delivery.objects.filter(state="sent").count() == 30), Delivery.objects.totals()
        # Run again, as if the beat fired twice: nothing more is sent.
        subprocess.run([sys.executable, "manage.py", "send_digests", "--date", DAY.isoformat()], cwd=ROOT, env=production_env, check=True, capture_output=True)
        time.sleep(2)
    finally:
        log = stop(worker)
    recipients = [m["To"] for m in mails(tmp_path)]
    assert sorted(recipients) == sorted(f"reader{n}@example.org" for n in range(30)), log
    assert Delivery.objects.filter(state="sent").count() == 30
    assert not Delivery.objects.exclude(state="sent").exists()
    assert Subscriber.objects.get(email="pending@example.org").deliveries.count() == 0


def test_rate_limits_hold_on_the_shared_redis_cache(client, settings, mailoutbox):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["REDIS_URL"]}}
    from django.core.cache import cache

    cache.clear()
    for _ in range(5):
        client.post("/subscribe/", {"email": "alice@example.org", "frequency": "daily"})
    assert len(mailoutbox) == 3
    cache.clear()
