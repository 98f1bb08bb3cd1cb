import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from papers.models import Feature, Paper
from tests.conftest import make_paper

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(client):
    user = User.objects.create_superuser("editor", "editor@example.org", "pw")
    client.force_login(user)
    return user


def act(client, action, papers, **extra):
    data = {"action": action, "_selected_action": [p.pk for p in papers], **extra}
    return client.post(reverse("admin:papers_paper_changelist"), data, follow=True)


def test_an_editor_features_papers_for_a_day_with_a_sanitised_note(client, editor):
    paper = make_paper("Great paper", listed_on=dt.date(2024, 3, 14))
    note = 'Read <b>this</b> <script>alert(1)</script><a href="javascript:x()">x</a> <a href="https://ok.example">ok</a>'
    response = act(client, "feature", [paper], day="2024-03-14", note=note)
    assert "Featured 1 paper(s) on 2024-03-14" in response.content.decode()
    feature = Feature.objects.get(paper=paper, day=dt.date(2024, 3, 14))
    assert feature.featured_by == editor
    assert "<b>this</b>" in feature.note
    assert "<script" not in feature.note and "javascript:" not in feature.note
    assert 'href="https://ok.example"' in feature.note


def test_a_too_long_note_is_refused_with_a_message(client, editor):
    paper = make_paper("Great paper")
    response = act(client, "feature", [paper], day="2024-03-14", note="x" * 281)
    assert "at most 280 characters" in response.content.decode()
    assert not Feature.objects.exists()


def test_an_editor_unfeatures_papers(client, editor):
    paper = make_paper("Great paper")
    Feature.objects.create(paper=paper, day=dt.date(2024, 3, 14))
    response = act(client, "unfeature", [paper], day="2024-03-14")
    assert "Removed 1 feature(s)" in response.content.decode()
    assert not Feature.objects.exists()


def test_the_paper_list_searches_titles_authors_and_ids_and_filters(client, editor):
    make_paper("Alpha transformers", arxiv_id="2403.00001", authors=["Grace Hopper"], upvotes=77)
    make_paper("Beta robots", arxiv_id="2403.00002", authors=["Alan Turing"])
    url = reverse("admin:papers_paper_changelist")
    for query in ["Alpha", "Hopper", "2403.00001"]:
        page = client.get(url, {"q": query}).content.decode()
        assert "Alpha transformers" in page and "Beta robots" not in page
    page = client.get(url, {"topics__id__exact": Paper.objects.get(title="Beta robots").topics.first().pk}).content.decode()
    assert "Beta robots" in page and "Alpha transformers" not in page
    assert "77" in client.get(url).content.decode()


def test_editing_a_paper_in_the_admin_retags_it(client, editor):
    paper = make_paper("Plain title", arxiv_id="2403.00009")
    url = reverse("admin:papers_paper_change", args=[paper.pk])
    response = client.post(url, {
        "arxiv_id": "2403.00009", "title": "Robot arms", "authors": '["A"]', "abstract": "x", "categories": "[]",
        "upvotes": 1, "features-TOTAL_FORMS": 0, "features-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    assert paper.topics.filter(slug="robotics").exists()
