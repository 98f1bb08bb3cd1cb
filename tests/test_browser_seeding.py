"""Seeding in a real browser (Debian's headless Chromium): a reader pastes ids and uploads a
.bib on the preferences page, on a phone and on a desktop, and sees what was found."""

import os
from pathlib import Path

import pytest

from newsletter.links import preferences_path
from newsletter.models import Vote
from tests.conftest import make_paper, make_subscriber
from tests.test_browser_pages import AXE, DESKTOP, PHONE, check
from tests.test_fetch_papers import sources  # noqa: F401 - the fixture: a local HTTP server as arXiv
from tests.test_seeding import QUANT, arxiv  # noqa: F401 - the fake arXiv

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

BIB = b"""@article{mine,
  title = {My Quantized Models},
  eprint = {2403.09611},
  archivePrefix = {arXiv},
}
@book{unknown, title = {A Book Nobody Has}}
"""


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375px", "1280px"])
def test_a_reader_pastes_ids_and_uploads_a_bib_and_sees_what_was_found(browser, server, arxiv, viewport, tmp_path):  # noqa: F811
    if not AXE.exists():
        pytest.skip(f"needs {AXE} (npm ci)")
    shots = Path(os.environ.get("SCREENSHOTS", tmp_path))
    make_paper("My Quantized Models", arxiv_id="2403.09611", abstract=QUANT)
    reader = make_subscriber("reader@example.org")
    page = browser.new_page(viewport=viewport)
    page.goto(server.url + preferences_path(reader))
    page.get_by_label("arXiv ids or links").fill("2312.00003\nhttps://arxiv.org/abs/2399.99999")
    bib = tmp_path / "mine.bib"
    bib.write_bytes(BIB)
    page.get_by_label("Or a file").set_input_files(str(bib))
    page.get_by_role("button", name="Add my papers").click()
    status = page.get_by_role("status")
    assert status.text_content().startswith("Added: 1 paper liked at once, 2 being fetched from arXiv")
    assert "line 6 “A Book Nobody Has”" in status.text_content()
    # The fetch ran as the request ended (eager tasks): what arXiv had is there.
    assert page.locator("#seeds").text_content().split() == "2 of your papers liked. Not found on arXiv: 2399.99999.".split()
    assert Vote.objects.filter(subscriber=reader, value=1).count() == 2
    check(page, f"preferences after seeding at {viewport['width']} px")
    page.screenshot(path=shots / f"seeded-{viewport['width']}.png", full_page=True)
    page.evaluate("document.getElementById('seed').scrollIntoView()")
    page.screenshot(path=shots / f"seeded-{viewport['width']}-section.png")

    page.get_by_label("Or a file").set_input_files({"name": "broken.bib", "mimeType": "text/plain",
                                                    "buffer": b"@article{a,\n  title = {Unclosed,\n}\n@misc{b, title={x}}\n"})
    page.get_by_role("button", name="Add my papers").click()
    assert page.get_by_role("alert").text_content() == "Nothing was added: see below."
    assert page.get_by_text("broken.bib: line 1: this BibTeX entry cannot be read").is_visible()
    check(page, f"a bad file at {viewport['width']} px")
    page.evaluate("document.getElementById('seed').scrollIntoView()")
    page.screenshot(path=shots / f"bad-file-{viewport['width']}.png")
    page.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375px", "1280px"])
def test_right_after_confirming_a_reader_can_add_their_papers(browser, server, viewport, tmp_path):
    from newsletter import tokens

    if not AXE.exists():
        pytest.skip(f"needs {AXE} (npm ci)")
    shots = Path(os.environ.get("SCREENSHOTS", tmp_path))
    make_paper("My Quantized Models", arxiv_id="2403.09611", abstract=QUANT)
    reader = make_subscriber("new@example.org", status="pending", confirmed_at=None)
    page = browser.new_page(viewport=viewport)
    page.goto(f"{server.url}/confirm/{tokens.make(tokens.CONFIRM, reader.pk)}/")
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.wait_for_selector("text=Start from your papers")
    check(page, f"the confirmation page at {viewport['width']} px")
    page.screenshot(path=shots / f"confirmed-{viewport['width']}.png", full_page=True)
    page.get_by_label("arXiv ids or links").fill("arXiv:2403.09611v2")
    page.get_by_role("button", name="Add my papers").click()
    assert page.get_by_role("status").text_content() == "Added: 1 paper liked at once."
    assert Vote.objects.filter(subscriber=reader, paper__arxiv_id="2403.09611", value=1).exists()
    page.close()
