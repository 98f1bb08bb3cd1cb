"""Digests at scale: CSS inlined once per edition, MIME composed once per distinct content.

premailer costs ~12 ms a document, Django's MIME building ~1-2 ms a message. Instead:

- Per edition, the digest template is rendered once with every paper the edition offers as
  an item and inlined by premailer once, in its real surrounding markup; it is then cut at
  markers into a shell (header and footer) and one card per paper. The reason line, the only
  part of a card that varies, is a placeholder filled in when a digest is assembled.
- A digest is the shell around its cards; identical picks share one assembled content.
- Per content, the MIME bytes are composed once with placeholders for the recipient, the
  Message-ID and the signed links; per recipient only those bytes are replaced.

tests/test_rendering.py shows the assembled HTML equals premailer on the whole document and
the composed MIME equals what Django's e-mail API builds.
"""

import html as html_lib
import time
from dataclasses import dataclass
from functools import cached_property, lru_cache
from email.header import Header
from email.utils import formatdate

from cachetools import LRUCache
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import EmailAlternative
from django.template.loader import render_to_string
from django.utils.text import capfirst

from newsletter.emails import inline_css, list_headers
from newsletter.services import absolute

ITEMS, END_ITEMS, ITEM = "<!--pb:items-->", "<!--pb:/items-->", "<!--pb:item-->"
# Per-recipient stand-ins: plain letters, untouched by escaping, inlining and 8bit transfer.
UNSUBSCRIBE_TOKEN = "xxunsubscribetokenxx"
PREFERENCES_TOKEN = "xxpreferencestokenxx"
FEEDBACK_TOKEN = "xxfeedbacktokenxx"
REASON = "XXREASONXX"  # capfirst leaves it as it is
TO = "xxrecipientxx@paperboy.invalid"
MESSAGE_ID = "<xxmessageidxx@paperboy.invalid>"
DATE = "Xxx, 00 Xxx 0000 00:00:00 -0000"
MAX_LINE = 990  # RFC 5322 allows 998; longer lines would force quoted-printable


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
        "unsubscribe_url": absolute("newsletter:unsubscribe", UNSUBSCRIBE_TOKEN),
        "feedback_token": FEEDBACK_TOKEN,
    }


class Stencil:
    """A text whose placeholders are turned into %-format fields once, so that filling it in
    for a recipient is a single formatting operation (in C) rather than a scan per placeholder."""

    def __init__(self, text, placeholders):
        literal = (lambda s: s) if isinstance(text, str) else str.encode
        template = text.replace(literal("%"), literal("%%"))
        # One replace per placeholder is safe: none occurs inside another's field.
        for placeholder in placeholders:
            template = template.replace(placeholder, literal("%(") + placeholder + literal(")s"))
        self.template = template

    def fill(self, values):
        """values: {placeholder: its value}, of the text's type."""
        return self.template % values


TEXT_SLOTS = [UNSUBSCRIBE_TOKEN, PREFERENCES_TOKEN, FEEDBACK_TOKEN]
MIME_SLOTS = [s.encode() for s in (TO, MESSAGE_ID, UNSUBSCRIBE_TOKEN, PREFERENCES_TOKEN, FEEDBACK_TOKEN, DATE)]


@dataclass
class Content:
    """One distinct digest, ready to be sent to any number of recipients."""

    subject: str
    text: str
    html: str
    mime: bytes | None  # None when a line is too long for 8bit: Django then builds each message

    @cached_property
    def text_stencil(self):
        return Stencil(self.text, TEXT_SLOTS)

    @cached_property
    def html_stencil(self):
        return Stencil(self.html, TEXT_SLOTS)

    @cached_property
    def mime_stencil(self):
        return Stencil(self.mime, MIME_SLOTS) if self.mime is not None else None


class EditionRenderer:
    def __init__(self, edition, papers, notes):
        self.edition = edition
        self.papers = papers
        order = list(papers)
        items = [{"paper": papers[pid], "reason": REASON, "note": notes.get(pid, "")} for pid in order]
        ctx = digest_context(edition, items)
        html_head, html_cards, html_tail = _cut(inline_css(render_to_string("emails/digest-body.html", ctx)))
        text_head, text_cards, text_tail = _cut(render_to_string("emails/digest-body.txt", ctx))
        self.html_shell = (html_head, html_tail)
        self.text_shell = (text_head, text_tail)
        self.html_cards = dict(zip(order, html_cards))
        # Text cards start with their number; it is put back when assembling.
        self.text_cards = {pid: card.split(". ", 1)[1] for pid, card in zip(order, text_cards)}
        # Bounded: distinct contents grow with the number of subscribers, memory must not.
        self.contents = LRUCache(maxsize=300)
        self.subjects = {}

    def content(self, picks):
        picks = tuple(picks)
        if picks not in self.contents:
            self.contents[picks] = self._assemble(picks)
        return self.contents[picks]

    def _assemble(self, picks):
        html_cards = []
        text_cards = []
        for n, (pid, reason) in enumerate(picks, start=1):
            # What Django's {{ reason|capfirst }} gives once lxml has serialised it.
            html_cards.append(self.html_cards[pid].replace(REASON, html_lib.escape(capfirst(reason), quote=False)))
            text_cards.append(f"\n{n}. " + self.text_cards[pid].replace(REASON, reason))
        html = self.html_shell[0] + "".join(html_cards) + self.html_shell[1]
        text = self.text_shell[0] + "".join(text_cards) + self.text_shell[1]
        subject = self._subject(picks)
        return Content(subject, text, html, compose_mime(subject, text, html))

    def _subject(self, picks):
        # The subject names the first paper and counts the rest: far fewer than the contents.
        key = (picks[0][0], len(picks))
        if key not in self.subjects:
            items = [{"paper": self.papers[pid], "reason": reason} for pid, reason in picks]
            subject = render_to_string("emails/digest-subject.txt", digest_context(self.edition, items))
            self.subjects[key] = " ".join(subject.split())
        return self.subjects[key]


def _part(content_type, body):
    encoded = body.encode()
    if max(map(len, encoded.split(b"\n"))) > MAX_LINE:
        return None
    return (
        f'Content-Type: {content_type}; charset="utf-8"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n\n'.encode()
        + encoded
    )


def _header(value):
    return value if value.isascii() else Header(value, "utf-8").encode()


def compose_mime(subject, text, html):
    """multipart/alternative bytes as Django builds them, with placeholders for the recipient."""
    text_part, html_part = _part("text/plain", text), _part("text/html", html)
    if text_part is None or html_part is None:
        return None
    boundary = "==============paperboy-digest-boundary=="
    headers = {
        "Subject": _header(subject),
        "From": _header(settings.DEFAULT_FROM_EMAIL),
        "To": TO,
        "Date": DATE,
        "Message-ID": MESSAGE_ID,
        **list_headers(f"{settings.SITE_URL}/u/{UNSUBSCRIBE_TOKEN}/"),
    }
    head = f'Content-Type: multipart/alternative;\n boundary="{boundary}"\nMIME-Version: 1.0\n'
    head += "".join(f"{name}: {value}\n" for name, value in headers.items())
    return (
        head.encode()
        + f"\n--{boundary}\n".encode()
        + text_part
        + f"\n--{boundary}\n".encode()
        + html_part
        + f"\n--{boundary}--\n".encode()
    )


class RawMIME:
    """Stands in for the email.message.Message that Django's backends serialise."""

    def __init__(self, data):
        self.data = data

    def as_bytes(self, unixfrom=False, linesep="\n"):
        return self.data if linesep == "\n" else self.data.replace(b"\n", linesep.encode())

    def as_string(self, unixfrom=False, linesep="\n"):
        return self.as_bytes(linesep=linesep).decode()

    def get_charset(self):
        return None


class DigestMessage(EmailMultiAlternatives):
    """A digest personalised from a shared Content. ESP (anymail) backends read its fields
    like any message's; SMTP, file and in-memory backends get the pre-composed bytes. The
    text and HTML bodies are filled in only if something reads them."""

    def __init__(self, *args, content, links, raw=None, **kwargs):
        self._content, self._links = content, links
        self._body, self._alternatives = None, None
        super().__init__(*args, **kwargs)
        self.raw = raw

    @property
    def body(self):
        if self._body is None:
            self._body = self._content.text_stencil.fill(self._links)
        return self._body

    @body.setter
    def body(self, value):
        self._body = value or None

    @property
    def alternatives(self):
        if self._alternatives is None:
            self._alternatives = [EmailAlternative(self._content.html_stencil.fill(self._links), "text/html")]
        return self._alternatives

    @alternatives.setter
    def alternatives(self, value):
        self._alternatives = value or None

    def message(self):
        return RawMIME(self.raw) if self.raw is not None else super().message()


@lru_cache(maxsize=2)
def _date(seconds):
    return formatdate(seconds).encode()


def personal_message(content, *, email, unsubscribe_token, preferences_token, feedback_token, message_id, metadata):
    mime = content.mime_stencil
    links = {UNSUBSCRIBE_TOKEN: unsubscribe_token, PREFERENCES_TOKEN: preferences_token, FEEDBACK_TOKEN: feedback_token}
    unsubscribe_url = f"{settings.SITE_URL}/u/{unsubscribe_token}/"
    headers = {"Message-ID": message_id, **list_headers(unsubscribe_url)}
    raw = None
    if mime is not None and email.isascii():
        values = (email, message_id, unsubscribe_token, preferences_token, feedback_token)
        raw = mime.fill(dict(zip(MIME_SLOTS, [*(v.encode() for v in values), _date(int(time.time()))])))
    message = DigestMessage(
        content.subject, None, settings.DEFAULT_FROM_EMAIL, [email], headers=headers, raw=raw, content=content, links=links
    )
    message.tags = ["digest"]
    message.metadata = metadata
    return message


def batch_message(content, recipients):
    """One message for many recipients of the same content, for ESPs that send in batches:
    per-recipient links as the ESP's merge fields (DIGEST_MERGE_FIELD, e.g. Mailgun's
    %recipient.unsubscribe%), per-recipient List-Unsubscribe and Message-ID as merge headers,
    per-recipient metadata so tracking webhooks map back to (subscriber, edition).

    recipients: [(email, {placeholder: token}, message id, metadata)].
    """
    fields = {UNSUBSCRIBE_TOKEN: "unsubscribe", PREFERENCES_TOKEN: "preferences", FEEDBACK_TOKEN: "feedback"}
    merge = {placeholder: settings.DIGEST_MERGE_FIELD.format(name) for placeholder, name in fields.items()}
    message = EmailMultiAlternatives(
        content.subject,
        content.text_stencil.fill(merge),
        settings.DEFAULT_FROM_EMAIL,
        [email for email, _, _, _ in recipients],
        headers={k: v for k, v in list_headers("").items() if k != "List-Unsubscribe"},
    )
    message.attach_alternative(content.html_stencil.fill(merge), "text/html")
    message.merge_data = {email: {fields[p]: t for p, t in links.items()} for email, links, _, _ in recipients}
    message.merge_headers = {
        email: {"List-Unsubscribe": f"<{settings.SITE_URL}/u/{links[UNSUBSCRIBE_TOKEN]}/>", "Message-ID": message_id}
        for email, links, message_id, _ in recipients
    }
    message.merge_metadata = {email: metadata for email, _, _, metadata in recipients}
    message.tags = ["digest"]
    return message
