"""E-mail backends for tests: Django's locmem outbox, with failures on demand."""

import requests
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core.mail.backends.locmem import EmailBackend


def esp_response(status, reason):
    response = requests.Response()
    response.status_code, response.reason, response._content = status, reason, b'{"message": "try later"}'
    return response


class FlakyBackend(EmailBackend):
    """Fails the first `failures` sends with a 503 from the 'ESP', then delivers."""

    failures = 0

    def send_messages(self, messages):
        if FlakyBackend.failures > 0:
            FlakyBackend.failures -= 1
            raise AnymailAPIError("Service Unavailable", status_code=503, response=esp_response(503, "Service Unavailable"))
        return super().send_messages(messages)


class RefusingBackend(EmailBackend):
    """Refuses one address permanently, like an ESP's suppression list."""

    refused = "bob@example.org"

    def send_messages(self, messages):
        if any(self.refused in m.to for m in messages):
            raise AnymailRecipientsRefused("Recipient on the ESP's suppression list")
        return super().send_messages(messages)
