"""The fast path must give what the straightforward one gives: premailer on the whole
document, and Django's e-mail API building each message."""

import datetime as dt
import email
from email import policy

import pytest

from newsletter.offers import edition_offer
from newsletter.emails import build_message, list_headers, render_parts
from newsletter.models import Edition
from newsletter.digest_mail import personal_message
from newsletter.links import FEEDBACK_TOKEN, PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN
from newsletter.rendering import Content, digest_context
from papers.models import Feature
from tests.conftest import DAY, make_paper

pytestmark = pytest.mark.django_db


def squash(text):
    return " ".join(text.split())


@pytest.fixture
def offer():
    make_paper("Robots & <friends>: a \"study\" of 100% %(them)s", arxiv_id="2403.00001", upvotes=3, listed_on=DAY,
               authors=["Zoë Ünal", "Ada Lovelace"])
    featured = make_paper("Jamming attacks", arxiv_id="2403.00002", upvotes=2, listed_on=DAY)
    make_paper("Quantization for tiny chips", upvotes=1, listed_on=DAY - dt.timedelta(days=1),
               abstract="Ünïcödé abstract. " * 30)
    Feature.objects.create(paper=featured, day=DAY, note="<b>Read</b> this & that")
    return edition_offer(Edition.objects.create(date=DAY), "daily")


PICKS = [
    ("featured by the editors",),
    ("matches your topic Robotics",),
    ("mentions 'tiny chips' & <more>",),
]


def picks_of(offer):
    ids = [offer.pool.featured[0].id] + sorted(offer.pool.ids)
    return tuple((pid, reason) for pid, (reason,) in zip(ids, PICKS))


def whole_document(offer, picks):
    items = [{"paper": offer.papers[pid], "reason": reason, "note": offer.notes.get(pid, "")} for pid, reason in picks]
    return render_parts("digest", digest_context(offer.edition, items))


def test_assembled_html_equals_premailer_on_the_whole_document(offer):
    picks = picks_of(offer)
    subject, text, html = whole_document(offer, picks)
    content = offer.renderer.content(picks)
    assert squash(content.html) == squash(html)
    assert content.text == text
    assert content.subject == subject
    # Any subset and order of the edition's papers assembles correctly too.
    for subset in [picks[:1], picks[2:], (picks[2], picks[0])]:
        assert squash(offer.renderer.content(subset).html) == squash(whole_document(offer, subset)[2])


def test_the_composed_mime_equals_what_djangos_email_api_builds(offer):
    picks = picks_of(offer)
    content = offer.renderer.content(picks)
    unsubscribe, preferences, feedback = "MQ:unsub:sig", "MQ:prefs:sig", "MQ:fb:sig"
    links = {UNSUBSCRIBE_TOKEN: unsubscribe, PREFERENCES_TOKEN: preferences, FEEDBACK_TOKEN: feedback}
    ours = personal_message(content, email="zoe@example.org", links=links, message_id="<digest.1@paperboy.test>",
                            metadata={"subscriber": "1"})
    subject, text, html = whole_document(offer, picks)
    unsubscribe_url = f"https://paperboy.test/u/{unsubscribe}/"
    django = build_message(
        subject,
        text.replace(UNSUBSCRIBE_TOKEN, unsubscribe).replace(PREFERENCES_TOKEN, preferences).replace(FEEDBACK_TOKEN, feedback),
        html.replace(UNSUBSCRIBE_TOKEN, unsubscribe).replace(PREFERENCES_TOKEN, preferences).replace(FEEDBACK_TOKEN, feedback),
        "zoe@example.org",
        headers={"Message-ID": "<digest.1@paperboy.test>", **list_headers(unsubscribe_url)},
    )
    a = email.message_from_bytes(ours.message().as_bytes(), policy=policy.default)
    b = email.message_from_bytes(django.message().as_bytes(), policy=policy.default)
    skip = {"content-type", "date"}  # the boundary differs; the date is the moment of building
    assert [(k, str(v)) for k, v in a.items() if k.lower() not in skip] == [
        (k, str(v)) for k, v in b.items() if k.lower() not in skip
    ]
    assert a.get_content_type() == b.get_content_type() == "multipart/alternative"
    assert a["Date"] and a["List-Unsubscribe"] == f"<{unsubscribe_url}>"
    for kind in ("plain", "html"):
        assert squash(a.get_body((kind,)).get_content()) == squash(b.get_body((kind,)).get_content())
    assert b"List-Unsubscribe: <https://paperboy.test/u/MQ:unsub:sig/>\n" in ours.message().as_bytes()
    # Django's reading API, as third-party code and tests use it.
    assert ours.message()["List-Unsubscribe"] == f"<{unsubscribe_url}>"
    assert ours.message().get("Subject") == subject
    # What ESP backends read instead of the bytes: the same, personalised.
    assert ours.body == a.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert ours.metadata == {"subscriber": "1"} and ours.extra_headers["List-Unsubscribe"] == f"<{unsubscribe_url}>"


def test_a_line_too_long_for_8bit_falls_back_to_djangos_encoding(offer):
    picks = picks_of(offer)
    shared = offer.renderer.content(picks)
    html = shared.html.replace("</h1>", "x" * 2000 + "</h1>")
    content = Content.of(shared.subject, shared.text, html)
    assert content.mime_template is None
    links = {UNSUBSCRIBE_TOKEN: "u", PREFERENCES_TOKEN: "p", FEEDBACK_TOKEN: "f"}
    message = personal_message(content, email="zoe@example.org", links=links,
                               message_id="<m@paperboy.test>", metadata={})
    parsed = email.message_from_bytes(message.message().as_bytes(), policy=policy.default)
    assert "x" * 2000 in parsed.get_body(("html",)).get_content()
