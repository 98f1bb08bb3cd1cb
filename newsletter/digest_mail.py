"""Digest messages: a shared Content (newsletter/rendering.py) filled in for each recipient.

Two paths: personal_message() makes one message per recipient (SMTP, file and in-memory
backends send its pre-composed bytes; ESP backends read its fields), batch_message() one
message per group of recipients of the same content, for ESPs that send in batches (merge
data). Transactional mails (confirm, manage) are built in newsletter/emails.py.
"""

import email
import time
from email.header import Header
from email.utils import formatdate
from functools import cached_property, lru_cache

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import ADDRESS_HEADERS, EmailAlternative, sanitize_address

from newsletter.emails import list_headers
from newsletter.links import FEEDBACK_TOKEN, PREFERENCES_TOKEN, SLOTS, UNSUBSCRIBE_TOKEN, VIEW_TOKEN, unsubscribe_url

TO = "xxrecipientxx@paperboy.invalid"
MESSAGE_ID = "<xxmessageidxx@paperboy.invalid>"
DATE = "Xxx, 00 Xxx 0000 00:00:00 -0000"
TO_FIELD, MESSAGE_ID_FIELD, DATE_FIELD = TO.encode(), MESSAGE_ID.encode(), DATE.encode()
HEADER_SLOTS = [TO, MESSAGE_ID, DATE, UNSUBSCRIBE_TOKEN]
MAX_LINE = 998 - 2 * 50  # RFC 5322's limit, less room for two signed links (~50 longer than their fields)


def stencil(text, placeholders):
    """`text` as a %-format template with a field for each placeholder, so that filling it in
    for a recipient is one formatting operation (in C) rather than a scan per placeholder."""
    template = text.replace("%", "%%")
    for placeholder in placeholders:  # one replace each is safe: none occurs inside another
        template = template.replace(placeholder, f"%({placeholder})s")
    return template


class Chunk:
    """A piece of a message body, encoded once, with what joining needs to know of its lines:
    the length of its first and last line and of the longest line in between."""

    __slots__ = ("data", "first", "inner", "last", "breaks")

    def __init__(self, text):
        self.data = text.encode()
        lines = self.data.split(b"\n")
        self.breaks = len(lines) > 1
        self.first, self.last = len(lines[0]), len(lines[-1])
        self.inner = max(map(len, lines[1:-1]), default=0)

    @classmethod
    def joined(cls, chunks):
        """One chunk of these, joined; its line lengths worked out from theirs."""
        joined = cls.__new__(cls)
        joined.data = b"".join([chunk.data for chunk in chunks])
        joined.breaks, joined.first, joined.inner, joined.last = _lines(chunks)
        return joined


def _lines(chunks):
    """(whether there is a line break, the first line's length, the longest line's between,
    the last line's) of the chunks joined, without joining them. Comparisons rather than
    max(): it runs for every digest."""
    breaks, first, inner, current = False, 0, 0, 0
    for chunk in chunks:
        if not chunk.breaks:
            current += chunk.first
            continue
        if not breaks:
            breaks, first = True, current + chunk.first
        elif current + chunk.first > inner:
            inner = current + chunk.first
        if chunk.inner > inner:
            inner = chunk.inner
        current = chunk.last
    return breaks, first if breaks else current, inner, current


def longest_line(chunks):
    """The longest line of the chunks joined, without joining them."""
    _, first, inner, last = _lines(chunks)
    return max(first, inner, last)


def fits_8bit(*bodies):
    """Whether bodies, each a list of chunks, can go as 8bit (RFC 5322's line limit)."""
    return all(longest_line(chunks) <= MAX_LINE for chunks in bodies)


@lru_cache(maxsize=1024)
def _encoded(name, value):
    """A header's value as Django encodes it: an address's display name alone, any other
    header whole. Remembered: encoding is slow in the email package, and values repeat."""
    if value.isascii():
        return value
    if name.lower() in ADDRESS_HEADERS:
        return sanitize_address(value, "utf-8")
    return Header(value, "utf-8").encode()


BOUNDARY = "==============paperboy-digest-boundary=="


def mime_head(subject):
    """A digest's headers as a template (stencil()) with fields for the recipient's address,
    Message-ID, Date and unsubscribe link."""
    headers = {
        "Subject": subject,
        "From": settings.DEFAULT_FROM_EMAIL,
        "To": TO,
        "Date": DATE,
        "Message-ID": MESSAGE_ID,
        **list_headers(unsubscribe_url(UNSUBSCRIBE_TOKEN)),
    }
    head = f'Content-Type: multipart/alternative;\n boundary="{BOUNDARY}"\nMIME-Version: 1.0\n'
    head += "".join(f"{name}: {_encoded(name, value)}\n" for name, value in headers.items())
    return stencil(head, HEADER_SLOTS).encode()


def _part_head(content_type):
    return (
        f'\n--{BOUNDARY}\nContent-Type: {content_type}; charset="utf-8"\n'
        "MIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n\n"
    ).encode()


TEXT_HEAD, HTML_HEAD, END = _part_head("text/plain"), _part_head("text/html"), f"\n--{BOUNDARY}--\n".encode()


def compose_mime(head, text, html):
    """multipart/alternative bytes as Django builds them, as a template (stencil()) with fields
    for the recipient: the head (mime_head()) and the encoded text and HTML bodies, each a list
    of pieces, whose lines the caller has checked (fits_8bit()). One copy of the pieces."""
    return b"".join([head, TEXT_HEAD, *text, HTML_HEAD, *html, END])


class RawMIME:
    """Stands in for the email.message.Message that Django's backends serialise: the
    pre-composed bytes as they are, and, for whoever reads headers or parts
    (msg.message()["List-Unsubscribe"]), a Message parsed from them on first read."""

    def __init__(self, data):
        self.data = data

    def as_bytes(self, unixfrom=False, linesep="\n"):
        return self.data if linesep == "\n" else self.data.replace(b"\n", linesep.encode())

    def as_string(self, unixfrom=False, linesep="\n"):
        return self.as_bytes(linesep=linesep).decode()

    def get_charset(self):
        return None

    @cached_property
    def parsed(self):
        return email.message_from_bytes(self.data)

    def __getitem__(self, name):
        return self.parsed[name]

    def __contains__(self, name):
        return name in self.parsed

    def __getattr__(self, name):  # get, get_all, items, keys, walk, get_payload ...
        if name == "parsed":
            raise AttributeError(name)
        return getattr(self.parsed, name)


class _FilledIn:
    """A DigestMessage field made from its content and links when first read: SMTP, file and
    in-memory backends send the pre-composed bytes and never read it. Settable, as Django's
    EmailMessage.__init__ sets it (to empty, here)."""

    def __init__(self, make):
        self.make = make

    def __set_name__(self, owner, name):
        self.name = f"_{name}"

    def __get__(self, message, owner=None):
        if message is None:
            return self
        value = message.__dict__.get(self.name)
        if value is None:
            value = message.__dict__[self.name] = self.make(message)
        return value

    def __set__(self, message, value):
        message.__dict__[self.name] = value or None


class DigestMessage(EmailMultiAlternatives):
    """A digest personalised from a shared Content. ESP (anymail) backends read its fields
    like any message's; SMTP, file and in-memory backends get the pre-composed bytes."""

    body = _FilledIn(lambda m: m.content.text_template % m.links)
    alternatives = _FilledIn(lambda m: [EmailAlternative(m.content.html_template % m.links, "text/html")])
    extra_headers = _FilledIn(
        lambda m: {"Message-ID": m.message_id, **list_headers(unsubscribe_url(m.links[UNSUBSCRIBE_TOKEN]))}
    )

    def __init__(self, *args, content, links, message_id, raw=None, **kwargs):
        self.content, self.links, self.message_id, self.raw = content, links, message_id, raw
        super().__init__(*args, **kwargs)

    def message(self):
        return RawMIME(self.raw) if self.raw is not None else super().message()


@lru_cache(maxsize=2)
def _date(seconds):
    return formatdate(seconds).encode()


SLOT_FIELDS = {slot: slot.encode() for slot in SLOTS}


def personal_message(content, *, email, links, message_id, metadata):
    """links: {placeholder (UNSUBSCRIBE_TOKEN, ...): the recipient's token}."""
    raw = None
    if content.mime_template is not None and email.isascii():
        raw = content.mime_template % {
            TO_FIELD: email.encode(),
            MESSAGE_ID_FIELD: message_id.encode(),
            DATE_FIELD: _date(int(time.time())),
            **{SLOT_FIELDS[slot]: value.encode() for slot, value in links.items()},
        }
    message = DigestMessage(
        content.subject, None, settings.DEFAULT_FROM_EMAIL, [email], raw=raw, content=content, links=links,
        message_id=message_id,
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
    fields = {UNSUBSCRIBE_TOKEN: "unsubscribe", PREFERENCES_TOKEN: "preferences", FEEDBACK_TOKEN: "feedback", VIEW_TOKEN: "view"}
    merge = {placeholder: settings.DIGEST_MERGE_FIELD.format(name) for placeholder, name in fields.items()}
    message = EmailMultiAlternatives(
        content.subject,
        content.text_template % merge,
        settings.DEFAULT_FROM_EMAIL,
        [email for email, _, _, _ in recipients],
        headers={k: v for k, v in list_headers("").items() if k != "List-Unsubscribe"},
    )
    message.attach_alternative(content.html_template % merge, "text/html")
    message.merge_data = {email: {fields[p]: t for p, t in links.items()} for email, links, _, _ in recipients}
    message.merge_headers = {
        email: {"List-Unsubscribe": f"<{unsubscribe_url(links[UNSUBSCRIBE_TOKEN])}>", "Message-ID": message_id}
        for email, links, message_id, _ in recipients
    }
    message.merge_metadata = {email: metadata for email, _, _, metadata in recipients}
    message.tags = ["digest"]
    return message
