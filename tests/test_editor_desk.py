"""The editor's desk: the Today page, the order readers see features in, the admin index."""

import datetime as dt
import html
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from newsletter.models import Edition
from papers.models import Feature, FetchRun
from papers.services import paper_feature
from tests.backends import RefusingBackend
from tests.conftest import make_paper, make_subscriber
from tests.test_digests import sent_mail

pytestmark = pytest.mark.django_db

TODAY_URL = "/admin/newsletter/edition/today/"


@pytest.fixture
def day():
    return timezone.localdate()


@pytest.fixture
def papers(day):
    return {
        "arms": make_paper("Robot arms that learn", upvotes=30, listed_on=day),
        "jam": make_paper("Jamming attacks on IoT", upvotes=20, listed_on=day),
        "quant": make_paper("Quantization for tiny chips", upvotes=90, listed_on=day),
    }


def desk(client, op, paper, **extra):
    return client.post(TODAY_URL, {"op": op, "paper": paper.pk, **extra}, follow=True)


def titles_in(text, papers):
    """The papers' titles in the order they appear in text."""
    return sorted((p.title for p in papers.values() if p.title in text), key=text.index)


def send(day):
    call_command("send_digests", date=day, stdout=StringIO())


def test_the_admin_index_links_to_the_today_page(editor):
    page = editor.get("/admin/").content.decode()
    assert f'href="{TODAY_URL}"' in page


def test_one_click_features_a_leading_paper_with_a_note_shown_as_rendered(editor, papers, day):
    page = editor.get(TODAY_URL).content.decode()
    leading = page[page.index('id="leaders"'):]
    assert titles_in(leading, papers) == ["Quantization for tiny chips", "Robot arms that learn", "Jamming attacks on IoT"]
    page = desk(editor, "feature", papers["jam"], note="Read the <b>threat model</b>").content.decode()
    assert f"“Jamming attacks on IoT” featured on {day}." in page
    featured = page[page.index('id="featured"'):page.index('id="leaders"')]
    assert "Read the <b>threat model</b>" in featured
    assert "Jamming attacks on IoT" not in page[page.index('id="leaders"'):page.index('id="changes"')]


def test_the_editor_reorders_features_and_readers_see_that_order_on_the_site_and_in_the_mail(editor, papers, day):
    for name in ["arms", "jam", "quant"]:
        desk(editor, "feature", papers[name])
    desk(editor, "up", papers["quant"])
    desk(editor, "up", papers["quant"])
    expected = ["Quantization for tiny chips", "Robot arms that learn", "Jamming attacks on IoT"]
    page = editor.get(TODAY_URL).content.decode()
    assert titles_in(page[page.index('id="featured"'):page.index('id="leaders"')], papers) == expected
    desk(editor, "down", papers["quant"])
    expected = ["Robot arms that learn", "Quantization for tiny chips", "Jamming attacks on IoT"]
    assert titles_in(editor.get("/").content.decode(), papers) == expected
    make_subscriber("reader@example.org")
    send(day)
    (message,) = sent_mail()
    assert titles_in(message.body, papers) == expected


def test_a_new_pick_comes_before_an_older_feature_in_the_mail(papers, day):
    old = make_paper("Yesterday's pick", upvotes=1, listed_on=day - dt.timedelta(days=1))
    paper_feature(paper=old, day=day - dt.timedelta(days=1))
    paper_feature(paper=papers["jam"], day=day)
    make_subscriber("reader@example.org")
    send(day)
    (message,) = sent_mail()
    assert message.body.index("Jamming attacks on IoT") < message.body.index("Yesterday's pick")


def test_features_are_pinned_on_top_of_their_day_on_the_site(client, papers, day):
    paper_feature(paper=papers["jam"], day=day, note="Start here")
    page = client.get("/").content.decode()
    assert titles_in(page, papers)[0] == "Jamming attacks on IoT" and "Start here" in page


def test_the_preview_is_the_digest_the_subscriber_then_receives(editor, papers, day):
    paper_feature(paper=papers["jam"], day=day, note="Read the <b>threat model</b>")
    make_subscriber("reader@example.org", topics=["robotics"])
    page = editor.get(TODAY_URL, {"subscriber": "reader@example.org"})
    preview = page.context["preview_html"]
    subject = page.context["preview_subject"]
    send(day)
    (message,) = sent_mail()
    assert message.subject == subject
    assert titles_in(message.alternatives[0][0], papers) == titles_in(preview, papers)
    links = r"/(f|u|preferences|editions/[\d-]+)/[^/]+/"  # each reader's own signed links
    assert re.sub(links, "/", message.alternatives[0][0]) == re.sub(links, "/", preview)


def test_the_preview_says_when_a_subscriber_gets_nothing(editor, papers):
    make_subscriber("paused@example.org", status="paused")
    page = editor.get(TODAY_URL, {"subscriber": "paused@example.org"}).content.decode()
    assert "paused@example.org is paused: no digest goes to them." in page
    assert "No subscriber nobody@example.org." in editor.get(TODAY_URL, {"subscriber": "nobody@example.org"}).content.decode()


def test_the_today_page_shows_the_editions_progress(editor, papers, day, settings, monkeypatch):
    make_subscriber("a@example.org")
    make_subscriber("b@example.org")
    settings.EMAIL_BACKEND = "tests.backends.RefusingBackend"
    monkeypatch.setattr(RefusingBackend, "refused", "b@example.org")
    send(day)
    page = editor.get(TODAY_URL).content.decode()
    section = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page[page.index('id="edition"'):page.index('id="preview"')]))
    assert "Due 2 Sent 1 Failed 1 Pending 0" in section


def test_the_text_part_of_a_digest_keeps_the_address_of_a_link_in_a_note(papers, day):
    paper_feature(paper=papers["jam"], day=day, note='See <a href="https://example.org/talk?a=1&b=2">the talk</a> & slides')
    make_subscriber("reader@example.org")
    send(day)
    (message,) = sent_mail()
    assert "The editors: See the talk (https://example.org/talk?a=1&b=2) & slides" in message.body


def test_a_sent_editions_archive_does_not_change_when_a_paper_is_unfeatured(editor, client, papers, day):
    paper_feature(paper=papers["jam"], day=day, note="Read the <b>threat model</b>")
    make_subscriber("reader@example.org")
    send(day)
    from newsletter.tasks import record_offered_task

    record_offered_task.delay()  # the beat records what went out
    assert Edition.objects.get(date=day).offered is not None
    editor.post("/admin/papers/paper/", {"action": "unfeature", "_selected_action": [papers["jam"].pk], "day": ""})
    assert not Feature.objects.exists()
    page = client.get(f"/editions/{day}/").content.decode()
    assert "Editor&#x27;s pick" in page and "Read the <b>threat model</b>" in page
    assert titles_in(page, papers)[0] == "Jamming attacks on IoT"


def test_an_edition_not_yet_sent_shows_the_features_as_they_are(client, papers, day):
    edition = Edition.objects.create(date=day)
    paper_feature(paper=papers["jam"], day=day)
    assert "Editor&#x27;s pick" in client.get(f"/editions/{day}/").content.decode()
    Feature.objects.all().delete()
    assert "Editor&#x27;s pick" not in client.get(f"/editions/{day}/").content.decode()
    edition.refresh_from_db()
    assert edition.offered is None


def test_unfeaturing_in_the_admin_first_records_editions_already_sent(editor, client, papers, day):
    paper_feature(paper=papers["jam"], day=day, note="Pinned")
    make_subscriber("reader@example.org")
    send(day)
    desk(editor, "unfeature", papers["jam"])
    assert "Pinned" in client.get(f"/editions/{day}/").content.decode()


def test_the_index_counts_digests_by_send_time_even_for_a_past_edition(editor, papers):
    past = timezone.localdate() - dt.timedelta(days=20)
    make_paper("An old paper", upvotes=5, listed_on=past)
    make_subscriber("reader@example.org")
    send(past)
    page = re.sub(r"\s+", " ", editor.get("/admin/").content.decode())
    assert "Digests sent</th><td>1</td>" in page


def test_the_index_tells_the_day_with_links_to_each_list(editor, papers, day, settings, monkeypatch):
    paper_feature(paper=papers["jam"], day=day)
    make_subscriber("a@example.org")
    make_subscriber("p@example.org", status="paused")
    settings.EMAIL_BACKEND = "tests.backends.RefusingBackend"
    monkeypatch.setattr(RefusingBackend, "refused", "a@example.org")
    send(day)
    page = editor.get("/admin/").content.decode()
    summary = page[page.index('id="day-summary"'):page.index('id="sending-health"')]
    assert "1. Jamming attacks on IoT" in summary
    edition = Edition.objects.get(date=day)
    assert f"?edition__id__exact={edition.pk}" in summary and "due 1 · sent 0 · failed 1" in summary
    assert "?status__exact=paused\">Paused: 1</a>" in summary and "Active: 1" in summary
    assert "?state__exact=failed" in summary and "1 in the last 7 days" in summary


def test_source_health_says_never_succeeded_and_not_configured_and_wraps_errors(editor, settings):
    settings.ARXIV_CATEGORIES = []
    FetchRun.objects.create(source="daily", day=timezone.localdate(), status="failed", error="boom " * 100)
    FetchRun.objects.create(source="watch", day=timezone.localdate(), status="success")
    page = editor.get("/admin/").content.decode()
    health = page[page.index('id="source-health"'):]
    daily = health[health.index("Daily papers listing"):health.index("arXiv enrichment")]
    assert "never succeeded: boom" in daily and "failing for over a day" not in daily and 'class="wrap"' in daily
    watch = health[health.index("arXiv category watch"):]
    assert "not configured" in watch[:400] and "Success" not in watch[:400]


def test_editors_see_what_readers_made_of_an_edition_and_of_a_featured_paper(editor, papers, day):
    from newsletter.services import subscriber_unsubscribe, vote_record

    paper_feature(paper=papers["jam"], day=day)
    a, b, c = (make_subscriber(f"{n}@example.org") for n in "abc")
    send(day)
    vote_record(subscriber=a, paper=papers["jam"], value=1)
    vote_record(subscriber=b, paper=papers["jam"], value=-1)
    vote_record(subscriber=c, paper=papers["arms"], value=1)
    subscriber_unsubscribe(subscriber=c)
    row = editor.get("/admin/newsletter/edition/").context["cl"].result_list.get(date=day)
    assert (row.sent, row.more, row.less, row.unsubscribes) == (3, 2, 1, 1)
    featured = editor.get(TODAY_URL).content.decode()
    assert "readers since featured: 1 more, 1 less" in featured


def test_an_edition_whose_day_is_over_everywhere_is_recorded_when_first_shown(client, day):
    past = day - dt.timedelta(days=2)
    make_paper("An old paper", upvotes=5, listed_on=past)
    edition = Edition.objects.create(date=past)
    assert "An old paper" in client.get(f"/editions/{past}/").content.decode()
    edition.refresh_from_db()
    assert [item["reason"] for item in edition.offered] == [["trending", "", 5.0]]
    assert edition.offered_at is not None


def test_the_today_page_shows_today_for_a_day_that_does_not_exist_and_refuses_a_lost_paper(editor, papers, day):
    assert editor.get(TODAY_URL, {"day": "2024-02-30"}).context["day"] == day
    page = editor.post(TODAY_URL, {"op": "feature", "paper": 999999}, follow=True).content.decode()
    assert "That paper no longer exists." in page and not Feature.objects.exists()
    page = desk(editor, "feature", papers["jam"], note="x" * 300).content.decode()
    assert "not featured: An editor&#x27;s note may be at most 280 characters." in page


def test_unfeature_then_feature_with_an_empty_note_keeps_the_note_on_the_today_page_and_in_the_papers_list(editor, papers, day):
    desk(editor, "feature", papers["jam"], note="Read the <b>threat model</b>")
    desk(editor, "unfeature", papers["jam"])
    page = desk(editor, "feature", papers["jam"], note="").content.decode()
    assert Feature.objects.get(paper=papers["jam"]).note == "Read the <b>threat model</b>"
    assert "Read the <b>threat model</b>" in page[page.index('id="featured"'):page.index('id="leaders"')]
    editor.post("/admin/papers/paper/", {"action": "unfeature", "_selected_action": [papers["jam"].pk], "day": str(day)})
    editor.post("/admin/papers/paper/", {"action": "feature", "_selected_action": [papers["jam"].pk], "day": str(day), "note": ""})
    assert Feature.objects.get(paper=papers["jam"]).note == "Read the <b>threat model</b>"


def note_box(page, paper):
    """The value of the note box of paper on the Today page, as the browser reads it."""
    match = re.search(rf'value="([^"]*)" aria-label="Note for {re.escape(paper.title)}"', page)
    return html.unescape(match.group(1))


def test_the_save_note_box_shows_the_note_as_written_and_keeps_a_refused_note(editor, papers, day):
    desk(editor, "feature", papers["jam"], note='Read the <b>threat model</b> & <a href="https://example.org/t">talk</a>')
    page = editor.get(TODAY_URL).content.decode()
    assert note_box(page, papers["jam"]) == 'Read the <b>threat model</b> & <a href="https://example.org/t">talk</a>'
    assert 'data-note-limit="280"' in page and 'maxlength="1000"' not in page
    typed = "Fixed " + "y" * 280
    response = editor.post(TODAY_URL, {"op": "note", "paper": papers["jam"].pk, "note": typed})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Note of “Jamming attacks on IoT” not saved: An editor&#x27;s note may be at most 280 characters." in page
    assert note_box(page, papers["jam"]) == typed
    assert "threat model" in Feature.objects.get(paper=papers["jam"]).note
    response = editor.post(TODAY_URL, {"op": "feature", "paper": papers["arms"].pk, "note": typed})
    assert note_box(response.content.decode(), papers["arms"]) == typed and response.status_code == 400



def test_a_link_to_an_unsafe_address_becomes_its_words_and_a_bare_address_a_link(editor, client, papers, day):
    note = '<a href="javascript:alert(1)">Click</a> or <a href="data:text/html,x">this</a>; slides at https://example.org/s?a=1&b=2.'
    desk(editor, "feature", papers["jam"], note=note)
    make_subscriber("reader@example.org")
    send(day)
    (message,) = sent_mail()
    mailed = message.alternatives[0][0]
    archive = client.get(f"/editions/{day}/").content.decode()
    for page in (mailed, archive):
        assert "Click or this; slides at " in page and "javascript" not in page and "data:" not in page
        assert re.search(r'<a href="https://example.org/s\?a=1&amp;b=2"[^>]*>https://example.org/s\?a=1&amp;b=2</a>\.', page)
        assert not re.search(r"<a\b(?![^>]*href)[^>]*>", page)  # no link without an address
    assert "Click or this; slides at https://example.org/s?a=1&b=2." in message.body


def test_a_new_readers_web_copy_ends_its_summary_with_one_full_stop(client, papers, day):
    make_subscriber("new@example.org", topics=["robotics"])
    send(day)
    (message,) = sent_mail()
    copy = re.search(r"Your copy on the web: https://paperboy\.test(/editions/\S+/)", message.body).group(1)
    page = client.get(copy).content.decode()
    assert "your digests follow your taste.</p>" in page


def undo_latest(editor, **filters):
    from papers.models import FeatureChange

    change = FeatureChange.objects.filter(**filters).first()
    return editor.post(f"/admin/papers/paper/undo/{change.pk}/", {"next": TODAY_URL}, follow=True).content.decode()


def test_history_and_recent_actions_say_each_change_in_words_with_titles(editor, papers, day):
    desk(editor, "feature", papers["jam"], note='R&D <a href="https://example.org/t">talk</a>')
    desk(editor, "feature", papers["arms"])
    desk(editor, "up", papers["arms"])
    desk(editor, "note", papers["arms"], note="Start here")
    desk(editor, "unfeature", papers["jam"])
    recent = editor.get("/admin/").content.decode()
    recent = recent[recent.index("Recent actions"):]
    for words in [
        f"Featured “Jamming attacks on IoT” on {day} with the note “R&amp;D talk (https://example.org/t)”",
        f"Reordered {day}: Robot arms that learn, Jamming attacks on IoT",
        f"Note on “Robot arms that learn” ({day}) changed from no note to “Start here”",
        f"Unfeatured “Jamming attacks on IoT” from {day} (its note was “R&amp;D talk (https://example.org/t)”)",
    ]:
        assert words in recent
    assert "rel=" not in recent and "&amp;amp;" not in recent and "deletelink" not in recent and "addlink" not in recent
    history = editor.get(f"/admin/papers/paper/{papers['arms'].pk}/history/").content.decode()
    assert f"Featured “Robot arms that learn” on {day}" in history and history.count(">Undo</button>") == 3


def test_feature_unfeature_note_and_reorder_are_undone_through_the_services(editor, papers, day):
    desk(editor, "feature", papers["jam"], note="Read the <b>threat model</b>")
    desk(editor, "feature", papers["arms"])
    desk(editor, "up", papers["arms"])
    assert "Undone: Reordered" in undo_latest(editor, kind="reordered")
    assert [f.paper for f in Feature.objects.filter(day=day)] == [papers["jam"], papers["arms"]]
    desk(editor, "note", papers["jam"], note="Better note")
    undo_latest(editor, kind="note")
    assert Feature.objects.get(paper=papers["jam"]).note == "Read the <b>threat model</b>"
    desk(editor, "unfeature", papers["jam"])
    undo_latest(editor, kind="unfeatured")
    assert Feature.objects.get(paper=papers["jam"]).note == "Read the <b>threat model</b>"
    page = undo_latest(editor, kind="featured", paper=papers["arms"])
    assert not Feature.objects.filter(paper=papers["arms"]).exists()
    assert f"Undone: Featured “Robot arms that learn” on {day}" in page
    page = undo_latest(editor, kind="featured", paper=papers["arms"])
    assert "Not undone: “Robot arms that learn” is not featured on" in page


def test_after_the_edition_went_out_the_today_page_says_so_and_previews_the_copy_mailed(editor, papers, day):
    paper_feature(paper=papers["jam"], day=day, note="Pinned first")
    make_subscriber("reader@example.org")
    assert "has gone out" not in editor.get(TODAY_URL).content.decode()
    send(day)
    (message,) = sent_mail()
    page = editor.get(TODAY_URL).content.decode()
    assert f"The edition of {day:%-d %b %Y} has gone out:</strong> 1 reader got their copy." in page
    desk(editor, "note", papers["jam"], note="Changed later")
    desk(editor, "unfeature", papers["jam"])
    page = editor.get(TODAY_URL, {"subscriber": "reader@example.org"})
    links = r"/(f|u|preferences|editions/[\d-]+)/[^/]+/"
    assert re.sub(links, "/", page.context["preview_html"]) == re.sub(links, "/", message.alternatives[0][0])
    assert page.context["preview_subject"] == message.subject
    assert "The copy mailed to reader@example.org at" in page.content.decode()
    now = editor.get(TODAY_URL, {"subscriber": "reader@example.org", "now": "1"})
    assert "Pinned first" not in now.context["preview_html"] and "would get if sent now" in now.content.decode()


def test_the_edition_page_shows_progress_papers_with_votes_and_links(editor, papers, day):
    from newsletter.models import Vote

    paper_feature(paper=papers["jam"], day=day, note="Pinned")
    reader = make_subscriber("reader@example.org")
    send(day)
    Vote.objects.create(subscriber=reader, paper=papers["jam"], value=1)
    edition = Edition.objects.get(date=day)
    Edition.objects.filter(pk=edition.pk).update(offered=None, offered_at=None)  # gone out, not looked at yet
    page = editor.get(f"/admin/newsletter/edition/{edition.pk}/change/").content.decode()
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    assert "Offered at: -" not in text and Edition.objects.get(pk=edition.pk).offered_at is not None
    assert "Due 1 · Pending 0 · Sending 0 · Sent 1 ·" in text
    assert f'href="/admin/newsletter/delivery/?edition__id__exact={edition.pk}&amp;state__exact=failed"' in page
    assert re.search(r"Jamming attacks on IoT · [^·]+ · 1 more, 0 less", text)
    assert f'href="{TODAY_URL}?day={day}"' in page and f'href="/editions/{day}/"' in page
