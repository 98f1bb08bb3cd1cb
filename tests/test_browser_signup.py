"""The signup flow in a real browser: Debian's headless Chromium driven by Playwright."""

import re

import pytest
from django.core import mail

from newsletter.models import Subscriber

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def page(browser):
    return browser.new_page(viewport={"width": 390, "height": 844})


def link(message, path):
    return re.search(rf"https://paperboy\.test(/{path}/\S+/)", message.body).group(1)


def test_subscribe_confirm_change_topic_and_unsubscribe(page, server, settings, tmp_path):
    settings.SITE_URL = "https://paperboy.test"
    page.goto(server.url + "/subscribe/")
    page.fill("input[name=email]", "reader@example.org")
    page.get_by_label("Robotics").check()
    page.fill("input[name=keywords]", "drones, swarms")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_url("**/subscribe/done/")
    assert "Check your inbox" in page.content()
    page.screenshot(path=tmp_path / "1-done.png")

    assert len(mail.outbox) == 1
    page.goto(server.url + link(mail.outbox[0], "confirm"))
    assert Subscriber.objects.get().status == "pending"  # opening the link alone confirms nothing
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.wait_for_selector("text=You're subscribed")
    assert Subscriber.objects.get().status == "active"

    page.get_by_role("link", name="preferences page").click()
    page.wait_for_selector("text=Save preferences")
    page.get_by_label("Robotics").uncheck()
    page.get_by_label("Security & privacy").check()
    page.get_by_role("button", name="Save preferences").click()
    page.wait_for_selector("text=Your preferences are saved.")
    page.screenshot(path=tmp_path / "2-preferences.png", full_page=True)
    assert list(Subscriber.objects.get().topics.values_list("slug", flat=True)) == ["security"]

    page.get_by_role("link", name="Unsubscribe").first.click()
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_selector("text=You're unsubscribed")
    assert Subscriber.objects.get().status == "unsubscribed"
