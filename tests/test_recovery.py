"""A worker that dies mid-send loses no digest: recovery reads what it had sent."""

import datetime as dt
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.core.management import call_command
from django.utils import timezone

from newsletter import delivery, reconcile, sql
from newsletter.fanout import deliveries_create, edition_get
from newsletter.models import Delivery, Subscriber
from newsletter.progress import Progress, abandoned
from newsletter.reasons import Kind, Reason
from newsletter.tasks import enqueue_deliveries
from tests.conftest import DAY, make_paper, make_subscriber

pytestmark = pytest.mark.django_db


class DyingBackend(EmailBackend):
    """Delivers, and the worker is killed at the n-th message: before handing it over, or
    after the server accepted it (the one message in flight)."""

    at, after_accepting, count = 3, False, 0

    def send_messages(self, messages):
        DyingBackend.count += 1
        if DyingBackend.count == DyingBackend.at and not DyingBackend.after_accepting:
            raise SystemExit("killed")
        sent = super().send_messages(messages)
        if DyingBackend.count == DyingBackend.at:
            raise SystemExit("killed")
        return sent


@pytest.fixture
def readers(settings, monkeypatch):
    # No checkpoint to the database here: these tests read the local file alone.
    settings.DIGEST_CHECKPOINT_SIZE = 1000
    monkeypatch.setattr(delivery, "CHECKPOINT_SECONDS", float("inf"))
    make_paper("Robot arms that learn", upvotes=3, listed_on=DAY)
    for n in range(5):
        make_subscriber(f"reader{n}@example.org", topics=["robotics"] if n % 2 else [])
    settings.EMAIL_BACKEND = "tests.test_recovery.DyingBackend"
    DyingBackend.count = 0


def copies():
    counts = {}
    for message in mail.outbox:
        counts[message.to[0]] = counts.get(message.to[0], 0) + 1
    return counts


@pytest.mark.parametrize("after_accepting", [False, True])
def test_the_rows_a_killed_worker_had_not_sent_are_sent_by_recovery(readers, after_accepting):
    DyingBackend.after_accepting = after_accepting
    with pytest.raises(SystemExit):
        call_command("send_digests", date=DAY, stdout=StringIO())
    assert len(mail.outbox) == 2 + after_accepting
    sent, requeued = reconcile.deliveries_recover(enqueue=enqueue_deliveries)
    assert (sent, requeued) == (2, 3)
    assert Delivery.objects.filter(state="sent").count() == 5
    counts = copies()
    assert sorted(counts) == [f"reader{n}@example.org" for n in range(5)]  # nobody lost
    # Only the message in flight at the instant of the kill can arrive twice.
    assert sorted(counts.values()) == [1, 1, 1, 1, 1 + after_accepting]


def test_a_live_workers_group_is_left_alone_and_a_finished_one_leaves_no_file():
    with Progress("live-claim") as progress:
        progress.claimed([1, 2])
        assert [claim for claim, _, _ in abandoned()] == []  # its lock is held
    assert not progress.path.exists()


def test_what_a_killed_process_wrote_is_read_back_whole(monkeypatch):
    # SIGKILL: no exit handler runs, and the mapped file keeps its unwritten, zero rest.
    import os
    import signal

    from newsletter import progress as progress_module

    monkeypatch.setattr(progress_module, "MAPPED", 64)  # so that the lines below outgrow it
    picks = [((n, Reason(Kind.SIMILAR, str(n), 2.5, f"Paper {n}")),) for n in range(30)]
    child = os.fork()
    if child == 0:  # the worker
        progress = Progress("killed-claim")
        progress.claimed(range(100, 130))
        for n, pick in enumerate(picks):
            progress.sent([(100 + n, pick, f"<m{n}@x>")])
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(child, 0)
    [(claim, claimed, sent, error)] = list(abandoned())
    assert claim == "killed-claim" and claimed == list(range(100, 130)) and error == ""
    assert sent == {100 + n: ([[n, "similar-to", str(n), 2.5, f"Paper {n}"]], f"<m{n}@x>") for n, pick in enumerate(picks)}


def test_a_full_disk_stops_a_send_before_anything_is_claimed(readers, settings, monkeypatch):
    # The progress file's blocks are allocated before anything is claimed or sent: a full disk
    # is an error there, not a worker killed by SIGBUS halfway through its group.
    import errno
    import os

    from newsletter import progress as progress_module

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    monkeypatch.setattr(progress_module.os, "posix_fallocate", full)
    descriptors, files = len(os.listdir("/proc/self/fd")), set(progress_module._folder().iterdir())
    for _ in range(3):  # a worker retrying on a full disk
        with pytest.raises(OSError, match="No space left"):
            call_command("send_digests", date=DAY, stdout=StringIO())
    assert mail.outbox == []
    assert set(Delivery.objects.values_list("state", flat=True)) == {"pending"}  # for the reconciler
    assert len(os.listdir("/proc/self/fd")) == descriptors  # none kept open, no file left behind
    assert set(progress_module._folder().iterdir()) == files


def test_a_line_cut_short_in_the_mapped_file_is_not_read_as_sent():
    # A copy into memory is not cut at a prefix as write(2) was: a killed copy can leave a
    # line whole but for zeros within it.
    from newsletter.progress import _read

    data = b'C 7,8\nP 0 [[1, "trending", "", 3.0]]\nS 7 0 <m7@x>\nS 8 0 <m8\0\0\0>\n\0\0'
    assert _read(data) == ([7, 8], {7: ([[1, "trending", "", 3.0]], "<m7@x>")}, "")


def test_a_worker_that_starts_again_resumes_what_is_waiting(readers, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Fanned out, but the tasks were lost with the worker that had taken them.
    deliveries_create(edition_get(DAY), list(Subscriber.objects.values_list("pk", flat=True)))
    assert reconcile.deliveries_resume(enqueue=enqueue_deliveries) == 5
    assert len(copies()) == 5


class RefusingBackend(EmailBackend):
    """A mail server that refuses the connection: the group's rows wait for a retry."""

    def open(self):
        raise ConnectionRefusedError(111, "Connection refused")


def test_a_worker_that_starts_leaves_rows_waiting_for_their_retry_to_it(readers, settings, monkeypatch, time_machine):
    from config.celery import app
    from newsletter import delivery
    from newsletter.tasks import send_deliveries_task

    time_machine.move_to("2026-03-02 07:00Z")
    settings.EMAIL_BACKEND = "tests.test_recovery.RefusingBackend"
    deliveries_create(edition_get(DAY), list(Subscriber.objects.values_list("pk", flat=True)))
    ids = list(Delivery.objects.values_list("pk", flat=True))
    # As on a worker (the request a worker gives a task): the retry is scheduled on the broker,
    # here in memory, rather than run at once as in embedded mode.
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setattr(delivery, "retry_countdown", lambda retries: 600)
    send_deliveries_task.push_request(called_directly=False, retries=0, args=[ids], kwargs={})
    try:
        send_deliveries_task.run(ids)
    finally:
        send_deliveries_task.pop_request()
    assert set(Delivery.objects.values_list("state", flat=True)) == {"pending"}
    assert reconcile.deliveries_resume(enqueue=lambda ids: None) == 0  # the retry comes in ten minutes
    time_machine.move_to("2026-03-02 07:11Z")  # the retry is overdue: its task was lost
    assert reconcile.deliveries_resume(enqueue=lambda ids: None) == 5


def test_a_worker_that_dies_right_after_claiming_loses_nothing(readers, settings, monkeypatch):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    def killed(subscriber_ids):
        raise SystemExit("killed")  # the claim is committed, nothing more is known of the group

    with monkeypatch.context() as dying:
        dying.setattr(sql, "recipients", killed)
        with pytest.raises(SystemExit):
            call_command("send_digests", date=DAY, stdout=StringIO())
    assert Delivery.objects.filter(state="sending").count() == 5
    assert reconcile.deliveries_recover(enqueue=enqueue_deliveries) == (0, 5)
    assert len(copies()) == 5 and Delivery.objects.filter(state="sent").count() == 5


def test_recovery_never_resends_a_delivery_that_failed_for_good(readers, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    deliveries_create(edition_get(DAY), list(Subscriber.objects.values_list("pk", flat=True)))
    refused = Delivery.objects.first()
    Delivery.objects.filter(pk=refused.pk).update(claim="dead-claim", state="failed",
                                                  note="SMTPRecipientsRefused: (550, 'no such user')")
    with pytest.raises(SystemExit):
        with Progress("dead-claim") as progress:
            progress.claimed([refused.pk])
            raise SystemExit("killed after recording the failure")
    assert reconcile.deliveries_recover(enqueue=enqueue_deliveries) == (0, 0)
    refused.refresh_from_db()
    assert refused.state == "failed" and refused.note.startswith("SMTPRecipientsRefused")


def test_an_error_that_repeats_fails_the_rows_after_the_limit_instead_of_looping(readers, settings, monkeypatch):
    from newsletter import delivery

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DIGEST_MAX_ATTEMPTS = 3

    def broken(edition, recipients):
        raise ValueError("a digest that cannot be assembled")

    monkeypatch.setattr(delivery, "digests_for", broken)
    queued = [deliveries_create(edition_get(DAY), list(Subscriber.objects.values_list("pk", flat=True)))]
    for _ in range(10):  # a worker takes what recovery hands back, more often than the limit
        if not queued:
            break
        try:
            delivery.deliveries_send(delivery_ids=queued.pop())
        except ValueError:
            pass  # the task fails; its group's progress file stays for recovery
        reconcile.deliveries_recover(enqueue=lambda ids: ids and queued.append(ids))
    assert not queued
    note = "ValueError: a digest that cannot be assembled; failed after 3 attempts"
    assert set(Delivery.objects.values_list("state", "attempts", "note")) == {("failed", 3, note)}
    assert mail.outbox == []
    # The reconciler's passes leave them as they are.
    assert reconcile.deliveries_reconcile(enqueue=queued.append) == (0, 0)
    assert set(Delivery.objects.values_list("state", "attempts", "note")) == {("failed", 3, note)}


def test_a_row_the_esp_reports_sent_while_recovery_settles_its_group_stays_sent(readers, settings, monkeypatch):
    # A stale read: recovery read the group's rows, then the ESP's webhook said the mail went.
    from anymail.signals import AnymailTrackingEvent

    from newsletter.tracking import tracking_events_record

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ids = deliveries_create(edition_get(DAY), list(Subscriber.objects.values_list("pk", flat=True)))
    Delivery.objects.filter(pk__in=ids).update(claim="dead-claim", state="sending")
    recorded, late = Delivery.objects.get(pk=ids[0]), Delivery.objects.select_related("subscriber").get(pk=ids[1])
    with pytest.raises(SystemExit):
        with Progress("dead-claim") as progress:
            progress.claimed(ids)
            progress.sent([(recorded.pk, ((1, Reason(Kind.TRENDING, "", 3.0)),), "<m0@x>")])
            raise SystemExit("killed")
    finish = sql.deliveries_finish

    def webhook_meanwhile(outcomes, **claim):
        finish(outcomes, **claim)
        event = AnymailTrackingEvent(event_type="delivered", recipient=late.subscriber.email, event_id="late-1",
                                     metadata={"delivery": str(late.pk), "subscriber": str(late.subscriber_id)})
        tracking_events_record(events=[event], esp_name="test")

    monkeypatch.setattr(sql, "deliveries_finish", webhook_meanwhile)
    queued = []
    reconcile.deliveries_recover(enqueue=queued.extend)
    late.refresh_from_db()
    assert late.state == "sent" and late.note == "sent: the ESP reported it delivered"
    assert late.pk not in queued
    assert Delivery.objects.get(pk=recorded.pk).state == "sent"
    assert Delivery.objects.filter(state="pending").count() == len(ids) - 2


def test_the_progress_file_reaches_the_disk_at_most_a_second_after_the_last_flush(monkeypatch):
    # Power loss loses what the kernel had not written back: the mapping is flushed (msync)
    # once FLUSH_SECONDS have passed since the last flush, and when a group ends in an error.
    import mmap

    from newsletter import progress as progress_module

    now, flushes = [100.0], []

    class Mapping(mmap.mmap):
        def flush(self, *args):
            flushes.append(now[0])
            return super().flush(*args)

    monkeypatch.setattr(progress_module, "clock", lambda: now[0])
    monkeypatch.setattr(progress_module.mmap, "mmap", Mapping)
    pick = ((1, Reason(Kind.TRENDING, "", 3.0)),)
    with pytest.raises(SystemExit):
        with Progress("flushed-claim") as progress:
            progress.claimed(range(1, 10))
            for pk, at in enumerate([100.2, 100.9, 101.0, 101.5, 101.99, 102.0, 104.5], start=1):
                now[0] = at
                progress.sent([(pk, pick, f"<m{pk}@x>")])
            assert progress.flushes == 3  # what the benchmark reports
            now[0] = 104.7
            raise SystemExit("killed")
    assert flushes == [101.0, 102.0, 104.5, 104.7]
    [(_, _, sent, _)] = list(abandoned())
    assert sorted(sent) == list(range(1, 8))


def test_a_lost_hosts_group_is_taken_over_from_the_database_checkpoint(readers, settings, monkeypatch):
    # Killed at the 4th message; the 1st and 2nd were checkpointed to the database, the 3rd only
    # in the progress file, which is lost with the host.
    settings.DIGEST_CHECKPOINT_SIZE = 2
    monkeypatch.setattr(DyingBackend, "at", 4)
    DyingBackend.after_accepting = False
    with pytest.raises(SystemExit):
        call_command("send_digests", date=DAY, stdout=StringIO())
    for path in Path(settings.DIGEST_PROGRESS_DIR).glob("*.log"):
        path.unlink()
    assert Delivery.objects.filter(state="sent").count() == 2
    later = timezone.now() + dt.timedelta(seconds=settings.DIGEST_HEARTBEAT_TIMEOUT_SECONDS + 1)
    assert reconcile.deliveries_takeover(enqueue=enqueue_deliveries) == (0, 0)  # it may only be slow yet
    assert reconcile.deliveries_takeover(enqueue=enqueue_deliveries, now=later) == (1, 3)
    assert Delivery.objects.filter(state="sent").count() == 5
    counts = copies()
    assert sorted(counts) == [f"reader{n}@example.org" for n in range(5)]  # nobody lost
    # What was sent after the last checkpoint arrives twice.
    assert sorted(counts.values()) == [1, 1, 1, 1, 2]
    assert reconcile.deliveries_takeover(enqueue=enqueue_deliveries, now=later) == (0, 0)


class PausedBackend(EmailBackend):
    """Its worker is paused for longer than the heart-beat timeout before the 3rd message, and
    another worker takes its group over meanwhile."""

    count, queued = 0, []

    def send_messages(self, messages):
        PausedBackend.count += 1
        if PausedBackend.count == 3:
            later = timezone.now() + dt.timedelta(seconds=settings.DIGEST_HEARTBEAT_TIMEOUT_SECONDS + 1)
            assert reconcile.deliveries_takeover(enqueue=PausedBackend.queued.extend, now=later) == (1, 3)
        return super().send_messages(messages)


def test_a_worker_whose_group_was_taken_over_stops_and_its_late_writes_change_nothing(readers, settings):
    settings.DIGEST_CHECKPOINT_SIZE = 2
    settings.EMAIL_BACKEND = "tests.test_recovery.PausedBackend"
    PausedBackend.count, PausedBackend.queued = 0, []
    call_command("send_digests", date=DAY, stdout=StringIO())
    # Its next checkpoint, after the 4th message, found the group taken over: no 5th message,
    # and the rows it sent since its last checkpoint stay with the worker that took them over.
    assert len(mail.outbox) == 4
    assert Delivery.objects.filter(state="sent").count() == 2
    assert Delivery.objects.filter(state="pending", claim="").count() == 3
    enqueue_deliveries(PausedBackend.queued)
    assert sorted(copies()) == [f"reader{n}@example.org" for n in range(5)]
    assert Delivery.objects.filter(state="sent").count() == 5


def test_a_checkpoint_and_a_last_write_that_fail_while_the_database_restarts_are_tried_again(readers, settings, monkeypatch):
    from django.db import OperationalError

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DIGEST_CHECKPOINT_SIZE = 2
    monkeypatch.setattr(delivery, "FINISH_RETRIES", (0,))
    finish, calls = sql.deliveries_finish, []

    def restarting(outcomes, **kwargs):
        calls.append(len(outcomes))
        if len(calls) in (1, 4):  # the first checkpoint, and the first try of the group's last write
            raise OperationalError("the database system is shutting down")
        return finish(outcomes, **kwargs)

    monkeypatch.setattr(sql, "deliveries_finish", restarting)
    call_command("send_digests", date=DAY, stdout=StringIO())
    # The second checkpoint carried the first's rows; the last write, after a failed
    # checkpoint, recorded every outcome again, on its second try.
    assert calls == [2, 3, 2, 5, 5]
    assert Delivery.objects.filter(state="sent").count() == 5 and len(copies()) == 5
    assert not list(Path(settings.DIGEST_PROGRESS_DIR).glob("*.log"))
