import json

import pytest
from django.core.management import CommandError, call_command

from papers.models import Paper

pytestmark = pytest.mark.django_db

ATOM = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <title>ArXiv Query</title>
  <entry>
    <id>http://arxiv.org/abs/2403.09611v2</id>
    <updated>2024-03-15T10:00:00Z</updated>
    <published>2024-03-14T17:59:58Z</published>
    <title>MM1: Methods,
      Analysis and Insights</title>
    <summary>  We build performant multimodal image models.  </summary>
    <author><name>Ada Lovelace</name></author>
    <author><name>Alan Turing</name></author>
    <link href="http://arxiv.org/abs/2403.09611v2" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2403.09611v2" rel="related" type="application/pdf"/>
    <arxiv:primary_category term="cs.CV" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CV" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/hep-th/9901001v1</id>
    <published>1999-01-04T00:00:00Z</published>
    <title></title>
    <summary>No title here.</summary>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/hep-th/9901002v1</id>
    <published>1999-01-05T00:00:00Z</published>
    <title>An old-style paper</title>
    <summary>Strings.</summary>
    <author><name>Edward Witten</name></author>
    <arxiv:primary_category term="hep-th"/>
  </entry>
</feed>
"""


def run(*args):
    from io import StringIO

    out, err = StringIO(), StringIO()
    try:
        call_command("import_papers", *map(str, args), stdout=out, stderr=err)
        failed = False
    except CommandError:
        failed = True
    return out.getvalue(), err.getvalue(), failed


def test_it_imports_a_daily_papers_json_file(sample_dir):
    out, err, failed = run(sample_dir / "daily_papers_2024-03-12.json")
    assert not failed and err == ""
    assert "22 created, 0 updated, 0 unchanged, 0 rejected" in out
    paper = Paper.objects.get(arxiv_id="2403.01274")
    assert paper.title.startswith("RAMario")
    assert paper.upvotes == 35
    assert str(paper.listed_on) == "2024-03-12"
    assert paper.authors and paper.source == "daily"
    assert paper.topics.filter(slug="reinforcement-learning").exists()


def test_reimporting_updates_upvotes_and_never_duplicates(sample_dir):
    run(sample_dir / "daily_papers_2024-03-12.json")
    out, _, _ = run(sample_dir / "daily_papers_2024-03-12.json")
    assert "0 created, 0 updated, 22 unchanged" in out
    # 2403.03740 is listed again on the 13th with other upvotes.
    out, _, _ = run(sample_dir / "daily_papers_2024-03-13.json")
    assert "22 created, 2 updated" in out
    assert Paper.objects.count() == 44
    relisted = Paper.objects.get(arxiv_id="2403.03740")
    assert relisted.upvotes == 5
    assert str(relisted.listed_on) == "2024-03-12"  # the first day it trended


def test_bad_records_are_reported_by_position_and_the_rest_import(tmp_path):
    good = {"paper": {"id": "2403.00001", "title": "Good one", "upvotes": 3}, "publishedAt": "2024-03-12T02:00:00Z"}
    records = [
        good,
        {"paper": {"title": "No id"}},
        {"paper": {"id": "not-an-id", "title": "Bad id"}},
        {"paper": {"id": "2403.00002", "title": "Negative", "upvotes": -4}},
        {"paper": {"id": "2403.00003"}},
        "just a string",
        {"paper": {"id": "2403.00004v2", "title": "Also good", "unknownKey": 1}, "extra": True},
    ]
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(records))
    out, err, failed = run(path)
    assert failed
    assert "2 created, 0 updated, 0 unchanged, 5 rejected" in out
    assert "record 2: missing 'id'" in err
    assert "record 3 (not-an-id): 'not-an-id' is not an arXiv identifier" in err
    assert "record 4 (2403.00002): 'upvotes' must be a whole number" in err
    assert "record 5 (2403.00003): missing 'title'" in err
    assert "record 6: not a JSON object" in err
    assert set(Paper.objects.values_list("arxiv_id", flat=True)) == {"2403.00001", "2403.00004"}


@pytest.mark.parametrize("content, message", [(b"[{'broken'", "not valid JSON"), (b'{"papers": []}', "expected a JSON array")])
def test_a_malformed_json_file_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "feed.json"
    path.write_bytes(content)
    out, err, failed = run(path)
    assert failed
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"garbage, not a feed at all\n\nstill garbage", b"", b"   \n", b"[]"])
def test_a_file_from_which_nothing_parses_is_a_one_line_error_naming_it(tmp_path, content):
    path = tmp_path / "feed.json"
    path.write_bytes(content)
    out, err, failed = run(path)
    assert failed and out == ""
    assert err.strip().splitlines() == [f"{path}: no papers found in it (read as {'json' if content == b'[]' else 'text'})"]


def test_a_malformed_xml_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_bytes(b"<feed><entry></feed>")
    _, err, failed = run(path)
    assert failed and "not valid XML" in err and len(err.strip().splitlines()) == 1


def test_a_missing_file_is_named(tmp_path):
    _, err, failed = run(tmp_path / "nope.json")
    assert failed and "nope.json: cannot read" in err


def test_it_imports_an_arxiv_atom_feed(tmp_path):
    path = tmp_path / "query.xml"
    path.write_bytes(ATOM)
    out, err, failed = run(path)
    assert failed  # one broken entry
    assert "2 created, 0 updated, 0 unchanged, 1 rejected" in out
    assert "record 2 (hep-th/9901001v1): missing 'title'" in err
    paper = Paper.objects.get(arxiv_id="2403.09611")
    assert paper.title == "MM1: Methods, Analysis and Insights"
    assert paper.abstract == "We build performant multimodal image models."
    assert paper.authors == ["Ada Lovelace", "Alan Turing"]
    assert paper.categories == ["cs.CV", "cs.CL"]
    assert paper.pdf_url == "https://arxiv.org/pdf/2403.09611v2"
    assert str(paper.published_on) == "2024-03-14"
    assert paper.topics.filter(slug="computer-vision").exists()
    assert Paper.objects.get(arxiv_id="hep-th/9901002").categories == ["hep-th"]


def test_arxiv_enrichment_keeps_upvotes_and_listing_day(sample_dir, tmp_path):
    run(sample_dir / "daily_papers_2024-03-14.json")
    before = Paper.objects.get(arxiv_id="2403.09631")
    path = tmp_path / "query.xml"
    path.write_bytes(ATOM.replace(b"2403.09611", b"2403.09631"))
    run(path)
    after = Paper.objects.get(arxiv_id="2403.09631")
    assert after.upvotes == before.upvotes and after.listed_on == before.listed_on
    assert after.categories == ["cs.CV", "cs.CL"]


def test_it_imports_the_plain_text_listing(sample_dir):
    out, err, failed = run(sample_dir / "daily-papers-page.txt", "--date", "2024-03-14")
    assert not failed, err
    assert "64 created" in out
    assert not Paper.objects.filter(title__in=["new", "Subscribe", "Mar 14"]).exists()
    paper = Paper.objects.get(title="Dataset Quantization")
    assert paper.arxiv_id is None and paper.source == "text"
    assert paper.abstract.startswith("State-of-the-art deep neural networks")
    assert str(paper.listed_on) == "2024-03-14"


def test_the_text_listing_joins_papers_known_by_identifier(sample_dir):
    run(sample_dir / "daily_papers_2024-03-14.json")
    out, _, _ = run(sample_dir / "daily-papers-page.txt", "--date", "2024-03-14")
    assert "42 created, 0 updated, 22 unchanged" in out
    assert Paper.objects.count() == 64


def test_a_text_listing_with_a_title_but_no_abstract_reports_it(tmp_path):
    abstract = "We propose a method. " * 20
    path = tmp_path / "page.txt"
    path.write_text(f"Subscribe\n\nMar 14\n\nFirst title\n\n{abstract}\n\nOrphan title\n\nSecond title\n\n{abstract}\n")
    out, err, failed = run(path, "--format", "text")
    assert failed
    assert "2 created" in out and "1 rejected" in out
    assert "title without an abstract: 'Orphan title'" in err


def test_the_import_task_imports_a_file(sample_dir):
    from papers.tasks import import_papers_task

    result = import_papers_task.delay(str(sample_dir / "daily_papers_2024-03-13.json")).get()
    assert result["created"] == 24 and result["rejected"] == 0
