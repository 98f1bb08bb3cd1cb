"""One classifier of mail errors (newsletter/mailerrors.py), by SMTP reply code and ESP status."""

import errno
import smtplib
import socket
import ssl

import pytest
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

from newsletter.mailerrors import MailError, mail_error_kind
from tests.backends import esp_response

TRANSIENT, HARD_BOUNCE, PERMANENT = MailError.TRANSIENT, MailError.HARD_BOUNCE, MailError.PERMANENT


def refused(code):
    return smtplib.SMTPRecipientsRefused({"reader@example.org": (code, b"answer")})


def esp(status):
    return AnymailAPIError("ESP said no", status_code=status, response=esp_response(status, "answer"))


@pytest.mark.parametrize("code", [421, 450, 451, 452])
def test_a_4xx_answer_is_transient(code):
    assert mail_error_kind(refused(code)) is TRANSIENT
    assert mail_error_kind(smtplib.SMTPDataError(code, b"try later")) is TRANSIENT
    assert mail_error_kind(smtplib.SMTPSenderRefused(code, b"try later", "digest@localhost")) is TRANSIENT


@pytest.mark.parametrize("code", [550, 551, 552, 553, 554])
def test_a_5xx_answer_to_rcpt_or_data_is_a_hard_bounce_and_to_anything_else_permanent(code):
    assert mail_error_kind(refused(code)) is HARD_BOUNCE
    assert mail_error_kind(smtplib.SMTPDataError(code, b"no")) is HARD_BOUNCE
    assert mail_error_kind(smtplib.SMTPSenderRefused(code, b"no", "digest@localhost")) is PERMANENT



@pytest.mark.parametrize("error", [
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    TimeoutError("timed out"),
    socket.timeout("timed out"),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
    smtplib.SMTPConnectError(421, b"too busy"),
    ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
])
def test_a_server_down_or_unreachable_is_transient(error):
    assert mail_error_kind(error) is TRANSIENT


@pytest.mark.parametrize("error", [
    ssl.SSLCertVerificationError(1, "certificate verify failed: Hostname mismatch"),
    ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),  # EMAIL_USE_SSL on port 587
    smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid"),
    PermissionError(errno.EACCES, "Permission denied"),  # an OSError, but not the network's
    FileNotFoundError(errno.ENOENT, "No such file or directory"),
    TypeError("a local programming error"),
    socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
])
def test_configuration_and_programming_errors_are_permanent(error):
    assert mail_error_kind(error) is PERMANENT


@pytest.mark.parametrize(("status", "kind"), [
    (400, PERMANENT), (401, PERMANENT), (403, PERMANENT), (404, PERMANENT), (422, PERMANENT),
    (429, TRANSIENT), (500, TRANSIENT), (502, TRANSIENT), (503, TRANSIENT),
])
def test_an_esp_answer_is_classified_by_its_status(status, kind):
    assert mail_error_kind(esp(status)) is kind


def test_an_esp_not_reached_is_transient_and_its_refusal_of_a_recipient_permanent():
    assert mail_error_kind(AnymailAPIError("connection error")) is TRANSIENT
    assert mail_error_kind(AnymailRecipientsRefused("on the ESP's suppression list")) is PERMANENT


def test_a_signup_mail_answered_with_an_esp_4xx_is_not_retried(settings, monkeypatch):
    # It was retried five times, as if a wrong API key or a malformed request could mend itself.
    from newsletter import services, tasks

    calls = []

    def refused_by_the_esp(**fields):
        calls.append(fields)
        raise esp(401)

    monkeypatch.setattr(services, "subscriber_signup", refused_by_the_esp)
    with pytest.raises(AnymailAPIError):
        tasks.subscriber_signup_task.delay(email="reader@example.org")
    assert len(calls) == 1
