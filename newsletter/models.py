import datetime as dt
import hashlib
import unicodedata
from collections import defaultdict
from zoneinfo import ZoneInfo

import idna
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
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
    # The local part is case-folded too, as it always was here: mailboxes that differ only
    # in case are one person in practice.
    return f"{email_fold(local)}@{domain}"


def email_fold(text):
    """Case-fold (part of) an address, the one way every comparison of addresses here does:
    lower case, with the dotted capital I as the capital of i.

    Not str.casefold(), which also rewrites ß as ss, ﬁ as fi and ς as σ: the folded form is
    what is stored and mailed, and straße@ is not strasse@ to a server that compares local
    parts as sent; stored rows also hold lower(). Lower() has one surprise: the dotted
    capital İ becomes i + U+0307 COMBINING DOT ABOVE, where Turkish and Azeri (whose keyboards
    type İdn for Idn) mean i. That pair is read as i whoever typed it (i is soft-dotted: the
    mark takes the place of its dot), so it folds to i (migration 0012 moves stored rows).
    """
    if text.isascii():  # nearly every address: delivery folds each recipient's (email_hash)
        return text.lower()
    return unicodedata.normalize("NFC", text.lower().replace("i\u0307", "i"))


def email_hash(email):
    """Salted hash of an address: what is kept of an erased or suppressed address. Folded but
    not canonicalised again: callers hold canonical addresses, and delivery hashes each
    recipient (IDNA would cost ten times the hash)."""
    pads = tokens.hmac_pads(settings.SUPPRESSION_SALT.encode())
    return tokens.hmac_digest(pads, email_fold(email.strip()).encode()).hex()


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
        return self.filter(status__in=Subscriber.SUBSCRIBED)


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        SUPPRESSED = "suppressed", "Suppressed"

    # Whose consent holds: they are mailed (paused ones once they resume) and their votes count.
    SUBSCRIBED = (Status.ACTIVE, Status.PAUSED)

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
        self.search_text = self.searched_text()
        if update_fields is not None and {"email", "keywords", "authors"} & set(update_fields):
            update_fields = [*update_fields, "search_text"]
        super().save(*args, update_fields=update_fields, **kwargs)

    def searched_text(self):
        """What the admin's search finds a subscriber by: address, keywords, authors, folded."""
        return search_key(self.email, self.keywords, self.authors)

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
        """The columns made from what the subscriber follows, after services changed it with an
        UPDATE (which save() does not see): the fan-out's order and the admin's search text."""
        self.interest_key = interest_key(self.frequency, self.topics.values_list("id", flat=True), self.keywords, self.authors)
        self.search_text = self.searched_text()
        Subscriber.objects.filter(pk=self.pk).update(interest_key=self.interest_key, search_text=self.search_text)

    def keyword_list(self):
        return comma_list(self.keywords)

    def author_list(self):
        return comma_list(self.authors)


class Picked(models.Func):
    """Whether a delivery's picks ([[paper id, *reason], ...]) hold a paper: a vote on it counts
    for the edition that mailed it to the voter, not for every edition they had."""

    output_field = models.BooleanField()

    def __init__(self, picks, paper):
        super().__init__(models.F(picks), models.F(paper))

    def _compiled(self, compiler):
        (picks, picks_params), (paper, paper_params) = (compiler.compile(e) for e in self.source_expressions)
        return picks, paper, [*picks_params, *paper_params]

    def as_sql(self, compiler, connection, **extra):
        picks, paper, params = self._compiled(compiler)
        return f"EXISTS (SELECT 1 FROM json_each({picks}) WHERE json_extract(value, '$[0]') = {paper})", params

    def as_postgresql(self, compiler, connection, **extra):
        picks, paper, params = self._compiled(compiler)  # [[7, "topic", ...]] @> [[7]]
        return f"{picks} @> jsonb_build_array(jsonb_build_array({paper}))", params


class Vote(models.Model):
    """'More like this' (+1) or 'less like this' (-1) from a digest; the last vote counts."""

    # Indexed by the two below, which start with it.
    # Null once its reader is erased: still counted for its paper and edition, of no one.
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="votes", db_index=False, null=True, blank=True
    )
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


class SeedQuerySet(models.QuerySet):
    def states(self):
        """{state: arXiv ids (or paper titles)} of these seeds, for the reader to see."""
        states = defaultdict(list)
        for state, arxiv_id, title in self.order_by("arxiv_id").values_list("state", "arxiv_id", "paper__title"):
            states[state].append(arxiv_id or title)
        return dict(states)


class Seed(models.Model):
    """A paper a reader named as theirs, or one they like (pasted or from their bibliography):
    liked as soon as it is known. Unknown arXiv ids wait here, pending, while they are fetched;
    what arXiv did not have stays, missing, for the reader to see. Nothing else of the list
    they gave is kept."""

    class State(models.TextChoices):
        PENDING = "pending", "Being fetched from arXiv"
        FOUND = "found", "Found"
        MISSING = "missing", "Not on arXiv"
        FAILED = "failed", "arXiv could not be reached"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="seeds")
    arxiv_id = models.CharField("arXiv id", max_length=40, blank=True)
    paper = models.ForeignKey("papers.Paper", on_delete=models.CASCADE, related_name="+", null=True, blank=True)
    state = models.CharField(max_length=8, choices=State.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SeedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "arxiv_id"], condition=~models.Q(arxiv_id=""), name="one_seed_per_arxiv_id"),
            models.UniqueConstraint(fields=["subscriber", "paper"], name="one_seed_per_paper"),
        ]

    def __str__(self):
        return f"{self.subscriber_id} seeded {self.arxiv_id or self.paper_id} ({self.state})"


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


# Votes and unsubscribes this soon after a copy was sent count for its edition (votes, only on its papers).
FEEDBACK_WINDOW = dt.timedelta(days=2)


def count_of(queryset, distinct=False):
    """A correlated COUNT(...) of queryset, 0 when empty: a column of a change list."""
    template = "COUNT(DISTINCT %(expressions)s)" if distinct else "COUNT(%(expressions)s)"
    rows = queryset.order_by().annotate(n=models.Func(models.F("pk"), function="COUNT", template=template)).values("n")
    return Coalesce(models.Subquery(rows, output_field=models.IntegerField()), 0)


def after_sending(model, moment, *conditions, **filters):
    """model rows of an edition's recipients within FEEDBACK_WINDOW after their copy was sent."""
    return model.objects.filter(
        *conditions,
        subscriber__deliveries__edition=models.OuterRef("pk"),
        subscriber__deliveries__state=Delivery.State.SENT,
        **{f"{moment}__gte": models.F("subscriber__deliveries__sent_at"),
           f"{moment}__lt": models.F("subscriber__deliveries__sent_at") + FEEDBACK_WINDOW},
        **filters,
    )


def edition_feedback(**of):
    """{name: count} expressions of what an edition's readers made of it; of: only some
    readers' (e.g. subscriber_id__in=...)."""
    picked = Picked("subscriber__deliveries__picks", "paper")
    return {
        "more": count_of(after_sending(Vote, "updated_at", picked, value=1, **of)),
        "less": count_of(after_sending(Vote, "updated_at", picked, value=-1, **of)),
        "unsubscribes": count_of(after_sending(SubscriberEvent, "occurred_at", kind="unsubscribed", **of)),
    }


class EditionQuerySet(models.QuerySet):
    def with_counts(self):
        """Each edition with its deliveries by state, "due" (all of them) and its readers'
        feedback (edition_feedback), those of readers erased since included."""
        counts = {
            "due": models.Count("deliveries"),
            **{state: models.Count("deliveries", filter=models.Q(deliveries__state=state)) for state in Delivery.State.values},
            **edition_feedback(),
        }
        erased = {name: Coalesce(Cast(KT(f"erased_counts__{name}"), models.IntegerField()), 0) for name in counts}
        return self.annotate(**{name: count + erased[name] for name, count in counts.items()})


class Edition(models.Model):
    date = models.DateField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # What the general edition offered once it went out ([{paper, reason, note}], the reason as
    # newsletter.reasons.stored() makes it; see
    # newsletter/archive.py): the archive shows this, not today's features and upvotes.
    offered = models.JSONField(null=True, blank=True, editable=False)
    offered_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The editors' notes any digest of it could carry ({paper id: note}, the widest lookback),
    # recorded with `offered`: a reader's web copy shows these, as mailed.
    offered_notes = models.JSONField(null=True, blank=True, editable=False)
    # What readers erased since counted for in it ({"sent": 1, "due": 1, "more": 1, ...}),
    # folded in before they were deleted: its totals and vote counts add these.
    erased_counts = models.JSONField(default=dict, blank=True, editable=False)

    objects = EditionQuerySet.as_manager()

    class Meta:
        ordering = ["-date"]

    def __str__(self):
        return f"Edition of {self.date:%Y-%m-%d}"

    def get_absolute_url(self):
        return reverse("newsletter:edition", args=[self.date.isoformat()])

    def recorded_notes(self):
        """{paper id: note} recorded when it went out (JSON keys are strings); {} before."""
        return {int(pid): note for pid, note in (self.offered_notes or {}).items()}

    def totals(self):
        """{state: n, "due": all} of its deliveries, those of readers erased since included."""
        return {name: n + self.erased_counts.get(name, 0) for name, n in self.deliveries.totals().items()}


class DeliveryQuerySet(models.QuerySet):
    def of_subscribers(self, subscriber_ids):
        """These subscribers' deliveries, found through the (edition, subscriber) constraint's
        index, a probe per edition: no index of their own (see Delivery.subscriber)."""
        return self.filter(edition_id__in=list(Edition.objects.values_list("pk", flat=True)), subscriber_id__in=subscriber_ids)

    def in_doubt(self):
        """Rows whose mail may or may not have gone: still 'sending' (a worker holds them or
        died holding them), or failed as interrupted by the reconciler. Recovery and the ESP's
        webhook settle them; either writes only through this filter."""
        return self.filter(
            models.Q(state=Delivery.State.SENDING) | models.Q(state=Delivery.State.FAILED, note__startswith=Delivery.INTERRUPTED)
        )

    def waiting(self):
        """{why: how many} of the pending rows that a failed try put back (their note says why)."""
        pending = self.filter(state=Delivery.State.PENDING).exclude(note="")
        return dict(pending.values_list("note").annotate(n=models.Count("id")).values_list("note", "n"))

    def resumable(self, now):
        """Pending rows that no retry is scheduled for: a transient failure's retry comes back
        by itself at retry_at, and enqueuing its rows earlier would cut its backoff short."""
        return self.filter(state=Delivery.State.PENDING).exclude(retry_at__gt=now)

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


class SendingGroup(models.Model):
    """A group of deliveries a worker process holds (their claim), and when it last said it is
    alive: its heart-beat is the database checkpoint of what it has sent (newsletter/delivery.py).
    A group that stopped beating, its worker dead or its host lost, is taken over by any worker
    (reconcile.deliveries_takeover). The ids are kept here, as deliveries have no index on
    their claim; the row goes when the group ends."""

    claim = models.CharField(max_length=32, primary_key=True)
    node = models.CharField(max_length=200, help_text="The worker process: host and process id.")
    delivery_ids = models.TextField(help_text="The deliveries it claimed, comma-separated.")
    beat_at = models.DateTimeField()

    def __str__(self):
        return f"{self.claim} on {self.node}"


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
    # [[paper_id, kind, subject, strength(, label)], ...] in the order mailed (newsletter.reasons):
    # what "never a repeat" checks against, and why each paper was picked.
    picks = models.JSONField(default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claim = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="Why it was skipped or failed.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was queued (again, if requeued).")
    retry_at = models.DateTimeField(null=True, blank=True, help_text="When the retry after a transient failure is due.")

    objects = DeliveryQuerySet.as_manager()

    # The note of a row whose worker died mid-send with no record of whether its mail went out.
    INTERRUPTED = "interrupted while sending"
    # The note's start of a row the mail server refused for good (5xx to RCPT or DATA).
    BOUNCED = "hard bounce"

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
        return [pick[0] for pick in self.picks]
