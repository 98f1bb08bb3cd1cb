"""The subscriber admin changes state only through the services: schedule, events, suppression."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from newsletter.models import Subscriber, Suppression, email_hash
from tests.conftest import make_subscriber, topic

pytestmark = pytest.mark.django_db

LIST = "/admin/newsletter/subscriber/"


def act(client, action, subscribers, **extra):
    return client.post(LIST, {"action": action, "_selected_action": [s.pk for s in subscribers], **extra}, follow=True)


def change(client, subscriber, **fields):
    data = {
        "topics": [t.pk for t in subscriber.topics.all()], "keywords": subscriber.keywords, "authors": subscriber.authors,
        "frequency": subscriber.frequency, "weekday": subscriber.weekday, "hour": subscriber.hour,
        "timezone": subscriber.timezone, "events-TOTAL_FORMS": 0, "events-INITIAL_FORMS": 0, **fields,
    }
    return client.post(f"{LIST}{subscriber.pk}/change/", data)


def test_status_cannot_be_edited_in_the_change_form(editor):
    pending = make_subscriber("p@example.org", status="pending")
    response = change(editor, pending, status="active")
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == "pending" and pending.next_digest_at is None
    assert 'name="status"' not in editor.get(f"{LIST}{pending.pk}/change/").content.decode()


def test_changing_hour_and_time_zone_in_the_admin_moves_the_schedule_and_is_recorded(editor):
    reader = make_subscriber("r@example.org", topics=["robotics"])
    before = reader.next_digest_at
    assert change(editor, reader, hour=18, timezone="Asia/Tokyo", topics=[topic("security").pk]).status_code == 302
    reader.refresh_from_db()
    assert (reader.hour, reader.timezone) == (18, "Asia/Tokyo")
    assert reader.next_digest_at != before
    assert reader.next_digest_at.astimezone(ZoneInfo("Asia/Tokyo")).hour == 18
    assert reader.next_digest_at - timezone.now() <= dt.timedelta(days=1)
    assert list(reader.topics.values_list("slug", flat=True)) == ["security"]
    assert reader.interest_key.split("|")[1] == f"{topic('security').pk:x}"
    assert reader.events.get(kind="preferences").description == "changed by editor editor"


def test_an_unknown_time_zone_is_refused_with_a_message(editor):
    reader = make_subscriber("r@example.org")
    response = change(editor, reader, timezone="Mars/Olympus")
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    reader.refresh_from_db()
    assert reader.timezone == "UTC"


def test_resume_reactivates_paused_subscribers_only_and_schedules_them(editor):
    paused = make_subscriber("paused@example.org", status="paused")
    others = [make_subscriber(f"{s}@example.org", status=s) for s in ["pending", "unsubscribed", "suppressed"]]
    page = act(editor, "resume", [paused, *others]).content.decode()
    assert "Resumed 1 subscriber(s). 3 left alone" in page
    paused.refresh_from_db()
    assert paused.status == "active" and paused.next_digest_at is not None
    assert paused.events.get(kind="resumed").description == "by editor editor"
    assert [Subscriber.objects.get(pk=s.pk).status for s in others] == ["pending", "unsubscribed", "suppressed"]


def test_pause_and_unsubscribe_go_through_the_services_and_leave_events(editor):
    a, b = make_subscriber("a@example.org"), make_subscriber("b@example.org")
    assert "Paused 1 subscriber(s)." in act(editor, "pause", [a]).content.decode()
    assert "Unsubscribed 1 subscriber(s)." in act(editor, "unsubscribe", [b], post="yes").content.decode()
    a.refresh_from_db(), b.refresh_from_db()
    assert a.status == "paused" and a.events.filter(kind="paused").exists()
    assert b.status == "unsubscribed" and b.next_digest_at is None and b.events.get(kind="unsubscribed").description == "by editor editor"


def test_suppressing_in_the_admin_keeps_the_address_from_ever_being_mailed(editor):
    a = make_subscriber("a@example.org")
    assert "Suppressed 1 subscriber(s)." in act(editor, "suppress", [a], post="yes").content.decode()
    a.refresh_from_db()
    assert a.status == "suppressed" and a.next_digest_at is None
    assert Suppression.objects.filter(email_hash=email_hash("a@example.org")).exists()
    assert a.events.get(kind="suppressed").description == "suppressed by editor editor"


def test_subscribers_are_neither_added_nor_deleted_in_the_admin_but_erased_on_confirmation(editor):
    a = make_subscriber("a@example.org")
    assert editor.get(f"{LIST}add/").status_code == 403
    assert "delete_selected" not in editor.get(LIST).content.decode()
    assert "Erase these subscribers" in act(editor, "erase", [a]).content.decode()
    assert Subscriber.objects.filter(pk=a.pk).exists()
    assert "Erased 1 subscriber(s)." in act(editor, "erase", [a], post="yes").content.decode()
    assert not Subscriber.objects.filter(pk=a.pk).exists() and Suppression.covers("a@example.org")


def test_csv_export_leaves_empty_cells_empty_and_has_schedule_authors_and_unsubscribe_columns(editor):
    a = make_subscriber("a@example.org", keywords="", authors="José López", hour=9, timezone="Europe/Madrid",
                        confirmed_at=None)
    act(editor, "unsubscribe", [a], post="yes")
    response = editor.post(LIST, {"action": "export_csv", "_selected_action": [a.pk]})
    header, row = b"".join(response.streaming_content).decode().strip().splitlines()
    cells = dict(zip(header.split(","), row.split(",")))
    assert cells["hour"] == "9" and cells["timezone"] == "Europe/Madrid" and cells["authors"] == "José López"
    assert cells["keywords"] == "" and cells["confirmed_at"] == "" and cells["suppressed_reason"] == ""
    assert cells["unsubscribed_at"].startswith(str(timezone.now().year))


def test_unsubscribe_and_suppress_ask_first_and_say_what_they_will_do(editor):
    a, b = make_subscriber("a@example.org"), make_subscriber("b@example.org", status="unsubscribed")
    page = act(editor, "unsubscribe", [a, b]).content.decode()
    assert "Unsubscribe these subscribers?" in page and "They get no more digests" in page
    assert "1 of them is left alone (already unsubscribed or suppressed)." in page
    page = act(editor, "suppress", [a]).content.decode()
    assert "Suppress these addresses?" in page and "Nothing is mailed to these addresses again" in page
    a.refresh_from_db()
    assert a.status == "active" and not a.events.exists() and not Suppression.objects.exists()


def test_a_paused_reader_shows_no_next_digest_and_gets_one_when_resumed(editor):
    a = make_subscriber("a@example.org")
    act(editor, "pause", [a])
    a.refresh_from_db()
    assert a.next_digest_at is None
    row = editor.get(LIST).content.decode()
    assert "no digest due" in row and "next " not in row.split("a@example.org")[1].split("</tr>")[0]
    act(editor, "resume", [a])
    a.refresh_from_db()
    assert a.next_digest_at is not None
