"""A digest as SpamAssassin's local rules (no network tests) see it: Debian's spamassassin,
run as `spamassassin -L -t` on the message we would send."""

import re
import subprocess
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

pytestmark = [pytest.mark.spamassassin, pytest.mark.django_db]


def local_score(message_bytes):
    report = subprocess.run(
        ["spamassassin", "-L", "-t", "-x"], input=message_bytes, capture_output=True, timeout=120, check=True
    ).stdout.decode(errors="replace")
    return float(re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", report, re.M).group(1)), report


def test_a_digest_scores_at_most_one_point_on_spamassassins_local_rules():
    call_command("demo", stdout=StringIO())
    digests = [m for m in mail.outbox if m.tags == ["digest"]]
    assert len(digests) == 3
    for message in digests:
        score, report = local_score(message.message().as_bytes())
        assert score <= 1, report[report.find("Content analysis details") :]
