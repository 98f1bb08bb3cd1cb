"""Where papers come from: the daily trending listing and arXiv, over HTTP.

One small interface: a source's fetch(day, run) returns parsed feed items for the importer
(the parsers of papers/parsers.py; no second parser per format). HTTP goes through one
requests session with timeouts, a User-Agent naming the deployment, urllib3's Retry
(exponential backoff with jitter on connection errors, 429 and 5xx, honouring Retry-After),
conditional GET, and at most one arXiv request per ARXIV_MIN_INTERVAL.
"""

import threading
import time

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from papers.models import FetchRun, Paper
from papers.parsers import parse_arxiv_atom, parse_daily_json

ARXIV_BATCH = 100  # ids per id_list request; arXiv's page size


class SourceError(Exception):
    """A source answered, but not with something we can use (the message says what)."""


def session():
    retry = Retry(
        total=settings.HTTP_RETRIES,
        connect=settings.HTTP_RETRIES,
        read=settings.HTTP_RETRIES,
        status=settings.HTTP_RETRIES,
        status_forcelist=[429, 500, 502, 503, 504],
        backoff_factor=settings.HTTP_BACKOFF,
        backoff_jitter=settings.HTTP_BACKOFF,
        backoff_max=120,
        respect_retry_after_header=True,
        retry_after_max=600,
        allowed_methods=["GET"],
        raise_on_status=False,  # the last answer is judged below, with its status in the message
    )
    s = requests.Session()
    s.mount("http://", HTTPAdapter(max_retries=retry))
    s.mount("https://", HTTPAdapter(max_retries=retry))
    s.headers["User-Agent"] = f"paperboy/1.0 (+{settings.SITE_URL})"
    return s


class Throttle:
    """At most one call per interval, across the threads of this process."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last = 0.0

    def wait(self, interval):
        with self.lock:
            delay = self.last + interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.last = time.monotonic()


ARXIV_THROTTLE = Throttle()


def get(http, url, run, params=None, conditional=False):
    """GET url; returns the body, or None when the server says it has not changed (304).
    run: the FetchRun that counts the request, if any."""
    headers = {}
    if conditional and run.etag:
        headers["If-None-Match"] = run.etag
    if conditional and run.last_modified:
        headers["If-Modified-Since"] = run.last_modified
    if run:
        run.requests += 1
    try:
        response = http.get(url, params=params, headers=headers,
                            timeout=(settings.HTTP_CONNECT_TIMEOUT, settings.HTTP_READ_TIMEOUT))
    except requests.exceptions.RetryError as e:
        raise SourceError(f"gave up after {settings.HTTP_RETRIES} retries: {e.__cause__ or e}") from None
    except requests.exceptions.Timeout:
        raise SourceError(f"timed out after retries (read timeout {settings.HTTP_READ_TIMEOUT:g} s)") from None
    except requests.exceptions.ConnectionError as e:
        raise SourceError(f"could not connect: {e}") from None
    if response.status_code == 304:
        return None
    if response.status_code != 200:
        raise SourceError(f"HTTP {response.status_code} from {response.url}: {response.text[:200]!r}")
    if conditional:
        run.etag = response.headers.get("ETag", "")[:200]
        run.last_modified = response.headers.get("Last-Modified", "")[:100]
    return response.content


class DailyListing:
    source = FetchRun.Source.DAILY

    def fetch(self, http, day, run, previous=None):
        if previous:
            run.etag, run.last_modified = previous.etag, previous.last_modified
        body = get(http, f"{settings.DAILY_PAPERS_API}/api/daily_papers", run, {"date": day.isoformat()}, True)
        if body is None:
            return None
        items = list(parse_daily_json(body))  # FeedError on a page that is not JSON
        for item in items:
            if item.record and not item.record.listed_on:
                item.record.listed_on = day
        return items


class ArxivEnrichment:
    """Categories, authors and PDF links for listed papers that lack them, 100 ids a request."""

    source = FetchRun.Source.ARXIV

    def fetch(self, http, day, run, previous=None):
        ids = list(
            Paper.objects.filter(listed_on=day, categories=[]).exclude(arxiv_id=None).values_list("arxiv_id", flat=True)
        )
        return arxiv_by_ids(http, ids, run)


def arxiv_by_ids(http, ids, run=None):
    """Parsed arXiv entries of these ids, ARXIV_BATCH a request."""
    items = []
    for start in range(0, len(ids), ARXIV_BATCH):
        batch = ids[start : start + ARXIV_BATCH]
        ARXIV_THROTTLE.wait(settings.ARXIV_MIN_INTERVAL)
        params = {"id_list": ",".join(batch), "max_results": len(batch)}
        body = get(http, f"{settings.ARXIV_API}/api/query", run, params)
        items.extend(parse_arxiv_atom(body))
    return items


class ArxivWatch:
    """The newest submissions in the watched categories, listed on the day fetched."""

    source = FetchRun.Source.WATCH

    def fetch(self, http, day, run, previous=None):
        if not settings.ARXIV_CATEGORIES:
            return []
        ARXIV_THROTTLE.wait(settings.ARXIV_MIN_INTERVAL)
        params = {
            "search_query": " OR ".join(f"cat:{c}" for c in settings.ARXIV_CATEGORIES),
            "sortBy": "submittedDate",
            "sortOrder": "descending",
            "max_results": settings.ARXIV_MAX_RESULTS,
        }
        items = list(parse_arxiv_atom(get(http, f"{settings.ARXIV_API}/api/query", run, params)))
        for item in items:
            if item.record:
                item.record.listed_on = day
        return items


SOURCES = {s.source: s for s in (DailyListing(), ArxivEnrichment(), ArxivWatch())}


