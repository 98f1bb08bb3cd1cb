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
from newsletter.links import FEEDBACK_TOKEN, PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN, VIEW_TOKEN
from newsletter.reasons import FEATURED, Kind, Reason
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


def topic(name):
    return Reason(Kind.TOPIC, name, 1.0)


def author(name):
    return Reason(Kind.AUTHOR, name, 1.5)


def liked(pk, title):
    return Reason(Kind.SIMILAR, str(pk), 3.12, title)


PICKS = [FEATURED, topic("Robotics"), Reason(Kind.KEYWORD, "tiny chips & <more>", 0.8)]


def picks_of(offer):
    ids = [offer.pool.featured[0].id] + sorted(offer.pool.ids)
    return tuple(zip(ids, PICKS))


def filled(text, links):
    for placeholder, token in links.items():
        text = text.replace(placeholder, token)
    return text


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
    unsubscribe, preferences, feedback, view = "MQ:unsub:sig", "MQ:prefs:sig", "MQ:fb:sig", "MQ:view:sig"
    links = {UNSUBSCRIBE_TOKEN: unsubscribe, PREFERENCES_TOKEN: preferences, FEEDBACK_TOKEN: feedback, VIEW_TOKEN: view}
    ours = personal_message(content, email="zoe@example.org", links=links, message_id="<digest.1@paperboy.test>",
                            metadata={"subscriber": "1"})
    subject, text, html = whole_document(offer, picks)
    unsubscribe_url = f"https://paperboy.test/u/{unsubscribe}/"
    django = build_message(
        subject,
        filled(text, links),
        filled(html, links),
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
    assert ours.message().get("Subject") == django.message()["Subject"]  # encoded alike when not ASCII
    # What ESP backends read instead of the bytes: the same, personalised.
    assert ours.body == a.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert ours.metadata == {"subscriber": "1"} and ours.extra_headers["List-Unsubscribe"] == f"<{unsubscribe_url}>"


def test_a_line_too_long_for_8bit_falls_back_to_djangos_encoding(offer):
    picks = picks_of(offer)
    shared = offer.renderer.content(picks)
    html = shared.html.replace("</h1>", "x" * 2000 + "</h1>")
    content = Content.of(shared.subject, shared.text, html)
    assert content.mime_template is None
    links = {UNSUBSCRIBE_TOKEN: "u", PREFERENCES_TOKEN: "p", FEEDBACK_TOKEN: "f", VIEW_TOKEN: "v"}
    message = personal_message(content, email="zoe@example.org", links=links,
                               message_id="<m@paperboy.test>", metadata={})
    parsed = email.message_from_bytes(message.message().as_bytes(), policy=policy.default)
    assert "x" * 2000 in parsed.get_body(("html",)).get_content()


def test_cards_of_one_section_follow_each_other_under_one_heading(offer):
    featured, first, second = picks_of(offer)[0][0], *(pid for pid, _ in picks_of(offer)[1:])
    picks = ((first, topic("Robotics")), (featured, author("Zoë Ünal")), (second, topic("Robotics")))
    content = offer.renderer.content(picks)
    assert squash(content.html) == squash(whole_document(offer, picks)[2])
    assert content.text == whole_document(offer, picks)[1]
    assert content.html.count("Robotics</a></h2>") == 1 and content.html.count("Authors you follow</a></h2>") == 1
    # The one reason a heading does not say, linked to the page that tells why and stops it.
    assert f"/f/{FEEDBACK_TOKEN}/{featured}/why/#why" in content.html
    assert "By Zoë Ünal, whom you follow</a></p>" in content.html
    assert "Matches your topic" not in content.html
    text = content.text
    assert text.index("\nROBOTICS\n\n1. ") < text.index("\n2. ") < text.index("\nAUTHORS YOU FOLLOW\n\n3. Jamming attacks")


def test_digests_joined_from_shared_cards_keep_their_own_numbers_headings_and_summary(offer):
    # Readers with a profile each get their own digest, joined from cards kept by paper,
    # reason and place: each must still read as if rendered whole.
    featured, first, second = (pid for pid, _ in picks_of(offer))
    robots = liked(first, "Robots & <friends>")
    digests = [
        ((first, robots), (second, robots), (featured, FEATURED)),
        ((featured, FEATURED), (second, robots), (first, author("Ada Lovelace"))),
        ((second, author("Zoë Ünal")), (first, author("Ada Lovelace")), (featured, robots)),
        ((first, robots), (second, liked(featured, "Jamming attacks"))),
    ]
    for picks in digests:
        subject, text, html = whole_document(offer, picks)
        content = offer.renderer.content(picks)
        assert (content.subject, content.text, squash(content.html)) == (subject, text, squash(html))
    # Sections that read alike are summed up together.
    assert "2 by authors you follow, 1 like a paper you liked\n" in offer.renderer.content(digests[2]).text
    assert "2 like papers you liked\n" in offer.renderer.content(digests[3]).text


def test_the_summary_counts_each_kind_of_pick_in_the_readers_words():
    from newsletter.outline import summary

    llm = Reason(Kind.KEYWORD, "LLM", 0.8)
    reasons = [FEATURED, llm, llm, author("Ada Lovelace"), liked(7, "Four-bit weights"), Reason(Kind.TRENDING, "", 3.0),
               Reason(Kind.TRENDING, "", 1.0)]
    assert summary(reasons) == (
        "1 editor's pick, 2 mentioning “LLM”, 1 by an author you follow, 1 like a paper you liked, 2 trending"
    )


def test_the_subject_says_what_follows_the_lead_paper():
    from newsletter.outline import subject_tail

    robotics, keyword = topic("Robotics"), Reason(Kind.KEYWORD, "robot", 0.8)
    four_bits, trending = liked(7, "Four-bit weights"), Reason(Kind.TRENDING, "", 3.0)
    assert subject_tail([robotics, robotics]) == " + 2 in Robotics"
    assert subject_tail([robotics, robotics, four_bits]) == " + 3, mostly Robotics"
    assert subject_tail([keyword, four_bits]) == " + 2, mostly robot"
    assert subject_tail([trending, trending]) == " + 2 trending"
    assert subject_tail([robotics, four_bits, trending]) == " + 3 more"
    assert subject_tail([four_bits, four_bits, trending]) == " + 3 more"
    assert subject_tail([]) == ""


def test_the_subject_fits_a_phone_and_a_hidden_preheader_sums_up_the_digest(offer):
    featured, first, second = (pid for pid, _ in picks_of(offer))
    offer.papers[featured].title = "Digi-Q: Learning Q-Value Functions for Training Device-Control Agents at ``scale''"
    picks = ((featured, FEATURED), (first, topic("Reinforcement learning")), (second, topic("Reinforcement learning")))
    renderer = type(offer.renderer)(offer.edition, offer.papers, offer.notes)
    content = renderer.content(picks)
    assert content.subject == "Digi-Q + 2 in Reinforcement learning · 14 Mar"
    assert len(renderer.content(picks[:1]).subject) <= 60
    body = content.html.split("<body", 1)[1]
    preheader = body.split("<div", 2)[1]
    assert 'class="preheader"' in preheader and "display:none" in preheader.replace(" ", "")
    assert ">1 editor's pick, 2 in Reinforcement learning" in preheader
    assert "View in browser" not in preheader
    assert content.html.startswith("<!doctype html>")  # premailer drops it; standards mode needs it
    assert "“scale”" in content.html and "``" not in content.text


def test_a_long_topic_in_the_subject_is_cut_only_past_the_limit_and_at_a_word(offer):
    featured, first, second = (pid for pid, _ in picks_of(offer))
    offer.papers[featured].title = "Digi-Q: Learning Q-Value Functions for Training Device-Control Agents"

    def subject(topic):
        picks = ((featured, FEATURED), (first, Reason(Kind.TOPIC, topic, 1.0)), (second, Reason(Kind.TOPIC, topic, 1.0)))
        return type(offer.renderer)(offer.edition, offer.papers, offer.notes).content(picks).subject

    assert subject("Quantization & compression methods") == "Digi-Q + 2 in Quantization & compression methods · 14 Mar"
    cut = subject("Quantization, compression & knowledge distillation")
    assert cut == "Digi-Q + 2 in Quantization, compression… · 14 Mar"


def test_digests_carry_headers_that_stop_auto_replies_and_reply_to_when_set(offer, settings):
    links = {UNSUBSCRIBE_TOKEN: "u", PREFERENCES_TOKEN: "p", FEEDBACK_TOKEN: "f", VIEW_TOKEN: "v"}

    def headers():
        content = type(offer.renderer)(offer.edition, offer.papers, offer.notes).content(picks_of(offer))
        message = personal_message(content, email="zoe@example.org", links=links, message_id="<m@paperboy.test>",
                                   metadata={})
        return email.message_from_bytes(message.message().as_bytes(), policy=policy.default)

    parsed = headers()
    assert parsed["Auto-Submitted"] == "auto-generated" and parsed["Precedence"] == "bulk"
    assert parsed["X-Auto-Response-Suppress"] == "OOF, AutoReply" and parsed["Reply-To"] is None
    settings.DIGEST_REPLY_TO = "Editors <editors@paperboy.test>"
    assert headers()["Reply-To"] == "Editors <editors@paperboy.test>"


def test_a_display_name_in_another_script_keeps_its_address_readable(offer, settings):
    settings.DEFAULT_FROM_EMAIL = "Pâperboy Édition <digest@paperboy.test>"
    settings.DIGEST_REPLY_TO = "Rédaction <editors@paperboy.test>"
    settings.SITE_NAME = "Pâperboy"
    content = offer.renderer.content(picks_of(offer))
    links = {UNSUBSCRIBE_TOKEN: "u", PREFERENCES_TOKEN: "p", FEEDBACK_TOKEN: "f", VIEW_TOKEN: "v"}
    ours = personal_message(content, email="zoe@example.org", links=links, message_id="<m@paperboy.test>", metadata={})
    parsed = email.message_from_bytes(ours.message().as_bytes(), policy=policy.default)
    assert parsed["From"].addresses[0].addr_spec == "digest@paperboy.test"
    assert parsed["From"].addresses[0].display_name == "Pâperboy Édition"
    assert parsed["Reply-To"].addresses[0].addr_spec == "editors@paperboy.test"
    assert ours.message().as_bytes().split(b"\n\n", 1)[0].isascii()  # every header encoded (bodies are 8bit)


def test_an_offers_renderer_is_freed_as_soon_as_the_offer_is_dropped(offer):
    # Workers replace their offers every few minutes and collect garbage rarely
    # (config/celery.py): the renderer's caches must not hold it in a reference cycle.
    import gc
    import weakref

    offer.renderer.content(picks_of(offer))
    renderer = weakref.ref(offer.renderer)
    gc.disable()
    try:
        del offer.renderer
        assert renderer() is None
    finally:
        gc.enable()


def test_rewording_a_reason_changes_its_line_but_no_section_summary_or_subject(offer, monkeypatch):
    from newsletter import outline, reasons

    featured, first, second = (pid for pid, _ in picks_of(offer))
    picks = ((first, author("Ada Lovelace")), (featured, topic("Robotics")), (second, topic("Robotics")),
             (featured, liked(second, "Jamming attacks")))
    laid = [(n, s.key, s.heading, starts) for n, s, starts in outline.in_sections([r for _, r in picks])]
    said = outline.summary([r for _, r in picks]), outline.subject_tail([r for _, r in picks[1:]])
    monkeypatch.setitem(reasons.WORDING, reasons.Kind.AUTHOR, "written by {subject}, an author of yours")
    monkeypatch.setitem(reasons.WORDING, reasons.Kind.TOPIC, "on {subject}, one of your topics")
    monkeypatch.setitem(reasons.WORDING, reasons.Kind.SIMILAR, "near '{label}', a favourite")
    outline.section_of.cache_clear(), outline._section.cache_clear()
    assert [(n, s.key, s.heading, starts) for n, s, starts in outline.in_sections([r for _, r in picks])] == laid
    assert (outline.summary([r for _, r in picks]), outline.subject_tail([r for _, r in picks[1:]])) == said
    html = type(offer.renderer)(offer.edition, offer.papers, offer.notes).content(picks[:3]).html
    assert "Written by Ada Lovelace, an author of yours</a></p>" in html  # the line, reworded, is all that changed
    assert html.count("Robotics</a></h2>") == 1
    outline.section_of.cache_clear(), outline._section.cache_clear()
