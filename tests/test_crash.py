"""bench/crash.py, short: a real worker killed with SIGKILL mid-edition loses no digest; nor
does a worker host lost for good mid-edition."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def crash(*args, **env):
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test").rsplit("/", 1)[0]
    env = {
        **os.environ,
        # Overridable where several checkouts share one PostgreSQL and Redis.
        "REDIS_URL": os.environ.get("CRASH_REDIS_URL", os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/15"),
        "BENCH_CRASH_POSTGRES_URL": os.environ.get("CRASH_POSTGRES_URL", f"{base}/paperboy_crash"),
        **env,
    }
    run = subprocess.run(
        [sys.executable, "bench/crash.py", "--subscribers", "300", "--seed", "1", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    lines = run.stdout.strip().splitlines()
    assert lines and lines[-1] == "lost 0", run.stdout + run.stderr
    counts = {name: int(n.replace(",", "")) for name, n in re.findall(r"(\w+) ([\d,]+)", lines[-2])}
    assert counts["due"] == counts["once"] + counts["twice"] == 300
    return counts, run.stdout


@pytest.mark.redis
@pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def test_a_worker_killed_mid_edition_loses_no_digest(database):
    counts, _ = crash("--database", database, "--timeout", "120")
    assert counts["twice"] <= 2  # at most the message in flight in each of the two pool processes


@pytest.mark.redis
@pytest.mark.postgres
def test_a_worker_host_lost_for_good_mid_edition_loses_no_digest():
    # Checkpoints every 20 messages, groups taken over 10 s after their last beat.
    counts, out = crash("--lose-host", "--database", "postgres", "--timeout", "200",
                        DIGEST_CHECKPOINT_SIZE="20", DIGEST_HEARTBEAT_TIMEOUT_SECONDS="10")
    assert "duplicates bound: 40 " in out
    assert counts["twice"] <= 40  # what each of the lost host's two processes sent after its last checkpoint
