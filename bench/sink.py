"""An in-memory e-mail backend for the benchmark: serialises each message, as an SMTP or
file backend would, then drops it (keeping every message would make memory grow with N)."""

from django.core.mail.backends.base import BaseEmailBackend


class SinkBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        for message in email_messages:
            message.message().as_bytes()
        return len(email_messages)
