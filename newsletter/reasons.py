"""Why a digest picked a paper, as data: the ranker's evidence for each pick, how a delivery
stores it, and the one English line a reader sees of it (said()).

A pick is (paper id, Reason). Sections, summaries, subjects, web copies and the "why this
paper" page read the Reason itself; the English line is made from it for display only and
never read back, so rewording it changes no section of any digest, old or new.
"""

import json
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple


class Kind(StrEnum):
    """What a pick's evidence is. Its subject and strength, by kind:"""

    FEATURED = "featured"  # -, 0
    TOPIC = "topic"  # the topic's name, its weight
    KEYWORD = "keyword"  # the keyword as the reader wrote it, its weight
    AUTHOR = "author"  # the author's name as the paper prints it, its weight
    SIMILAR = "similar-to"  # the liked paper closest to the pick: its id (label: its title), their cosine
    SEED = "seed"  # the reader's own (seeded) paper closest to the pick, as SIMILAR
    TRENDING = "trending"  # -, the paper's upvotes
    EXPLORE = "explore"  # -, the paper's upvotes
    FIRST_TASTE = "first-taste"  # the topic's name, 0


class Reason(NamedTuple):
    """Why a pick was made: what the ranker used, as data (a tuple, so picks hash fast)."""

    kind: Kind
    subject: str = ""
    strength: float = 0.0
    label: str = ""  # how a subject that is an id reads: the paper's title


FEATURED = Reason(Kind.FEATURED)


def reason_json(reason):
    """A Reason as stored (JSON text): [kind, subject, strength], and its label if any. Written
    out, not json.dumps'd: readers with a profile each get picks of their own (a strength of
    their own), and this is made for each as it is sent (docs/performance.md)."""
    kind, subject, strength, label = reason
    label = f", {_quoted(label)}" if label else ""
    return f'["{kind}", {_quoted(subject)}, {float(strength)!r}{label}]'


@lru_cache(maxsize=8192)
def _quoted(text):
    return json.dumps(text)


@lru_cache(maxsize=8192)
def pick_json(pick):
    """A (paper id, Reason) pick as Delivery.picks stores it: [paper id, *reason], the paper
    id first, as Picked() reads it."""
    return f"[{int(pick[0])}, {reason_json(pick[1])[1:]}"


def stored(reason):
    """reason_json() as a value, for a JSON field."""
    return json.loads(reason_json(reason))


def loaded(row):
    """A stored reason read back."""
    kind, subject, strength, *label = row
    return Reason(Kind(kind), subject, strength, *label)


def loaded_pick(row):
    """A stored pick read back: (paper id, Reason)."""
    return row[0], loaded(row[1:])


def loaded_picks(rows):
    """A delivery's stored picks read back, as a tuple (what sending and recording take)."""
    return tuple(map(loaded_pick, rows))


# How each kind reads ({subject}, {label}, {upvotes}, and {s}: the plural's ending).
WORDING = {
    Kind.FEATURED: "featured by the editors",
    Kind.TOPIC: "matches your topic {subject}",
    Kind.KEYWORD: "mentions '{subject}'",
    Kind.AUTHOR: "by {subject}, whom you follow",
    Kind.SIMILAR: "similar to '{label}', which you liked",
    Kind.SEED: "close to your paper '{label}'",
    Kind.TRENDING: "trending: {upvotes} upvote{s}",
    Kind.EXPLORE: "outside what you usually read: {upvotes} upvote{s}",
    Kind.FIRST_TASTE: "a first taste of {subject}",
}


def said(reason):
    """The line a reader sees for a reason, e.g. "matches your topic Robotics"."""
    upvotes = int(reason.strength)
    return WORDING[reason.kind].format(
        subject=reason.subject, label=reason.label, upvotes=upvotes, s="" if upvotes == 1 else "s"
    )
