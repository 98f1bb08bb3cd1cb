"""ESP tracking webhooks: anymail's views, refusing malformed payloads with a 400.

Anymail parses each ESP's payload assuming it is well formed; a truncated body, a list where
an object belongs or metadata that is a string raise inside the parser and would answer 500
(which ESPs retry for days). Every event of a post is parsed and checked before any is
recorded, so a bad post stores nothing.
"""

import datetime as dt

import anymail.urls
from anymail.exceptions import AnymailWebhookValidationFailure
from django.http import HttpResponseBadRequest
from django.urls import URLPattern

from newsletter.services import tracking_event_record

TEXT_FIELDS = ("recipient", "message_id", "description", "reject_reason")


class MalformedPayload(Exception):
    pass


def handle_tracking_event(sender, event, esp_name, **kwargs):
    """Receiver of anymail's tracking signal (any ESP); anymail has checked WEBHOOK_SECRET."""
    tracking_event_record(event=event, esp_name=esp_name)


def _check(event):
    if not isinstance(event.metadata, dict):
        raise MalformedPayload("metadata is not an object")
    if not isinstance(event.event_type, str):
        raise MalformedPayload("no event type")
    for name in TEXT_FIELDS:
        if not isinstance(getattr(event, name), (str, type(None))):
            raise MalformedPayload(f"{name} is not a string")
    if not isinstance(event.timestamp, (dt.datetime, type(None))):
        raise MalformedPayload("timestamp is not a date and time")


def _guarded(view_class):
    class Guarded(view_class):
        def run_validators(self, request):
            # Some ESPs' signature checks read the payload before parse_events.
            try:
                super().run_validators(request)
            except AnymailWebhookValidationFailure:
                raise
            except Exception as error:  # noqa: BLE001
                raise MalformedPayload(f"cannot be parsed ({type(error).__name__})") from error

        def parse_events(self, request):
            try:
                events = list(super().parse_events(request))
            # Anymail's parsers raise whatever the malformed shape provokes.
            except Exception as error:  # noqa: BLE001
                raise MalformedPayload(f"cannot be parsed ({type(error).__name__})") from error
            for event in events:
                _check(event)
            return events

        def post(self, request, *args, **kwargs):
            try:
                return super().post(request, *args, **kwargs)
            except MalformedPayload as error:
                return HttpResponseBadRequest(f"Malformed {self.esp_name} webhook payload: {error}.",
                                              content_type="text/plain")

    Guarded.__name__ = Guarded.__qualname__ = view_class.__name__
    return Guarded


# Tracking only: nothing here receives inbound mail.
urlpatterns = [
    URLPattern(p.pattern, _guarded(p.callback.view_class).as_view(), name=p.name)
    for p in anymail.urls.urlpatterns
    if p.name.endswith("tracking_webhook")
]
