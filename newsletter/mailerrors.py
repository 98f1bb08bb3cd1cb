"""What a mail server's or an ESP's error means: try again later, the address bounced, or
sending this message will never work. The one classifier for digests (delivery.py) and the
signup and link mails (tasks.py), by SMTP reply code and ESP status.
"""

import enum
import errno
import smtplib
import socket
import ssl

from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused


class MailError(enum.Enum):
    TRANSIENT = "transient"  # the server down, busy or answering 4xx: retry with backoff
    HARD_BOUNCE = "hard bounce"  # 5xx to RCPT or DATA: the address refused for good, suppress it
    PERMANENT = "permanent"  # never works as it is (configuration, a refused sender, a bug): fail now


# Network failures that say nothing about the message: the host or the route may come back.
_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.ETIMEDOUT}


def _by_code(code):
    return MailError.TRANSIENT if 400 <= code < 500 else MailError.PERMANENT


def mail_error_kind(error):
    """The MailError kind of an exception raised while sending mail."""
    if isinstance(error, (AnymailRecipientsRefused, AnymailInvalidAddress)):
        return MailError.PERMANENT
    if isinstance(error, AnymailAPIError):
        status = error.status_code
        # No status: the API was not reached. 429: rate limited. 4xx otherwise: the request is wrong.
        return MailError.TRANSIENT if status is None or status == 429 or status >= 500 else MailError.PERMANENT
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return MailError.TRANSIENT if codes and all(400 <= c < 500 for c in codes) else MailError.HARD_BOUNCE
    if isinstance(error, smtplib.SMTPDataError) and 500 <= error.smtp_code < 600:
        return MailError.HARD_BOUNCE
    if isinstance(error, smtplib.SMTPResponseException):
        # A refused sender, failed authentication, a 554 greeting: ours to fix, not the reader's.
        return _by_code(error.smtp_code) if error.smtp_code >= 400 else MailError.TRANSIENT
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return MailError.TRANSIENT
    if isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return MailError.TRANSIENT  # a TLS session cut short
    if isinstance(error, ssl.SSLError):
        # A wrong certificate or host name, or TLS spoken to a port that does not (EMAIL_USE_SSL
        # on 587: WRONG_VERSION_NUMBER): settings to fix, which no retry mends.
        return MailError.PERMANENT
    if isinstance(error, socket.gaierror):
        return MailError.TRANSIENT if error.errno == socket.EAI_AGAIN else MailError.PERMANENT
    if isinstance(error, (ConnectionError, TimeoutError)):
        return MailError.TRANSIENT  # refused, reset, timed out
    if isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS:
        return MailError.TRANSIENT
    return MailError.PERMANENT


def is_transient(error):
    return mail_error_kind(error) is MailError.TRANSIENT
