import hashlib
import unicodedata
from zoneinfo import ZoneInfo

import idna
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from newsletter import tokens
from papers.models import Topic, search_key


MAX_LOCAL_PART = 64  # octets, RFC 5321 4.5.3.1.1


def email_canonical(address):
    """The one form in which an address is stored and looked up: NFC, lower case, the domain
    in IDNA's ASCII form, so that idn@bücher.de typed composed, decomposed or as
    idn@xn--bcher-kva.de is one mailbox. Raises ValueError, with a message for the form, for
    an address that has no such form."""
    local, at, domain = unicodedata.normalize("NFC", address.strip()).rpartition("@")
    if not at or not local:
        raise ValueError("Enter a valid email address.")
    if len(local.encode()) > MAX_LOCAL_PART:
        raise ValueError(f"The part before the @ may be at most {MAX_LOCAL_PART} characters.")
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise ValueError("Enter a valid email address.") from None
    # The local part is lower-cased too, as it always was here: mailboxes that differ only
    # in case are one person in practice, and stored rows already have this form.
    return f"{local.lower()}@{domain}"


def email_hash(email):
    """Salted hash of an address: what is kept of an erased or suppressed address."""
    pads = tokens.hmac_pads(settings.SUPPRESSION_SALT.encode())
    return tokens.hmac_digest(pads, email.strip().lower().encode()).hex()


def comma_list(value):
    """The items of a comma-separated preference (keywords, followed authors), stripped."""
    return [item.strip() for item in value.split(",") if item.strip()]


VOTE_CHOICES = [(1, "More like this"), (-1, "Less like this")]


def interest_key(frequency, topic_ids, keywords, authors):
    """What a subscriber follows (votes aside) as a key that sorts alike subscribers together:
    frequency, then topics, then a hash of keywords and authors. Digests are fanned out in
    this order, so subscribers likely to get the same digest share a batch (and, with an ESP
    that sends in batches, an API call). Only an order: a stale key costs no correctness."""
    topics = ".".join(f"{t:x}" for t in sorted(topic_ids))[:160]
    words = hashlib.sha1(f"{keywords.casefold()}|{authors.casefold()}".encode()).hexdigest()[:8]
    return f"{frequency}|{topics}|{words}"


class SubscriberQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=Subscriber.Status.ACTIVE)

    def due(self, now):
        return self.active().filter(next_digest_at__lte=now)

    def confirmed(self):
        return self.filter(status__in=[Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED])


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        SUPPRESSED = "suppressed", "Suppressed"

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    class Weekday(models.IntegerChoices):
        MONDAY = 0
        TUESDAY = 1
        WEDNESDAY = 2
        THURSDAY = 3
        FRIDAY = 4
        SATURDAY = 5
        SUNDAY = 6

    email = models.EmailField(unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    topics = models.ManyToManyField(Topic, blank=True, related_name="subscribers")
    keywords = models.CharField(max_length=500, blank=True, help_text="Comma-separated words or phrases.")
    authors = models.CharField(max_length=1000, blank=True, help_text="Followed authors, comma-separated.")
    frequency = models.CharField(max_length=6, choices=Frequency.choices, default=Frequency.DAILY)
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices, default=Weekday.MONDAY)
    hour = models.PositiveSmallIntegerField(default=7, help_text="Local hour the digest is sent (0-23).")
    timezone = models.CharField(max_length=64, default="UTC")
    next_digest_at = models.DateTimeField(null=True, blank=True, editable=False)
    # See interest_key(): the order digests are fanned out in.
    interest_key = models.CharField(max_length=200, blank=True, editable=False)
    search_text = models.TextField(blank=True, editable=False, help_text="Address, keywords and authors, folded (search_key).")

    # Consent (GDPR Art. 7): what was agreed to, when, from where.
    created_at = models.DateTimeField(auto_now_add=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_ip = models.GenericIPAddressField(null=True, blank=True)
    consent_user_agent = models.CharField(max_length=300, blank=True)
    consent_version = models.CharField(max_length=20, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirm_ip = models.GenericIPAddressField(null=True, blank=True)
    confirm_user_agent = models.CharField(max_length=300, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    suppressed_at = models.DateTimeField(null=True, blank=True)
    suppressed_reason = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_digest_at"], name="subscriber_due"),
            models.Index(fields=["interest_key", "id"], name="subscriber_interest_order"),
        ]

    def __str__(self):
        return self.email

    def save(self, *args, update_fields=None, **kwargs):
        # On every path that saves what it is made of (signup, preferences, follows, the admin).
        self.search_text = search_key(self.email, self.keywords, self.authors)
        if update_fields is not None and {"email", "keywords", "authors"} & set(update_fields):
            update_fields = [*update_fields, "search_text"]
        super().save(*args, update_fields=update_fields, **kwargs)

    def clean(self):
        # An address edited in the admin is stored in the form every lookup uses.
        try:
            self.email = email_canonical(self.email)
        except ValueError as e:
            raise ValidationError({"email": str(e)}) from None

    @property
    def tz(self):
        return ZoneInfo(self.timezone)

    def refresh_interest_key(self):
        self.interest_key = interest_key(self.frequency, self.topics.values_list("id", flat=True), self.keywords, self.authors)
        Subscriber.objects.filter(pk=self.pk).update(interest_key=self.interest_key)

    def keyword_list(self):
        return comma_list(self.keywords)

    def author_list(self):
        return comma_list(self.authors)


class Vote(models.Model):
    """'More like this' (+1) or 'less like this' (-1) from a digest; the last vote counts."""

    # Indexed by the two below, which start with it.
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="votes", db_index=False)
    paper = models.ForeignKey("papers.Paper", on_delete=models.CASCADE, related_name="+")
    value = models.SmallIntegerField(choices=VOTE_CHOICES)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subscriber", "paper"], name="one_vote_per_subscriber_and_paper")]
        # Covers what digests read of a group's votes (newsletter.sql.votes), in the order
        # they read them: each subscriber's latest first, neither sorted nor visited in the table.
        indexes = [models.Index(fields=["subscriber", "-updated_at", "-id", "paper", "value"], name="vote_latest")]

    def __str__(self):
        return f"{self.subscriber_id} {'+' if self.value > 0 else '-'} {self.paper_id}"


class Suppression(models.Model):
    """An address that must never be mailed again, kept only as a salted hash."""

    email_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.email_hash[:12]}… ({self.reason})"

    @classmethod
    def covers(cls, email):
        return cls.objects.filter(email_hash=email_hash(email)).exists()


class SubscriberEvent(models.Model):
    """What happened to a subscriber: ESP tracking events and our own lifecycle steps."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="events", null=True, blank=True)
    kind = models.CharField(max_length=30, db_index=True)
    event_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True, db_index=True)
    description = models.CharField(max_length=500, blank=True)
    occurred_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]

    def __str__(self):
        return f"{self.kind} at {self.occurred_at:%Y-%m-%d %H:%M}"


class Edition(models.Model):
    date = models.DateField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # What the general edition offered once it went out ([{paper, reason, note}], see
    # newsletter/archive.py): the archive shows this, not today's features and upvotes.
    offered = models.JSONField(null=True, blank=True, editable=False)
    offered_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-date"]

    def __str__(self):
        return f"Edition of {self.date:%Y-%m-%d}"

    def get_absolute_url(self):
        return reverse("newsletter:edition", args=[self.date.isoformat()])


class DeliveryQuerySet(models.QuerySet):
    def of_subscribers(self, subscriber_ids):
        """These subscribers' deliveries, found through the (edition, subscriber) constraint's
        index, a probe per edition: no index of their own (see Delivery.subscriber)."""
        return self.filter(edition_id__in=list(Edition.objects.values_list("pk", flat=True)), subscriber_id__in=subscriber_ids)

    def totals(self):
        counts = dict(self.values_list("state").annotate(n=models.Count("id")).values_list("state", "n"))
        return {state: counts.get(state, 0) for state in Delivery.State.values} | {"due": sum(counts.values())}

    def outcome(self):
        """In words: how many were sent, skipped (and why), failed, and are still to send."""
        totals = self.totals()
        why = self.filter(state=Delivery.State.SKIPPED).values_list("note").annotate(n=models.Count("id")).order_by("-n")
        skipped = f"{totals['skipped']} skipped" + (f" ({', '.join(f'{note}: {n}' for note, n in why)})" if why else "")
        waiting = totals["pending"] + totals["sending"]
        return f"{totals['sent']} sent, {skipped}, {totals['failed']} failed, {waiting} still to send."


class Delivery(models.Model):
    """One subscriber's copy of one edition. The unique pair is what makes sending exactly-once."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    # No foreign-key constraints in the database (db_constraint=False): their checks, a lookup
    # per row and key, were a large share of the fan-out's INSERT (docs/performance.md). Nor an
    # index of its own: the fan-out would write a random page of it for every row (most of its
    # writes), while a subscriber's deliveries are looked up rarely (export, erasure), through
    # the (edition, subscriber) index (DeliveryQuerySet.of_subscribers). So no cascade either,
    # which would scan the table: deleting a subscriber deletes their deliveries first
    # (services); subscriber_erase() locks the subscriber against a fan-out in flight, and a
    # claim drops a row whose subscriber is gone (see delivery._claim).
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.DO_NOTHING, related_name="deliveries", db_index=False, db_constraint=False
    )
    # Indexed by the (edition, subscriber) constraint below, which serves every per-edition query.
    edition = models.ForeignKey(
        Edition, on_delete=models.CASCADE, related_name="deliveries", db_index=False, db_constraint=False
    )
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    # [[paper_id, reason], ...] in the order mailed: what "never a repeat" checks against.
    picks = models.JSONField(default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claim = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="Why it was skipped or failed.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was queued (again, if requeued).")

    objects = DeliveryQuerySet.as_manager()

    # The note of a row whose worker died mid-send with no record of whether its mail went out.
    INTERRUPTED = "interrupted while sending"

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["edition", "subscriber"], name="one_delivery_per_subscriber_and_edition")
        ]
        # Every delivery is inserted and then updated twice on the hot path (claim, outcome). No
        # index holds a column those updates change, so each can stay on the row's page without
        # touching any index (PostgreSQL's HOT update, given room there: see migration 0007).
        # The reconciler finds rows left behind through the time they were created.
        indexes = [models.Index(fields=["created_at"], name="delivery_created")]

    def __str__(self):
        return f"{self.edition} to {self.subscriber_id}: {self.state}"

    def paper_ids(self):
        return [paper_id for paper_id, _ in self.picks]
