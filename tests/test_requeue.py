"""'Send failed deliveries again' in the admin: a confirmation per reason, never a duplicate."""

import pytest
from django.contrib.admin.models import LogEntry
from django.core import mail

from newsletter.models import Delivery
from newsletter.services import subscriber_unsubscribe
from tests.backends import RefusingBackend
from tests.conftest import DAY, make_paper, make_subscriber
from tests.test_digests import send, sent_mail

pytestmark = pytest.mark.django_db

URL = "/admin/newsletter/delivery/"


@pytest.fixture
def failed(settings, monkeypatch):
    """alice's copy refused for good, bob's failed on a lasting ESP outage, carol's was
    interrupted while sending (the reconciler's note), dave's went out."""
    make_paper("Robot arms that learn", arxiv_id="2403.00001", upvotes=30, listed_on=DAY)
    people = {name: make_subscriber(f"{name}@example.org", topics=["robotics"]) for name in ["alice", "bob", "carol", "dave"]}
    settings.EMAIL_BACKEND = "tests.backends.RefusingBackend"
    settings.DIGEST_MAX_ATTEMPTS = 1
    monkeypatch.setattr(RefusingBackend, "refused", "alice@example.org")
    send()
    mine = {name: Delivery.objects.get(subscriber=s) for name, s in people.items()}
    assert mine["alice"].state == "failed"
    # An outage (503, attempts exhausted) and a dead worker, as the sender and reconciler record them.
    Delivery.objects.filter(pk=mine["bob"].pk).update(state="failed", note="AnymailAPIError: Service Unavailable")
    Delivery.objects.filter(pk=mine["carol"].pk).update(
        state="failed", note="interrupted while sending; not resent to avoid a duplicate"
    )
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox.clear()
    return people


def post(client, ids, **extra):
    return client.post(URL, {"action": "requeue", "_selected_action": ids, **extra}, follow=True)


def test_requeue_first_shows_what_will_happen_per_reason_and_changes_nothing(editor, failed):
    ids = list(Delivery.objects.values_list("pk", flat=True))
    page = post(editor, ids).content.decode()
    assert "Send failed deliveries again?" in page
    assert "AnymailAPIError: Service Unavailable" in page and "not a refusal of the address: sent again" in page
    assert "refused for good" in page and "may already have been delivered" in page
    assert "1 will be sent again and 2 will not" in page and "1 did not fail" in page
    assert Delivery.objects.filter(state="failed").count() == 3 and not mail.outbox


def test_confirmed_requeue_resends_only_temporary_failures_and_keeps_why_they_failed(editor, failed):
    ids = list(Delivery.objects.values_list("pk", flat=True))
    page = post(editor, ids, post="yes").content.decode()
    assert "Requeued 1 failed deliveries." in page
    assert [m.to[0] for m in sent_mail()] == ["bob@example.org"]
    bob = Delivery.objects.get(subscriber=failed["bob"])
    assert bob.state == "sent"
    assert failed["bob"].events.get(kind="requeued").description == "edition 2024-03-14, which had failed: AnymailAPIError: Service Unavailable"
    assert Delivery.objects.get(subscriber=failed["alice"]).state == "failed"
    assert Delivery.objects.get(subscriber=failed["carol"]).state == "failed"
    assert LogEntry.objects.filter(change_message__startswith="Requeued failed deliveries").exists()


def test_a_subscriber_who_unsubscribed_since_is_not_requeued(editor, failed):
    subscriber_unsubscribe(subscriber=failed["bob"])
    bob = Delivery.objects.get(subscriber=failed["bob"])
    assert "the subscriber is unsubscribed now" in post(editor, [bob.pk]).content.decode()
    assert "Requeued 0 failed deliveries." in post(editor, [bob.pk], post="yes").content.decode()
    assert not mail.outbox


def test_the_list_is_searched_by_a_readers_address_or_a_message_id(editor, failed):
    def found(term):
        page = editor.get(URL, {"q": term}).content.decode()
        return {name for name in failed if f"{name}@example.org" in page}

    assert found("Bob@Example.org ") == {"bob"}
    dave = Delivery.objects.get(subscriber=failed["dave"])
    assert found(dave.message_id.strip("<>")) == {"dave"}
    assert found("nobody@example.org") == set()


def test_deliveries_cannot_be_deleted_from_the_admin(editor, failed):
    page = editor.get(URL).content.decode()
    assert "delete_selected" not in page
    pk = Delivery.objects.first().pk
    assert editor.post(f"{URL}{pk}/delete/", {"post": "yes"}).status_code == 403
    assert Delivery.objects.filter(pk=pk).exists()


def test_requeue_of_every_failed_delivery_in_a_filtered_list_confirms_then_acts_on_the_same_list(editor, failed):
    url = URL + "?state__exact=failed"
    data = {"action": "requeue", "select_across": "1", "_selected_action": [Delivery.objects.first().pk], "index": 0}
    page = editor.post(url, data, follow=True).content.decode()
    assert "1 will be sent again and 2 will not" in page and 'name="select_across" value="1"' in page
    confirm = {"action": "requeue", "select_across": "1", "_selected_action": [Delivery.objects.first().pk], "post": "yes"}
    page = editor.post(url, confirm, follow=True).content.decode()
    assert "Requeued 1 failed deliveries." in page
    assert [m.to[0] for m in sent_mail()] == ["bob@example.org"]


def test_the_list_finds_deliveries_by_part_of_an_address(editor, failed):
    page = editor.get(URL, {"q": "DAVE@exam"}).content.decode()
    assert {name for name in failed if f"{name}@example.org" in page} == {"dave"}


def test_a_failure_of_ours_is_sent_again_once_fixed_and_a_hard_bounce_never(editor, failed):
    # A refused sender (our settings) is for the operator to fix and requeue; only a refusal
    # of the address itself, marked when it failed, is never sent again.
    bob = Delivery.objects.get(subscriber=failed["bob"])
    Delivery.objects.filter(pk=bob.pk).update(note="SMTPSenderRefused: (550, b'5.7.1 sender not allowed', 'digest@paperboy.test')")
    page = post(editor, [bob.pk]).content.decode()
    assert "not a refusal of the address: sent again" in page
    Delivery.objects.filter(pk=bob.pk).update(note=f"{Delivery.BOUNCED}: SMTPRecipientsRefused: {{...: (550, ...)}}")
    page = post(editor, [bob.pk]).content.decode()
    assert "refused for good" in page and "1 will be sent again" not in page


def test_interrupted_deliveries_are_sent_again_by_an_editor_who_accepts_duplicates(editor, failed):
    ids = list(Delivery.objects.values_list("pk", flat=True))
    page = post(editor, ids, action="resend_interrupted").content.decode()
    assert "2 will be sent again and 1 will not" in page and "may arrive twice" in page
    page = post(editor, ids, action="resend_interrupted", post="yes").content.decode()
    assert "Requeued 2 failed deliveries." in page
    assert sorted(m.to[0] for m in sent_mail()) == ["bob@example.org", "carol@example.org"]
    assert Delivery.objects.get(subscriber=failed["carol"]).state == "sent"


def test_send_digests_resends_an_editions_interrupted_deliveries_only(failed):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("send_digests", date=DAY, resend_interrupted=True, stdout=out)
    assert "Sent 1 interrupted deliveries again" in out.getvalue()
    assert [m.to[0] for m in sent_mail()] == ["carol@example.org"]
    assert Delivery.objects.get(subscriber=failed["bob"]).state == "failed"
