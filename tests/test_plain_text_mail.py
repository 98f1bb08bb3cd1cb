"""Subjects and plain-text bodies are text, not HTML: nothing in them is HTML-escaped."""

import datetime as dt
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = pytest.mark.django_db

TITLE = """Fast & Slow <thinking>: "quoted" and 'single'"""


@pytest.mark.parametrize("mode", ["message", "batch"])
def test_a_digest_shows_a_title_with_markup_characters_as_typed(settings, mode):
    settings.DIGEST_SENDING = mode
    make_paper(TITLE, arxiv_id="2403.00001", upvotes=30, listed_on=DAY)
    make_subscriber("alice@example.org")
    call_command("send_digests", date=DAY, stdout=StringIO())
    [message] = mail.outbox
    assert TITLE in message.subject and "&amp;" not in message.subject
    assert TITLE in message.body and "&#x27;" not in message.body


def test_confirmation_and_reminder_mails_show_names_and_addresses_as_typed(client, settings):
    settings.SITE_NAME = "Papers & <Co>"
    client.post("/subscribe/", {"email": "o'brien@example.org", "frequency": "daily"})
    make_subscriber("d'arcy@example.org")
    client.post("/subscribe/", {"email": "d'arcy@example.org", "frequency": "daily"})
    confirm, manage = mail.outbox
    for message in (confirm, manage):
        assert "Papers & <Co>" in message.subject and "Papers & <Co>" in message.body
    assert "o'brien@example.org" in confirm.body and "d'arcy@example.org" in manage.body
