"""The reader's pages, in headless Chromium at a phone's and a desktop's width, where the issue
#28 reader stumbled: each test clicks through as a reader would and leaves screenshots in
/tmp/pages-*.png to look at."""

import pytest

from newsletter import tokens
from newsletter.models import Subscriber
from tests.test_browser_pages import DESKTOP, PHONE, check, demo  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
VIEWPORTS = (PHONE, DESKTOP)


def shot(page, name, viewport):
    page.screenshot(path=f"/tmp/pages-{name}-{viewport['width']}.png", full_page=True)


def test_a_rejected_time_zone_leaves_the_saved_one_on_the_form(browser, server, demo):
    ada, _ = demo
    Subscriber.objects.filter(pk=ada.pk).update(timezone="Europe/Paris")
    for viewport in VIEWPORTS:
        page = browser.new_page(viewport=viewport)
        page.goto(f"{server.url}/preferences/{tokens.make(tokens.PREFERENCES, ada.pk)}/")
        # What a stale page or a hand-made request sends: a zone the list does not have.
        page.evaluate("""() => { const select = document.getElementById('id_timezone');
                                 select.add(new Option('Mars/Olympus', 'Mars/Olympus', true, true)); }""")
        page.get_by_role("button", name="Save preferences").click()
        assert page.get_by_role("alert").is_visible()
        assert page.locator("#id_timezone").input_value() == "Europe/Paris"
        shot(page, "preferences-rejected-zone", viewport)
        check(page, f"preferences after a rejected zone at {viewport['width']} px")
        page.get_by_role("button", name="Save preferences").click()  # a second Save keeps the zone
        assert page.get_by_role("status").text_content() == "Your preferences are saved."
        page.close()
        ada.refresh_from_db()
        assert ada.timezone == "Europe/Paris"


def test_the_subscribe_page_promises_what_the_digest_has(browser, server, demo):
    from django.core import mail

    digest = next(m for m in mail.outbox if m.tags == ["digest"]).alternatives[0][0]
    for viewport in VIEWPORTS:
        page = browser.new_page(viewport=viewport)
        page.goto(f"{server.url}/subscribe/")
        promise = page.get_by_text("Each paper comes with").text_content()
        assert "arXiv" in promise and "arxiv.org/abs/" in digest
        assert "More like this" in promise and "More like this" in digest
        assert "PDF" not in promise and "/pdf/" not in digest  # what it does not have, it does not promise
        shot(page, "subscribe", viewport)
        page.close()


def test_the_feedback_page_shows_the_paper_before_the_choice(browser, server, demo):
    ada, paper = demo
    for viewport in VIEWPORTS:
        page = browser.new_page(viewport=viewport)
        page.goto(f"{server.url}/f/{tokens.make(tokens.FEEDBACK, ada.pk)}/{paper.pk}/more/")
        title = page.get_by_role("heading", name=paper.title[:40]).bounding_box()
        question = page.get_by_role("heading", name="More or fewer papers like this one?").bounding_box()
        first_words = page.get_by_text(" ".join(paper.abstract.split()[:6])).bounding_box()
        save = page.get_by_role("button", name="Save my choice").bounding_box()
        assert title["y"] < first_words["y"] < question["y"] < save["y"]
        shot(page, "feedback", viewport)
        assert save["y"] + save["height"] <= viewport["height"]  # the paper and the choice on one screen
        shot(page, "feedback", viewport)
        check(page, f"feedback at {viewport['width']} px")
        page.close()


def test_the_topic_filter_row_shows_the_topic_that_is_on(browser, server, demo):
    from papers.models import Topic

    last = list(Topic.objects.all())[-1]  # the far end of the row, as the page orders it
    for viewport in VIEWPORTS:
        page = browser.new_page(viewport=viewport)
        page.goto(f"{server.url}/?topic={last.slug}")
        on = page.locator(".chips a.on")
        assert on.text_content() == last.name
        box = on.bounding_box()
        assert 0 <= box["x"] and box["x"] + box["width"] <= viewport["width"], box
        assert page.evaluate("window.scrollY") == 0  # the page itself stays at the top
        shot(page, "home-topic", viewport)
        check(page, f"home with a topic on at {viewport['width']} px")
        page.close()


def test_your_votes_and_the_web_copys_buttons_have_room_on_a_phone(browser, server, demo):
    from newsletter import services
    from newsletter.models import Delivery
    from papers.models import Paper

    ada, _ = demo
    picks = [Paper.objects.get(pk=pid) for pid in Delivery.objects.get(subscriber=ada).paper_ids()[:3]]
    for paper, value in zip(picks, (1, -1, 1)):
        services.vote_record(subscriber=ada, paper=paper, value=value)

    def one_line(locator):
        return all(box["height"] < 2 * 24 for box in (e.bounding_box() for e in locator.all()))

    for viewport in VIEWPORTS:
        page = browser.new_page(viewport=viewport)
        page.goto(f"{server.url}/editions/2024-03-14/{tokens.make(tokens.VIEW, ada.pk)}/")
        shot(page, "own-copy", viewport)
        page.locator("article.paper").first.screenshot(path=f"/tmp/pages-own-copy-first-{viewport['width']}.png")
        more, less = page.get_by_role("link", name="More like this"), page.get_by_role("link", name="Less like this")
        assert one_line(more) and one_line(less)
        assert [box["y"] for box in map(lambda m: m.bounding_box(), more.all())] == [
            box["y"] for box in map(lambda m: m.bounding_box(), less.all())]  # side by side, never split
        page.goto(f"{server.url}/preferences/{tokens.make(tokens.PREFERENCES, ada.pk)}/")
        shot(page, "preferences-votes", viewport)
        votes = page.locator("#votes li")
        assert votes.count() == 3
        for n in range(3):  # each vote reads as one: what, which paper, then its buttons below, none squeezed
            vote = votes.nth(n)
            title = vote.get_by_role("link").bounding_box()
            buttons = vote.get_by_role("button")
            assert all(box["y"] >= title["y"] + title["height"] for box in map(lambda b: b.bounding_box(), buttons.all()))
            assert one_line(buttons)
        check(page, f"preferences with votes at {viewport['width']} px")
        page.close()


def test_the_confirmation_page_offers_the_browsers_time_zone_and_says_when_the_next_digest_comes(browser, server, demo):
    from tests.conftest import make_subscriber

    for viewport in VIEWPORTS:
        zoe = make_subscriber(f"zoe{viewport['width']}@example.org", status="pending", hour=7)
        context = browser.new_context(viewport=viewport, timezone_id="Europe/Berlin")
        page = context.new_page()
        page.goto(f"{server.url}/confirm/{tokens.make(tokens.CONFIRM, zoe.pk)}/")
        page.get_by_role("button", name="Yes, subscribe me").click()
        assert page.get_by_role("heading", level=1).text_content() == "You're subscribed 🎉"
        assert "Your first digest arrives" in page.content() and "at 07:00</strong> (UTC)" in page.content()
        shot(page, "confirmed", viewport)
        check(page, f"confirmed at {viewport['width']} px")
        page.get_by_role("button", name="Use Europe/Berlin").click()  # one click, CSRF and all
        assert page.get_by_role("status").text_content() == "Your time zone is now Europe/Berlin."
        zoe.refresh_from_db()
        assert zoe.timezone == "Europe/Berlin" and zoe.next_digest_at.astimezone(zoe.tz).hour == 7
        when = zoe.next_digest_at.astimezone(zoe.tz)
        assert f"Your next digest arrives {when:%A} {when.day} {when:%B} at 07:00 (Europe/Berlin)" in (
            page.locator("main, body").first.inner_text())
        assert not page.get_by_role("button", name="Use Europe/Berlin").is_visible()  # nothing left to offer
        shot(page, "confirmed-zone-set", viewport)
        # Opening the link again later: already subscribed, the next digest, no "first".
        page.goto(f"{server.url}/confirm/{tokens.make(tokens.CONFIRM, zoe.pk)}/")
        assert page.get_by_role("heading", level=1).text_content() == "You're already subscribed"
        assert "first digest" not in page.content() and "07:00</strong> (Europe/Berlin)" in page.content()
        context.close()


def test_the_digests_more_and_less_buttons_sit_side_by_side_as_tap_targets(browser, demo):
    from django.core import mail

    html = next(m for m in mail.outbox if m.tags == ["digest"]).alternatives[0][0]
    for viewport in VIEWPORTS:
        page = browser.new_page(viewport=viewport)
        page.set_content(html)
        more, less = page.get_by_role("link", name="More like this"), page.get_by_role("link", name="Less like this")
        for a, b in zip(more.all(), less.all()):
            a, b = a.bounding_box(), b.bounding_box()
            assert a["y"] == b["y"] and a["x"] + a["width"] < b["x"] and min(a["height"], b["height"]) >= 44
        assert not page.locator(".preheader").is_visible()
        shot(page, "digest", viewport)
        page.locator("td.tap").first.locator("xpath=ancestor::div[1]").screenshot(
            path=f"/tmp/pages-digest-item-{viewport['width']}.png")
        page.close()
