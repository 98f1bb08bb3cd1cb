"""Transactional e-mails (confirm, manage, data), the CSS inliner, and the headers every list mail carries.

Each kind has three templates: emails/<kind>-subject.txt, -body.txt and -body.html. Digests,
sent by the million, are rendered per edition in newsletter/rendering.py and built into
messages in newsletter/digest_mail.py, with the same inliner and headers.
"""

import logging
import re

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from premailer import Premailer

from newsletter.links import site_domain


def inline_css(html):
    # Style tags are kept for what cannot be inlined: media queries for phones and dark mode.
    # lxml drops the doctype, without which clients render in quirks mode: it is put back.
    doctype = "<!doctype html>\n" if html.lstrip()[:9].lower() == "<!doctype" else ""
    return doctype + Premailer(
        html,
        keep_style_tags=True,
        remove_classes=False,
        strip_important=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()


# Where newsletter.rendering cuts a digest into reusable fragments; invisible otherwise.
FRAGMENT_MARKERS = re.compile(r"<!--pb:/?items?-->")


def render_parts(kind, ctx):
    """Return (subject, text, html) for an e-mail kind, the HTML with its CSS inlined."""
    ctx = {"SITE_NAME": settings.SITE_NAME, "SITE_URL": settings.SITE_URL, **ctx}
    subject = " ".join(render_to_string(f"emails/{kind}-subject.txt", ctx).split())
    text = FRAGMENT_MARKERS.sub("", render_to_string(f"emails/{kind}-body.txt", ctx))
    html = FRAGMENT_MARKERS.sub("", inline_css(render_to_string(f"emails/{kind}-body.html", ctx)))
    return subject, text, html


class UnfoldedMessage(EmailMultiAlternatives):
    """Headers on one line each: List-Unsubscribe must not be folded (RFC 8058 senders'
    guidance), and every header here stays far below RFC 5322's 998-character limit."""

    def message(self):
        msg = super().message()
        msg.policy = msg.policy.clone(max_line_length=0)
        return msg


def build_message(subject, text, html, to, headers=None, tags=None, metadata=None):
    message = UnfoldedMessage(subject, text, settings.DEFAULT_FROM_EMAIL, [to], headers=headers or {})
    message.attach_alternative(html, "text/html")
    # Read by anymail ESP backends (ignored by SMTP and file backends): lets tracking
    # webhooks map events back to the subscriber and edition.
    message.tags = tags or []
    message.metadata = metadata or {}
    return message


def make_message(kind, to, ctx, headers=None, metadata=None):
    subject, text, html = render_parts(kind, ctx)
    return build_message(subject, text, html, to, headers=headers, tags=[kind], metadata=metadata)


def list_headers(unsubscribe_url):
    """RFC 2369 / RFC 8058 headers every list mail carries, and those that keep out-of-office
    and auto-replies from answering it (RFC 3834, Exchange's X-Auto-Response-Suppress)."""
    domain = site_domain()
    headers = {
        "List-Unsubscribe": f"<{unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"{settings.SITE_NAME} digest <digest.{domain}>",
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "OOF, AutoReply",
        "Precedence": "bulk",
    }
    if settings.DIGEST_REPLY_TO:
        headers["Reply-To"] = settings.DIGEST_REPLY_TO
    return headers
