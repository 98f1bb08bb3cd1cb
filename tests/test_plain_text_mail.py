"""Subjects and plain-text bodies are text, not HTML: nothing in them is HTML-escaped."""

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
    # The subject names the lead paper by the part of its title before the colon.
    assert "Fast & Slow <thinking> · 14 Mar" in message.subject
    assert "Fast & Slow <thinking>:" in message.body
    assert not any(entity in message.subject + message.body for entity in ("&amp;", "&lt;", "&gt;", "&#x27;", "&quot;"))


def test_confirmation_and_reminder_mails_show_names_and_addresses_as_typed(client, settings):
    settings.SITE_NAME = "Papers & <Co>"
    client.post("/subscribe/", {"email": "o'brien@example.org", "frequency": "daily"})
    make_subscriber("d'arcy@example.org")
    client.post("/subscribe/", {"email": "d'arcy@example.org", "frequency": "daily"})
    confirm, manage = mail.outbox
    for message in (confirm, manage):
        assert "Papers & <Co>" in message.subject and "Papers & <Co>" in message.body
    assert "o'brien@example.org" in confirm.body and "d'arcy@example.org" in manage.body
