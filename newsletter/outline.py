"""How a digest reads at a glance: its sections, one-line summary and inbox subject.

Pure functions of the picks' reasons (the strings newsletter.ranking's reason helpers make),
so the web copy, the whole-document render and the per-edition assembler agree.
"""

import re
from functools import lru_cache
from dataclasses import dataclass
from operator import itemgetter

from newsletter.ranking import FEATURED

SUBJECT_MAX = 60  # what a phone's inbox shows of a subject is ~40; most desktops ~60
_REASONS = [
    # (pattern, section key, heading, whether each card keeps its own reason line, what the
    # summary says of n of them: n = 1, n > 1)
    (re.compile(r"matches your topic (?P<x>.+)"), "topic:{x}", "{x}", False, ("in {x}",) * 2),
    (re.compile(r"mentions '(?P<x>.+)'"), "keyword:{x}", "Mentioning “{x}”", False, ("mentioning “{x}”",) * 2),
    (re.compile(r"by .+, whom you follow"), "author", "Authors you follow", True,
     ("by an author you follow", "by authors you follow")),
    (re.compile(r"similar to '(?P<x>.+)', which you liked"), "similar:{x}", "Because you liked “{x}”", False,
     ("like a paper you liked", "like papers you liked")),
    (re.compile(r"close to your paper “(?P<x>.+)”"), "seed:{x}", "Close to your paper “{x}”", False,
     ("close to a paper of yours", "close to papers of yours")),
    (re.compile(r"trending: .+"), "trending", "Trending", False, ("trending",) * 2),
    (re.compile(r"outside what you usually read: .+"), "explore", "Something different", False,
     ("outside what you usually read",) * 2),
    (re.compile(r"a first taste of (?P<x>.+)"), "starter:{x}", "{x}", False, None),
]


@dataclass(frozen=True)
class Section:
    key: str
    heading: str
    detail: str  # the card's own reason line, when the heading does not say it all
    topic: str  # the topic or keyword it is about, if any
    # What the summary says of n papers of this section (n = 1, n > 1); sections that say the
    # same are counted together. None: a first digest's starters, summed up apart.
    phrase: tuple | None


@lru_cache(maxsize=20_000)
def section_of(reason):
    # Remembered: a digest asks several times per pick, and reasons repeat across digests.
    if reason == FEATURED:
        return Section("featured", "Editor's pick", "", "", ("editor's pick", "editor's picks"))
    for pattern, key, heading, keeps_reason, phrase in _REASONS:
        match = pattern.fullmatch(reason)
        if match:
            x = match.groupdict().get("x", "")
            topic = x if key.startswith(("topic:", "keyword:")) else ""
            phrase = phrase and tuple(p.format(x=x) for p in phrase)
            return Section(key.format(x=x), heading.format(x=x), reason if keeps_reason else "", topic, phrase)
    heading = reason[:1].upper() + reason[1:]
    return Section(f"other:{reason}", heading, "", "", (reason[:1].lower() + reason[1:],) * 2)


def in_sections(reasons):
    """[(index, section, whether it starts its section)] for picks with these reasons, in the
    order a digest shows them: by section, in the order each section first appears, picks
    keeping their order within a section."""
    groups = {}
    for n, section in enumerate(map(section_of, reasons)):
        group = groups.get(section.key)
        if group is None:
            groups[section.key] = [(n, section, True)]
        else:
            group.append((n, section, False))
    return [pick for group in groups.values() for pick in group]


def _counts(items):
    """{item: how many}, in order of first appearance: a Counter costs more for a handful."""
    counts = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def summary(reasons):
    """'1 editor's pick, 10 in Reinforcement learning, 2 trending'."""
    return summary_of([section_of(reason) for reason in reasons])


def summary_of(sections):
    """summary() of the picks' sections."""
    phrases = tuple([section.phrase for section in sections])
    if None in phrases:
        topics = len({section.key for section in sections if section.phrase is None})
        return (f"Your first digest: {len(sections)} papers across {topics} topic{'s' if topics > 1 else ''}. "
                "Tap More or Less on a few: from your third vote, your digests follow your taste.")
    return _summary(phrases)


@lru_cache(maxsize=4096)
def _summary(phrases):
    # Remembered: readers with a profile each get picks of their own, but not a summary.
    return ", ".join(f"{n} {phrase[n > 1]}" for phrase, n in _counts(phrases).items())


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
    return subject_tail_of([section_of(r) for r in reasons])


def subject_tail_of(rest):
    """subject_tail() of the sections of the picks after the lead."""
    if not rest:
        return ""
    tail = _topic_tail(tuple([s.topic for s in rest]))
    if tail:
        return tail
    if all(s.key == "trending" for s in rest):
        return f" + {len(rest)} trending"
    return f" + {len(rest)} more"


@lru_cache(maxsize=4096)
def _topic_tail(topics):
    """The tail when one topic (or keyword) is at least half of these, else ''. Remembered,
    as _summary is."""
    counts = _counts(topic for topic in topics if topic)
    main, count = max(counts.items(), key=itemgetter(1)) if counts else ("", 0)  # the first of the most common
    if count == len(topics):
        return f" + {len(topics)} in {main}"
    if count * 2 >= len(topics):
        return f" + {len(topics)}, mostly {main}"
    return ""


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
