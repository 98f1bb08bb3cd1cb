"""Every page and the digest as a reader sees them, in headless Chromium at a phone's and a
desktop's width: nothing scrolls sideways, what matters is where a thumb finds it, and
axe-core (injected from node_modules, see package.json) finds no serious problem."""

import email
import re
from email import policy
from io import StringIO
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command

from newsletter import tokens
from newsletter.models import Delivery, Subscriber
from papers.models import Paper
from tests.conftest import _unavailable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
PHONE, DESKTOP = {"width": 375, "height": 667}, {"width": 1280, "height": 900}


@pytest.fixture
def demo():
    """The demo's papers, featured pick and three readers, with the digests they were sent."""
    if not AXE.exists():
        _unavailable(f"needs {AXE} (npm ci, or make browser)")
    call_command("demo", stdout=StringIO())
    ada = Subscriber.objects.get(email="ada@example.org")
    paper = Paper.objects.get(pk=Delivery.objects.get(subscriber=ada).picks[1][0])
    return ada, paper


def serious_problems(page):
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)")
    return [
        f"{v['id']}: {v['help']} ({', '.join(n['target'][0] for n in v['nodes'][:3])})"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def sideways(page):
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def check(page, what):
    assert sideways(page) <= 0, f"{what} scrolls sideways"
    assert serious_problems(page) == [], what


def test_every_page_and_the_digest_read_well_on_a_phone_and_a_desktop(browser, server, demo):
    ada, paper = demo
    pages = {
        "home": "/",
        "subscribe": "/subscribe/",
        "archive": "/editions/",
        "edition": "/editions/2024-03-14/",
        "own copy": f"/editions/2024-03-14/{tokens.make(tokens.VIEW, ada.pk)}/",
        "paper": paper.get_absolute_url(),
        "feedback": f"/f/{tokens.make(tokens.FEEDBACK, ada.pk)}/{paper.pk}/more/",
        "why this paper": f"/f/{tokens.make(tokens.FEEDBACK, ada.pk)}/{paper.pk}/why/#why",
        "preferences": f"/preferences/{tokens.make(tokens.PREFERENCES, ada.pk)}/",
        "unsubscribe": f"/u/{tokens.make(tokens.UNSUBSCRIBE, ada.pk)}/",
        "my data": f"/data/{tokens.make(tokens.DATA, ada.pk)}/",
        "delete": f"/data/{tokens.make(tokens.DATA, ada.pk)}/delete/",
        "manage": "/preferences/",
        "confirm": f"/confirm/{tokens.make(tokens.CONFIRM, ada.pk)}/",
        "subscribe done": "/subscribe/done/",
        "bad link": "/u/not-a-token/",
    }
    for viewport in (PHONE, DESKTOP):
        page = browser.new_page(viewport=viewport)
        for name, path in pages.items():
            page.goto(server.url + path)
            check(page, f"{name} at {viewport['width']} px")
        page.close()

    phone = browser.new_page(viewport=PHONE)
    phone.goto(server.url + "/")
    assert phone.locator("#quick-email").bounding_box()["y"] < 2 * PHONE["height"]  # within two screens
    phone.goto(server.url + pages["feedback"])
    save = phone.get_by_role("button", name="Save my choice").bounding_box()
    assert save["y"] + save["height"] <= PHONE["height"]  # above the fold
    # A reason's button stops it; the page then offers the undo and the preferences page.
    phone.get_by_role("button", name="Fewer papers on").first.click()
    phone.get_by_role("button", name="Undo: follow").click()
    assert phone.get_by_role("status").text_content().startswith("You follow ")
    check(phone, "why this paper, undone, on a phone")
    phone.close()

    # The browser's time zone is offered while the reader has not chosen one; nothing is saved.
    berlin = browser.new_context(viewport=PHONE, timezone_id="Europe/Berlin")
    page = berlin.new_page()
    page.goto(server.url + pages["preferences"])
    assert page.locator("#id_timezone").input_value() == "Europe/Berlin"
    assert page.get_by_text("Guessed from your browser").is_visible()
    assert not page.locator("#id_weekday").is_visible()  # a daily reader has no weekday to pick
    page.get_by_role("radio", name="Weekly").check()
    assert page.locator("#id_weekday").is_visible()
    berlin.close()
    ada.refresh_from_db()
    assert ada.timezone == "UTC"

    first = next(m for m in mail.outbox if m.tags == ["digest"])  # the demo's confirmations come first
    digest = email.message_from_bytes(first.message().as_bytes(), policy=policy.default)
    assert len(digest["Subject"]) <= 60
    html = digest.get_body(("html",)).get_content()
    assert re.match(r"<!doctype html>", html, re.I)
    for viewport in (PHONE, DESKTOP):
        page = browser.new_page(viewport=viewport)
        page.set_content(html)
        check(page, f"the digest at {viewport['width']} px")
        preheader = page.locator(".preheader")
        assert not preheader.is_visible() and preheader.text_content().startswith("1 editor's pick, 10 in ")
        more = page.get_by_role("link", name="More like this").first.bounding_box()
        assert more["height"] >= 44 and more["width"] >= 44  # a tap target
        page.close()
