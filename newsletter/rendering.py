"""Digest content at scale: CSS inlined once per edition, MIME composed once per distinct content.

premailer and Django's MIME building cost milliseconds a document, and a million digests a day
cannot each pay them (docs/performance.md). Instead:

- Per edition, the digest template is rendered once with every paper the edition offers as
  an item and inlined by premailer once, in its real surrounding markup; it is then cut at
  markers into a shell (header and footer) and one card per paper, kept as %-format templates
  (stencil()) with a field for each per-recipient link, and cards cut where the reason goes:
  the reason line is the only part of a card that varies.
- A digest is the shell around its cards, joined from those pieces, grouped into sections
  (newsletter.outline) with a heading where a section starts, and its one-line summary put
  into the shell; identical picks share one assembled content (kept when several
  recipients of a group get it: a reader with a profile gets one of their own).
- Per content, the MIME bytes are composed once, with fields for the recipient, the
  Message-ID, the date and the signed links; per recipient they are filled in with one
  formatting operation.

newsletter/digest_mail.py turns a Content into messages. tests/test_rendering.py shows the assembled HTML equals premailer on the whole document and
the composed MIME equals what Django's e-mail API builds.
"""

import html as html_lib
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial

from cachetools import LRUCache
from django.conf import settings
from django.template.loader import render_to_string

from newsletter import outline
from newsletter.digest_mail import Chunk, compose_mime, fits_8bit, mime_head, stencil
from newsletter.emails import inline_css
from newsletter.links import FEEDBACK_TOKEN, PREFERENCES_TOKEN, SLOTS, UNSUBSCRIBE_TOKEN, VIEW_TOKEN, absolute, unsubscribe_url

ITEMS, END_ITEMS, ITEM = "<!--pb:items-->", "<!--pb:/items-->", "<!--pb:item-->"
REASON = "XXREASONXX"  # capfirst leaves it as it is
SECTION = "XXSECTIONXX"  # and upper too
SUMMARY = "XXSUMMARYXX"


def _cut(document):
    head, rest = document.split(ITEMS, 1)
    items, tail = rest.split(END_ITEMS, 1)
    return head, items.split(ITEM)[1:], tail


def outlined(items):
    """Items ({"paper", "reason", "note"}) grouped into sections: each gets its "detail" (the
    reason line its card keeps, often none) and, if it starts a section, its "section" heading."""
    return [
        {**items[n], "section": section.heading if starts else "", "detail": section.detail}
        for n, section, starts in outline.in_sections([item["reason"] for item in items])
    ]


def digest_context(edition, items):
    """What the digest templates receive, for items in ranking order."""
    items = outlined(items)
    reasons = [item["reason"] for item in items]
    subject = _subject_line(edition, items[0]["paper"] if items else None, outline.subject_tail(reasons[1:]))
    return _context(edition, items, outline.summary(reasons), subject)


def _subject_line(edition, lead, tail):
    """The subject: the lead paper's title (if any) and what the rest are about."""
    return outline.subject(outline.typeset(lead.title) if lead else "", tail, f"{edition.date.day} {edition.date:%b}")


def _context(edition, items, summary, subject=""):
    return {
        "SITE_NAME": settings.SITE_NAME,
        "SITE_URL": settings.SITE_URL,
        "edition": edition,
        "items": items,
        "summary": summary,
        "subject": subject,
        "preheader_padding": range(30),  # keeps the body's first words out of the inbox preview
        "archive_url": absolute("newsletter:edition_copy", edition.date.isoformat(), VIEW_TOKEN),
        "preferences_url": absolute("newsletter:preferences", PREFERENCES_TOKEN),
        "unsubscribe_url": unsubscribe_url(UNSUBSCRIBE_TOKEN),
        "feedback_token": FEEDBACK_TOKEN,
    }


TEXT_SLOTS = list(SLOTS)
AS_PLACEHOLDERS = {slot: slot for slot in TEXT_SLOTS}


@dataclass
class Content:
    """One distinct digest, ready to be sent to any number of recipients: text and HTML as
    encoded templates (stencil()), each in pieces, with a field per per-recipient link, and
    the MIME bytes with fields for those links and the recipient's headers (None when a line
    is too long for 8bit: Django then builds each message)."""

    subject: str
    text_pieces: list
    html_pieces: list
    mime_template: bytes | None

    @classmethod
    def of(cls, subject, text, html):
        """From a text and an HTML body that hold the placeholders."""
        return cls.joined(subject, mime_head(subject), [Chunk(stencil(text, TEXT_SLOTS))], [Chunk(stencil(html, TEXT_SLOTS))])

    @classmethod
    def joined(cls, subject, head, text, html):
        """From the chunks of its text and HTML bodies, and its MIME head (mime_head())."""
        fits = fits_8bit(text, html)
        text, html = [c.data for c in text], [c.data for c in html]
        return cls(subject, text, html, compose_mime(head, text, html) if fits else None)

    # As strings only for whoever reads them (ESP backends, batch sending, previews).
    @cached_property
    def text_template(self):
        return b"".join(self.text_pieces).decode()

    @cached_property
    def html_template(self):
        return b"".join(self.html_pieces).decode()

    @cached_property
    def text(self):
        return self.text_template % AS_PLACEHOLDERS

    @cached_property
    def html(self):
        return self.html_template % AS_PLACEHOLDERS


@dataclass
class _Card:
    """A card rendered with a section heading and a reason line, cut (into chunks) so it can
    be joined with or without either; `before` may start with the text card's number, which
    each digest puts back as `numbered` says."""

    heading: tuple  # (start, end) around the heading
    before: Chunk
    why: tuple  # (start, end) around the reason line
    after: Chunk
    numbered: tuple = ()  # (what comes before the number, what follows it), for text cards

    @classmethod
    def cut(cls, card, why_start, why_end, numbered=False):
        heading_start, rest = card.split(SECTION, 1)
        heading_end = rest[: rest.index("</h2>") + 5] if rest.startswith("</") else ""  # the HTML's </a></h2>
        rest = rest[len(heading_end) :]
        before, after = rest.split(REASON, 1)
        start, end = before.rindex(why_start), after.index(why_end) + len(why_end)
        number = ()
        if numbered:  # "\n\n1. Title": the number is each digest's own
            lead, rest_of_before = before[:start].split(".", 1)
            number = (Chunk(lead.rstrip("0123456789")), Chunk("." + rest_of_before))
        return cls(
            (Chunk(heading_start), Chunk(heading_end)), Chunk(before[:start]),
            (Chunk(before[start:]), Chunk(after[:end])), Chunk(after[end:]), number,
        )

    def join(self, heading, detail, number=None):
        """Chunks of the card with this heading and reason line (chunks, or None for none)."""
        parts = [self.heading[0], heading, self.heading[1]] if heading else []
        parts += [self.numbered[0], number, self.numbered[1]] if number else [self.before]
        if detail:
            parts += (self.why[0], detail, self.why[1])
        parts.append(self.after)
        return parts


@lru_cache(maxsize=4096)
def _html(text):
    # What Django's escaping gives once lxml has serialised it; % doubled for stencil().
    return Chunk(html_lib.escape(text, quote=False).replace("%", "%%")) if text else None


@lru_cache(maxsize=4096)
def _text(text):
    return Chunk(text.replace("%", "%%")) if text else None


def _around(parts, chunk):
    """parts joined with chunk between each two."""
    joined = [parts[0]]
    for part in parts[1:]:
        joined += (chunk, part)
    return joined


@lru_cache(maxsize=128)
def _number(n):
    return Chunk(str(n))


CARDS_KEPT = 8192


def _joined_card(html_cards, text_cards, pid, heading, detail, number):
    """A card, HTML and text, each as one chunk: what a paper's card is with its section's
    heading (or none) and reason line (or none), at a place in the digest."""
    detail = detail[:1].upper() + detail[1:]
    return (
        Chunk.joined(html_cards[pid].join(_html(heading), _html(detail))),
        Chunk.joined(text_cards[pid].join(_text(heading.upper()), _text(detail), _number(number))),
    )


def _rendered_subject(edition, papers, lead, tail):
    subject = _subject_line(edition, papers[lead], tail)
    return " ".join(render_to_string("emails/digest-subject.txt", _context(edition, [], "", subject)).split())


class EditionRenderer:
    def __init__(self, edition, papers, notes):
        self.edition = edition
        self.papers = papers
        order = list(papers)
        items = [
            {"paper": papers[pid], "reason": REASON, "note": notes.get(pid, ""), "section": SECTION, "detail": REASON}
            for pid in order
        ]
        ctx = _context(edition, items, SUMMARY)
        html_head, html_cards, html_tail = _cut(inline_css(render_to_string("emails/digest-body.html", ctx)))
        text_head, text_cards, text_tail = _cut(render_to_string("emails/digest-body.txt", ctx))
        # Encoded once and cut where the summary, headings and reasons go: a digest is joined
        # from these chunks (and its 8bit line check made from theirs).
        # (head cut where the summary goes: the preheader and the line under the masthead; tail)
        self.html_shell = ([Chunk(part) for part in stencil(html_head, TEXT_SLOTS).split(SUMMARY)],
                           Chunk(stencil(html_tail, TEXT_SLOTS)))
        self.text_shell = ([Chunk(part) for part in stencil(text_head, TEXT_SLOTS).split(SUMMARY)],
                           Chunk(stencil(text_tail, TEXT_SLOTS)))
        self.html_cards = {pid: _Card.cut(stencil(card, TEXT_SLOTS), "<p ", "</p>") for pid, card in zip(order, html_cards)}
        self.text_cards = {
            pid: _Card.cut(stencil(card, TEXT_SLOTS), "\n", "", numbered=True) for pid, card in zip(order, text_cards)
        }
        # Bounded: distinct contents grow with the number of subscribers, memory must not.
        # Cards, by paper, heading, reason line and place, are far fewer than
        # digests: readers with a profile each get their own digest, joined from these.
        # (Cached functions of what they read, not of self: no reference cycle keeps an old
        # renderer alive until a full garbage collection.)
        self._card = lru_cache(maxsize=CARDS_KEPT)(partial(_joined_card, self.html_cards, self.text_cards))
        self.contents = LRUCache(maxsize=300)
        # Subjects read the lead paper and what the rest are about: far fewer than the contents.
        self._subject = lru_cache(maxsize=2000)(partial(_rendered_subject, edition, papers))
        self._head = lru_cache(maxsize=2000)(mime_head)

    def content(self, picks):
        picks = tuple(picks)
        content = self.contents.get(picks)
        return self.assembled(picks) if content is None else content

    def assembled(self, picks, keep=True):
        """The content of these picks, newly assembled; kept for whoever asks again unless
        `keep` is false (picks that one recipient gets, as a reader with a profile does)."""
        content = self._assemble(picks)
        if keep:
            self.contents[picks] = content
        return content

    def _assemble(self, picks):
        laid = outline.in_sections([reason for _, reason in picks])
        picks, sections = [picks[n] for n, _, _ in laid], [section for _, section, _ in laid]
        summary = outline.summary_of(sections)
        html, text = _around(self.html_shell[0], _html(summary)), _around(self.text_shell[0], _text(summary))
        for number, (pid, _), section, (_, _, starts) in zip(range(1, len(picks) + 1), picks, sections, laid):
            html_card, text_card = self._card(pid, section.heading if starts else "", section.detail, number)
            html.append(html_card)
            text.append(text_card)
        html.append(self.html_shell[1])
        text.append(self.text_shell[1])
        subject = self._subject(picks[0][0], outline.subject_tail_of(sections[1:]))
        return Content.joined(subject, self._head(subject), text, html)
