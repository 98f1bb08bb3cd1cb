"""The digest against caniemail.com's data (@jsx-email/doiuse-email, pinned in package.json) for
Gmail (desktop, mobile webmail, iOS, Android), Outlook for Windows, Apple Mail and Yahoo: it uses
nothing those clients drop, but what is there only to enhance and degrades well (listed, with
why). "Partially supported" warnings (margin, font-size...) are caniemail's notes on details."""

import json
import re
import shutil
import subprocess
from fnmatch import fnmatch
from io import StringIO
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command

from tests.conftest import _unavailable

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "js" / "caniemail.js"
LINTER = ROOT / "node_modules" / "@jsx-email" / "doiuse-email"

# (feature, clients) that cannot be avoided without losing something, and why it does no harm.
UNAVOIDABLE = {
    ("@media", "*"): "only dark mode and a phone's narrower padding; without it the light layout shows",
    ("Type selector", "gmail.mobile-webmail"): "in the <style> block, whose rules are also inlined (or @media)",
    ("Class selector", "gmail.mobile-webmail"): "the same",
    ("Descendant combinator", "gmail.mobile-webmail"): "the same",
    ("border-radius", "outlook.windows"): "square corners; the buttons' borders are on table cells",
    ("<body> element", "yahoo.*"): "Yahoo makes it a div; .outer repeats its background",
    ("display:none", "gmail.mobile-webmail"): "the preheader is also zero-size and transparent (checked below)",
}


def lint(html):
    if not shutil.which("node") or not LINTER.exists():
        _unavailable(f"needs node and {LINTER} (npm ci, or make browser)")
    run = subprocess.run(["node", str(SCRIPT)], input=html, capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=True)
    return json.loads(run.stdout)


def avoidable(errors):
    found = set()
    for error in errors:
        feature, client = re.fullmatch(r"`(.+)` is not supported by `(.+)`", error).groups()
        if not any(feature == f and fnmatch(client, c) for f, c in UNAVOIDABLE):
            found.add(error)
    return sorted(found)


@pytest.fixture
def digest_html(db):
    call_command("demo", stdout=StringIO())
    digest = next(m for m in mail.outbox if m.tags == ["digest"])
    return next(content for content, kind in digest.alternatives if kind == "text/html")


def test_the_digest_uses_nothing_gmail_outlook_apple_mail_or_yahoo_drop_that_it_could_avoid(digest_html):
    assert avoidable(lint(digest_html)["errors"]) == []


def test_the_preheader_stays_hidden_where_display_none_is_dropped(digest_html):
    style = re.search(r'<div class="preheader" style="([^"]*)"', digest_html).group(1).replace(" ", "")
    assert {"display:none", "font-size:0", "line-height:0", "max-height:0", "color:transparent"} <= set(style.split(";"))
    assert "overflow" not in style


def test_more_and_less_are_bordered_table_cells_for_outlook(digest_html):
    cells = re.findall(r'<td class="tap" style="([^"]*)"><a [^>]*>(More|Less) like this</a></td>', digest_html)
    assert len(cells) == len(re.findall(r">(?:More|Less) like this<", digest_html)) > 0
    assert all("border:1px solid" in style and "mso-padding-alt" in style for style, _ in cells)
