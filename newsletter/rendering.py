"""Digest content at scale: CSS inlined once per edition, MIME composed once per distinct content.

premailer costs ~12 ms a document, Django's MIME building ~1-2 ms a message. Instead:

- Per edition, the digest template is rendered once with every paper the edition offers as
  an item and inlined by premailer once, in its real surrounding markup; it is then cut at
  markers into a shell (header and footer) and one card per paper, kept as %-format templates
  (stencil()) with a field for each per-recipient link, and cards cut where the reason goes:
  the reason line is the only part of a card that varies.
- A digest is the shell around its cards, joined from those pieces; identical picks share
  one assembled content.
- Per content, the MIME bytes are composed once, with fields for the recipient, the
  Message-ID, the date and the signed links; per recipient they are filled in with one
  formatting operation.

newsletter/digest_mail.py turns a Content into messages. tests/test_rendering.py shows the assembled HTML equals premailer on the whole document and
the composed MIME equals what Django's e-mail API builds.
"""

import html as html_lib
from dataclasses import dataclass
from functools import cached_property

from cachetools import LRUCache
from django.conf import settings
from django.template.loader import render_to_string

from newsletter.digest_mail import compose_mime, stencil
from newsletter.emails import inline_css
from newsletter.links import FEEDBACK_TOKEN, PREFERENCES_TOKEN, SLOTS, UNSUBSCRIBE_TOKEN, absolute, unsubscribe_url

ITEMS, END_ITEMS, ITEM = "<!--pb:items-->", "<!--pb:/items-->", "<!--pb:item-->"
REASON = "XXREASONXX"  # capfirst leaves it as it is


def _cut(document):
    head, rest = document.split(ITEMS, 1)
    items, tail = rest.split(END_ITEMS, 1)
    return head, items.split(ITEM)[1:], tail


def digest_context(edition, items):
    return {
        "SITE_NAME": settings.SITE_NAME,
        "SITE_URL": settings.SITE_URL,
        "edition": edition,
        "items": items,
        "archive_url": settings.SITE_URL + edition.get_absolute_url(),
        "preferences_url": absolute("newsletter:preferences", PREFERENCES_TOKEN),
        "unsubscribe_url": unsubscribe_url(UNSUBSCRIBE_TOKEN),
        "feedback_token": FEEDBACK_TOKEN,
    }


TEXT_SLOTS = list(SLOTS)
AS_PLACEHOLDERS = {slot: slot for slot in TEXT_SLOTS}


@dataclass
class Content:
    """One distinct digest, ready to be sent to any number of recipients: text and HTML as
    templates (stencil()) with a field per per-recipient link, and the MIME bytes with fields
    for those links and the recipient's headers (None when a line is too long for 8bit:
    Django then builds each message)."""

    subject: str
    text_template: str
    html_template: str
    mime_template: bytes | None

    @classmethod
    def of(cls, subject, text, html):
        """From a text and an HTML body that hold the placeholders."""
        text, html = stencil(text, TEXT_SLOTS), stencil(html, TEXT_SLOTS)
        return cls(subject, text, html, compose_mime(subject, text, html))

    @cached_property
    def text(self):
        return self.text_template % AS_PLACEHOLDERS

    @cached_property
    def html(self):
        return self.html_template % AS_PLACEHOLDERS


class EditionRenderer:
    def __init__(self, edition, papers, notes):
        self.edition = edition
        self.papers = papers
        order = list(papers)
        items = [{"paper": papers[pid], "reason": REASON, "note": notes.get(pid, "")} for pid in order]
        ctx = digest_context(edition, items)
        html_head, html_cards, html_tail = _cut(inline_css(render_to_string("emails/digest-body.html", ctx)))
        text_head, text_cards, text_tail = _cut(render_to_string("emails/digest-body.txt", ctx))
        # As templates, cut where the reason goes: a digest is then joined from these pieces.
        self.html_shell = (stencil(html_head, TEXT_SLOTS), stencil(html_tail, TEXT_SLOTS))
        self.text_shell = (stencil(text_head, TEXT_SLOTS), stencil(text_tail, TEXT_SLOTS))
        self.html_cards = {pid: stencil(card, TEXT_SLOTS).split(REASON, 1) for pid, card in zip(order, html_cards)}
        # Text cards start with their number; it is put back when assembling.
        self.text_cards = {
            pid: stencil(card.split(". ", 1)[1], TEXT_SLOTS).split(REASON, 1) for pid, card in zip(order, text_cards)
        }
        # Bounded: distinct contents grow with the number of subscribers, memory must not.
        self.contents = LRUCache(maxsize=300)
        self.subjects = {}

    def content(self, picks):
        picks = tuple(picks)
        if picks not in self.contents:
            self.contents[picks] = self._assemble(picks)
        return self.contents[picks]

    def _assemble(self, picks):
        html, text = [self.html_shell[0]], [self.text_shell[0]]
        for n, (pid, reason) in enumerate(picks, start=1):
            before, after = self.html_cards[pid]
            # What Django's {{ reason|capfirst }} gives once lxml has serialised it.
            html += (before, html_lib.escape(reason[:1].upper() + reason[1:], quote=False).replace("%", "%%"), after)
            before, after = self.text_cards[pid]
            text += (f"\n{n}. ", before, reason.replace("%", "%%"), after)
        html.append(self.html_shell[1])
        text.append(self.text_shell[1])
        html, text, subject = "".join(html), "".join(text), self._subject(picks)
        return Content(subject, text, html, compose_mime(subject, text, html))

    def _subject(self, picks):
        # The subject names the first paper and counts the rest: far fewer than the contents.
        key = (picks[0][0], len(picks))
        if key not in self.subjects:
            items = [{"paper": self.papers[pid], "reason": reason} for pid, reason in picks]
            subject = render_to_string("emails/digest-subject.txt", digest_context(self.edition, items))
            self.subjects[key] = " ".join(subject.split())
        return self.subjects[key]
