"""The audit trail in the admin: events are read only; a suppression is lifted only by saying why."""

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from newsletter.models import SubscriberEvent, Suppression
from newsletter.services import subscriber_suppress
from tests.conftest import make_subscriber

pytestmark = pytest.mark.django_db

EVENTS = "/admin/newsletter/subscriberevent/"
SUPPRESSIONS = "/admin/newsletter/suppression/"


def staff(*perms, superuser=False):
    """A client logged in as a staff user, with CSRF checked as in production."""
    if superuser:
        user = User.objects.create_superuser("ed", "ed@example.org", "pw")
    else:
        user = User.objects.create_user("viewer", "v@example.org", "pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def post(client, url, data):
    """POST as the admin's own form would: with the CSRF token of the page it came from."""
    client.get(SUPPRESSIONS)
    return client.post(url, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value, **data}, follow=True)


@pytest.fixture
def suppressed():
    reader = make_subscriber("bounce@example.org")
    subscriber_suppress(subscriber=reader, reason="hard bounce")
    return reader


def test_subscriber_events_cannot_be_added_changed_or_deleted_in_the_admin(suppressed):
    editor = staff(superuser=True)
    event = SubscriberEvent.objects.get(kind="suppressed")
    assert editor.get(f"{EVENTS}add/").status_code == 403
    assert post(editor, f"{EVENTS}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    post(editor, f"{EVENTS}{event.pk}/change/", {"kind": "signup", "description": "nothing happened"})
    post(editor, EVENTS, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    event.refresh_from_db()
    assert (event.kind, event.description) == ("suppressed", "hard bounce")
    page = editor.get(f"{EVENTS}{event.pk}/change/").content.decode()
    assert "hard bounce" in page and 'name="_save"' not in page and "deletelink" not in page


def test_suppressions_cannot_be_changed_or_deleted_in_the_admin(suppressed):
    editor = staff(superuser=True)
    suppression = Suppression.objects.get()
    assert post(editor, f"{SUPPRESSIONS}{suppression.pk}/delete/", {"post": "yes"}).status_code == 403
    post(editor, f"{SUPPRESSIONS}{suppression.pk}/change/", {"email_hash": "0" * 64, "reason": "typo"})
    post(editor, SUPPRESSIONS, {"action": "delete_selected", "_selected_action": [suppression.pk], "post": "yes"})
    assert list(Suppression.objects.values_list("email_hash", "reason")) == [(suppression.email_hash, "hard bounce")]


def test_lifting_a_suppression_asks_why_and_records_who_and_why(suppressed):
    viewer = staff("view_suppression")  # only those who could delete one may lift it
    assert "Lift selected suppressions" not in viewer.get(SUPPRESSIONS).content.decode()
    editor = staff(superuser=True)
    found = editor.get(SUPPRESSIONS, {"q": "Bounce@Example.org"}).context["cl"].result_list
    assert [s.reason for s in found] == ["hard bounce"]  # found by the address, kept only as its hash
    lift = {"action": "lift", "_selected_action": [found[0].pk]}
    page = post(editor, SUPPRESSIONS, lift).content.decode()
    assert "Why may these addresses be mailed again?" in page and Suppression.objects.exists()
    page = post(editor, SUPPRESSIONS, {**lift, "post": "yes", "why": "  "}).content.decode()
    assert "Say why: it is recorded with your name." in page and Suppression.objects.exists()
    page = post(editor, SUPPRESSIONS, {**lift, "post": "yes", "why": "the reader fixed their mailbox"}).content.decode()
    assert "Lifted 1 suppression(s)" in page and not Suppression.objects.exists()
    (event,) = SubscriberEvent.objects.filter(kind="suppression lifted", subscriber=None)  # erasing the reader keeps it
    assert re.fullmatch(r"[0-9a-f]{12}… \(hard bounce\) lifted by editor ed: the reader fixed their mailbox", event.description)


def test_a_lifted_reader_may_sign_up_again_and_is_mailed_only_once_they_confirm(suppressed, client, mailoutbox):
    from newsletter.services import subscriber_confirm, suppression_lift
    from tests.test_signup import signup

    suppression_lift(suppression=Suppression.objects.get(), by="editor ed", why="the reader fixed their mailbox")
    suppressed.refresh_from_db()
    assert suppressed.status == "unsubscribed" and suppressed.next_digest_at is None
    assert suppressed.events.filter(kind="suppression lifted").exists()
    signup(client, "bounce@example.org")
    suppressed.refresh_from_db()
    assert suppressed.status == "pending" and len(mailoutbox) == 1  # a confirmation, nothing else
    assert subscriber_confirm(subscriber=suppressed)
    suppressed.refresh_from_db()
    assert suppressed.status == "active"

