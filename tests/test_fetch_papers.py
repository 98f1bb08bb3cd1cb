"""Fetching from the sources, against a real HTTP server on 127.0.0.1 (pytest-httpserver)."""

import datetime as dt
import time
import types
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from werkzeug import Response

from papers.models import FetchRun, Paper
from papers.services import days_to_fetch, papers_fetch
from tests.test_import_papers import ATOM

pytestmark = pytest.mark.django_db
DAY = dt.date(2024, 3, 14)


@pytest.fixture
def sources(httpserver, settings, monkeypatch):
    base = httpserver.url_for("").rstrip("/")
    settings.DAILY_PAPERS_API = base
    settings.ARXIV_API = base
    settings.ARXIV_MIN_INTERVAL = 0
    settings.HTTP_BACKOFF = 0.01
    settings.HTTP_READ_TIMEOUT = 0.5
    settings.HTTP_RETRIES = 2
    sleeps = []

    # urllib3's retry waits are recorded rather than slept.
    clock = types.SimpleNamespace(sleep=sleeps.append, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr("urllib3.util.retry.time", clock)
    httpserver.sleeps = sleeps
    return httpserver


def listing(sample_dir, day):
    return (sample_dir / f"daily_papers_{day}.json").read_text()


def fetch(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("fetch_papers", *args, stdout=out, stderr=err)
        return out.getvalue(), err.getvalue(), True
    except CommandError:
        return out.getvalue(), err.getvalue(), False


def test_three_days_are_fetched_recorded_and_idempotent(sources, sample_dir):
    for day in ["2024-03-12", "2024-03-13", "2024-03-14"]:
        sources.expect_request("/api/daily_papers", query_string={"date": day}).respond_with_data(
            listing(sample_dir, day), content_type="application/json")
    sources.expect_request("/api/query").respond_with_data("<feed xmlns='http://www.w3.org/2005/Atom'/>")
    out, err, ok = fetch("--source", "daily", "--date", "2024-03-14", "--days", "3")
    assert ok, err
    assert Paper.objects.count() == 64
    runs = FetchRun.objects.filter(source="daily").order_by("day")
    assert [(str(r.day), r.status, r.created) for r in runs] == [
        ("2024-03-12", "success", 22), ("2024-03-13", "success", 22), ("2024-03-14", "success", 20)]
    assert sources.log[0][0].headers["User-Agent"].startswith("paperboy/")
    out, err, ok = fetch("--source", "daily", "--date", "2024-03-14", "--days", "3")
    assert ok and Paper.objects.count() == 64
    assert FetchRun.objects.filter(source="daily").count() == 6
    assert all(r.created == 0 for r in FetchRun.objects.filter(source="daily")[:3])


def test_the_admin_shows_the_runs_and_the_last_success(sources, sample_dir, admin_client):
    sources.expect_request("/api/daily_papers").respond_with_data(listing(sample_dir, "2024-03-14"))
    papers_fetch(source="daily", day=DAY)
    page = admin_client.get("/admin/papers/fetchrun/").content.decode()
    assert "2024-03-14" in page or "March 14, 2024" in page
    index = admin_client.get("/admin/").content.decode()
    assert "Paper sources" in index and "last success" in index


def test_conditional_get_sends_the_etag_back(sources, sample_dir):
    sources.expect_ordered_request("/api/daily_papers").respond_with_response(
        Response(listing(sample_dir, "2024-03-14"), headers={"ETag": '"v1"'}, content_type="application/json"))
    sources.expect_ordered_request("/api/daily_papers", headers={"If-None-Match": '"v1"'}).respond_with_response(
        Response(status=304))
    assert papers_fetch(source="daily", day=DAY).status == "success"
    second = papers_fetch(source="daily", day=DAY)
    assert second.status == "not_modified" and second.created == 0
    sources.check_assertions()


def test_enrichment_asks_arxiv_for_at_most_100_ids_a_request(sources):
    for n in range(150):
        Paper.objects.create(arxiv_id=f"2403.{n:05d}", title=f"Paper {n}", listed_on=DAY)
    sources.expect_request("/api/query").respond_with_data(ATOM.decode().replace("2403.09611", "2403.00007"))
    run = papers_fetch(source="arxiv", day=DAY)
    assert run.status == "success" and run.requests == 2
    id_lists = [r.args["id_list"].split(",") for r, _ in sources.log]
    assert [len(ids) for ids in id_lists] == [100, 50]
    assert Paper.objects.get(arxiv_id="2403.00007").categories == ["cs.CV", "cs.CL"]
    assert Paper.objects.get(arxiv_id="2403.00007").topics.filter(slug="computer-vision").exists()


def test_429_with_retry_after_is_waited_out(sources, sample_dir):
    sources.expect_ordered_request("/api/daily_papers").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "2"}))
    sources.expect_ordered_request("/api/daily_papers").respond_with_data(listing(sample_dir, "2024-03-14"))
    run = papers_fetch(source="daily", day=DAY)
    assert run.status == "success" and run.created == 22
    assert 2 in sources.sleeps  # Retry-After honoured


def test_a_500_then_success_retries(sources, sample_dir):
    sources.expect_ordered_request("/api/daily_papers").respond_with_data("oops", status=500)
    sources.expect_ordered_request("/api/daily_papers").respond_with_data(listing(sample_dir, "2024-03-14"))
    assert papers_fetch(source="daily", day=DAY).created == 22
    assert len(sources.log) == 2


def test_a_source_that_keeps_failing_is_recorded_not_raised(sources, caplog, time_machine):
    time_machine.move_to("2024-03-14T06:00Z")
    sources.expect_request("/api/daily_papers").respond_with_data("down", status=503)
    run = papers_fetch(source="daily", day=DAY)
    assert run.status == "failed" and "503" in run.error
    assert "has never succeeded" in caplog.text and "more than a day" not in caplog.text


def test_a_source_failing_since_its_last_success_a_day_ago_says_so_in_the_log_and_the_admin(
    sources, sample_dir, caplog, time_machine, admin_client
):
    time_machine.move_to("2024-03-13T06:00Z")
    sources.expect_ordered_request("/api/daily_papers").respond_with_data(listing(sample_dir, "2024-03-13"))
    papers_fetch(source="daily", day=DAY - dt.timedelta(days=1))
    time_machine.move_to("2024-03-14T08:00Z")
    sources.expect_ordered_request("/api/daily_papers").respond_with_data("down", status=503)
    papers_fetch(source="daily", day=DAY)
    assert "has not succeeded for more than a day" in caplog.text
    assert "failing for over a day" in admin_client.get("/admin/").content.decode()


def test_the_admin_says_a_source_that_only_ever_failed_has_never_succeeded(sources, admin_client):
    sources.expect_request("/api/daily_papers").respond_with_data("down", status=503)
    papers_fetch(source="daily", day=DAY)
    index = admin_client.get("/admin/").content.decode()
    assert "never succeeded" in index and "over a day" not in index


def test_a_timeout_is_recorded_and_existing_papers_are_untouched(sources):
    paper = Paper.objects.create(arxiv_id="2403.09631", title="Kept", upvotes=5, listed_on=DAY)

    def slow(request):
        time.sleep(1)
        return Response("[]")

    sources.expect_request("/api/daily_papers").respond_with_handler(slow)
    run = papers_fetch(source="daily", day=DAY)
    assert run.status == "failed" and "timed out" in run.error
    paper.refresh_from_db()
    assert paper.title == "Kept" and paper.upvotes == 5


@pytest.mark.parametrize(
    "body, message",
    [("<html><body>502 Bad Gateway</body></html>", "not valid JSON"), ('[{"paper": {"id": "2403.0', "not valid JSON"),
     ('{"error": "bad date"}', "expected a JSON array")],
)
def test_malformed_bodies_fail_with_a_clear_message(sources, body, message):
    sources.expect_request("/api/daily_papers").respond_with_data(body)
    run = papers_fetch(source="daily", day=DAY)
    assert run.status == "failed" and message in run.error
    assert not Paper.objects.exists()


def test_an_atom_feed_with_a_broken_entry_keeps_the_good_ones(sources, settings):
    settings.ARXIV_CATEGORIES = ["cs.CV"]
    sources.expect_request("/api/query").respond_with_data(ATOM.decode())
    run = papers_fetch(source="watch", day=DAY)
    assert run.status == "success" and run.created == 2 and run.rejected == 1
    assert "missing 'title'" in run.error
    assert set(Paper.objects.values_list("listed_on", flat=True)) == {DAY}
    assert "cat:cs.CV" in sources.log[0][0].args["search_query"]


def test_an_empty_day_is_a_success_with_nothing(sources):
    sources.expect_request("/api/daily_papers").respond_with_json([])
    run = papers_fetch(source="daily", day=dt.date(2024, 3, 16))
    assert run.status == "success" and run.created == 0


def test_a_future_day_404_is_recorded(sources):
    sources.expect_request("/api/daily_papers").respond_with_json({"error": "Not found"}, status=404)
    run = papers_fetch(source="daily", day=dt.date(2030, 1, 1))
    assert run.status == "failed" and "HTTP 404" in run.error


def test_overlapping_runs_do_not_import_twice(sources, sample_dir):
    FetchRun.objects.create(source="daily", day=DAY)  # another worker is on it
    sources.expect_request("/api/daily_papers").respond_with_data(listing(sample_dir, "2024-03-14"))
    assert papers_fetch(source="daily", day=DAY) is None
    assert sources.log == [] and not Paper.objects.exists()


def test_an_abandoned_run_does_not_block_forever(sources, sample_dir, time_machine):
    time_machine.move_to("2024-03-14T05:00Z")
    FetchRun.objects.create(source="daily", day=DAY)
    time_machine.move_to("2024-03-14T07:00Z")
    sources.expect_request("/api/daily_papers").respond_with_data(listing(sample_dir, "2024-03-14"))
    assert papers_fetch(source="daily", day=DAY).status == "success"
    assert FetchRun.objects.filter(status="failed", error__startswith="abandoned").count() == 1


def test_catch_up_covers_the_days_missed(sources, sample_dir, time_machine):
    FetchRun.objects.create(source="daily", day=dt.date(2024, 3, 11), status="success", finished_at="2024-03-11T05:00Z")
    assert days_to_fetch(today=dt.date(2024, 3, 14)) == 4
    assert days_to_fetch(today=dt.date(2024, 3, 11)) == 2  # today and yesterday at least
    time_machine.move_to("2024-03-14T05:00Z")
    for day in ["2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14"]:
        body = listing(sample_dir, day) if day != "2024-03-11" else "[]"
        sources.expect_request("/api/daily_papers", query_string={"date": day}).respond_with_data(body)
    sources.expect_request("/api/query").respond_with_data("<feed xmlns='http://www.w3.org/2005/Atom'/>")
    from papers.tasks import fetch_papers_task

    fetch_papers_task.delay()
    days = sorted(str(d) for d in FetchRun.objects.filter(source="daily", status="success").values_list("day", flat=True))
    assert days == ["2024-03-11", "2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14"]
    assert Paper.objects.count() == 64
