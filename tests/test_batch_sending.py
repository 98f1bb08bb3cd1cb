"""Batch mode against a real local HTTP server that speaks Mailgun's API (pytest-httpserver)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from newsletter import tokens
from newsletter.models import Delivery
from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["anymail.backends.mailgun.EmailBackend", "newsletter.esp.MailgunBackend"])
def mailgun(httpserver, settings, request):
    """anymail's Mailgun backend (URL-encoded form) and ours (the same fields, multipart)."""
    settings.EMAIL_BACKEND = request.param
    settings.ANYMAIL = {"MAILGUN_API_KEY": "key-test", "MAILGUN_API_URL": httpserver.url_for("/v3"), "WEBHOOK_SECRET": "a:b"}
    settings.DEFAULT_FROM_EMAIL = "Paperboy <digest@paperboy.test>"
    settings.DIGEST_SENDING = "batch"
    return httpserver


def readers(n):
    make_paper("Robot arms that learn", upvotes=3, listed_on=DAY)
    return [make_subscriber(f"reader{i}@example.org", topics=["robotics"]) for i in range(n)]


def test_identical_digests_go_out_in_one_call_with_per_recipient_merge_data(mailgun, settings):
    people = readers(3)
    mailgun.expect_request("/v3/paperboy.test/messages", method="POST").respond_with_json(
        {"id": "<batch-1@paperboy.test>", "message": "Queued. Thank you."})
    call_command("send_digests", date=DAY, stdout=StringIO())
    assert len(mailgun.log) == 1
    form = mailgun.log[0][0].form
    assert sorted(form.getlist("to")) == [p.email for p in people]
    variables = json.loads(form["recipient-variables"])
    tokens = {email: v["unsubscribe"] for email, v in variables.items()}
    assert len(set(tokens.values())) == 3  # each recipient their own link
    assert "%recipient.unsubscribe%" in form["text"] and "%recipient.feedback%" in form["html"]
    assert form["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "%recipient." in form["h:List-Unsubscribe"]  # a merge header, filled per recipient
    assert variables["reader0@example.org"]["v:subscriber"] == str(people[0].pk)  # metadata for webhooks
    assert Delivery.objects.filter(state="sent").count() == 3
    multipart = mailgun.log[0][0].content_type.startswith("multipart/form-data")
    assert multipart == (settings.EMAIL_BACKEND == "newsletter.esp.MailgunBackend")
    call_command("send_digests", date=DAY, stdout=StringIO())
    assert len(mailgun.log) == 1  # exactly once


def test_a_failed_batch_call_is_retried_for_its_recipients_only(mailgun, settings):
    settings.DIGEST_BATCH_LIMIT = 2
    readers(3)
    mailgun.expect_ordered_request("/v3/paperboy.test/messages").respond_with_json({"id": "<b1@x>", "message": "Queued. Thank you."})
    mailgun.expect_ordered_request("/v3/paperboy.test/messages").respond_with_data("busy", status=503)
    mailgun.expect_ordered_request("/v3/paperboy.test/messages").respond_with_json({"id": "<b2@x>", "message": "Queued. Thank you."})
    call_command("send_digests", date=DAY, stdout=StringIO())
    calls = [sorted(r.form.getlist("to")) for r, _ in mailgun.log]
    assert calls == [["reader0@example.org", "reader1@example.org"], ["reader2@example.org"], ["reader2@example.org"]]
    assert Delivery.objects.filter(state="sent").count() == 3
    assert Delivery.objects.get(subscriber__email="reader2@example.org").attempts == 2


def sent_by_anymails_test_backend(settings, mode, n):
    """n readers sent today's digest through anymail's test backend: (readers, messages)."""
    from django.core import mail

    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.DIGEST_SENDING = mode
    people = readers(n)
    call_command("send_digests", date=DAY, stdout=StringIO())
    return people, mail.outbox


def test_with_anymails_test_backend_metadata_maps_every_recipient(settings):
    people, outbox = sent_by_anymails_test_backend(settings, "batch", 2)
    assert len(outbox) == 1
    message = outbox[0]
    assert message.merge_metadata == {
        p.email: {"subscriber": str(p.pk), "edition": DAY.isoformat(), "delivery": str(p.deliveries.get().pk)}
        for p in people
    }
    assert set(message.anymail_status.recipients) == {p.email for p in people}
    assert all(Delivery.objects.get(subscriber=p).message_id == str(message.anymail_status.recipients[p.email].message_id)
               for p in people)


def test_fan_out_puts_alike_subscribers_in_the_same_batches(mailgun, settings):
    settings.DIGEST_BATCH_SIZE = 3
    make_paper("Robot arms that learn", upvotes=3, listed_on=DAY)
    make_paper("Jamming attacks on IoT", upvotes=2, listed_on=DAY)
    for n in range(6):  # interleaved by primary key
        make_subscriber(f"reader{n}@example.org", topics=["robotics"] if n % 2 else ["security"])
    mailgun.expect_request("/v3/paperboy.test/messages").respond_with_json({"id": "<b@x>", "message": "Queued. Thank you."})
    call_command("send_digests", date=DAY, stdout=StringIO())
    calls = [sorted(r.form.getlist("to")) for r, _ in mailgun.log]
    assert sorted(calls) == [["reader0@example.org", "reader2@example.org", "reader4@example.org"],
                             ["reader1@example.org", "reader3@example.org", "reader5@example.org"]]


def test_in_message_mode_an_esp_reads_each_recipients_own_headers_bodies_and_metadata(settings):
    """What an ESP backend reads of a digest (not the pre-composed bytes) is personalised too."""
    people, outbox = sent_by_anymails_test_backend(settings, "message", 2)
    assert len(outbox) == 2
    for person, message in zip(people, sorted(outbox, key=lambda m: m.to[0])):
        params = message.anymail_test_params
        headers = {name.lower(): value for name, value in params["extra_headers"].items()}
        token = headers["list-unsubscribe"].rstrip("/>").rsplit("/", 1)[1]
        assert tokens.read(tokens.UNSUBSCRIBE, token) == person.pk
        assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
        assert headers["message-id"] == f"<digest.{DAY:%Y%m%d}.{person.pk}@paperboy.test>"
        assert token in params["text_body"] and token in params["html_body"]
        assert params["metadata"] == {"subscriber": str(person.pk), "edition": DAY.isoformat(),
                                      "delivery": str(person.deliveries.get().pk)}
