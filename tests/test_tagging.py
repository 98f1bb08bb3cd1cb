import pytest
from django.core.management import call_command

from papers.models import Paper, Topic
from tests.conftest import make_paper

pytestmark = pytest.mark.django_db


def test_most_sample_papers_get_a_topic_and_none_swallows_everything(sample_dir):
    call_command("import_papers", str(sample_dir / "daily-papers-page.txt"), "--date", "2024-03-14", stdout=None)
    total = Paper.objects.count()
    assert total == 64
    assert Paper.objects.filter(topics=None).count() <= total * 0.1
    for topic in Topic.objects.all():
        assert topic.papers.count() <= total * 0.7, f"{topic} tags {topic.papers.count()} of {total}"


def test_keywords_match_whole_words_case_insensitively():
    paper = make_paper("Quantized LLMs at INT4", abstract="Plain words only.")
    assert set(paper.topics.values_list("slug", flat=True)) == {"quantization-compression", "llms-reasoning"}
    paper = make_paper("Grobots are not robots", abstract="Nothing else here at all.")
    assert paper.topics.filter(slug="robotics").exists()
    paper = make_paper("Grobot planning", abstract="Nothing else here at all.")
    assert not paper.topics.filter(slug="robotics").exists()


def test_categories_map_onto_topics():
    paper = make_paper("Something entirely generic", abstract="Plain words only.", categories=["cs.RO"])
    assert list(paper.topics.values_list("slug", flat=True)) == ["robotics"]


def test_retag_applies_changed_rules_to_every_paper():
    paper = make_paper("Mamba state space models", abstract="Selective scans.")
    topic = Topic.objects.create(slug="ssm", name="State space models", keywords="state space\nmamba")
    assert not paper.topics.filter(pk=topic.pk).exists()
    call_command("retag_papers", stdout=None)
    assert paper.topics.filter(pk=topic.pk).exists()
