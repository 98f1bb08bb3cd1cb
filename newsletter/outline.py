"""How a digest reads at a glance: its sections, one-line summary and inbox subject.

Pure functions of the picks' reasons (newsletter.reasons: kind, subject, strength), so the web
copy, the whole-document render and the per-edition assembler agree; none reads the English
line a reason is shown as.
"""

import re
from functools import lru_cache
from dataclasses import dataclass
from operator import itemgetter

from newsletter.reasons import Kind, Reason, said

SUBJECT_MAX = 60  # what a phone's inbox shows of a subject is ~40; most desktops ~60


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
    """The Section a pick with this reason goes in."""
    # Remembered: a digest asks several times per pick, and reasons repeat across digests.
    return _section(reason.kind, reason.subject, reason.label)


@lru_cache(maxsize=20_000)
def _section(kind, subject, label):
    # Keyed by what a section reads: reasons that differ only in strength share it.
    if kind == Kind.FEATURED:
        return Section("featured", "Editor's pick", "", "", ("editor's pick", "editor's picks"))
    if kind == Kind.TOPIC:
        return Section(f"topic:{subject}", subject, "", subject, (f"in {subject}",) * 2)
    if kind == Kind.KEYWORD:
        return Section(f"keyword:{subject}", f"Mentioning “{subject}”", "", subject, (f"mentioning “{subject}”",) * 2)
    if kind == Kind.AUTHOR:  # each card keeps its own line: which author
        return Section("author", "Authors you follow", said(Reason(kind, subject, 0.0, label)), "",
                       ("by an author you follow", "by authors you follow"))
    if kind == Kind.SIMILAR:
        return Section(f"similar:{subject or label}", f"Because you liked “{label}”", "", "",
                       ("like a paper you liked", "like papers you liked"))
    if kind == Kind.SEED:
        return Section(f"seed:{subject or label}", f"Close to your paper “{label}”", "", "",
                       ("close to a paper of yours", "close to papers of yours"))
    if kind == Kind.TRENDING:
        return Section("trending", "Trending", "", "", ("trending",) * 2)
    if kind == Kind.EXPLORE:
        return Section("explore", "Something different", "", "", ("outside what you usually read",) * 2)
    return Section(f"starter:{subject}", subject, "", "", None)  # Kind.FIRST_TASTE


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
    lead = short_title(lead_title, max(SUBJECT_MAX - len(tail) - len(suffix), 12))  # room for the paper
    over = len(lead) + len(tail) + len(suffix) - SUBJECT_MAX
    if over > 0:  # a long topic name past the limit: cut it at a word
        tail = tail[: tail.rfind(" ", 0, len(tail) - over)].rstrip(" &,") + "…"
    return f"{lead}{tail}{suffix}"


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
