"""Seeding from a reader's own papers: pasted ids and bibliography files read (papers.references),
known papers liked at once, unknown ones fetched from a local fake arXiv in the background,
and the next digest (a first one included) following them, saying so."""

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone
from werkzeug import Response

from newsletter.links import preferences_path
from newsletter.models import Seed, Vote
from newsletter.services import subscriber_seed
from papers import vectors
from papers.models import Paper
from papers.references import BadReferences, Reference, parse_file, parse_pasted
from tests.conftest import DAY, make_paper, make_subscriber
from tests.test_fetch_papers import sources  # noqa: F401 - the fixture: a local HTTP server as arXiv
from tests.test_new_readers import QUANT, day_of_papers, send  # noqa: F401 - a day of quantization and robots

BIB = rb"""% exported by a reference manager
@string{arx = "arXiv preprint"}
@article{mine2024,
  title = {My {Quantized} Models},
  author = {Lovelace, Ada},
  eprint = {2403.09611},
  archivePrefix = {arXiv},
}

@inproceedings{other,
  title = "A Walking Robot",
  url = {https://arxiv.org/abs/2401.00002v3},
}
@misc{doi, title = {By DOI}, doi = {10.48550/arXiv.2312.00003}}
@article{journal, title = {In a journal}, journal = arx # " arXiv:hep-th/9901001"}
@book{untitled, title = {A book without an arXiv id}}
"""

RIS = b"""TY  - JOUR\r
TI  - My Quantized Models\r
AU  - Lovelace, Ada\r
UR  - http://arxiv.org/abs/2403.09611\r
AB  - A long abstract\r
that wraps onto a second line.\r
ER  - \r
\r
TY  - BOOK\r
TI  - A book without an arXiv id\r
ER  - \r
"""

ZOTERO_CSV = (
    b'\xef\xbb\xbf"Key","Item Type","Publication Year","Author","Title","DOI","Url","Extra"\n'
    b'"ABCD1234","preprint","2024","Lovelace, Ada","My Quantized Models","10.48550/arXiv.2403.09611",'
    b'"http://arxiv.org/abs/2403.09611v1","arXiv:2403.09611 [cs]"\n'
    b'"EFGH5678","book","2020","Turing, Alan","A book without an arXiv id","","",""\n'
)


def test_bibtex_entries_give_arxiv_ids_from_eprints_urls_dois_and_journals():
    assert parse_file(BIB) == [
        Reference(3, "2403.09611", "My Quantized Models"),
        Reference(10, "2401.00002", "A Walking Robot"),
        Reference(14, "2312.00003", "By DOI"),
        Reference(15, "hep-th/9901001", "In a journal"),
        Reference(16, None, "A book without an arXiv id"),
    ]


def test_ris_and_zotero_csv_exports_give_ids_and_titles():
    expected = [Reference(None, "2403.09611", "My Quantized Models"), Reference(None, None, "A book without an arXiv id")]
    for data in (RIS, ZOTERO_CSV):
        assert [(r.arxiv_id, r.title) for r in parse_file(data)] == [(r.arxiv_id, r.title) for r in expected]
    assert [r.line for r in parse_file(RIS)] == [1, 9]
    assert [r.line for r in parse_file(ZOTERO_CSV)] == [2, 3]


def test_pasted_ids_and_links_in_any_form_arxiv_ids_understands():
    text = "2403.09611v2, https://arxiv.org/abs/2401.00002\narXiv:hep-th/9901001  https://arxiv.org/pdf/2312.00003.pdf"
    assert [r.arxiv_id for r in parse_pasted(text)] == ["2403.09611", "2401.00002", "hep-th/9901001", "2312.00003"]


@pytest.mark.parametrize("data, message", [
    (b"@article{a,\n  title = {Fine},\n}\n@article{b,\n  title = {Unclosed,\n}\n@misc{c, title={x}}\n",
     "line 4: this BibTeX entry cannot be read"),
    (b"TY  - JOUR\nTI  - Fine\nER  - \nstray text\nTY  - JOUR\n", "line 4: not a RIS line"),
    (b"TY  - JOUR\nTI  - No end\n", "line 1: this record has no end"),
    (b'"Title","Url"\n"Fine","https://arxiv.org/abs/2401.00002"\n"Two","x","three cells"\n',
     "line 3: more cells than the header has columns"),
    (b"Title\nok\n\xff\xfe bad bytes\n", "line 3: not UTF-8 text"),
    (b"just some notes\n", "line 1: not a BibTeX, RIS or Zotero CSV file"),
])
def test_a_bad_file_is_refused_with_the_line_it_breaks_on(data, message):
    with pytest.raises(BadReferences, match=re.escape(message)):
        parse_file(data)


def test_a_bad_pasted_id_is_named_by_its_line():
    with pytest.raises(BadReferences, match=re.escape("line 2: 'not-an-id' is not an arXiv identifier")):
        parse_pasted("2403.09611\nnot-an-id")


def test_at_most_300_papers_at_a_time():
    with pytest.raises(BadReferences, match="at most 300 papers at a time; this has 301"):
        parse_pasted("\n".join(f"2401.{n:05d}" for n in range(301)))
    bib = "".join(f"@misc{{k{n}, title={{Paper {n}}}}}\n" for n in range(301)).encode()
    with pytest.raises(BadReferences, match="this has 301"):
        parse_file(bib)


# Through the pages

def atom_entry(arxiv_id, title, abstract):
    return f"""<entry><id>http://arxiv.org/abs/{arxiv_id}v1</id><published>2023-12-01T00:00:00Z</published>
<title>{title}</title><summary>{abstract}</summary><author><name>Ada Lovelace</name></author>
<arxiv:primary_category term="cs.LG"/></entry>"""


ARXIV_KNOWS = {"2312.00003": ("Four-bit language models on phones", QUANT)}


@pytest.fixture
def arxiv(sources):  # noqa: F811
    """A fake arXiv API: answers id_list queries with the entries it knows, as arXiv does."""
    def answer(request):
        ids = request.args["id_list"].split(",")
        entries = "".join(atom_entry(i, *ARXIV_KNOWS[i]) for i in ids if i in ARXIV_KNOWS)
        return Response(f'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">'
                        f"{entries}</feed>", content_type="application/atom+xml")

    sources.expect_request("/api/query").respond_with_handler(answer)
    return sources


def page(client, subscriber):
    return client.get(preferences_path(subscriber))


def seed(client, subscriber, ids="", file=None):
    data = {"action": "seed", "ids": ids, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    if file is not None:
        data["file"] = file
    return client.post(preferences_path(subscriber), data)


def upload(name, content):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


@pytest.mark.django_db
def test_known_papers_are_liked_at_once_and_unknown_ones_fetched_from_arxiv(arxiv):
    known = make_paper("My Quantized Models", arxiv_id="2403.09611", abstract=QUANT)
    by_title = make_paper("A book without an arXiv id")
    reader = make_subscriber("reader@example.org")
    client = Client(enforce_csrf_checks=True)
    page(client, reader)
    bib = b"@misc{a, title={My Quantized Models}, eprint={2403.09611}}\n@book{b, title={A Book without an arXiv ID}}\n" \
          b"@misc{c, title={Unheard of}}\n"
    answer = seed(client, reader, "2312.00003 https://arxiv.org/abs/2399.99999", upload("mine.bib", bib)).content.decode()
    assert "Added: 2 papers liked at once, 2 being fetched from arXiv (liked when they arrive)." in answer
    assert "Not found (no arXiv id, and no paper of that title here): line 3 “Unheard of”." in answer
    # The background task ran as the request ended: what arXiv had is imported and liked.
    fetched = Paper.objects.get(arxiv_id="2312.00003")
    assert fetched.title == "Four-bit language models on phones" and fetched.listed_on is None
    assert fetched.vector_model.startswith(vectors.MODEL)  # a like teaches the profile at once
    liked = set(Vote.objects.filter(subscriber=reader, value=1).values_list("paper_id", flat=True))
    assert liked == {known.pk, by_title.pk, fetched.pk}
    shown = page(client, reader).content.decode()
    assert "3 of your papers liked." in shown and "Not found on arXiv: 2399.99999." in shown
    assert "Unheard of" not in shown  # nothing else of the file is kept
    assert [r.path for r, _ in arxiv.log] == ["/api/query"]  # both unknown ids in one request
    assert reader.events.filter(kind="seeded").count() == 1


@pytest.mark.django_db
def test_an_unreachable_arxiv_is_shown_and_the_ids_can_be_added_again(sources):  # noqa: F811
    sources.expect_request("/api/query").respond_with_data("down", status=503)
    reader = make_subscriber("reader@example.org")
    client = Client(enforce_csrf_checks=True)
    page(client, reader)
    seed(client, reader, "2312.00003")
    assert "arXiv could not be reached for 2312.00003: add them again later." in page(client, reader).content.decode()
    sources.clear()
    sources.expect_request("/api/query").respond_with_handler(
        lambda request: Response(f'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">'
                                 f'{atom_entry("2312.00003", *ARXIV_KNOWS["2312.00003"])}</feed>'))
    seed(client, reader, "2312.00003")
    assert list(reader.seeds.values_list("state", flat=True)) == [Seed.State.FOUND]


@pytest.mark.django_db
def test_a_bad_file_loses_nothing_and_says_which_line():
    reader = make_subscriber("reader@example.org")
    client = Client(enforce_csrf_checks=True)
    page(client, reader)
    answer = seed(client, reader, "2403.09611", upload("mine.ris", b"TY  - JOUR\nTI  - No end\n"))
    assert answer.status_code == 400
    assert "mine.ris: line 1: this record has no end" in answer.content.decode()
    assert "2403.09611" in answer.content.decode()  # what was pasted is still in the box
    assert not reader.seeds.exists() and not reader.events.filter(kind="seeded").exists()
    empty = seed(client, reader)
    assert empty.status_code == 400 and "Paste arXiv ids or links, or choose a file" in empty.content.decode()


@pytest.mark.django_db
def test_the_confirmation_page_offers_to_seed():
    from newsletter import tokens

    reader = make_subscriber("new@example.org", status="pending", confirmed_at=None)
    client = Client(enforce_csrf_checks=True)
    url = f"/confirm/{tokens.make(tokens.CONFIRM, reader.pk)}/"
    client.get(url)
    answer = client.post(url, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}).content.decode()
    assert "Start from your papers" in answer
    assert f'action="{preferences_path(reader)}#seed"' in answer and 'enctype="multipart/form-data"' in answer


# The digests that follow

@pytest.fixture
def own_paper(day_of_papers):
    """test_new_readers' day, and the reader's own paper (not listed on any day)."""
    return make_paper("My quantized models", arxiv_id="2312.00003", abstract=QUANT)


@pytest.mark.django_db
def test_the_next_digest_follows_one_seeded_paper_and_names_it(own_paper):
    reader = make_subscriber("reader@example.org", topics=["robotics"])
    subscriber_seed(subscriber=reader, references=[Reference(1, "2312.00003")])
    body = send()["reader@example.org"]
    heading = "CLOSE TO YOUR PAPER “MY QUANTIZED MODELS”"
    assert heading in body
    assert body.index(heading) < body.index("Quantized language models at four bits")


@pytest.mark.django_db
def test_a_seeders_first_digest_follows_their_papers_not_the_topic_sampler(own_paper, time_machine):
    time_machine.move_to(timezone.make_aware(dt.datetime.combine(DAY - dt.timedelta(days=1), dt.time(18))))
    sampled = make_subscriber("sampled@example.org", topics=["robotics"])
    seeder = make_subscriber("seeder@example.org", topics=["robotics"])
    subscriber_seed(subscriber=seeder, references=[Reference(1, "2312.00003")])
    bodies = send()
    assert "Your first digest" in bodies[sampled.email]  # the sampler, for a reader who gave nothing
    first = bodies[seeder.email]
    assert "Your first digest" not in first
    assert "CLOSE TO YOUR PAPER “MY QUANTIZED MODELS”" in first and "Quantized language models at four bits" in first


@pytest.mark.django_db
def test_seeds_are_in_the_readers_export_and_go_with_an_erasure():
    from newsletter.services import subscriber_erase, subscriber_export

    make_paper("My Quantized Models", arxiv_id="2403.09611")
    reader = make_subscriber("reader@example.org")
    subscriber_seed(subscriber=reader, references=[Reference(1, "2403.09611"), Reference(2, "2399.99999")])
    exported = subscriber_export(subscriber=reader)["seeds"]
    assert [(s["paper"], s["state"]) for s in exported] == [("2403.09611", "found"), ("2399.99999", "pending")]
    subscriber_erase(subscriber=reader)
    assert not Seed.objects.exists()


@pytest.mark.django_db
def test_a_paper_seeded_by_title_and_then_by_its_arxiv_id_is_one_seed(arxiv):
    untitled = make_paper("Four-bit language models on phones")  # listed once without its arXiv id
    reader = make_subscriber("reader@example.org")
    client = Client(enforce_csrf_checks=True)
    page(client, reader)
    seed(client, reader, file=upload("mine.bib", b"@misc{a, title={Four-bit language models on phones}}\n"))
    seed(client, reader, "2312.00003")
    untitled.refresh_from_db()
    assert untitled.arxiv_id == "2312.00003"  # arXiv's entry completed the paper known by its title
    assert list(reader.seeds.values_list("paper_id", "state")) == [(untitled.pk, Seed.State.FOUND)]
    assert "1 of your papers liked." in page(client, reader).content.decode()
