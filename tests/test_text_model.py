"""The text model (papers/vectors.py): loaded from its wheel, computed at import, re-embedded
by a command; and recommendations on real abstracts (bench/realtext.py)."""

import socket
import subprocess
import sys
from io import StringIO

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command

from bench import realtext
from papers import vectors
from papers.models import Paper
from tests.conftest import make_paper

pytestmark = pytest.mark.django_db


def test_the_model_loads_and_embeds_with_the_network_cut_off(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    vectors.wordllama_model.cache_clear()
    rows = vectors.embeddings([("Four-bit weights", "We quantize language models."), ("Walking robots", "Legs.")], "wordllama")
    assert rows.shape == (2, vectors.WORDLLAMA_DIMENSIONS) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)


def test_embed_papers_re_embeds_only_papers_another_model_made_unless_told_all():
    current = make_paper("Robots that walk", abstract="A legged robot learns to walk.")
    stale = make_paper("Quantized language models", abstract="We quantize large language models to four bits.")
    Paper.objects.filter(pk=stale.pk).update(vector=b"\0" * 8, vector_model="hashed words 1")
    out = StringIO()
    call_command("embed_papers", stdout=out)
    assert out.getvalue() == f"Embedded 1 papers with {vectors.MODEL}.\n"
    stale.refresh_from_db()
    assert stale.vector_model == vectors.MODEL and bytes(stale.vector) == vectors.embeddings([(stale.title, stale.abstract)])[0].tobytes()
    call_command("embed_papers", "--all", stdout=out)
    assert out.getvalue().endswith("Embedded 2 papers with " + vectors.MODEL + ".\n")
    assert Paper.objects.get(pk=current.pk).vector_model == vectors.MODEL


HEAVY = ("papers.minilm", "scipy", "sklearn", "wordllama", "tokenizers", "safetensors")


def heavy_modules_after(code):
    """What of the text models a fresh process has loaded after running `code` (and its output)."""
    code = (
        "import sys, django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup()\n"
        f"{code}\nprint('heavy:', sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=settings.BASE_DIR, check=True).stdout


def test_commands_help_loads_neither_the_model_nor_scikit_learn():
    out = heavy_modules_after(
        "from django.core.management import call_command\n"
        "try:\n    call_command('embed_papers', '--help')\nexcept SystemExit:\n    pass"
    )
    assert "--all" in out and "heavy: []" in out


def test_the_workers_that_send_do_not_load_the_text_model():
    assert "heavy: []" in heavy_modules_after("import newsletter.tasks, newsletter.delivery, newsletter.offers, newsletter.fanout")


def test_the_shipped_centre_is_the_mean_of_the_sample_abstracts():
    realtext.import_sample()
    assert np.allclose(realtext.sample_centre(), vectors.centre(), atol=1e-5)


def test_readers_who_vote_on_real_abstracts_get_their_area_first():
    """30 readers (10 per area) like 3 papers of their area and dislike 2 of others; their next
    digest, made as a send makes it with the settings' weights, must lead with their area."""
    areas = realtext.import_sample()
    readers = realtext.make_readers(areas, 30, seed=3)
    ids = realtext.subscribe(readers)
    picks, _ = realtext.digests(ids, readers, settings.RANKING_WEIGHTS)
    scores = realtext.scores(picks, ids, readers, areas)
    assert scores["precision@5"] >= 0.8
    assert scores["trending"] < 0.2  # voters' digests are led by what they like, not by trending fill
    # The same readers with the model before: the evaluation tells a weak model apart.
    realtext.store(realtext.model_vectors("old"))
    picks, _ = realtext.digests(ids, readers, settings.RANKING_WEIGHTS)
    assert realtext.scores(picks, ids, readers, areas)["precision@5"] < 0.7
