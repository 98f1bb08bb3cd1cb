import datetime as dt

import numpy as np
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from papers import vectors
from papers.models import Feature, Paper, Topic
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
        "arxiv_id": "2403.00009", "title": "Robot arms", "authors": "A", "abstract": "x", "categories": "",
        "upvotes": 1, "features-TOTAL_FORMS": 0, "features-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    assert paper.topics.filter(slug="robotics").exists()


def test_a_paper_whose_text_an_editor_changes_is_embedded_again_once_saved(client, editor):
    paper = make_paper("Plain title", arxiv_id="2403.00009", abstract="We quantize language models.")
    before = bytes(paper.vector)
    url = reverse("admin:papers_paper_change", args=[paper.pk])
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(url, {
            "arxiv_id": "2403.00009", "title": "Robot arms", "authors": "A", "abstract": "A robot arm learns to grasp.",
            "categories": "", "upvotes": 1, "features-TOTAL_FORMS": 0, "features-INITIAL_FORMS": 0,
        })
    assert response.status_code == 302
    paper.refresh_from_db()
    assert paper.vector_model == vectors.MODEL and bytes(paper.vector) != before
    assert np.allclose(np.frombuffer(paper.vector, dtype=np.float32),
                       vectors.embeddings([("Robot arms", "A robot arm learns to grasp.")])[0], atol=1e-5)


def test_featuring_again_with_an_empty_note_keeps_the_note(client, editor):
    paper = make_paper("Great paper")
    act(client, "feature", [paper], day="2024-03-14", note="Read <b>this</b>")
    page = act(client, "feature", [paper], day="2024-03-14", note="").content.decode()
    assert "existing notes kept" in page
    assert Feature.objects.get(paper=paper).note == "Read <b>this</b>"


def test_the_editor_is_told_when_markup_was_removed_from_a_note_and_sees_what_is_kept(client, editor):
    paper = make_paper("Great paper")
    page = act(client, "feature", [paper], day="2024-03-14", note='Hi <script>x()</script><img src="a.png">there').content.decode()
    assert "Markup that is not allowed was removed from the note; it now reads: Hi there" in page
    clean = act(client, "feature", [make_paper("Other")], day="2024-03-14", note='R&D <a href="https://a.example">link</a>')
    assert "Markup that is not allowed" not in clean.content.decode()


def test_an_empty_day_features_today_in_the_sites_time_zone_and_says_so(client, editor, settings):
    paper = make_paper("Great paper")
    page = act(client, "feature", [paper], day="", note="").content.decode()
    today = timezone.localdate()
    assert f"Featured 1 paper(s) on {today} (today, {settings.TIME_ZONE})" in page
    assert Feature.objects.get(paper=paper).day == today


def test_unfeature_without_a_day_removes_the_papers_feature_days_and_names_them(client, editor):
    paper = make_paper("Great paper")
    for day in ["2024-03-13", "2024-03-14"]:
        act(client, "feature", [paper], day=day, note="")
    page = act(client, "unfeature", [paper], day="").content.decode()
    assert "Removed 2 feature(s): Great paper (2024-03-13, 2024-03-14)." in page
    assert not Feature.objects.exists()
    page = act(client, "unfeature", [paper], day="").content.decode()
    assert "Nothing removed: the selected papers are not featured on any day." in page


def test_the_featured_column_names_the_days(client, editor):
    paper = make_paper("Great paper")
    act(client, "feature", [paper], day="2024-03-14", note="")
    assert "14 Mar 2024" in client.get(reverse("admin:papers_paper_changelist")).content.decode()


def test_features_and_unfeatures_are_in_the_admin_log_with_their_notes(client, editor):
    paper = make_paper("Great paper")
    act(client, "feature", [paper], day="2024-03-14", note="Start <i>here</i>")
    act(client, "unfeature", [paper], day="2024-03-14")
    messages = list(LogEntry.objects.filter(object_id=str(paper.pk)).order_by("pk").values_list("change_message", flat=True))
    assert messages == ["Featured “Great paper” on 2024-03-14 with the note “Start here”",
                        "Unfeatured “Great paper” from 2024-03-14 (its note was “Start here”)"]
    history = client.get(reverse("admin:papers_paper_history", args=[paper.pk])).content.decode()
    assert "Unfeatured “Great paper” from 2024-03-14" in history


def test_searching_papers_finds_authors_with_accents(client, editor):
    make_paper("Alpha", authors=["María López"])
    make_paper("Beta", authors=["Alan Turing"])
    page = client.get(reverse("admin:papers_paper_changelist"), {"q": "López"}).content.decode()
    assert "Alpha" in page and "Beta" not in page


def test_retag_is_one_button_that_reports_what_changed_and_is_logged(client, editor):
    paper = make_paper("Swarm drones flocking")
    swarms = Topic.objects.create(slug="swarms", name="Swarms", keywords="")
    url = reverse("admin:papers_topic_change", args=[swarms.pk])
    response = client.post(url, {"slug": "swarms", "name": "Swarms", "keywords": "swarm", "categories": "", "position": 0}, follow=True)
    assert "papers already imported keep their topics until you re-tag them" in response.content.decode()
    assert not paper.topics.filter(slug="swarms").exists()
    page = client.post(reverse("admin:papers_topic_retag"), follow=True).content.decode()
    assert "Re-tagged 1 papers: 1 changed (Swarms +1 −0)" in page
    assert paper.topics.filter(slug="swarms").exists()
    assert LogEntry.objects.filter(object_id=str(swarms.pk), change_message="Re-tag: +1 papers, −0 papers").exists()


def test_the_paper_list_shows_what_readers_make_of_each_paper(client, editor):
    from newsletter.services import vote_record
    from tests.conftest import make_subscriber

    paper = make_paper("Robot arms", upvotes=3)  # tagged robotics
    readers = [make_subscriber(f"r{i}@example.org", topics=["robotics", "computer-vision"]) for i in range(3)]
    make_subscriber("gone@example.org", status="unsubscribed", topics=["robotics"])
    vote_record(subscriber=readers[0], paper=paper, value=1)
    vote_record(subscriber=readers[1], paper=paper, value=1)
    vote_record(subscriber=readers[2], paper=paper, value=-1)
    page = client.get(reverse("admin:papers_paper_changelist"))
    row = page.context["cl"].result_list.get(pk=paper.pk)
    assert (row.more, row.less, row.followers) == (2, 1, 3)
    assert "2 more · 1 less<br><small>3 follow its topics</small>" in page.content.decode()


def test_a_features_note_is_edited_or_cleared_in_the_feature_admin_and_logged(client, editor):
    paper = make_paper("Great paper")
    act(client, "feature", [paper], day="2024-03-14", note="Old <b>note</b>")
    feature = Feature.objects.get()
    url = reverse("admin:papers_feature_change", args=[feature.pk])
    assert client.post(url, {"note": ""}).status_code == 302
    assert Feature.objects.get().note == ""
    assert LogEntry.objects.filter(change_message="Note on “Great paper” (2024-03-14) changed from “Old note” to no note").exists()
    response = client.post(reverse("admin:papers_feature_delete", args=[feature.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Feature.objects.exists()
    assert LogEntry.objects.filter(change_message="Unfeatured “Great paper” from 2024-03-14").exists()


def test_searching_papers_ignores_case_and_accents_in_titles_and_authors(client, editor):
    make_paper("Alpha", authors=["María López"])
    make_paper("Beta", authors=["Deniz Ünal"])
    make_paper("Éléments of Robótica")

    def found(term):
        page = client.get(reverse("admin:papers_paper_changelist"), {"q": term}).content.decode()
        return {title for title in ["Alpha", "Beta", "Éléments of Robótica"] if title in page}

    assert found("López") == found("LÓPEZ") == found("lopez") == found("maria LOPEZ") == {"Alpha"}
    assert found("Ünal") == found("ünal") == found("UNAL") == {"Beta"}
    assert found("elements robotica") == found("ROBÓTICA") == {"Éléments of Robótica"}


def test_authors_are_edited_one_per_line_and_categories_as_a_list(client, editor):
    paper = make_paper("Plain title", arxiv_id="2403.00009", authors=["María López", "Alan Turing"], categories=["cs.LG", "cs.AI"])
    url = reverse("admin:papers_paper_change", args=[paper.pk])
    page = client.get(url).content.decode()
    assert ">\nMaría López\nAlan Turing</textarea>" in page and 'value="cs.LG cs.AI"' in page and "[&quot;" not in page
    response = client.post(url, {
        "arxiv_id": "2403.00009", "title": "Plain title", "authors": "Grace Hopper\r\n  Ada Lovelace \r\n\r\n", "abstract": "x",
        "categories": "cs.RO, cs.LG", "upvotes": 1, "features-TOTAL_FORMS": 0, "features-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302
    paper.refresh_from_db()
    assert paper.authors == ["Grace Hopper", "Ada Lovelace"] and paper.categories == ["cs.RO", "cs.LG"]
