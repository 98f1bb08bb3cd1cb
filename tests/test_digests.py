import datetime as dt
import email
import re
from email import policy
from io import StringIO

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.test import Client

from newsletter import delivery, offers, reconcile, tokens
from newsletter.emails import build_message
from newsletter.links import unsubscribe_path
from newsletter.models import Delivery, Edition, Subscriber
from papers.models import Feature
from tests.backends import FlakyBackend
from tests.conftest import DAY, make_paper, make_subscriber
from newsletter.tasks import enqueue_deliveries

pytestmark = pytest.mark.django_db


@pytest.fixture
def papers():
    return {
        "robot": make_paper("Robot arms that learn", arxiv_id="2403.00001", upvotes=30, listed_on=DAY),
        "jam": make_paper("Jamming attacks on IoT", arxiv_id="2403.00002", upvotes=20, listed_on=DAY),
        "quant": make_paper("Quantization for tiny chips", arxiv_id="2403.00003", upvotes=90, listed_on=DAY - dt.timedelta(days=1)),
        "old": make_paper("An old robot paper", arxiv_id="2403.00004", upvotes=999, listed_on=DAY - dt.timedelta(days=10)),
    }


@pytest.fixture
def readers():
    return {
        "alice": make_subscriber("alice@example.org", topics=["robotics"]),
        "bob": make_subscriber("bob@example.org", topics=["security"], keywords="tiny chips"),
        "carol": make_subscriber("carol@example.org", status="pending"),
        "dave": make_subscriber("dave@example.org", status="unsubscribed"),
        "erin": make_subscriber("erin@example.org", status="paused"),
    }


def send(day=DAY):
    call_command("send_digests", date=day, stdout=StringIO())


@pytest.fixture(autouse=True, params=["message", "batch"])
def sending(request, settings):
    """Every test here runs in both sending modes."""
    settings.DIGEST_SENDING = request.param
    return request.param


def sent_mail():
    """The outbox as recipients see it: batch messages (anymail merge data) expanded into one
    message per recipient, with the merge fields filled in as the ESP would."""
    messages = []
    for m in mail.outbox:
        if not getattr(m, "merge_data", None):
            messages.append(m)
            continue
        for address in m.to:
            def fill(text, values=m.merge_data[address]):
                for name, value in values.items():
                    text = text.replace(settings.DIGEST_MERGE_FIELD.format(name), value)
                return text

            one = build_message(m.subject, fill(m.body), fill(m.alternatives[0][0]), address,
                                headers={**m.extra_headers, **m.merge_headers[address]},
                                tags=m.tags, metadata=m.merge_metadata[address])
            messages.append(one)
    return messages


def to(address):
    return [m for m in sent_mail() if m.to == [address]]


def parsed(message):
    return email.message_from_bytes(message.message().as_bytes(), policy=policy.default)


def test_every_active_subscriber_gets_exactly_one_digest(papers, readers):
    send()
    assert sorted(m.to[0] for m in sent_mail()) == ["alice@example.org", "bob@example.org"]
    assert Delivery.objects.filter(state="sent").count() == 2
    send()
    assert len(sent_mail()) == 2  # running again sends nothing more


def test_the_digest_is_ranked_for_the_subscriber_with_reasons(papers, readers):
    send()
    alice, bob = parsed(to("alice@example.org")[0]), parsed(to("bob@example.org")[0])
    alice_text = alice.get_body(("plain",)).get_content()
    assert alice_text.index("Robot arms that learn") < alice_text.index("Quantization for tiny chips")
    assert "1 in Robotics, 2 trending" in alice_text  # the summary under the masthead
    assert "\nROBOTICS\n\n1. Robot arms that learn" in alice_text and "\nTRENDING\n\n2. " in alice_text
    assert "An old robot paper" not in alice_text  # outside the edition's window
    bob_html = bob.get_body(("html",)).get_content()
    assert "Security &amp; privacy</a></h2>" in bob_html
    # A section's heading says why its papers were picked, and leads to what to do about it.
    assert re.search(r'<h2[^>]*><a href="https://paperboy\.test/f/[^/]+/\d+/why/#why"', bob_html)
    assert "Mentioning “tiny chips”</a></h2>" in bob_html
    assert alice["Subject"] == "Robot arms that learn + 2 trending · 14 Mar"
    assert Delivery.objects.get(subscriber=readers["alice"]).picks[0] == [papers["robot"].pk, "topic", "Robotics", 1.0]


def test_headers_links_and_both_parts(papers, readers):
    send()
    message = parsed(to("alice@example.org")[0])
    unsubscribe = message["List-Unsubscribe"]
    assert re.fullmatch(r"<https://paperboy\.test/u/[^>\s]+/>", unsubscribe)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Paperboy digest <digest.paperboy.test>"
    assert message["Message-ID"] == f"<digest.20240314.{readers['alice'].pk}@paperboy.test>"
    raw = to("alice@example.org")[0].message().as_bytes()
    assert b"List-Unsubscribe: <https://paperboy.test/u/" in raw  # one unfolded line
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in (text, html):
        assert unsubscribe[1:-1] in part
        assert "https://paperboy.test/preferences/" in part
        assert "https://paperboy.test/editions/2024-03-14/" in part
        assert "xxunsubscribetokenxx" not in part and "xxpreferencestokenxx" not in part
    assert 'style="' in html  # inlined CSS
    assert "@media (prefers-color-scheme: dark)" in html


def test_the_links_in_the_digest_work_when_followed(papers, readers):
    send()
    message = parsed(to("alice@example.org")[0])
    text = message.get_body(("plain",)).get_content()
    browser = Client()
    prefs = re.search(r"https://paperboy\.test(/preferences/\S+/)", text).group(1)
    assert "alice@example.org" in browser.get(prefs).content.decode()
    archive = browser.get("/editions/2024-03-14/").content.decode()
    assert "Robot arms that learn" in archive
    unsubscribe = message["List-Unsubscribe"][1:-1].replace("https://paperboy.test", "")
    response = Client(enforce_csrf_checks=True).post(unsubscribe, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Subscriber.objects.get(email="alice@example.org").status == "unsubscribed"


def test_each_message_carries_anymail_metadata(papers, readers):
    send()
    message = to("alice@example.org")[0]
    alice = readers["alice"]
    assert message.metadata == {"subscriber": str(alice.pk), "edition": "2024-03-14", "delivery": str(alice.deliveries.get().pk)}
    assert message.tags == ["digest"]


def test_featured_papers_are_on_top_with_the_note(papers, readers):
    Feature.objects.create(paper=papers["old"], day=DAY, note="A <b>classic</b>, back in fashion")
    send()
    for address in ["alice@example.org", "bob@example.org"]:
        message = parsed(to(address)[0])
        text = message.get_body(("plain",)).get_content()
        assert text.index("An old robot paper") < text.index("Robot arms that learn")
        assert "\nEDITOR'S PICK\n\n1. An old robot paper" in text and "The editors: A classic, back in fashion" in text
        assert "<b>classic</b>" in message.get_body(("html",)).get_content()


def test_never_a_repeat_and_no_mail_when_nothing_is_new(papers, readers):
    send()
    first = {m.to[0]: parsed(m).get_body(("plain",)).get_content() for m in sent_mail()}
    mail.outbox.clear()
    send(DAY + dt.timedelta(days=1))  # same window, nothing new
    assert sent_mail() == []
    assert set(Delivery.objects.filter(edition__date=DAY + dt.timedelta(days=1)).values_list("state", "note")) == {("skipped", "nothing new")}
    make_paper("Fresh robot hands", upvotes=1, listed_on=DAY + dt.timedelta(days=2))
    send(DAY + dt.timedelta(days=2))
    text = parsed(to("alice@example.org")[0]).get_body(("plain",)).get_content()
    assert "Fresh robot hands" in text and "Robot arms that learn" not in text
    assert "Robot arms that learn" in first["alice@example.org"]


def test_a_paper_featured_weeks_after_it_was_mailed_is_not_mailed_again(papers, readers):
    earlier = DAY - dt.timedelta(days=10)  # "An old robot paper" was listed, and mailed, then
    send(earlier)
    assert "An old robot paper" in parsed(to("alice@example.org")[0]).get_body(("plain",)).get_content()
    mail.outbox.clear()
    Feature.objects.create(paper=papers["old"], day=DAY, note="Back in fashion")
    send()
    for message in sent_mail():
        assert "An old robot paper" not in parsed(message).get_body(("plain",)).get_content()
    assert {m.to[0] for m in sent_mail()} == {"alice@example.org", "bob@example.org"}


def test_history_older_than_every_paper_on_offer_is_not_read(papers, readers):
    """A month of deliveries per recipient would cost more than the rest of the send."""
    from newsletter.fanout import edition_get
    from newsletter.offers import edition_offer

    for days in (20, 10, 1):
        edition_get(DAY - dt.timedelta(days=days))
    offer = edition_offer(edition_get(DAY), "daily")  # papers listed on DAY - 1 and DAY
    assert [Edition.objects.get(pk=pk).date for pk in offer.recent_editions] == [DAY - dt.timedelta(days=1)]
    Feature.objects.create(paper=papers["old"], day=DAY)  # listed 10 days ago: mailed since, maybe
    offer = edition_offer(edition_get(DAY), "daily")
    assert sorted(Edition.objects.get(pk=pk).date for pk in offer.recent_editions) == [
        DAY - dt.timedelta(days=10), DAY - dt.timedelta(days=1)
    ]


def test_weekly_subscribers_get_theirs_on_their_weekday(papers):
    make_subscriber("weekly@example.org", frequency="weekly", weekday=DAY.weekday())
    make_subscriber("other@example.org", frequency="weekly", weekday=(DAY.weekday() + 1) % 7)
    send()
    assert [m.to[0] for m in sent_mail()] == ["weekly@example.org"]
    text = parsed(sent_mail()[0]).get_body(("plain",)).get_content()
    assert "An old robot paper" not in text and "Quantization for tiny chips" in text


def test_the_beat_sends_at_each_subscribers_local_hour(time_machine):
    make_paper("Robot news", listed_on=dt.date(2026, 3, 2), upvotes=3)
    make_paper("More robot news", listed_on=dt.date(2026, 3, 3), upvotes=2)
    time_machine.move_to("2026-03-02T12:00Z")
    tokyo = make_subscriber("tokyo@example.org", timezone="Asia/Tokyo")
    london = make_subscriber("london@example.org", timezone="Europe/London")
    from newsletter.tasks import dispatch_digests_task

    time_machine.move_to("2026-03-02T21:59Z")
    dispatch_digests_task.delay()
    assert sent_mail() == []
    time_machine.move_to("2026-03-02T22:01Z")  # 07:01 in Tokyo on the 3rd
    dispatch_digests_task.delay()
    assert [m.to[0] for m in sent_mail()] == ["tokyo@example.org"]
    assert Delivery.objects.get(subscriber=tokyo).edition.date == dt.date(2026, 3, 3)
    dispatch_digests_task.delay()
    assert len(sent_mail()) == 1
    time_machine.move_to("2026-03-03T07:00Z")
    dispatch_digests_task.delay()
    assert [m.to[0] for m in sent_mail()] == ["tokyo@example.org", "london@example.org"]
    assert Delivery.objects.get(subscriber=london).edition.date == dt.date(2026, 3, 3)
    tokyo.refresh_from_db()
    assert tokyo.next_digest_at.isoformat() == "2026-03-03T22:00:00+00:00"


def test_an_unsubscribe_after_fan_out_is_honoured_at_send_time(papers, readers):
    edition = Edition.objects.create(date=DAY)
    for reader in (readers["alice"], readers["bob"]):
        Delivery.objects.create(subscriber=reader, edition=edition)
    Client().post(unsubscribe_path(readers["alice"]))
    from newsletter.tasks import send_deliveries_task

    send_deliveries_task.delay(list(edition.deliveries.values_list("pk", flat=True)))
    assert [m.to[0] for m in sent_mail()] == ["bob@example.org"]
    assert Delivery.objects.get(subscriber=readers["alice"]).state == "skipped"


def test_a_crash_between_sending_and_recording_loses_nothing_and_mails_nobody_twice(papers, settings, monkeypatch):
    settings.DIGEST_CLAIM_SIZE = 2
    for n in range(5):
        make_subscriber(f"reader{n}@example.org")
    monkeypatch.setattr(delivery, "CHECKPOINT_SECONDS", float("inf"))  # the progress file alone
    real_finish = delivery.Record.finish
    calls = []

    def crash_once(record, deliveries):
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit("worker killed")  # after the first two were handed to the backend
        real_finish(record, deliveries)

    monkeypatch.setattr(delivery.Record, "finish", crash_once)
    with pytest.raises(SystemExit):
        send()
    assert len(sent_mail()) == 2
    assert Delivery.objects.filter(state="sending").count() == 2
    send()  # the run restarted: the other three
    assert reconcile.deliveries_recover(enqueue=enqueue_deliveries) == (2, 0)  # the two, from the progress file
    assert sorted(m.to[0] for m in sent_mail()) == [f"reader{n}@example.org" for n in range(5)]
    assert Delivery.objects.filter(state="sent").count() == 5
    settled = Delivery.objects.filter(note__startswith="sent; recorded after the worker stopped")
    assert settled.count() == 2 and all(d.picks and d.sent_at for d in settled)


def test_a_transient_esp_error_is_retried_with_backoff(papers, readers, settings):
    settings.EMAIL_BACKEND = "tests.backends.FlakyBackend"
    FlakyBackend.failures = 1
    send()
    assert sorted(m.to[0] for m in sent_mail()) == ["alice@example.org", "bob@example.org"]
    assert Delivery.objects.get(subscriber=readers["alice"]).attempts == 2
    assert Delivery.objects.filter(state="sent").count() == 2


def test_an_esp_that_keeps_failing_ends_in_failed_not_forever(papers, readers, settings):
    settings.EMAIL_BACKEND = "tests.backends.FlakyBackend"
    settings.DIGEST_MAX_ATTEMPTS = 3
    FlakyBackend.failures = 100
    send()
    FlakyBackend.failures = 0
    assert sent_mail() == []
    alice = Delivery.objects.get(subscriber=readers["alice"])
    assert alice.state == "failed" and alice.attempts == 3 and "Service Unavailable" in alice.note


def test_a_permanent_error_is_recorded_and_others_still_get_theirs(papers, readers, settings):
    settings.EMAIL_BACKEND = "tests.backends.RefusingBackend"
    send()
    assert [m.to[0] for m in sent_mail()] == ["alice@example.org"]
    bob = Delivery.objects.get(subscriber=readers["bob"])
    assert bob.state == "failed" and bob.attempts == 1 and "suppression list" in bob.note


def test_identical_digests_share_one_render(papers):
    for n in range(6):
        make_subscriber(f"robot{n}@example.org", topics=["robotics"])
    edition = Edition.objects.create(date=DAY)
    ids = list(Subscriber.objects.values_list("pk", flat=True))
    created = Delivery.objects.bulk_create([Delivery(edition=edition, subscriber_id=pk) for pk in ids])
    stats = delivery.deliveries_send(delivery_ids=[d.pk for d in created])
    assert stats.sent == 6 and stats.renders == 1
    bodies = {m.body for m in sent_mail()}
    assert len(bodies) == 6  # but every copy has its own links


def test_dry_run_shows_the_digest_and_changes_nothing(papers, readers):
    out = StringIO()
    call_command("send_digests", date=DAY, dry_run=True, stdout=out)
    assert "scheduled: 2, would send: 2, not mailable: 0, nothing new: 0, distinct digests: 2" in out.getvalue()
    assert "Subject: Robot arms that learn + 2 trending · 14 Mar" in out.getvalue()
    assert sent_mail() == [] and not Delivery.objects.exists() and not Edition.objects.exists()


def test_the_archive_lists_editions_with_a_feed(client, papers, readers):
    send()
    archive = client.get("/editions/").content.decode()
    assert "/editions/2024-03-14/" in archive and "3 papers" in archive  # its size and lead papers
    assert archive.index("Quantization for tiny chips") < archive.index("Robot arms that learn")
    feed = client.get("/editions/feed/").content.decode()
    assert "<feed" in feed and "Robot arms that learn" in feed
    page = client.get("/editions/2024-03-14/").content.decode()
    assert "Quantization for tiny chips" in page and "alice@example.org" not in page
    assert 'href="https://arxiv.org/abs/2403.00003"' in page and 'href="https://arxiv.org/pdf/2403.00003"' in page
    assert client.get("/editions/2024-03-15/").status_code == 404


def copy_url(name):
    text = parsed(to(f"{name}@example.org")[0]).get_body(("plain",)).get_content()
    return re.search(r"Your copy on the web: https://paperboy\.test(/editions/\S+/)", text).group(1)


def test_view_in_browser_opens_the_readers_own_copy(client, papers, readers):
    send()
    copies = {name: copy_url(name) for name in ("alice", "bob")}
    alice_page = client.get(copies["alice"]).content.decode()
    assert "Your digest of Thursday 14 March 2024" in alice_page
    assert "Robotics</h2>" in alice_page and "Trending</h2>" in alice_page and "Mentioning" not in alice_page
    assert "/f/" in alice_page  # with her More/Less links
    bob_page = client.get(copies["bob"]).content.decode()
    assert "Mentioning “tiny chips”</h2>" in bob_page and "Robotics</h2>" not in bob_page
    assert client.get(copies["alice"][:-3] + "xx/").status_code == 400
    no_copy = client.get(f"/editions/2024-03-14/{tokens.make(tokens.VIEW, readers['carol'].pk)}/")
    assert no_copy.status_code == 404 and "We have no copy of your digest" in no_copy.content.decode()
    preferences = re.search(r"/editions/2024-03-14/([^/]+)/", copies["alice"]).group(1)
    assert client.get(f"/preferences/{preferences}/").status_code == 400  # a token for one link opens no other


def test_a_readers_web_copy_stays_as_mailed_when_editors_unfeature_and_edit_notes(editor, papers, readers):
    from papers.services import paper_feature

    paper_feature(paper=papers["jam"], day=DAY, note="Read the <b>threat model</b>")
    paper_feature(paper=papers["robot"], day=DAY - dt.timedelta(days=5), note="A week-old pick")  # weekly readers' only
    weekly = make_subscriber("wes@example.org", frequency="weekly", weekday=DAY.weekday())
    send()
    urls = {name: copy_url(name) for name in ("alice", "wes")}

    def page(url):  # the links signed anew on each view (their time differs) aside
        return re.sub(r"/(preferences|f)/[^/]+/", r"/\1/…/", editor.get(url).content.decode())

    before = {name: page(url) for name, url in urls.items()}
    assert "Read the <b>threat model</b>" in before["alice"] and "A week-old pick" not in before["alice"]
    assert "A week-old pick" in before["wes"] and "Read the <b>threat model</b>" in before["wes"]
    assert "A week-old pick" in to("wes@example.org")[0].body  # as the mail said
    editor.post("/admin/newsletter/edition/today/", {"op": "note", "paper": papers["jam"].pk, "note": "Rewritten", "day": DAY})
    editor.post("/admin/papers/paper/", {"action": "unfeature", "_selected_action": [papers["robot"].pk], "day": ""})
    assert list(Feature.objects.values_list("note", flat=True)) == ["Rewritten"]
    assert {name: page(url) for name, url in urls.items()} == before
    assert weekly.deliveries.get().state == "sent"


def test_the_admin_shows_progress_per_edition(client, papers, readers):
    from django.contrib.auth.models import User

    send()
    client.force_login(User.objects.create_superuser("ed", "ed@example.org", "pw"))
    page = client.get("/admin/newsletter/edition/").content.decode()
    assert "2024" in page and '<td class="field-sent">2</td>' in page and '<td class="field-due">2</td>' in page


def test_rows_whose_task_was_lost_are_sent_by_the_reconciler(papers, readers, time_machine):
    time_machine.move_to("2024-03-14T07:00Z")
    edition = Edition.objects.create(date=DAY)
    from newsletter.fanout import deliveries_create

    deliveries_create(edition, [readers["alice"].pk, readers["bob"].pk])  # the tasks never reached a worker
    assert reconcile.deliveries_reconcile(enqueue=enqueue_deliveries) == (0, 0)  # not before the timeout: the task may still be queued
    time_machine.move_to("2024-03-14T08:00Z")
    assert reconcile.deliveries_reconcile(enqueue=enqueue_deliveries) == (0, 2)
    assert sorted(m.to[0] for m in sent_mail()) == ["alice@example.org", "bob@example.org"]
    assert reconcile.deliveries_reconcile(enqueue=enqueue_deliveries) == (0, 0)


def test_a_requeued_old_row_whose_task_was_lost_is_found_by_the_reconciler(papers, readers, time_machine):
    time_machine.move_to("2024-03-14T07:00Z")
    edition = Edition.objects.create(date=DAY)
    row = Delivery.objects.create(subscriber=readers["alice"], edition=edition, state="failed", attempts=1)
    time_machine.move_to("2024-03-20T07:00Z")  # days later, an operator requeues it; the task is lost
    assert reconcile.deliveries_requeue(enqueue=lambda ids: None, deliveries=Delivery.objects.all()) == 1
    time_machine.move_to("2024-03-20T08:00Z")
    assert reconcile.deliveries_reconcile(enqueue=enqueue_deliveries) == (0, 1)
    row.refresh_from_db()
    assert row.state == "sent" and [m.to[0] for m in sent_mail()] == ["alice@example.org"]


def test_a_delivery_whose_subscriber_was_deleted_behind_its_back_is_dropped(papers, readers, caplog):
    """The database does not check deliveries' subscribers (see Delivery): a claim must cope."""
    from django.db import connection

    from newsletter.fanout import deliveries_create

    ids = deliveries_create(Edition.objects.create(date=DAY), [readers["alice"].pk, readers["bob"].pk])
    with connection.cursor() as cursor:  # not through Django, which would cascade
        cursor.execute("DELETE FROM newsletter_subscriber_topics WHERE subscriber_id = %s", [readers["bob"].pk])
        cursor.execute("DELETE FROM newsletter_subscriber WHERE id = %s", [readers["bob"].pk])
    stats = delivery.deliveries_send(delivery_ids=ids)
    assert stats.sent == 1 and [m.to[0] for m in sent_mail()] == ["alice@example.org"]
    assert list(Delivery.objects.values_list("subscriber_id", "state")) == [(readers["alice"].pk, "sent")]
    assert "1 deliveries whose subscriber no longer exists" in caplog.text


@pytest.mark.parametrize("shared", [True, False], ids=["readers-share-digests", "each-their-own"])
def test_each_row_records_the_digest_its_reader_got(papers, readers, shared):
    # Recorded in one statement, listing shared outcomes once or each row's own.
    if shared:
        extra = [make_subscriber(f"twin{n}@example.org", topics=["robotics"]) for n in range(4)]
    else:
        extra = [make_subscriber("vic@example.org", topics=["computer-vision"], keywords="jamming")]
    send()
    rows = Delivery.objects.filter(state="sent").select_related("subscriber")
    assert len(rows) == 2 + len(extra)
    assert len({tuple(map(tuple, d.picks)) for d in rows}) == (2 if shared else 3)
    for d in rows:
        text = parsed(to(d.subscriber.email)[0]).get_body(("plain",)).get_content()
        titles = [p.title for p in papers.values() if p.pk in {pick[0] for pick in d.picks}]
        assert titles and all(title in text for title in titles)
        assert d.attempts == 1 and d.sent_at is not None and d.message_id
    assert len({d.message_id for d in rows}) == len(rows)


@pytest.mark.postgres
def test_claims_and_outcomes_update_rows_in_place_on_postgresql(papers, readers):
    """HOT updates: no index holds a column they change (an index on state would undo this)."""
    from django.db import connection

    def updates():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
                [Delivery._meta.db_table],
            )
            return cursor.fetchone()

    before = updates()
    send()
    updated, in_place = (after - was for after, was in zip(updates(), before))
    assert updated >= 4 and in_place == updated  # two readers, a claim and an outcome each


def test_fan_out_puts_subscribers_who_follow_the_same_topics_next_to_each_other(papers):
    """So that they share a batch, and in batch mode an ESP call."""
    from newsletter.fanout import keyset_pages, scheduled_on

    others = ["security", "computer-vision", "games-agents", "knowledge-graphs", "applications", "llms-reasoning"]
    for n, slug in enumerate(others):
        make_subscriber(f"other{n}@example.org", topics=[slug, "robotics"] if n % 2 else [slug])
    robots = [make_subscriber(f"robots{n}@example.org", topics=["robotics"], keywords=words).pk
              for n, words in enumerate(["", "tiny chips", "arms", "walking, LLM"])]
    order = [pk for page in keyset_pages(scheduled_on(DAY), "interest_key", "pk") for pk in page]
    positions = sorted(order.index(pk) for pk in robots)
    assert positions == list(range(positions[0], positions[0] + len(robots)))


def test_digests_go_out_when_the_archive_cannot_be_recorded(time_machine, monkeypatch, settings):
    from celery import current_app

    from newsletter import archive

    make_paper("Robot news", listed_on=dt.date(2026, 3, 3), upvotes=3)
    time_machine.move_to("2026-03-02T12:00Z")
    make_subscriber("london@example.org", timezone="Europe/London")

    def broken(**kwargs):
        raise RuntimeError("the archive cannot be recorded")

    monkeypatch.setattr(archive, "editions_record_offered", broken)
    time_machine.move_to("2026-03-03T07:01Z")
    failed = []
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():  # each task the beat runs, apart
        if name == "fetch-papers":
            continue  # over the network
        try:
            current_app.tasks[entry["task"]].delay()
        except RuntimeError as error:  # a failed task, logged by its worker
            failed.append(str(error))
    assert failed == ["the archive cannot be recorded"]
    assert [m.to[0] for m in sent_mail()] == ["london@example.org"]


def test_a_reader_mailed_after_a_note_is_edited_gets_the_note_the_edition_went_out_with(editor, papers, readers, time_machine):
    from papers.services import paper_feature

    time_machine.move_to(dt.datetime(2024, 3, 14, 9, tzinfo=dt.timezone.utc))  # the edition's day

    paper_feature(paper=papers["jam"], day=DAY, note="Read the threat model")
    send()  # the first readers' copies: the edition has gone out
    editor.post("/admin/newsletter/edition/today/", {"op": "note", "paper": papers["jam"].pk, "note": "Rewritten", "day": DAY})
    make_subscriber("late@example.org", topics=["security"])  # due later the same day
    offers.worker_cache.clear()  # as a worker that has not made this edition's offer yet
    send()
    (mail,) = to("late@example.org")
    assert "Read the threat model" in mail.body and "Rewritten" not in mail.body
    page = editor.get(copy_url("late")).content.decode()
    assert "Read the threat model" in page and "Rewritten" not in page  # the web copy says the same


def test_old_deliveries_stored_with_english_reasons_section_as_before_once_migrated(client, papers, readers):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("newsletter.migrations.0017_reasons_typed_picks")
    alice, robot, jam, quant = readers["alice"], papers["robot"], papers["jam"], papers["quant"]
    edition = Edition.objects.create(date=DAY, offered=[{"paper": quant.pk, "reason": "trending: 90 upvotes", "note": ""}],
                                     offered_notes={})
    old = [[robot.pk, "matches your topic Robotics"], [quant.pk, "by Ada Lovelace, whom you follow"],
           [jam.pk, "similar to 'Robot arms that learn', which you liked"], [papers["old"].pk, "trending: 1 upvote"]]
    row = Delivery.objects.create(subscriber=alice, edition=edition, state="sent", picks=old)
    migration.to_typed(apps, None)
    row.refresh_from_db()
    assert row.picks == [[robot.pk, "topic", "Robotics", 0.0], [quant.pk, "author", "Ada Lovelace", 0.0],
                         [jam.pk, "similar-to", str(robot.pk), 0.0, "Robot arms that learn"],
                         [papers["old"].pk, "trending", "", 1.0]]
    page = client.get(f"/editions/{DAY}/{tokens.make(tokens.VIEW, alice.pk)}/").content.decode()
    # The sections, their order and the lines the old sentences gave.
    headings = re.findall(r"<h2[^>]*>(?:<a [^>]*>)?([^<]+)<", page)
    assert headings == ["Robotics", "Authors you follow", "Because you liked “Robot arms that learn”", "Trending"]
    assert "By Ada Lovelace, whom you follow" in page
    assert "1 in Robotics, 1 by an author you follow, 1 like a paper you liked, 1 trending" in page
    assert "Trending</h2>" in client.get(f"/editions/{DAY}/").content.decode()
    assert "trending: 90 upvotes" in client.get("/editions/feed/").content.decode()
    # And back, for a rollback.
    migration.to_english(apps, None)
    row.refresh_from_db()
    assert row.picks == old
    assert Edition.objects.get(pk=edition.pk).offered[0]["reason"] == "trending: 90 upvotes"
