"""Erasing readers keeps the editors' figures (edition totals, vote counts) and nothing of them."""

import datetime as dt
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from newsletter.services import subscriber_unsubscribe, subscribers_purge_unconfirmed, vote_record
from papers.services import paper_feature
from tests.conftest import make_paper, make_subscriber

pytestmark = pytest.mark.django_db

TODAY_URL = "/admin/newsletter/edition/today/"


def figures(editor, day):
    """What editors read of the day's edition: its row in the editions list, the Today page's
    progress and featured papers' votes, the index's summary, the papers list's votes."""
    row = editor.get("/admin/newsletter/edition/").context["cl"].result_list.get(date=day)
    today = re.sub(r"\s+", " ", editor.get(TODAY_URL, {"day": day}).content.decode())
    index = re.sub(r"\s+", " ", editor.get("/admin/").content.decode())
    papers = editor.get("/admin/papers/paper/").content.decode()
    return {
        "row": (row.due, row.sent, row.skipped, row.failed, row.more, row.less, row.unsubscribes),
        "detail": re.findall(r">(?:Due|Pending|Sending|Sent|Skipped|Failed) \d+<", editor.get(f"/admin/newsletter/edition/{row.pk}/change/").content.decode()),
        "today": re.findall(r'class="progress">.*?</p>', today),
        "featured": re.findall(r"readers since featured: \d+ more, \d+ less", today),
        "index": re.findall(r"due \d+ · sent \d+ [^<]*", index),  # today's edition
        "papers": re.findall(r"\d+ more · \d+ less", papers),
    }


def test_erasing_readers_keeps_edition_totals_and_vote_counts_and_nothing_of_them(editor):
    day = timezone.localdate()
    jam, arms = make_paper("Jamming attacks on IoT", upvotes=20, listed_on=day), make_paper("Robot arms", upvotes=30, listed_on=day)
    paper_feature(paper=jam, day=day)
    ann, bob, cat = (make_subscriber(f"{name}@example.org") for name in ("ann", "bob", "cat"))
    call_command("send_digests", date=day, stdout=StringIO())
    vote_record(subscriber=ann, paper=jam, value=1)
    vote_record(subscriber=bob, paper=jam, value=-1)
    vote_record(subscriber=cat, paper=arms, value=1)
    subscriber_unsubscribe(subscriber=cat)
    before = figures(editor, day)
    assert before["row"] == (3, 3, 0, 0, 2, 1, 1) and before["featured"] == ["readers since featured: 1 more, 1 less"]
    assert "Sent <strong>3</strong>" in before["today"][0] and before["index"] == ["due 3 · sent 3 · failed 0 · pending 0 · sending 0 · skipped 0"]

    editor.post("/admin/newsletter/subscriber/", {"action": "erase", "_selected_action": [ann.pk, cat.pk], "post": "yes"})
    assert figures(editor, day) == before

    dump = StringIO()
    call_command("dumpdata", "newsletter", stdout=dump)
    assert "ann@example.org" not in dump.getvalue() and "cat@example.org" not in dump.getvalue()
    for url in ("/admin/newsletter/subscriber/", "/admin/newsletter/delivery/", "/admin/newsletter/subscriberevent/"):
        assert editor.get(url, {"q": "ann@example.org"}).context["cl"].result_count == 0


def test_purging_a_returning_reader_who_did_not_confirm_keeps_what_they_were_sent(editor, time_machine):
    day = timezone.localdate()
    make_paper("Jamming attacks on IoT", upvotes=20, listed_on=day)
    reader = make_subscriber("dan@example.org")
    call_command("send_digests", date=day, stdout=StringIO())
    before = figures(editor, day)
    reader.status, reader.created_at, reader.consent_at = "pending", timezone.now(), timezone.now()  # signed up again
    reader.save()
    time_machine.move_to(timezone.now() + dt.timedelta(days=8))
    assert subscribers_purge_unconfirmed() == 1
    after = figures(editor, day)
    assert (after["row"], after["detail"], after["today"]) == (before["row"], before["detail"], before["today"])


def test_a_copy_in_flight_when_its_reader_is_erased_does_not_count_as_in_progress_for_ever():
    from newsletter.models import Delivery, Edition
    from newsletter.services import subscriber_erase

    edition = Edition.objects.create(date=dt.date(2024, 3, 14))
    waiting, held = make_subscriber("waiting@example.org"), make_subscriber("held@example.org")
    Delivery.objects.create(edition=edition, subscriber=waiting, state=Delivery.State.PENDING)
    Delivery.objects.create(edition=edition, subscriber=held, state=Delivery.State.SENDING)
    subscriber_erase(subscriber=waiting)
    subscriber_erase(subscriber=held)
    totals = Edition.objects.get(pk=edition.pk).totals()
    assert (totals["due"], totals["pending"], totals["sending"]) == (2, 0, 0)
    assert (totals["skipped"], totals["sent"]) == (1, 1)  # never to be sent; on its way
