import datetime as dt

import pytest
from django.core.management import call_command

from papers.models import Feature, Paper

pytestmark = pytest.mark.django_db


@pytest.fixture
def sample(sample_dir):
    for name in ["daily_papers_2024-03-12.json", "daily_papers_2024-03-13.json", "daily_papers_2024-03-14.json"]:
        call_command("import_papers", str(sample_dir / name), stdout=None)


def test_the_home_page_shows_the_latest_day_with_navigation(client, sample):
    page = client.get("/").content.decode()
    assert "Thu 14 Mar 2024" in page
    assert "Adaptive Data-Free Quantization" in page  # listed on the 14th
    assert "Streaming Deep Reinforcement Learning Finally Works" not in page  # the 13th
    assert 'href="/day/2024-03-13/"' in page and "/day/2024-03-15/" not in page
    assert "https://arxiv.org/abs/2403.09631" in page
    assert 'id="subscribe"' in page and 'action="/subscribe/"' in page


def test_papers_are_ordered_by_upvotes(client, sample):
    papers = [p for p, _ in client.get("/day/2024-03-13/").context["papers"]]
    assert [p.upvotes for p in papers] == sorted((p.upvotes for p in papers), reverse=True)
    assert papers[0].title.startswith("Adaptive Regularization")


def test_a_middle_day_links_both_ways(client, sample):
    page = client.get("/day/2024-03-13/").content.decode()
    assert 'href="/day/2024-03-12/"' in page and 'href="/day/2024-03-14/"' in page
    assert "Streaming Deep Reinforcement Learning Finally Works" in page


def test_the_topic_filter_narrows_the_day(client, sample):
    page = client.get("/day/2024-03-14/?topic=robotics").content.decode()
    assert "Collision Avoidance and Navigation for a Quadrotor Swarm" in page
    assert "Adaptive Data-Free Quantization" not in page
    assert client.get("/?topic=no-such-topic").status_code == 404


def test_featured_papers_show_a_badge_and_the_note(client, sample):
    paper = Paper.objects.get(arxiv_id="2403.09631")
    Feature.objects.create(paper=paper, day=dt.date(2024, 3, 14), note="<b>Must read</b> <img src=x onerror=alert(1)>")
    page = client.get("/").content.decode()
    assert "Featured</span>" in page and "<b>Must read</b>" in page
    assert "onerror" not in page


def test_bad_dates_are_not_found(client, sample):
    assert client.get("/day/2024-02-31/").status_code == 404
    assert client.get("/day/yesterday/").status_code == 404


def test_an_empty_site_says_how_to_import(client):
    assert "import_papers" in client.get("/").content.decode()


def test_the_detail_page_shows_the_whole_paper(client, sample):
    page = client.get("/papers/2403.09631/").content.decode()
    assert "Adaptive Data-Free Quantization" in page
    assert "generator" in page  # from the abstract
    assert "https://arxiv.org/pdf/2403.09631" in page
    assert client.get("/papers/2403.99999/").status_code == 404


def test_old_style_identifiers_and_papers_without_one_have_pages(client):
    old = Paper.objects.create(arxiv_id="hep-th/9901001", title="Strings & things <i>")
    plain = Paper.objects.create(title="From a text listing")
    assert "Strings &amp; things &lt;i&gt;" in client.get(old.get_absolute_url()).content.decode()
    assert old.get_absolute_url() == "/papers/hep-th/9901001/"
    assert client.get(plain.get_absolute_url()).status_code == 200
