"""Two beat processes (a deploy that overlaps) send each periodic task twice per tick: it runs once."""

import pytest

from papers.models import FetchRun
from tests.test_fetch_papers import listing, sources  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def test_a_second_beats_fetch_for_the_same_tick_fetches_nothing(sources, sample_dir, time_machine, settings):  # noqa: F811
    from papers.tasks import fetch_papers_task

    settings.FETCH_CATCH_UP_DAYS = 2
    for day in ["2024-03-13", "2024-03-14"]:
        sources.expect_request("/api/daily_papers", query_string={"date": day}).respond_with_data(listing(sample_dir, day))
    sources.expect_request("/api/daily_papers", query_string={"date": "2024-03-15"}).respond_with_data("[]")
    sources.expect_request("/api/query").respond_with_data("<feed xmlns='http://www.w3.org/2005/Atom'/>")
    time_machine.move_to("2024-03-14T04:59:59.8Z", tick=False)  # this worker's clock is a little behind the beat's
    fetch_papers_task.delay()
    time_machine.move_to("2024-03-14T05:00:01Z", tick=False)  # the other beat's, on another worker
    fetch_papers_task.delay()
    daily = FetchRun.objects.filter(source="daily")
    assert sorted(str(day) for day in daily.values_list("day", flat=True)) == ["2024-03-13", "2024-03-14"]
    assert len([r for r, _ in sources.log if r.path == "/api/daily_papers"]) == 2
    time_machine.move_to("2024-03-15T05:00:02Z", tick=False)  # the next day's tick
    fetch_papers_task.delay()
    assert daily.filter(day="2024-03-15").count() == 1


def test_a_second_beats_dispatch_for_the_same_tick_does_nothing(time_machine):
    from newsletter.tasks import dispatch_digests_task

    time_machine.move_to("2026-03-02T07:05:00.2Z", tick=False)
    first = dispatch_digests_task.delay().get()
    second = dispatch_digests_task.delay().get()
    time_machine.move_to("2026-03-02T07:10:00.1Z", tick=False)
    assert (first is not None, second, dispatch_digests_task.delay().get() is not None) == (True, None, True)
