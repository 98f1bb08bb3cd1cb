"""The Today page in a real browser, at a laptop's and a phone's width: an editor features a
paper with a note, moves it to the top and previews a reader's digest."""

import os

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from newsletter.models import Delivery, Edition
from papers.models import Feature
from tests.conftest import make_paper, make_subscriber

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SHOTS = os.environ.get("SCREENSHOTS_DIR")


def overflows(page):
    """Elements wider than the viewport pushes the page sideways (what a reader on a phone sees)."""
    return page.evaluate("document.documentElement.scrollWidth > window.innerWidth")


@pytest.mark.parametrize("width", [1280, 375])
def test_an_editor_features_reorders_and_previews_on_the_today_page(browser, server, tmp_path, width):
    User.objects.create_superuser("editor", "e@example.org", "pw")
    today = timezone.localdate()
    long_title = "A rather long title about learning robot arms that grasp deformable objects in cluttered kitchens"
    make_paper(long_title, upvotes=40, listed_on=today)
    make_paper("Jamming attacks on IoT", upvotes=20, listed_on=today)
    reader = make_subscriber("reader@example.org", topics=["robotics"])
    shots = SHOTS or tmp_path
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(server.url + "/admin/login/?next=/admin/")
    page.fill("input[name=username]", "editor")
    page.fill("input[name=password]", "pw")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Today,").click()
    page.wait_for_selector("text=Leading by upvotes, not featured")
    page.screenshot(path=f"{shots}/today-{width}-before.png", full_page=True)
    assert not overflows(page)

    page.get_by_label(f"Note for {long_title}").fill('Start <b>here</b>: see <a href="https://example.org/talk">the talk</a>')
    page.locator("#leaders tr", has_text=long_title).get_by_role("button", name="Feature").click()
    page.wait_for_selector("text=featured on")
    page.locator("#leaders tr", has_text="Jamming").get_by_role("button", name="Feature").click()
    page.wait_for_selector("#featured li >> text=Jamming attacks on IoT")
    page.locator("#featured li", has_text="Jamming").get_by_role("button", name="Up").click()
    page.wait_for_load_state()
    assert [f.paper.title for f in Feature.objects.filter(day=today)] == ["Jamming attacks on IoT", long_title]
    assert page.locator("#featured .note b").inner_text() == "here"

    page.get_by_label("Subscriber's e-mail address").fill("reader@example.org")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector("iframe")
    frame = page.frame_locator("iframe")
    assert "Jamming attacks on IoT" in frame.locator("body").inner_text()
    page.locator("iframe").scroll_into_view_if_needed()
    assert not overflows(page)
    page.screenshot(path=f"{shots}/today-{width}.png", full_page=True)

    # The lists: every column in sight at 1280 px; on a phone the table scrolls, the page does not.
    page.goto(server.url + "/admin/papers/paper/")
    page.screenshot(path=f"{shots}/papers-{width}.png", full_page=True)
    assert not overflows(page)
    edition = Edition.objects.create(date=today)
    reason = "AnymailAPIError: the ESP answered 503 Service Unavailable: " + "upstream connect error or disconnect " * 6
    Delivery.objects.create(edition=edition, subscriber=reader, state="failed", attempts=6, note=reason)
    page.goto(server.url + "/admin/newsletter/delivery/")
    page.screenshot(path=f"{shots}/deliveries-{width}.png", full_page=True)
    assert not overflows(page)
    if width >= 1280:
        right = page.evaluate("document.querySelector('#result_list').getBoundingClientRect().right")
        assert right <= page.evaluate("document.querySelector('.results').getBoundingClientRect().right") + 1
    page.locator("#result_list input.action-select").check()
    page.select_option("select[name=action]", "requeue")
    page.get_by_role("button", name="Go").click()
    page.wait_for_selector("text=Send failed deliveries again?")
    page.screenshot(path=f"{shots}/requeue-{width}.png", full_page=True)
    assert not overflows(page)
    page.goto(server.url + "/admin/")
    page.screenshot(path=f"{shots}/index-{width}.png", full_page=True)
    assert not overflows(page)
