import email
import json
import re
from email import policy
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from newsletter import tokens
from newsletter.models import Subscriber, Vote
from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = pytest.mark.django_db


def url(subscriber, paper, vote="more", purpose=tokens.FEEDBACK):
    return reverse("newsletter:feedback", args=[tokens.make(purpose, subscriber.pk), paper.pk, vote])


@pytest.fixture
def alice():
    return make_subscriber()


@pytest.fixture
def paper():
    return make_paper("Robot arms that learn", listed_on=DAY, authors=["Zoë Ünal", "Ada Lovelace"])


def test_get_shows_the_paper_with_the_choice_preselected_and_records_nothing(client, alice, paper):
    page = client.get(url(alice, paper, "less")).content.decode()
    assert "Robot arms that learn" in page
    assert re.search(r'value="-1"[^>]*checked', page) and not re.search(r'value="1"[^>]*checked', page)
    client.head(url(alice, paper, "more"))
    assert not Vote.objects.exists()


def test_post_records_once_and_the_last_vote_wins(client, alice, paper):
    assert client.post(url(alice, paper), {"vote": "1"}).status_code == 200
    assert client.post(url(alice, paper), {"vote": "1"}).status_code == 200
    assert list(Vote.objects.values_list("value", flat=True)) == [1]
    client.post(url(alice, paper, "less"), {"vote": "-1"})
    assert list(Vote.objects.values_list("value", flat=True)) == [-1]


@pytest.mark.parametrize("bad", ["tampered", "other purpose"])
def test_a_bad_token_is_a_clear_error(client, alice, paper, bad):
    link = url(alice, paper, purpose=tokens.PREFERENCES) if bad == "other purpose" else url(alice, paper).replace(":", ":x", 1)
    response = client.post(link, {"vote": "1"})
    assert response.status_code == 400 and "not valid" in response.content.decode()
    assert not Vote.objects.exists()


def test_an_unknown_paper_or_vote_is_refused(client, alice, paper):
    token = tokens.make(tokens.FEEDBACK, alice.pk)
    assert client.get(f"/f/{token}/999999/more/").status_code == 404
    assert client.get(f"/f/{token}/{paper.pk}/maybe/").status_code == 404
    assert client.post(url(alice, paper), {"vote": "7"}).status_code == 400
    assert not Vote.objects.exists()


def test_votes_are_listed_removable_and_exported_on_the_preferences_page(client, alice, paper):
    client.post(url(alice, paper), {"vote": "1"})
    prefs = reverse("newsletter:preferences", args=[tokens.make(tokens.PREFERENCES, alice.pk)])
    page = client.get(prefs).content.decode()
    assert "Your votes" in page and "Robot arms that learn" in page
    export = json.loads(client.get(reverse("newsletter:export", args=[tokens.make(tokens.DATA, alice.pk)])).content)
    assert export["votes"][0]["vote"] == "more"
    client.post(prefs, {"action": "follow", "paper": paper.pk})
    alice.refresh_from_db()
    assert alice.author_list() == ["Zoë Ünal", "Ada Lovelace"]
    client.post(prefs, {"action": "follow", "paper": paper.pk})  # not twice
    alice.refresh_from_db()
    assert alice.author_list() == ["Zoë Ünal", "Ada Lovelace"]
    client.post(prefs, {"action": "unvote", "paper": paper.pk})
    assert not Vote.objects.exists()
    assert client.post(prefs, {"action": "unvote", "paper": "x"}).status_code == 400


def test_the_feedback_links_in_a_digest_work(paper, alice):
    call_command("send_digests", date=DAY, stdout=StringIO())
    message = email.message_from_bytes(mail.outbox[0].message().as_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    more = re.search(r"More or less like this: https://paperboy\.test(/f/\S+/)", text).group(1)
    assert more.endswith(f"/{paper.pk}/more/")
    assert more in message.get_body(("html",)).get_content()
    browser = Client()
    assert "Save my choice" in browser.get(more).content.decode()
    browser.post(more, {"vote": "1"})
    assert Vote.objects.get(subscriber=alice, paper=paper).value == 1


def test_the_page_shows_the_paper_then_asks_shows_the_current_vote_and_says_nothing_is_saved_yet(client, alice, paper):
    page = client.get(url(alice, paper)).content.decode()
    assert page.index("Robot arms") < page.index("More or fewer papers like this one?") < page.index("Save my choice")
    assert "Nothing is saved until you tap" in page and "Your current choice" not in page
    Vote.objects.create(subscriber=alice, paper=paper, value=-1)
    assert "Your current choice: <strong>Less like this</strong>" in client.get(url(alice, paper)).content.decode()


def vote(browser, link, value):
    """As from the page a browser opened before (with the CSRF token it gave)."""
    return browser.post(link, {"vote": value, "csrfmiddlewaretoken": browser.cookies["csrftoken"].value})


@pytest.mark.parametrize("status", ["unsubscribed", "suppressed", "pending"])
def test_a_vote_from_someone_not_subscribed_is_not_counted_and_the_page_says_so(paper, status):
    bob, carol = make_subscriber("bob@example.org"), make_subscriber("carol@example.org", status="paused")
    browser = Client(enforce_csrf_checks=True)
    browser.get(url(bob, paper))  # the page opened while subscribed
    Subscriber.objects.filter(pk=bob.pk).update(status=status)
    page = browser.get(url(bob, paper)).content.decode()
    assert "You are not subscribed" in page and "Save my choice" not in page
    answer = vote(browser, url(bob, paper), "1")
    assert answer.status_code == 403
    assert "not counted" in answer.content.decode() and "Your next digests" not in answer.content.decode()
    assert not Vote.objects.exists()
    # A paused reader's digests resume: their vote counts.
    answer = vote(browser, url(carol, paper), "1")
    assert "Your next digests will have more papers like this one" in answer.content.decode()
    assert list(Vote.objects.values_list("subscriber__email", flat=True)) == ["carol@example.org"]


def test_an_editions_more_and_less_count_votes_on_its_own_papers(editor, alice, time_machine):
    from newsletter.models import Delivery, Edition

    robots, fluids = make_paper("Robots"), make_paper("Fluids")
    time_machine.move_to("2026-03-02 07:00Z")
    monday, tuesday = Edition.objects.create(date="2026-03-02"), Edition.objects.create(date="2026-03-03")
    for edition, paper, sent in ((monday, robots, "2026-03-02 07:00Z"), (tuesday, fluids, "2026-03-03 07:00Z")):
        Delivery.objects.create(subscriber=alice, edition=edition, state="sent", sent_at=sent, picks=[[paper.pk, "topic", "Robotics", 1.0]])
    time_machine.move_to("2026-03-03 09:00Z")  # within two days of both: a vote on Monday's paper
    browser = Client(enforce_csrf_checks=True)
    browser.get(url(alice, robots))
    assert vote(browser, url(alice, robots), "1").status_code == 200
    page = editor.get(reverse("admin:newsletter_edition_changelist")).content.decode()
    rows = re.findall(r'field-date.*?>([^<]*)</.*?field-more">(\d+)<.*?field-less">(\d+)<', page, re.S)
    assert [(more, less) for _, more, less in rows] == [("0", "0"), ("1", "0")]  # Tuesday, then Monday
