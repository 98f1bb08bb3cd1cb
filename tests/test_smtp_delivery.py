"""Digests through Django's SMTP backend to a real SMTP server on 127.0.0.1 (aiosmtpd)."""

import datetime as dt
import email
import re
import socket
from email import policy
from io import StringIO

import pytest
from aiosmtpd.controller import Controller
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.management import call_command
from django.utils import timezone

from newsletter import delivery, tasks
from newsletter.models import Delivery, Subscriber, Suppression
from tests.conftest import DAY, make_paper, make_subscriber
from tests.test_signup import signup

pytestmark = pytest.mark.django_db


class Inbox:
    def __init__(self):
        self.messages = []
        self.unknown = set()  # addresses answered "550 5.1.1 user unknown" at RCPT

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.unknown:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.original_content))
        return "250 OK"


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    yield inbox
    controller.stop()


def test_digests_arrive_whole_at_a_real_smtp_server(smtp):
    make_paper("Robot arms that learn", upvotes=3, listed_on=DAY)
    make_subscriber("alice@example.org", topics=["robotics"])
    make_subscriber("bob@example.org")
    call_command("send_digests", date=DAY, stdout=StringIO())
    assert sorted(rcpt for rcpts, _ in smtp.messages for rcpt in rcpts) == ["alice@example.org", "bob@example.org"]
    raw = dict((rcpts[0], data) for rcpts, data in smtp.messages)["alice@example.org"]
    assert b"\r\nList-Unsubscribe: <https://paperboy.test/u/" in raw  # one line, CRLF on the wire
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message["To"] == "alice@example.org"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "\r\nROBOTICS\r\n\r\n1. Robot arms that learn" in message.get_body(("plain",)).get_content()
    assert "Robot arms that learn" in message.get_body(("html",)).get_content()
    assert Delivery.objects.filter(state="sent").count() == 2


class OutageBackend(SMTPBackend):
    """Django's SMTP backend, while the server is down for the first `down` connection attempts."""

    down = 0

    def open(self):
        if OutageBackend.down > 0:
            OutageBackend.down -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        return super().open()


def test_a_server_that_refuses_connections_is_retried_with_backoff(smtp, settings, monkeypatch):
    make_paper("Robot arms that learn", upvotes=3, listed_on=DAY)
    make_subscriber("alice@example.org")
    settings.EMAIL_BACKEND = "tests.test_smtp_delivery.OutageBackend"
    OutageBackend.down = 1
    countdowns = []
    monkeypatch.setattr(delivery, "retry_countdown", lambda retries: countdowns.append(retries) or 0)
    call_command("send_digests", date=DAY, stdout=StringIO())
    assert countdowns == [0]  # one backoff, then the retry went through
    assert [rcpts for rcpts, _ in smtp.messages] == [["alice@example.org"]]
    assert Delivery.objects.get().state == "sent"


def recipients(smtp):
    return sorted(rcpt for rcpts, _ in smtp.messages for rcpt in rcpts)


def test_an_address_the_server_refuses_for_good_is_suppressed_as_a_bounce(smtp, admin_client):
    make_paper("Robot arms that learn", upvotes=3, listed_on=DAY)
    make_subscriber("alice@example.org")
    gone = make_subscriber("gone@example.org")
    smtp.unknown = {"gone@example.org"}
    call_command("send_digests", date=DAY, stdout=StringIO())
    assert recipients(smtp) == ["alice@example.org"]
    gone.refresh_from_db()
    assert gone.status == Subscriber.Status.SUPPRESSED and Suppression.covers("gone@example.org")
    (event,) = gone.events.filter(kind="bounced")
    assert "550" in event.description and "User unknown" in event.description
    failed = Delivery.objects.get(subscriber=gone)
    assert failed.state == "failed" and failed.note.startswith(Delivery.BOUNCED)
    # Counted on the admin index as the ESP's bounces are.
    page = re.sub(r"\s+", " ", admin_client.get("/admin/").content.decode())
    assert "Hard bounces (now suppressed)</th><td>1</td>" in page
    # The next day's digests skip them, even if the server would take the mail now.
    make_paper("Robot legs that learn", upvotes=3, listed_on=DAY + dt.timedelta(days=1))
    smtp.messages.clear()
    smtp.unknown = set()
    call_command("send_digests", date=DAY + dt.timedelta(days=1), stdout=StringIO())
    assert recipients(smtp) == ["alice@example.org"]


def test_a_mail_server_that_is_down_leaves_the_digests_waiting_and_says_so(settings):
    make_paper("Robot arms that learn", upvotes=3, listed_on=DAY)
    make_subscriber("alice@example.org")
    make_subscriber("bob@example.org")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    out = StringIO()
    call_command("send_digests", date=DAY, stdout=out)  # ends normally
    assert "2 waiting, will retry: the mail server was unreachable: ConnectionRefusedError" in out.getvalue()
    rows = Delivery.objects.all()
    # Nothing was tried: no attempt charged, so an outage costs no digest.
    assert {(d.state, d.attempts) for d in rows} == {("pending", 0)}
    # A server that is still unreachable a day after the rows were queued: they fail, and no
    # task retries them for ever.
    rows.update(created_at=timezone.now() - dt.timedelta(hours=settings.DIGEST_UNREACHABLE_HOURS, minutes=1))
    out = StringIO()
    call_command("send_digests", date=DAY, stdout=out)
    assert {(d.state, d.attempts) for d in rows} == {("failed", 0)}
    assert "given up 24 h after it was queued" in Delivery.objects.first().note
    assert "waiting" not in out.getvalue()


def test_a_confirmation_the_server_refuses_for_good_suppresses_the_address_once(smtp, client):
    # A synchronous refusal of a sign-up's confirmation is a bounce too: no retries, no reader.
    smtp.unknown = {"typo@example.org"}
    signup(client, "typo@example.org")
    subscriber = Subscriber.objects.get(email="typo@example.org")
    assert subscriber.status == Subscriber.Status.SUPPRESSED and Suppression.covers("typo@example.org")
    assert subscriber.events.filter(kind="bounced").count() == 1
    assert smtp.messages == []
    signup(client, "typo@example.org")  # nothing more is sent to it
    assert subscriber.events.filter(kind="bounced").count() == 1
