"""The shipped text model (papers/minilm.py, all-MiniLM-L6-v2 run with numpy): the vectors of
the PyTorch path, nothing downloaded, embedding in the background after an import, and the
paper page's similar papers."""

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.test import TestCase

from bench import realtext
from papers import lexical, minilm, vectors
from papers.models import LexicalFit, Paper
from papers.services import papers_embed, papers_lexical_refit
from papers.tasks import import_papers_task
from tests.conftest import make_paper

pytestmark = pytest.mark.django_db
REFERENCE = json.loads(Path(__file__).with_name("minilm_reference.json").read_text())
SAMPLE = Path(settings.BASE_DIR) / "sample" / "daily_papers_2024-03-12.json"


def test_the_vectors_are_those_of_sentence_transformers_with_the_network_cut_off(monkeypatch):
    """Reference: sentence-transformers 6.3.0 on PyTorch 2.13.0 (CPU), measured once on short
    sentences, two sample abstracts and one longer than the model's 256 tokens."""

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    minilm._files.cache_clear()
    rows = minilm.embed(REFERENCE["texts"])
    cosines = np.einsum("ij,ij->i", rows, np.asarray(REFERENCE["vectors"], dtype=np.float32))
    assert rows.shape == (len(REFERENCE["texts"]), 384) and rows.dtype == np.float32
    assert cosines.min() >= 0.99


def test_imported_papers_are_embedded_by_a_task_once_the_import_is_committed():
    with TestCase.captureOnCommitCallbacks() as callbacks:
        import_papers_task.delay(str(SAMPLE))
        assert set(Paper.objects.values_list("vector_model", flat=True)) == {""}  # not in the import itself
    assert [c.__self__.name for c in callbacks] == ["papers.tasks.embed_papers_task"]
    callbacks[0]()
    paper = Paper.objects.order_by("pk").first()
    assert set(Paper.objects.values_list("vector_model", flat=True)) == {vectors.MODEL}
    assert np.allclose(np.frombuffer(paper.vector, dtype=np.float32), vectors.embeddings([(paper.title, paper.abstract)])[0],
                       atol=1e-5)


def test_a_changed_abstract_is_embedded_again_an_unchanged_one_keeps_its_vector():
    paper = make_paper("Quantized language models", abstract="We quantize large language models to four bits.")
    paper.upvotes = 4
    paper.save()
    assert Paper.objects.get(pk=paper.pk).vector_model == vectors.MODEL
    Paper.objects.only("id", "upvotes").get(pk=paper.pk).save()  # its text not loaded: as stored
    assert Paper.objects.get(pk=paper.pk).vector_model == vectors.MODEL
    paper.abstract = "We teach a legged robot to walk."
    paper.save()
    assert Paper.objects.get(pk=paper.pk).vector_model == ""



def test_an_embedding_made_while_the_text_was_edited_is_not_written_and_the_next_run_embeds_the_new_text(monkeypatch):
    paper = make_paper("Quantized language models", abstract="We quantize large language models to four bits.")
    Paper.objects.filter(pk=paper.pk).update(vector=b"", vector_model="")
    embed = vectors.embeddings

    def edited_meanwhile(pairs, *args):
        rows = embed(pairs, *args)  # the model read the old text; an editor saves a new one now
        Paper.objects.filter(pk=paper.pk).update(abstract="We teach a legged robot to walk.")
        return rows

    monkeypatch.setattr(vectors, "embeddings", edited_meanwhile)
    papers_embed()
    assert Paper.objects.get(pk=paper.pk).vector_model == ""  # the stale vector was not written
    monkeypatch.setattr(vectors, "embeddings", embed)
    papers_embed()
    stored = Paper.objects.get(pk=paper.pk)
    assert stored.vector_model == vectors.MODEL
    assert np.allclose(np.frombuffer(stored.vector, dtype=np.float32),
                       embed([("Quantized language models", "We teach a legged robot to walk.")])[0], atol=1e-5)

def test_a_paper_page_lists_papers_on_its_subject_and_not_an_unrelated_one(client):
    paper = make_paper("Four-bit quantization of large language models", arxiv_id="2401.00001", abstract=(
        "We quantize the weights of large language models to four bits with a learned rounding, "
        "keeping perplexity within one percent of the 16-bit model."))
    make_paper("Post-training quantization for transformer language models", arxiv_id="2401.00002", abstract=(
        "Post-training quantization compresses transformer language models: we calibrate 4-bit and 8-bit weights "
        "on a few hundred sentences and keep their accuracy."))
    make_paper("Legged locomotion on rough terrain", arxiv_id="2401.00003", abstract=(
        "A quadruped robot learns to walk over rocks and stairs with reinforcement learning in simulation, "
        "then transfers the policy to the real machine."))
    page = client.get(paper.get_absolute_url()).content.decode()
    assert "Post-training quantization for transformer language models" in page
    assert "Legged locomotion on rough terrain" not in page


def test_a_refit_of_the_lexical_model_gives_every_paper_new_vectors_without_running_the_text_model(monkeypatch):
    realtext.import_sample()
    first = LexicalFit.objects.get()  # made by the first embedding, once there were papers enough
    before = dict(Paper.objects.values_list("pk", "vector"))
    assert set(Paper.objects.values_list("vector_model", flat=True)) == {f"{vectors.MODEL} + lexical {first.pk}"}
    monkeypatch.setattr(vectors, "embeddings", lambda *a, **k: pytest.fail("the text model ran again"))
    fit = papers_lexical_refit()
    assert fit.papers == len(before) and fit.pk == first.pk + 1 and LexicalFit.objects.count() == 1
    assert set(Paper.objects.values_list("vector_model", flat=True)) == {f"{vectors.MODEL} + lexical {fit.pk}"}
    for pk, vector in Paper.objects.values_list("pk", "vector"):
        assert np.allclose(vectors.semantic_part(vector), vectors.semantic_part(before[pk]), atol=1e-5)



def test_papers_no_lexical_model_can_be_fitted_on_are_embedded_by_the_text_model_alone():
    Paper.objects.bulk_create(Paper(title="A paper", abstract="", title_key=f"a paper {n}") for n in range(60))
    assert papers_embed() == 60
    assert not LexicalFit.objects.exists()  # every word in every paper: nothing to weigh
    assert set(Paper.objects.values_list("vector_model", flat=True)) == {vectors.MODEL}


def test_a_fit_this_scikit_learn_cannot_read_is_replaced_before_anything_is_embedded():
    realtext.import_sample()
    LexicalFit.objects.update(library="scikit-learn 0.1", data=b"not a fit of this version")
    Paper.objects.filter(pk=Paper.objects.order_by("pk").first().pk).update(vector_model="")
    papers_embed()
    fit = LexicalFit.objects.get()
    assert fit.library == lexical.library() and lexical.loads(fit.data)
    assert set(Paper.objects.values_list("vector_model", flat=True)) == {f"{vectors.MODEL} + lexical {fit.pk}"}
