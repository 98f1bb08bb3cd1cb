"""Why a digest picked a paper for a reader, and what the reader can stop: the "Why you got
this paper" part of the feedback page.

It shows what the ranker used for that pick, as the delivery that mailed the paper stored it
(newsletter.reasons), never a re-derivation from what the reader follows now; a reason that
rests on something the reader can stop comes with the control that stops it and the one that
undoes that.
"""

from dataclasses import dataclass

from django.db.models import IntegerField, Value

from newsletter import services
from newsletter.models import Delivery, Picked
from newsletter.reasons import Kind, loaded_pick, said
from papers.models import Paper, Topic, author_key

KINDS = ("topic", "keyword", "author", "like")


@dataclass(frozen=True)
class Control:
    kind: str  # one of KINDS, or "" for a reason nothing the reader follows stands behind
    value: str  # what the form posts: a topic id, a keyword, an author's name as followed, a liked paper id
    reason: str  # as a digest words it
    label: str  # the topic's name, the keyword, the author, the liked paper's title

    @property
    def stop(self):
        return {
            "topic": f"Fewer papers on {self.label}",
            "keyword": f"Stop following the keyword ‘{self.label}’",
            "author": f"Stop following {self.label}",
            "like": f"No more like ‘{self.label}’",
        }[self.kind]

    @property
    def stopped(self):
        return {
            "topic": f"You no longer follow the topic {self.label}.",
            "keyword": f"You no longer follow the keyword ‘{self.label}’.",
            "author": f"You no longer follow {self.label}.",
            "like": f"‘{self.label}’ no longer counts as a paper you liked.",
        }[self.kind]

    @property
    def restore(self):
        return f"Undo: count ‘{self.label}’ as liked again" if self.kind == "like" else f"Undo: follow {self.label} again"

    @property
    def restored(self):
        return f"‘{self.label}’ counts as a paper you liked again." if self.kind == "like" else f"You follow {self.label} again."


def stored_reason(subscriber, paper):
    """The Reason the reader's latest digest holding `paper` gave for it, or None."""
    sent = Delivery.objects.of_subscribers([subscriber.pk]).filter(state=Delivery.State.SENT)
    holding = sent.alias(paper_id=Value(paper.pk, output_field=IntegerField())).filter(Picked("picks", "paper_id"))
    # Newest first: a paper is not mailed twice within weeks, so the latest is the one asked about.
    picks = holding.order_by("-edition__date").values_list("picks", flat=True).first() or ()
    return next((loaded_pick(row)[1] for row in picks if row[0] == paper.pk), None)


def why_picked(subscriber, paper):
    """A Control for the reason the reader's digest gave for `paper` (None if none mailed it to
    them): kind "" where nothing the reader follows stands behind that reason."""
    reason = stored_reason(subscriber, paper)
    if reason is None:
        return None
    kind, subject, _, label = reason
    line = said(reason)
    if kind == Kind.TOPIC:
        topic = Topic.objects.filter(name=subject).first()
        if topic:
            return Control("topic", str(topic.pk), line, topic.name)
    elif kind == Kind.KEYWORD:
        return Control("keyword", subject, line, subject)
    elif kind == Kind.AUTHOR:
        # The value is the name as followed, which is what stopping removes.
        followed = next((a for a in subscriber.author_list() if author_key(a) == author_key(subject)), subject)
        return Control("author", followed, line, subject)
    elif kind in (Kind.SIMILAR, Kind.SEED) and subject.isdigit():
        return Control("like", subject, line, label)
    return Control("", "", line, label or subject)


class BadControl(ValueError):
    """A posted control that names nothing it could act on: the message says why."""


def control_from(kind, value, subscriber):
    """The Control a form posted (kind, value), checked; raises BadControl."""
    value = (value or "").strip()
    if kind in ("topic", "like"):
        model = Topic if kind == "topic" else Paper
        found = model.objects.filter(pk=int(value)).first() if value.isascii() and value.isdigit() else None
        if found is None:
            raise BadControl(f"Unknown {'topic' if kind == 'topic' else 'paper'}.")
        return Control(kind, value, "", found.name if kind == "topic" else found.title)
    if kind in ("keyword", "author"):
        if not value or "," in value or len(value) > 200:
            raise BadControl(f"Not {'a keyword' if kind == 'keyword' else 'an author'}: one name, without commas.")
        if kind == "author":  # as the reader follows them, if they do
            value = next((a for a in subscriber.author_list() if author_key(a) == author_key(value)), value)
        return Control(kind, value, "", value)
    raise BadControl("Unknown control.")


def control_apply(control, subscriber, *, undo=False):
    """Stop what the control names (or, undo, restore it) through its service. Returns True
    if anything changed."""
    if control.kind == "topic":
        topic = Topic.objects.get(pk=control.value)
        act = services.subscriber_follow_topic if undo else services.subscriber_unfollow_topic
        return act(subscriber=subscriber, topic=topic)
    if control.kind == "keyword":
        act = services.subscriber_follow_keyword if undo else services.subscriber_unfollow_keyword
        return act(subscriber=subscriber, keyword=control.value)
    if control.kind == "author":
        if undo:
            return bool(services.subscriber_follow_authors(subscriber=subscriber, names=[control.value]))
        return services.subscriber_unfollow_author(subscriber=subscriber, name=control.value)
    if subscriber.votes.filter(paper_id=control.value, value=1).exists() == undo:
        return False  # undo: liked already; else: not liked, and a dislike is not what this stops
    if undo:
        return bool(services.vote_record(subscriber=subscriber, paper=Paper.objects.get(pk=control.value), value=1))
    return bool(services.vote_remove(subscriber=subscriber, paper_id=int(control.value)))
