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


@pytest.fixture(autouse=True)
def _clean_cache():
    from django.core.cache import cache

    from newsletter import digests

    cache.clear()
    digests._OFFERS.clear()  # a worker's per-edition cache; test databases reuse primary keys


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
    from papers.services import paper_tag

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
    return paper


def make_subscriber(email="alice@example.org", *, status="active", topics=(), keywords="", **fields):
    from newsletter.models import Subscriber
    from newsletter.services import schedule_next

    subscriber = Subscriber(email=email, status=status, keywords=keywords, consent_at=timezone.now(), **fields)
    if status == "active":
        schedule_next(subscriber)
    subscriber.save()
    subscriber.topics.set([topic(s) for s in topics])
    subscriber.refresh_interest_key()
    return subscriber


DAY = dt.date(2024, 3, 14)
