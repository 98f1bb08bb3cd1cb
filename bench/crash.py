#!/usr/bin/env python
"""A worker killed mid-edition: how many digests arrive once, twice, or never.

    .venv/bin/python bench/crash.py                                   # 5,000 subscribers, SQLite and PostgreSQL
    .venv/bin/python bench/crash.py --subscribers 300 --database postgres
    .venv/bin/python bench/crash.py --lose-host --database postgres   # one of two worker hosts lost for good

Starts a real Celery worker (prefork, 2 processes) on Redis, an SMTP server (aiosmtpd) in its
own process that counts what each address receives, and N subscribers due the same edition;
kills the whole worker with SIGKILL once a random share (10-90 %) of the edition has arrived,
starts it again, lets recovery run and waits until nothing is left to send. Prints the
per-address counts, ending with `lost N`.

With --lose-host: two worker "hosts", each its own progress directory and Celery node name,
and a beat process beside the second; the first is killed for good mid-edition (SIGKILL of
its process group, its directory deleted) and never restarted, so the second must take its
groups over once they stop beating (reconcile.deliveries_takeover). Also prints the time to
settle and the bound on duplicates (DIGEST_CHECKPOINT_SIZE per worker process of the lost
host). The hosts are processes with separate directories on this machine, not network
namespaces: PostgreSQL and Redis listen on 127.0.0.1 here, which another namespace reaches
only through forwarding that would be most of this script.

Needs Redis at REDIS_URL (default redis://127.0.0.1:6379/15: that database is emptied) and,
for PostgreSQL, BENCH_CRASH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/paperboy_crash,
dropped and created afresh). SQLite: a file in a temporary folder.
"""

import argparse
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "sample"
POSTGRES_URL = os.environ.get("BENCH_CRASH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/paperboy_crash")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seed", type=int, help="chooses the moment of the kill (default: random)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the edition to finish")
    parser.add_argument("--lose-host", action="store_true", help="two worker hosts; one lost for good mid-edition")
    return parser.parse_args()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def smtp_sink(port, log_path, ready):
    """An SMTP server that appends each accepted recipient to log_path, one line each."""
    from aiosmtpd.controller import Controller

    log = open(log_path, "ab", buffering=0)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            log.write("".join(f"{rcpt}\n" for rcpt in envelope.rcpt_tos).encode())
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    signal.sigwait({signal.SIGTERM})
    controller.stop()


def received(log_path):
    return Counter(log_path.read_text().split()) if log_path.exists() else Counter()


def environment(database, folder, smtp_port):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "VAR_DIR": str(folder),
        "REDIS_URL": REDIS_URL,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "SITE_URL": "https://paperboy.test",
    }
    env.pop("DATABASE_URL", None)
    if database == "postgres":
        env["DATABASE_URL"] = POSTGRES_URL
    return env


def fresh_postgres():
    import psycopg

    name = POSTGRES_URL.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def manage(env, *args):
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def setup(env, count):
    """Migrate, import the sample papers and create `count` confirmed daily subscribers; returns the day."""
    manage(env, "migrate", "--no-input")
    manage(env, "import_papers", *map(str, sorted(SAMPLE.glob("daily_papers_*.json"))))
    os.environ.clear()
    os.environ.update(env)  # the same database as the worker (DATABASE_URL set or not)
    import django

    django.setup()
    from django.utils import timezone

    from newsletter.models import Subscriber
    from papers.models import Paper

    now = timezone.now()
    Subscriber.objects.bulk_create(
        [Subscriber(email=f"reader{n}@example.org", status="active", confirmed_at=now, next_digest_at=now)
         for n in range(count)],
        batch_size=5000,
    )
    return Paper.objects.latest_day()


CONCURRENCY = 2


def start_worker(env, *options):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", str(CONCURRENCY), "--loglevel", "warning",
         "--without-heartbeat", "--without-mingle", "--without-gossip", *options],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def start_host(env, folder, name):
    """A worker "host": its own progress directory and node name."""
    (folder / name).mkdir()
    return start_worker({**env, "DIGEST_PROGRESS_DIR": str(folder / name)}, "--hostname", f"{name}@%h")


def start_beat(env, folder):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "warning",
         "--schedule", str(folder / "beat-schedule")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def wait_for(condition, timeout, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def run(database, args):
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    if database == "postgres":
        fresh_postgres()
    folder = Path(tempfile.mkdtemp(prefix="paperboy-crash-"))
    log_path, port = folder / "received.log", free_port()
    ready = multiprocessing.Event()
    sink = multiprocessing.Process(target=smtp_sink, args=(port, log_path, ready), daemon=True)
    sink.start()
    ready.wait(10)
    env = environment(database, folder, port)
    day = setup(env, args.subscribers)
    from newsletter.models import Delivery

    due = args.subscribers
    kill_at = random.Random(args.seed).randint(due // 10, due * 9 // 10)
    left = Delivery.objects.filter(edition__date=day).exclude(state__in=["sent", "skipped", "failed"])
    if args.lose_host:
        workers = [start_host(env, folder, "host-a"), start_host(env, folder, "host-b"), start_beat(env, folder)]
    else:
        workers = [start_worker(env)]
    started = time.monotonic()
    manage(env, "send_digests", "--date", day.isoformat())
    if not wait_for(lambda: sum(received(log_path).values()) >= kill_at, args.timeout):
        sys.exit(f"the edition did not reach {kill_at} messages in {args.timeout:.0f} s")
    os.killpg(workers[0].pid, signal.SIGKILL)
    workers[0].wait()
    arrived = sum(received(log_path).values())
    if args.lose_host:
        shutil.rmtree(folder / "host-a")
        print(f"== {database}: {due:,} due; host-a lost (SIGKILL of its process group, its progress directory "
              f"deleted) after {arrived:,} had arrived ({time.monotonic() - started:.1f} s)")
        print(f"rows left pending or sending: {left.count():,}; host-b and the beat carry on")
        workers.pop(0)
    else:
        print(f"== {database}: {due:,} due; worker killed (SIGKILL, whole process group) after {arrived:,} had arrived "
              f"({time.monotonic() - started:.1f} s)")
        print(f"rows left pending or sending: {left.count():,}; restarting the worker")
        workers = [start_worker(env)]
    restarted = time.monotonic()
    finished = wait_for(lambda: not left.exists(), args.timeout, every=0.5)
    settled = time.monotonic() - restarted
    time.sleep(1)  # the last messages reach the sink
    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    sink.terminate()
    counts = received(log_path)
    totals = Delivery.objects.filter(edition__date=day).totals()
    print(f"after recovery ({settled:.1f} s{'' if finished else ', timed out'}): "
          f"rows {', '.join(f'{k} {v:,}' for k, v in totals.items())}")
    addresses = [f"reader{n}@example.org" for n in range(due)]
    once = sum(counts[a] == 1 for a in addresses)
    twice = sum(counts[a] >= 2 for a in addresses)
    lost = sum(counts[a] == 0 for a in addresses)
    if args.lose_host:
        from django.conf import settings

        print(f"settled {settled:.1f} s after the host was lost; duplicates bound: "
              f"{settings.DIGEST_CHECKPOINT_SIZE * CONCURRENCY} (DIGEST_CHECKPOINT_SIZE x {CONCURRENCY} processes)")
    print(f"due {due:,}, once {once:,}, twice {twice:,}, lost {lost:,}")
    print(f"lost {lost}")
    return lost


def main():
    args = parse()
    if args.database != "both":
        sys.exit(1 if run(args.database, args) else 0)
    lost = 0
    for database in ("sqlite", "postgres"):
        argv = [sys.executable, __file__, *sys.argv[1:], "--database", database]
        lost += subprocess.run(argv).returncode
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
