"""Every status change is a guarded transition: a Hypothesis state machine interleaves what
readers, editors, the ESP and the nightly purge do to one address, on fresh and on stale copies
of its row, and checks after each step that nobody who left, bounced, was erased or never
confirmed becomes mailable without a new confirmation."""

import datetime as dt
import uuid

import pytest
import time_machine
from anymail.signals import AnymailTrackingEvent
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from newsletter import services
from newsletter.models import Subscriber, SubscriberEvent, Suppression, email_hash
from newsletter.tracking import tracking_events_record

pytestmark = pytest.mark.django_db

EMAIL = "reader@example.org"
S = Subscriber.Status
# The model's own table (not the one under test): what each step may start from, what it leads to.
STEPS = {
    "signup": ((S.PENDING, S.UNSUBSCRIBED), S.PENDING),
    "confirmed": ((S.PENDING,), S.ACTIVE),
    "paused": ((S.ACTIVE,), S.PAUSED),
    "resumed": ((S.PAUSED,), S.ACTIVE),
    "unsubscribed": ((S.PENDING, S.ACTIVE, S.PAUSED), S.UNSUBSCRIBED),
    "suppressed": ((S.PENDING, S.ACTIVE, S.PAUSED, S.UNSUBSCRIBED), S.SUPPRESSED),
}
# A copy to act on: -1 loads a fresh one, others pick one loaded earlier (perhaps of an erased row).
COPY = st.integers(min_value=-1, max_value=6)


class Lifecycle(RuleBasedStateMachine):
    """The model: the address's row (pk and status; None: no row), the events it should carry,
    and whether the address is suppressed for good."""

    @initialize()
    def start(self):
        self.clock = time_machine.travel(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC), tick=False)
        self.traveller = self.clock.start()
        self.atomic = transaction.atomic()  # each example is rolled back
        self.atomic.__enter__()
        self.pk, self.status, self.signed_up_at, self.events = None, None, None, []
        self.suppressed_for_good = False
        self.copies = []

    def teardown(self):
        if hasattr(self, "atomic"):
            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)
            self.clock.stop()

    def copy(self, which):
        if which == -1 or not self.copies:
            fresh = Subscriber.objects.filter(email=EMAIL).first()
            if fresh:
                self.copies.append(fresh)
            return fresh
        return self.copies[which % len(self.copies)]

    def step(self, kind, copy, changed, *, recorded=True):
        """The model's step on the row `copy` is of; the service must agree on whether it applied."""
        sources, target = STEPS[kind]
        applies = copy is not None and copy.pk == self.pk and self.status in sources
        assert changed == applies, f"{kind} on a copy loaded as {copy.status}, the row {self.status}"
        if applies:
            self.status = target
            self.events += [kind] if recorded else []

    def gone(self):
        self.pk, self.status, self.events = None, None, []

    @rule()
    def signup(self):
        services.subscriber_signup(email=EMAIL, keywords="robots")
        now = timezone.now()
        if self.suppressed_for_good:
            return
        if self.pk is None:
            self.pk = Subscriber.objects.get(email=EMAIL).pk
            self.status, self.signed_up_at, self.events = S.PENDING, now, ["signup"]
        elif self.status == S.UNSUBSCRIBED or (self.status == S.PENDING and self.signed_up_at <= now - dt.timedelta(hours=72)):
            self.status, self.signed_up_at = S.PENDING, now
            self.events.append("signup")

    @rule(which=COPY)
    def confirm(self, which):
        if (copy := self.copy(which)) is not None:
            self.step("confirmed", copy, services.subscriber_confirm(subscriber=copy))

    @rule(which=COPY)
    def pause(self, which):
        if (copy := self.copy(which)) is not None:
            self.step("paused", copy, services.subscriber_pause(subscriber=copy))

    @rule(which=COPY)
    def resume(self, which):
        if (copy := self.copy(which)) is not None:
            self.step("resumed", copy, services.subscriber_resume(subscriber=copy))

    @rule(which=COPY, hour=st.integers(0, 23), weekly=st.booleans())
    def update(self, which, hour, weekly):
        copy = self.copy(which)
        if copy is not None:
            services.subscriber_update(
                subscriber=copy, topics=[], keywords="arms", frequency="weekly" if weekly else "daily",
                weekday=2, hour=hour, timezone_name="Europe/Paris",
            )

    @rule(which=COPY)
    def unsubscribe(self, which):
        if (copy := self.copy(which)) is not None:
            self.step("unsubscribed", copy, services.subscriber_unsubscribe(subscriber=copy, how="one-click"))

    @rule(which=COPY)
    def suppress(self, which):
        if (copy := self.copy(which)) is not None:
            self.step("suppressed", copy, services.subscriber_suppress(subscriber=copy, reason="spam complaint"))
            self.suppressed_for_good |= self.status == S.SUPPRESSED

    @rule()
    def bounce(self):
        """A hard bounce the ESP reports for the address (so for its row as it is now)."""
        event = AnymailTrackingEvent(event_type="bounced", recipient=EMAIL, event_id=uuid.uuid4().hex, timestamp=timezone.now())
        tracking_events_record(events=[event], esp_name="test")
        if self.status not in (None, S.SUPPRESSED):  # the ESP's "bounced" event says why
            self.status, self.suppressed_for_good = S.SUPPRESSED, True

    @rule(which=COPY)
    def erase(self, which):
        copy = self.copy(which)
        if copy is not None:
            services.subscriber_erase(subscriber=copy)
            if copy.pk == self.pk:
                self.gone()

    @rule(days=st.sampled_from([1, 4, 8]))
    def purge(self, days):
        self.traveller.shift(dt.timedelta(days=days))
        services.subscribers_purge_unconfirmed()
        if self.status == S.PENDING and self.signed_up_at < timezone.now() - dt.timedelta(days=7):
            self.gone()

    # Invariants

    @invariant()
    def the_row_is_as_the_model_says(self):
        rows = list(Subscriber.objects.filter(email=EMAIL))
        assert [(r.pk, r.status) for r in rows] == ([(self.pk, self.status)] if self.pk else [])

    @invariant()
    def only_a_confirmation_makes_anyone_mailable(self):
        row = Subscriber.objects.filter(email=EMAIL).first()
        mailable = Subscriber.objects.due(timezone.now() + dt.timedelta(days=8)).filter(email=EMAIL).exists()
        reasons = services.unmailable([(row.pk, row.email, row.status, row.confirmed_at)]) if row else {}
        expected = self.status == S.ACTIVE
        assert mailable == expected and (row is not None and not reasons) == expected
        if expected:  # only through a confirmation since the row's last sign-up
            assert "confirmed" in self.events[len(self.events) - self.events[::-1].index("signup") :]
        if row and row.status in (S.PENDING, S.UNSUBSCRIBED, S.SUPPRESSED):
            assert row.next_digest_at is None

    @invariant()
    def a_suppressed_address_stays_suppressed(self):
        suppression = Suppression.objects.filter(email_hash=email_hash(EMAIL)).first()
        if self.suppressed_for_good:
            assert suppression is not None and suppression.reason != services.ERASED
            assert self.status in (None, S.SUPPRESSED)

    @invariant()
    def each_status_change_recorded_once(self):
        recorded = SubscriberEvent.objects.filter(subscriber_id=self.pk, kind__in=STEPS).order_by("pk")
        assert list(recorded.values_list("kind", flat=True)) == (self.events if self.pk else [])


def test_no_interleaving_of_stale_copies_makes_anyone_mailable_without_confirming():
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=50, stateful_step_count=15, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
