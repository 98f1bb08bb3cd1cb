"""Control from the mail: a pick's reason links to the feedback page, which says why the paper
was picked (the reason the digest stored for it) and stops it with a button (GET shows, POST
acts, undo restores)."""

import datetime as dt
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
from newsletter.models import Delivery, Edition, SubscriberEvent, Vote
from newsletter.reasons import Kind, Reason, pick_json
from tests.conftest import DAY, make_paper, make_subscriber, topic

pytestmark = pytest.mark.django_db

QUANT = "We quantize large language model weights to four bits with tiny accuracy loss and fast kernels."


@pytest.fixture
def liked():
    return make_paper("Four-bit LLM weights", abstract=QUANT, listed_on=DAY - dt.timedelta(days=5))


@pytest.fixture
def paper():
    # A robotics paper that mentions "four bits", by Zoë Ünal, close to the liked paper.
    return make_paper("Robot arms that learn at four bits", abstract=QUANT.replace("tiny", "small") + " A robot arm uses them.",
                      listed_on=DAY, upvotes=5, authors=["Zoë Ünal", "Ada Lovelace"])


@pytest.fixture
def alice(liked):
    alice = make_subscriber(topics=["robotics", "security"], keywords="four bits, graphs", authors="zoe unal, Grace Hopper")
    Vote.objects.create(subscriber=alice, paper=liked, value=1)
    return alice


def mailed(subscriber, paper, reason, day=DAY):
    """A digest of `day` that gave the reader `paper` for `reason`, as sending records it."""
    edition, _ = Edition.objects.get_or_create(date=day)
    Delivery.objects.create(subscriber=subscriber, edition=edition, state="sent", picks=[json.loads(pick_json((paper.pk, reason)))])


REASONS = {
    "topic": lambda liked: Reason(Kind.TOPIC, "Robotics", 1.0),
    "keyword": lambda liked: Reason(Kind.KEYWORD, "four bits", 0.8),
    "author": lambda liked: Reason(Kind.AUTHOR, "Zoë Ünal", 1.5),
    "like": lambda liked: Reason(Kind.SIMILAR, str(liked.pk), 3.9, liked.title),
}


def page_url(subscriber, paper, vote="why", purpose=tokens.FEEDBACK):
    return reverse("newsletter:feedback", args=[tokens.make(purpose, subscriber.pk), paper.pk, vote])


def state(subscriber):
    subscriber.refresh_from_db()
    votes = sorted(subscriber.votes.values_list("paper_id", "value"))
    return {"topics": sorted(subscriber.topics.values_list("slug", flat=True)), "keywords": subscriber.keywords,
            "authors": subscriber.authors, "votes": votes}


@pytest.mark.parametrize("kind, line, button", [
    ("topic", "Matches your topic Robotics.", "Fewer papers on Robotics"),
    ("keyword", "Mentions &#x27;four bits&#x27;.", "Stop following the keyword ‘four bits’"),
    ("author", "By Zoë Ünal, whom you follow.", "Stop following Zoë Ünal"),
    ("like", "Similar to &#x27;Four-bit LLM weights&#x27;, which you liked.", "No more like ‘Four-bit LLM weights’"),
])
def test_the_page_says_why_the_digest_picked_it_with_a_button_and_get_changes_nothing(client, alice, paper, liked, kind,
                                                                                      line, button):
    mailed(alice, paper, REASONS[kind](liked))
    before = state(alice)
    page = client.get(page_url(alice, paper)).content.decode()
    assert line in page and f">{button}</button>" in page
    # The reason the digest gave, alone: not everything the reader follows that would match now.
    assert page.count("<button") == 2  # the vote's and this reason's
    assert "Security" not in page and "graphs" not in page and "Grace Hopper" not in page
    # The question still comes first; the reason line's link pre-selects no answer.
    assert page.index("More or fewer papers like this one?") < page.index("Save my choice") < page.index("Why you got this paper")
    assert "checked" not in page
    client.head(page_url(alice, paper, "more"))
    assert state(alice) == before and not SubscriberEvent.objects.exists()


def test_a_paper_nothing_followed_picked_says_so(client, paper):
    reader = make_subscriber("bob@example.org")
    page = client.get(page_url(reader, paper)).content.decode()
    assert "None of your digests picked it" in page and "Stop following" not in page
    mailed(reader, paper, Reason(Kind.TRENDING, "", 5.0))
    page = client.get(page_url(reader, paper)).content.decode()
    assert "Trending: 5 upvotes." in page and "Nothing you follow picked it" in page and "Stop following" not in page


def test_a_like_that_did_not_count_is_not_given_as_the_reason(client, alice, paper):
    # One vote: fewer than a profile needs (PROFILE_FROM_VOTE), so the digest picked the paper
    # for what alice follows, and the page says that, not "similar to" the paper she liked.
    call_command("send_digests", date=DAY, stdout=StringIO())
    page = client.get(page_url(alice, paper)).content.decode()
    assert "By Zoë Ünal, whom you follow." in page and ">Stop following Zoë Ünal</button>" in page
    assert "Similar to" not in page and "No more like" not in page and "Matches your topic" not in page


def test_a_similar_to_pick_shows_the_liked_paper_the_ranker_used_as_stored(client, paper, liked):
    reader = make_subscriber("carol@example.org")
    Vote.objects.create(subscriber=reader, paper=liked, value=1)
    for title in ("Galaxy clusters", "Weak lensing maps"):  # a profile counts from the third vote
        other = make_paper(title, abstract="Galaxy clusters are mapped by weak gravitational lensing.",
                           listed_on=DAY - dt.timedelta(days=5))
        Vote.objects.create(subscriber=reader, paper=other, value=-1)
    call_command("send_digests", date=DAY, stdout=StringIO())
    [row] = [pick for pick in Delivery.objects.get(subscriber=reader).picks if pick[0] == paper.pk]
    assert row[1:3] == ["similar-to", str(liked.pk)] and row[3] > 0 and row[4] == liked.title
    # What the reader does since changes nothing of why that digest picked it.
    Vote.objects.filter(subscriber=reader, paper=liked).delete()
    page = client.get(page_url(reader, paper)).content.decode()
    assert "Similar to &#x27;Four-bit LLM weights&#x27;, which you liked." in page
    assert ">No more like ‘Four-bit LLM weights’</button>" in page


STOPS = {
    "topic": (lambda s: {**s, "topics": ["security"]}, "Fewer papers on Robotics", "unfollowed", "topic: Robotics"),
    "keyword": (lambda s: {**s, "keywords": "graphs"}, "Stop following the keyword ‘four bits’", "unfollowed", "keyword: four bits"),
    "author": (lambda s: {**s, "authors": "Grace Hopper"}, "Stop following Zoë Ünal", "unfollowed", "author: zoe unal"),
    "like": (lambda s: {**s, "votes": []}, "No more like ‘Four-bit LLM weights’", "vote removed", "paper "),
}


def form_of(page, button):
    """The hidden fields of the form whose button reads `button`, as a browser would post them."""
    form = next(f for f in re.findall(r"<form method=\"post\".*?</form>", page, re.S) if f">{button}</button>" in f)
    return dict(re.findall(r'name="(control|value|undo)" value="([^"]*)"', form))


@pytest.mark.parametrize("kind", STOPS)
def test_each_button_stops_exactly_what_it_says_records_it_and_undo_restores_it(client, alice, paper, liked, kind):
    expected, button, event, description = STOPS[kind]
    mailed(alice, paper, REASONS[kind](liked))
    before = state(alice)
    url = page_url(alice, paper)
    done = client.post(url, form_of(client.get(url).content.decode(), button))
    assert done.status_code == 200
    assert state(alice) == expected(before)
    (recorded,) = SubscriberEvent.objects.filter(subscriber=alice)
    assert recorded.kind == event and recorded.description.startswith(description)
    page = done.content.decode()
    assert "Done" in page and "preferences page" in page
    undo = form_of(page, re.search(r">(Undo: [^<]+)</button>", page).group(1))
    assert undo["undo"] == "1"
    client.post(url, undo)
    after = state(alice)
    if kind in ("author", "keyword"):  # followed again as written before, last
        assert after == {**before, "authors": "Grace Hopper, zoe unal"} or after == {**before, "keywords": "graphs, four bits"}
        after = before
    assert after == before
    assert SubscriberEvent.objects.filter(subscriber=alice).count() == 2


def test_a_second_stop_changes_nothing_and_says_so(client, alice, paper):
    fields = {"control": "topic", "value": str(topic("robotics").pk)}
    client.post(page_url(alice, paper), fields)
    page = client.post(page_url(alice, paper), fields).content.decode()
    assert "Nothing to change" in page and "You no longer follow the topic Robotics." in page
    assert SubscriberEvent.objects.count() == 1


def test_a_dislike_is_not_withdrawn_as_a_like(client, alice, paper, liked):
    Vote.objects.filter(paper=liked).update(value=-1)
    client.post(page_url(alice, paper), {"control": "like", "value": str(liked.pk)})
    assert Vote.objects.get(paper=liked).value == -1 and not SubscriberEvent.objects.exists()


@pytest.mark.parametrize("bad", ["other purpose", "tampered", "another reader's id", "erased reader"])
def test_a_token_for_another_purpose_or_reader_is_refused(client, alice, paper, bad):
    before = state(alice)
    fields = {"control": "topic", "value": str(topic("robotics").pk)}
    if bad == "other purpose":
        url = page_url(alice, paper, purpose=tokens.PREFERENCES)
    elif bad == "tampered":
        url = page_url(alice, paper).replace(":", ":x", 1)
    elif bad == "another reader's id":  # alice's signature on bob's id
        bob = make_subscriber("bob@example.org", topics=["robotics"])
        token = tokens.make(tokens.FEEDBACK, alice.pk)
        bob_id = tokens.make(tokens.FEEDBACK, bob.pk).split(":")[0]
        url = page_url(alice, paper).replace(token, ":".join([bob_id, *token.split(":")[1:]]))
    else:
        url = page_url(make_subscriber("gone@example.org", topics=["robotics"]), paper)
        from newsletter.services import subscriber_erase
        from newsletter.models import Subscriber
        subscriber_erase(subscriber=Subscriber.objects.get(email="gone@example.org"))
    for response in (client.get(url), client.post(url, fields)):
        assert response.status_code == 400 and "not valid" in response.content.decode()
    assert state(alice) == before and not SubscriberEvent.objects.exists()


@pytest.mark.parametrize("fields, reason", [
    ({"control": "topic", "value": "999999"}, "Unknown topic."),
    ({"control": "topic", "value": "x"}, "Unknown topic."),
    ({"control": "like", "value": "１"}, "Unknown paper."),
    ({"control": "keyword", "value": "a, b"}, "Not a keyword"),
    ({"control": "author", "value": ""}, "Not an author"),
    ({"control": "everything", "value": "1"}, "Unknown control."),
])
def test_a_control_that_names_nothing_is_refused_with_a_reason(client, alice, paper, fields, reason):
    before = state(alice)
    response = client.post(page_url(alice, paper), fields)
    assert response.status_code == 400 and reason in response.content.decode()
    assert state(alice) == before


def test_the_preferences_page_shows_what_was_stopped(client, alice, paper, liked):
    url = page_url(alice, paper)
    for fields in ({"control": "topic", "value": str(topic("robotics").pk)}, {"control": "keyword", "value": "four bits"},
                   {"control": "author", "value": "zoe unal"}, {"control": "like", "value": str(liked.pk)}):
        client.post(url, fields)
    page = client.get(reverse("newsletter:preferences", args=[tokens.make(tokens.PREFERENCES, alice.pk)])).content.decode()
    checked = re.findall(r'<input[^>]*value="(\d+)"[^>]*checked', page)
    assert checked == [str(topic("security").pk)]
    assert 'value="graphs"' in page and 'value="Grace Hopper"' in page
    assert "Your votes" not in page and "Four-bit LLM weights" not in page


def digest_of(address):
    return next(m for m in mail.outbox if m.to == [address])


def test_the_reason_line_of_a_digest_leads_to_a_stop_the_next_digest_follows(client, paper):
    make_paper("Robots that sort parcels", listed_on=DAY + dt.timedelta(days=1), upvotes=3, authors=["Zoë Ünal"])
    reader = make_subscriber(authors="Zoë Ünal")
    call_command("send_digests", date=DAY, stdout=StringIO())
    message = email.message_from_bytes(digest_of(reader.email).message().as_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()
    link = re.search(r'<a href="https://paperboy\.test(/f/[^"#]+/why/)#why"[^>]*>By Zoë Ünal, whom you follow</a>', html).group(1)
    browser = Client()
    page = browser.get(link).content.decode()
    assert "By Zoë Ünal, whom you follow." in page
    browser.post(link, form_of(page, "Stop following Zoë Ünal"))
    mail.outbox.clear()
    call_command("send_digests", date=DAY + dt.timedelta(days=1), stdout=StringIO())
    text = digest_of(reader.email).body
    assert "Robots that sort parcels" in text and "AUTHORS YOU FOLLOW" not in text and "whom you follow" not in text


def test_the_next_digest_has_no_section_for_a_topic_stopped(client, alice, paper):
    bob = make_subscriber("bob@example.org", topics=["robotics", "security"])
    client.post(page_url(alice, paper), {"control": "topic", "value": str(topic("robotics").pk)})
    call_command("send_digests", date=DAY, stdout=StringIO())
    assert "\nROBOTICS\n" in digest_of(bob.email).body
    assert "ROBOTICS" not in digest_of(alice.email).body
