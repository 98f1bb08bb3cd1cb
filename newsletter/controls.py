"""Why a digest picked a paper for a reader, and what the reader can stop: the "Why you got
this paper" part of the feedback page.

A paper is worked out the way ranking does (newsletter.ranking's matching rules and reason
phrases, newsletter.profiles for the liked paper closest to it), from what the reader follows
now; each reason comes with the control that stops it and the one that undoes that.
"""

import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from newsletter import services
from newsletter.offers import ranking_weights, votes_of
from newsletter.profiles import profiles
from newsletter.ranking import Candidate, author_reason, keyword_reason, keyword_pattern, similar_reason, topic_reason
from papers import vectors
from papers.models import Paper, Topic, author_key

KINDS = ("topic", "keyword", "author", "like")


@dataclass(frozen=True)
class Control:
    kind: str  # one of KINDS
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


def _candidate(paper):
    return Candidate(
        id=paper.pk, title=paper.title, text=f"{paper.title}\n{paper.abstract}".lower(), upvotes=paper.upvotes,
        listed_ordinal=0, topic_ids=frozenset(paper.topics.values_list("pk", flat=True)),
        authors=tuple((author_key(name), name) for name in paper.authors),
    )


def why_picked(subscriber, paper):
    """[Control] for each thing the reader follows that picks `paper`: its topics they follow,
    the keywords it mentions, its authors they follow, and the liked paper closest to it."""
    candidate = _candidate(paper)
    found = []
    for topic in subscriber.topics.filter(pk__in=candidate.topic_ids):
        reason = topic_reason(candidate, {topic.pk}, {topic.pk: topic.name})
        found.append(Control("topic", str(topic.pk), reason, topic.name))
    for keyword in subscriber.keyword_list():
        if keyword_pattern(keyword).search(candidate.text):
            found.append(Control("keyword", keyword, keyword_reason(candidate, [keyword]), keyword))
    followed = {author_key(name): name for name in subscriber.author_list()}
    for key, name in candidate.authors:
        if key in followed:  # the value is the name as followed, which is what stopping removes
            found.append(Control("author", followed.pop(key), author_reason(candidate, {key}), name))
    liked = _closest_liked(subscriber, paper)
    if liked:
        found.append(Control("like", str(liked.pk), similar_reason(liked.title), liked.title))
    return found


def _closest_liked(subscriber, paper):
    """The paper the reader liked that is closest to `paper`, if their profile is near enough
    to it for ranking to count it (the weights' threshold)."""
    votes = votes_of([subscriber.pk])
    if not any(value > 0 for _, _, value, _ in votes):
        return None
    voted = Paper.objects.in_bulk({paper_id for _, paper_id, _, _ in votes})
    # closest() names a liked paper by what it is given as its title: here its id.
    found = profiles(
        votes,
        dict(zip(voted, vectors.dense([p.vector for p in voted.values()]))),
        {pk: pk for pk in voted},
        [paper.pk],
        vectors.dense([paper.vector]),
        now=time.time(),
        half_life_days=settings.VOTE_HALF_LIFE_DAYS,
    )
    row = found.rows.get(subscriber.pk)
    if row is None or found.cosines[row, 0] < ranking_weights().threshold:
        return None
    return voted.get(found.closest(np.array([row]), np.array([0]))[0])


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
