"""/healthz against the real services, and two beat processes at once: real processes
(gunicorn, a Celery worker, celery beat) on Redis and PostgreSQL."""

import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from django.db.models import Count

from papers.models import FetchRun
from tests.test_integration_worker import ROOT, production_env, stop, wait_until  # noqa: F401 - a fixture

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(env, *command):
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def celery(env, *args):
    return start(env, sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel", "info")


@pytest.fixture
def beat_env(production_env, tmp_path):
    """Every periodic task due each minute; the paper sources refuse connections at once."""
    return {**production_env, "DJANGO_SETTINGS_MODULE": "tests.beat_settings",
            "DAILY_PAPERS_API": "http://127.0.0.1:9", "ARXIV_API": "http://127.0.0.1:9", "HTTP_RETRIES": "0"}


@pytest.fixture
def private_redis():
    """A Redis of this test's own, to stop: the shared one is never touched."""
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    assert wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, timeout=10)
    yield server, f"redis://127.0.0.1:{port}/0"
    if server.poll() is None:
        server.terminate()
        server.wait()


def healthz(port):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Accept": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return None, str(error)


def test_healthz_is_ok_with_everything_alive_and_names_the_broker_once_redis_stops(beat_env, private_redis, tmp_path):
    server, url = private_redis
    env = {**beat_env, "REDIS_URL": url}
    port = free_port()
    processes = [
        celery(env, "worker", "--pool", "solo", "--without-heartbeat", "--without-mingle", "--without-gossip"),
        celery(env, "beat", "--schedule", str(tmp_path / "beat-schedule")),
        start(env, str(ROOT / ".venv/bin/gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"),
    ]
    try:
        assert wait_until(lambda: healthz(port)[0] is not None, timeout=30)
        status, body = healthz(port)
        assert status == 503 and "the beat has not sent the digest dispatch" in body  # not before the first tick
        assert wait_until(lambda: healthz(port)[0] == 200, timeout=90), healthz(port)
        status, body = healthz(port)
        assert body.count(": OK") == 4, body  # the database, the broker, the worker and the beat
        server.terminate()
        server.wait()
        status, body = healthz(port)
        assert status == 503
        [broker] = [line for line in body.splitlines() if line.startswith("Redis(")]
        assert f"port={url.split(':')[2].split('/')[0]}" in broker and "Unavailable" in broker, body
        assert "Database(alias='default'): OK" in body
    finally:
        for process in processes:
            stop(process)


def test_two_beats_at_once_fetch_and_dispatch_once_per_tick(beat_env, tmp_path):
    log = tmp_path / "worker.log"
    processes = [
        celery(beat_env, "worker", "--pool", "solo", "--without-heartbeat", "--without-mingle", "--without-gossip",
               "--logfile", str(log)),
        celery(beat_env, "beat", "--schedule", str(tmp_path / "first-beat")),
        celery(beat_env, "beat", "--schedule", str(tmp_path / "second-beat")),
    ]
    try:
        # Both beats send every task at the minute's tick: the worker takes each twice.
        def both_ran():
            text = log.read_text() if log.exists() else ""
            return all(len(re.findall(rf"{task}\[[-\w]+\] succeeded", text)) >= 2 for task in ("fetch_papers_task", "dispatch_digests_task"))

        assert wait_until(both_ran, timeout=100), log.read_text() if log.exists() else "no log"
    finally:
        for process in processes:
            stop(process)
    runs = FetchRun.objects.values("source", "day").annotate(n=Count("id"))
    assert runs and {row["n"] for row in runs} == {1}, list(runs)  # each source and day fetched once
    assert log.read_text().count("dispatch_digests_task has already run") == 1  # the second dispatch did nothing
