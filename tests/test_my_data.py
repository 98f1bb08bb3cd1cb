"""Export and erasure: behind a link mailed on request to the subscriber's own address and valid
for an hour, never the preferences link that every digest (so every forwarded one) carries."""

import base64
import datetime as dt
import json
import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from newsletter import tokens
from newsletter.models import Subscriber
from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = pytest.mark.django_db

SITE = "https://paperboy.test"
IP, BROWSER = "192.0.2.77", "Mozilla/5.0 (X11; Linux x86_64) Fennec/77.0"


def reader(email="alice@example.org", **fields):
    record = {"consent_ip": IP, "consent_user_agent": BROWSER, "confirm_ip": IP, "confirm_user_agent": BROWSER}
    return make_subscriber(email, **{**record, **fields})


def preferences_link(subscriber):
    return reverse("newsletter:preferences", args=[tokens.make(tokens.PREFERENCES, subscriber.pk)])


def browser():
    """A browser as production sees it: CSRF checked, cookies kept."""
    return Client(enforce_csrf_checks=True)


def csrf(page):
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def press(client, path, button):
    """Open path and submit the form holding the button labelled `button`, with its CSRF token."""
    page = client.get(path).content.decode()
    form = next(f for f in re.findall(r"<form\b.*?</form>", page, re.S) if button in f)
    action = re.search(r'action="([^"]+)"', form).group(1)
    return client.post(action, {"csrfmiddlewaretoken": csrf(page)})


def ask_for_data_link(client, subscriber):
    """Press the preferences page's button; return the page and the link mailed."""
    before = len(mail.outbox)
    response = press(client, preferences_link(subscriber), "E-mail me a link to export or delete my data")
    [message] = mail.outbox[before:]
    assert message.to == [subscriber.email]
    return response, re.search(rf"{SITE}(/data/[^/\s]+/)", message.body).group(1)


def digest_links(address):
    """The paths of every link in the digest mailed to address, both parts."""
    make_paper("Robot arms that learn", arxiv_id="2403.00001", upvotes=30, listed_on=DAY)
    call_command("send_digests", date=DAY, stdout=StringIO())
    [message] = [m for m in mail.outbox if m.to == [address]]
    text = message.body + message.alternatives[0][0]
    return sorted(set(re.findall(rf"{SITE}(/[^\s\"<>]*)", text)))


def test_no_link_in_a_forwarded_digest_reveals_the_readers_ip_or_browser():
    reader()
    links = digest_links("alice@example.org")
    assert any(link.startswith("/preferences/") for link in links) and any(link.startswith("/f/") for link in links)
    stranger = browser()
    for link in links:
        response = stranger.get(link)
        assert response.status_code == 200, link
        page = response.content.decode()
        assert IP not in page and BROWSER not in page, link


def test_the_digests_preferences_link_can_neither_export_nor_erase():
    alice = reader()
    [prefs] = [link for link in digest_links(alice.email) if link.startswith("/preferences/")]
    stranger = browser()
    token = csrf(stranger.get(prefs).content.decode())
    prefs_token = prefs.split("/")[2]
    for path in (f"{prefs}export/", f"{prefs}delete/", f"/data/{prefs_token}/export/", f"/data/{prefs_token}/delete/"):
        assert stranger.get(path).status_code in (400, 404), path
        response = stranger.post(path, {"csrfmiddlewaretoken": token, "confirm": "yes"})
        assert response.status_code in (400, 404) and response["Content-Type"].startswith("text/html"), path
    assert Subscriber.objects.filter(pk=alice.pk).exists()
    page = stranger.get(prefs).content.decode()
    assert "Download all my data" not in page and "/delete/" not in page and "/export/" not in page


def test_asking_for_the_link_mails_one_to_the_subscribers_own_address():
    alice, bob = reader(), reader("bob@example.org")
    response, link = ask_for_data_link(browser(), alice)
    page = response.content.decode()
    assert response.status_code == 200 and "a•••e@example.org" in page and "60 minutes" in page
    assert link not in page  # the one who asked gets it only from the mailbox
    [message] = mail.outbox
    assert "data" in message.subject and "60 minutes" in message.body
    assert message.alternatives[0][0].count(f"{SITE}{link}") == 1
    assert bob.email not in message.body


def test_the_preferences_page_says_where_the_link_goes_and_for_how_long():
    page = browser().get(preferences_link(reader())).content.decode()
    assert "E-mail me a link to export or delete my data" in page
    assert "alice@example.org" in page and "60 minutes" in page


def test_the_mailed_link_shows_the_record_exports_and_erases():
    alice = reader(topics=["robotics"])
    client = browser()
    _, link = ask_for_data_link(client, alice)
    page = client.get(link).content.decode()
    assert IP in page and BROWSER in page
    export = client.get(link + "export/")
    assert export["Content-Type"] == "application/json"
    assert json.loads(export.content)["consent"]["signup_user_agent"] == BROWSER
    delete_page = client.get(link + "delete/").content.decode()
    assert client.post(link + "delete/", {"csrfmiddlewaretoken": csrf(delete_page)}).status_code == 400  # not confirmed
    assert Subscriber.objects.filter(pk=alice.pk).exists()
    response = client.post(link + "delete/", {"csrfmiddlewaretoken": csrf(delete_page), "confirm": "yes"})
    assert response.status_code == 200 and "Your data is deleted" in response.content.decode()
    assert not Subscriber.objects.filter(pk=alice.pk).exists()


def test_after_an_hour_the_link_is_refused_and_its_page_sends_a_new_one(time_machine):
    time_machine.move_to("2026-12-07 09:00Z", tick=False)
    alice = reader()
    client = browser()
    _, link = ask_for_data_link(client, alice)
    time_machine.shift(dt.timedelta(minutes=59))
    assert client.get(link).status_code == 200
    time_machine.shift(dt.timedelta(minutes=2))
    response = client.get(link)
    assert response.status_code == 410 and "This link has expired" in response.content.decode()
    assert IP not in response.content.decode()
    assert client.get(link + "export/").status_code == 410
    delete_page = client.get(link + "delete/")
    assert delete_page.status_code == 410
    client.post(link + "delete/", {"csrfmiddlewaretoken": csrf(delete_page.content.decode()), "confirm": "yes"})
    assert Subscriber.objects.filter(pk=alice.pk).exists()
    # The expired page sends a fresh link, to the same address.
    response = press(client, link, "E-mail me a new link to my data")
    assert response.status_code == 200 and "a•••e@example.org" in response.content.decode()
    [_, message] = mail.outbox
    assert message.to == ["alice@example.org"]
    fresh = re.search(rf"{SITE}(/data/[^/\s]+/)", message.body).group(1)
    assert IP in client.get(fresh).content.decode()


def test_a_link_for_alice_never_acts_on_bob():
    alice, bob = reader(), reader("bob@example.org", consent_ip="198.51.100.9")
    client = browser()
    _, link = ask_for_data_link(client, alice)
    export = client.get(link + "export/").content.decode()
    assert "alice@example.org" in export and "bob@example.org" not in export and "198.51.100.9" not in export
    # Alice's link with Bob's id in place of hers is refused, with a way to a new link.
    value, timestamp, signature = link.split("/")[2].split(":")
    bobs_id = base64.urlsafe_b64encode(str(bob.pk).encode()).decode().rstrip("=")
    forged = f"/data/{bobs_id}:{timestamp}:{signature}/"
    for path in (forged, forged + "export/", forged + "delete/"):
        response = client.get(path)
        assert response.status_code == 400 and "This link is not valid" in response.content.decode()
        assert "bob@example.org" not in response.content.decode()
    delete_page = client.get(link + "delete/").content.decode()
    client.post(forged + "delete/", {"csrfmiddlewaretoken": csrf(delete_page), "confirm": "yes"})
    client.post(link + "delete/", {"csrfmiddlewaretoken": csrf(delete_page), "confirm": "yes"})
    assert list(Subscriber.objects.all()) == [bob]
    assert Subscriber.objects.get().consent_ip == "198.51.100.9"


def test_the_link_mails_count_against_the_daily_limit_per_address():
    alice = reader()
    client = browser()
    for _ in range(4):
        press(client, preferences_link(alice), "E-mail me a link to export or delete my data")
    assert len(mail.outbox) == 3


def test_a_suppressed_address_is_not_mailed_and_told_so():
    alice = reader()
    client = browser()
    page = client.get(preferences_link(alice)).content.decode()
    Subscriber.objects.filter(pk=alice.pk).update(status="suppressed", suppressed_reason="hard bounce")
    form = re.search(r'<form method="post" action="([^"]+/data/)"', page).group(1)
    response = client.post(form, {"csrfmiddlewaretoken": csrf(page)})  # a page loaded before the bounce
    assert "We cannot e-mail this address" in response.content.decode()
    assert mail.outbox == []
    page = client.get(preferences_link(alice)).content.decode()
    assert "E-mail me a link to export or delete my data" not in page and "ask the operator" in page


def test_asking_for_links_is_limited_per_ip_with_the_same_answer(settings):
    from newsletter import views

    limit = int(views.SIGNUP_RATE.split("/")[0])
    client = browser()
    for n in range(limit + 2):
        someone = reader(f"reader{n}@example.org")
        response = press(client, preferences_link(someone), "E-mail me a link to export or delete my data")
        assert response.status_code == 200  # the same page, whether or not a mail goes
    assert len(mail.outbox) == limit


def test_no_browser_or_proxy_keeps_a_copy_of_the_record_or_the_export():
    alice = reader()
    client = browser()
    _, link = ask_for_data_link(client, alice)
    for path in (link, link + "export/"):
        response = client.get(path)
        assert response.status_code == 200 and "no-store" in response["Cache-Control"], path
