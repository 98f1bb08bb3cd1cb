"""How a digest reads at a glance: its sections, one-line summary and inbox subject.

Pure functions of the picks' reasons (the strings newsletter.ranking's reason helpers make),
so the web copy, the whole-document render and the per-edition assembler agree.
"""

import re
from functools import lru_cache
from collections import Counter
from dataclasses import dataclass

from newsletter.ranking import FEATURED

SUBJECT_MAX = 60  # what a phone's inbox shows of a subject is ~40; most desktops ~60
_REASONS = [
    # (pattern, section key, heading, whether each card keeps its own reason line)
    (re.compile(r"matches your topic (?P<x>.+)"), "topic:{x}", "{x}", False),
    (re.compile(r"mentions '(?P<x>.+)'"), "keyword:{x}", "Mentioning “{x}”", False),
    (re.compile(r"by .+, whom you follow"), "author", "Authors you follow", True),
    (re.compile(r"similar to '(?P<x>.+)', which you liked"), "similar:{x}", "Because you liked “{x}”", False),
    (re.compile(r"trending: .+"), "trending", "Trending", False),
    (re.compile(r"outside what you usually read: .+"), "explore", "Something different", False),
    (re.compile(r"a first taste of (?P<x>.+)"), "starter:{x}", "{x}", False),
]


@dataclass(frozen=True)
class Section:
    key: str
    heading: str
    detail: str  # the card's own reason line, when the heading does not say it all
    topic: str = ""


@lru_cache(maxsize=20_000)
def section_of(reason):
    # Remembered: a digest asks several times per pick, and reasons repeat across digests.
    if reason == FEATURED:
        return Section("featured", "Editor's pick", "")
    for pattern, key, heading, keeps_reason in _REASONS:
        match = pattern.fullmatch(reason)
        if match:
            x = match.groupdict().get("x", "")
            topic = x if key.startswith(("topic:", "keyword:")) else ""
            return Section(key.format(x=x), heading.format(x=x), reason if keeps_reason else "", topic)
    return Section(f"other:{reason}", reason[:1].upper() + reason[1:], "")


def grouped(picks, reason_of=lambda pick: pick[1]):
    """Picks ([(paper_id, reason)] by default) ordered by section, in the order each section
    first appears, keeping their order within a section."""
    first = {}
    for n, pick in enumerate(picks):
        first.setdefault(section_of(reason_of(pick)).key, n)
    return sorted(picks, key=lambda pick: first[section_of(reason_of(pick)).key])


def summary(reasons):
    """'1 editor's pick, 10 in Reinforcement learning, 2 trending'."""
    counts = Counter(section_of(r) for r in reasons)
    if any(section.key.startswith("starter:") for section in counts):
        topics = sum(section.key.startswith("starter:") for section in counts)
        return (f"Your first digest: {len(reasons)} papers across {topics} topic{'s' if topics > 1 else ''}. "
                "Tap More or Less on a few: from your third vote, your digests follow your taste.")
    parts = []
    for section, n in counts.items():
        if section.key == "featured":
            parts.append(f"{n} editor's pick{'s' if n > 1 else ''}")
        elif section.key == "trending":
            parts.append(f"{n} trending")
        elif section.key == "explore":
            parts.append(f"{n} outside what you usually read")
        elif section.topic:
            parts.append(f"{n} in {section.topic}" if section.key.startswith("topic:") else f"{n} {section.heading.lower()}")
        elif section.key.startswith("similar:"):
            parts.append(f"{n} like one you liked")
        elif section.key == "author":
            parts.append(f"{n} by authors you follow")
        else:
            parts.append(f"{n} {section.heading[:1].lower()}{section.heading[1:]}")
    return ", ".join(parts)


def short_title(title, limit):
    """The part before a colon if it is short enough, else the title cut at a word."""
    head = title.split(":", 1)[0].strip()
    if len(head) <= limit and (head != title or len(title) <= limit):
        return head
    words, out = title.split(), ""
    for word in words:
        if len(out) + len(word) + 2 > limit:  # room for the ellipsis
            break
        out = f"{out} {word}".strip()
    return f"{out or title[: limit - 1]}…"


def subject_tail(reasons):
    """What follows the lead paper in the subject: '+ 10 in Robotics', or '' alone."""
    rest = [section_of(r) for r in reasons]
    if not rest:
        return ""
    topics = Counter(s.topic for s in rest if s.topic)
    main, count = topics.most_common(1)[0] if topics else ("", 0)
    if count == len(rest):
        return f" + {len(rest)} in {main}"
    if count * 2 >= len(rest):
        return f" + {len(rest)}, mostly {main}"
    if all(s.key == "trending" for s in rest):
        return f" + {len(rest)} trending"
    return f" + {len(rest)} more"


def subject(lead_title, tail, date_label):
    """'Digi-Q + 10 in Reinforcement learning · 14 Mar', at most SUBJECT_MAX characters."""
    suffix = f" · {date_label}"
    room = SUBJECT_MAX - len(tail) - len(suffix)
    if room < 12:  # a long topic name: keep room for the paper, cut it at a word
        tail = tail[: tail.rfind(" ", 0, len(tail) - (12 - room) - 1)].rstrip(" &,") + "…"
        room = 12
    return f"{short_title(lead_title, room)}{tail}{suffix}"


_LATEX = [
    (re.compile(r"``(.*?)''", re.S), "“\\1”"),
    (re.compile(r"(?<![`\w])`([^`']*)'(?!\w)"), "‘\\1’"),
    (re.compile(r" --- "), " — "),
    (re.compile(r" -- "), " – "),
]
_NOTE_LABEL = re.compile(r"^\s*(<[^>]+>\s*)*editor'?s? ?(pick|note)\s*:\s*", re.I)


def typeset(text):
    """LaTeX quotes and dashes as typographic ones: ``think'' → “think”, `this' → ‘this’, -- → –."""
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    return text


def editor_note(note):
    """A note without a leading "Editor's pick:" label: the card already says who wrote it."""
    match = _NOTE_LABEL.match(note)
    return note[match.end() :] if match and not match.group(1) else note
