import datetime as dt
import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.utils import timezone

SAMPLE = Path(__file__).resolve().parents[1] / "sample"
REQUIRED = os.environ.get("REQUIRE_SERVICES") == "1"


def _unavailable(reason):
    # In CI (REQUIRE_SERVICES=1) a missing service is a failure: a skip would hide breakage.
    (pytest.fail if REQUIRED else pytest.skip)(reason)


def _reachable(url):
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2).close()
        return True
    except OSError:
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") and not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        _unavailable("needs DATABASE_URL pointing at PostgreSQL")
    if item.get_closest_marker("redis"):
        url = os.environ.get("REDIS_URL")
        if not url:
            _unavailable("needs REDIS_URL")
        elif not _reachable(url):
            pytest.fail(f"REDIS_URL is set but Redis does not answer at {url}")
    if item.get_closest_marker("browser") and not shutil.which("chromium"):
        _unavailable("needs Debian's chromium package (make browser)")
    if item.get_closest_marker("spamassassin") and not shutil.which("spamassassin"):
        _unavailable("needs Debian's spamassassin package: WITH_SPAMASSASSIN=1 make test installs it "
                     "(as root; or sudo apt-get install spamassassin)")


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def server():
    """A live server for this test only, so its database connections close with it
    (pytest-django's lives for the whole session, past the test database's teardown)."""
    import gc

    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.db import connections
    from django.test.testcases import LiveServerThread

    shared = {c.alias: c for c in connections.all() if c.vendor == "sqlite" and c.is_in_memory_db()}
    for connection in shared.values():
        connection.inc_thread_sharing()
    thread = LiveServerThread("127.0.0.1", StaticFilesHandler, connections_override=shared, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    thread.url = f"http://127.0.0.1:{thread.port}"
    yield thread
    thread.terminate()
    for connection in shared.values():
        connection.dec_thread_sharing()
    gc.collect()  # closes connections left by the server's finished request threads


@pytest.fixture
def browser(server):
    """Headless Chromium (Debian's) driven by Playwright, for one test: its event loop must be
    gone before the test database is flushed and restored."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # Queries made while Playwright's loop runs get connections of their own (Django keeps
        # them per context): closed here, or the test database could not be dropped.
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE")


@pytest.fixture(autouse=True)
def _clean_cache():
    from django.core.cache import cache

    from newsletter.offers import worker_cache

    cache.clear()
    worker_cache.clear()  # a worker's offers; each test's papers differ


@pytest.fixture
def editor(client):
    """The test client, logged in to the admin as a superuser."""
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("editor", "e@example.org", "pw"))
    return client


@pytest.fixture
def sample_dir():
    if not SAMPLE.exists():
        pytest.fail(f"sample data missing: {SAMPLE}")
    return SAMPLE


def topic(slug):
    from papers.models import Topic

    return Topic.objects.get(slug=slug)


def make_paper(title="A paper", *, arxiv_id=None, abstract="", upvotes=0, listed_on=None, authors=None, categories=None):
    from papers.models import Paper
    from papers.services import paper_tag, papers_embed

    paper = Paper.objects.create(
        title=title,
        arxiv_id=arxiv_id,
        abstract=abstract or f"We study {title.lower()} in depth.",
        upvotes=upvotes,
        listed_on=listed_on,
        authors=authors or ["Ada Lovelace"],
        categories=categories or [],
    )
    paper_tag(paper=paper)
    papers_embed()  # what the background task does after an import
    paper.refresh_from_db()
    return paper


def make_subscriber(email="alice@example.org", *, status="active", topics=(), keywords="", **fields):
    from newsletter.models import Subscriber
    from newsletter.services import schedule_next

    if status in ("active", "paused", "unsubscribed"):
        fields.setdefault("confirmed_at", timezone.now())
    subscriber = Subscriber(email=email, status=status, keywords=keywords, consent_at=timezone.now(), **fields)
    if status == "active":
        schedule_next(subscriber)
    subscriber.save()
    subscriber.topics.set([topic(s) for s in topics])
    subscriber.refresh_interest_key()
    return subscriber


DAY = dt.date(2024, 3, 14)


@pytest.fixture(autouse=True)
def _on_commit_runs_at_the_end_of_each_request(monkeypatch):
    """Views enqueue tasks with transaction.on_commit. In production a request runs outside
    a transaction, so they are enqueued as it ends; a test's transaction never commits, so
    run them as each test-client request ends."""
    from django.test import Client, TestCase

    request = Client.request

    def request_then_commit(self, **kwargs):
        with TestCase.captureOnCommitCallbacks(execute=True):
            return request(self, **kwargs)

    monkeypatch.setattr(Client, "request", request_then_commit)
