"""ESP tracking webhooks: anymail's views, refusing malformed payloads with a 400.

Anymail parses each ESP's payload assuming it is well formed; a truncated body, a list where
an object belongs or metadata that is a string raise inside the parser and would answer 500
(which ESPs retry for days). Every event of a post is parsed and checked before any is
recorded, so a bad post stores nothing.
"""

import datetime as dt
import logging

import anymail.urls
from anymail.exceptions import AnymailConfigurationError, AnymailImproperlyInstalled, AnymailWebhookValidationFailure
from django.conf import settings
from django.http import HttpResponse, HttpResponseBadRequest
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt

from newsletter.tracking import tracking_events_record

log = logging.getLogger(__name__)
TEXT_FIELDS = ("recipient", "description", "reject_reason")


class MalformedPayload(Exception):
    pass


class NotTracking(MalformedPayload):
    """A post that is no tracking event (inbound mail, most often): a 400 the ESP does not retry."""


def _check(event):
    if not isinstance(event.metadata, (dict, type(None))):  # None: Postal has no metadata
        raise MalformedPayload("metadata is not an object")
    if not isinstance(event.event_type, str):
        raise MalformedPayload("no event type")
    for name in TEXT_FIELDS:
        if not isinstance(getattr(event, name), (str, type(None))):
            raise MalformedPayload(f"{name} is not a string")
    if not isinstance(event.message_id, (str, int, type(None))):  # int: Postal's ids
        raise MalformedPayload("message_id is not a string")
    if not isinstance(event.timestamp, (dt.datetime, type(None))):
        raise MalformedPayload("timestamp is not a date and time")


# Not the payload's fault: a failed secret or signature check (400 by anymail), or the ESP
# not being configured here (503 below).
NOT_MALFORMED = (AnymailWebhookValidationFailure, AnymailConfigurationError)


def _parsing(step, request):
    """Run an anymail step that reads the payload; anything it raises means it is malformed."""
    try:
        return step(request)
    except NOT_MALFORMED:
        raise
    except Exception as error:  # noqa: BLE001 - parsers raise whatever the bad shape provokes
        raise MalformedPayload(f"cannot be parsed ({type(error).__name__})") from error


def _guarded(view_class):
    class Guarded(view_class):
        def run_validators(self, request):
            # Some ESPs' signature checks read the payload before parse_events does.
            _parsing(super().run_validators, request)

        def parse_events(self, request):
            try:
                events = list(_parsing(super().parse_events, request))
            except AnymailImproperlyInstalled:
                raise
            except AnymailConfigurationError as error:
                # Raised by a parser, it is anymail recognising another kind of payload (inbound
                # mail routed to the tracking URL): a 5xx would have the ESP retry it forever.
                raise NotTracking(str(error)) from error
            for event in events:
                _check(event)
            return events

        def post(self, request, *args, **kwargs):
            # Anymail's post() sends its tracking signal once per event; a post's events are
            # recorded together instead, as a SendGrid post may hold thousands.
            try:
                self.run_validators(request)
                events = self.parse_events(request)
            except NotTracking as error:
                return HttpResponseBadRequest(f"Not a {self.esp_name} tracking event: {error}", content_type="text/plain")
            except MalformedPayload as error:
                return HttpResponseBadRequest(f"Malformed {self.esp_name} webhook payload: {error}.",
                                              content_type="text/plain")
            tracking_events_record(events=events, esp_name=self.esp_name)
            return HttpResponse()

    Guarded.__name__ = Guarded.__qualname__ = view_class.__name__
    return Guarded


def _tracking_view(view_class):
    view = _guarded(view_class).as_view()

    # ESPs post without a CSRF token; anymail's view is exempt, and so must be this wrapper,
    # which CsrfViewMiddleware checks in its place (the secret or signature authenticates).
    @csrf_exempt
    def tracking_view(request, *args, **kwargs):
        if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
            # Without a secret anymail would take anyone's posts, and a forged bounce suppresses
            # a subscriber: closed until the operator sets one (README, "Production").
            log.error("%s webhook called, but ANYMAIL_WEBHOOK_SECRET is not set", view_class.esp_name)
            return HttpResponse("Webhooks are not configured on this site.", status=503, content_type="text/plain")
        # Anymail checks an ESP's settings (signing keys, packages) as it builds the view for a
        # request: the ESPs this site does not use answer 503 and say why (the setting or the
        # package missing: Amazon SES needs boto3, see README), not 500.
        try:
            return view(request, *args, **kwargs)
        except AnymailConfigurationError as error:
            log.error("%s webhook is not configured: %s", view_class.esp_name, error)
            return HttpResponse(f"This ESP's webhook is not configured on this site: {error}", status=503,
                                content_type="text/plain")

    return tracking_view


# Tracking only: nothing here receives inbound mail.
urlpatterns = [
    URLPattern(p.pattern, _tracking_view(p.callback.view_class), name=p.name)
    for p in anymail.urls.urlpatterns
    if p.name.endswith("tracking_webhook")
]
