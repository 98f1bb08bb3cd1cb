"""bench/crash.py, short: a real worker killed with SIGKILL mid-edition loses no digest."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.redis
@pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def test_a_worker_killed_mid_edition_loses_no_digest(database):
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test").rsplit("/", 1)[0]
    env = {
        **os.environ,
        "REDIS_URL": os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/15",
        "BENCH_CRASH_POSTGRES_URL": f"{base}/paperboy_crash",
    }
    run = subprocess.run(
        [sys.executable, "bench/crash.py", "--subscribers", "300", "--database", database, "--seed", "1",
         "--timeout", "120"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    lines = run.stdout.strip().splitlines()
    assert lines and lines[-1] == "lost 0", run.stdout + run.stderr
    counts = {name: int(n.replace(",", "")) for name, n in re.findall(r"(\w+) ([\d,]+)", lines[-2])}
    assert counts["due"] == counts["once"] + counts["twice"] == 300
    assert counts["twice"] <= 2  # at most the message in flight in each of the two pool processes
