"""What `make test` installs from Debian, read from `make -n` (what it would run), and how the
SpamAssassin test behaves where that tool is missing."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    unset = ("CI", "WITH_SPAMASSASSIN", "REQUIRE_SERVICES", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return env | extra


def _debian_tools(*args):
    """The tools `make browser` would check for and install (it runs the check even with -n)."""
    plan = subprocess.run(["make", "-n", "browser", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, check=True).stdout
    return re.search(r"for tool in ([\w ]+);", plan).group(1).split(), plan


def test_apt_waits_for_another_apts_dpkg_lock():
    _, plan = _debian_tools()
    apt_calls = re.findall(r"apt-get [^&;|]*(?:update|install -y)", plan)
    assert len(apt_calls) == 2
    assert all("-o DPkg::Lock::Timeout=600" in call for call in apt_calls), apt_calls


def test_spamassassin_is_installed_only_in_ci_or_when_asked():
    assert _debian_tools()[0] == ["chromium"]
    assert "spamassassin" in _debian_tools("CI=true")[0]
    assert "spamassassin" in _debian_tools("WITH_SPAMASSASSIN=1")[0]
    assert "export WITH_SPAMASSASSIN=1" in (ROOT / ".ci" / "run").read_text()


def _spam_test_without_spamassassin(tmp_path, **env):
    # An empty PATH: no spamassassin to be found, as on a laptop that never asked for it.
    return subprocess.run([sys.executable, "-m", "pytest", "-rs", "-p", "no:randomly", "tests/test_spam_score.py"],
                          cwd=ROOT, env=_env(PATH=str(tmp_path), **env),
                          capture_output=True, text=True, timeout=300)


def test_a_laptop_skips_the_spam_score_and_says_how_to_enable_it(tmp_path):
    run = _spam_test_without_spamassassin(tmp_path)
    assert run.returncode == 0, run.stdout
    assert "1 skipped" in run.stdout
    assert "WITH_SPAMASSASSIN=1 make test" in run.stdout


def test_ci_fails_when_spamassassin_is_missing(tmp_path):
    run = _spam_test_without_spamassassin(tmp_path, REQUIRE_SERVICES="1")
    assert run.returncode == 1, run.stdout
    assert "1 error" in run.stdout and "needs Debian's spamassassin package" in run.stdout
