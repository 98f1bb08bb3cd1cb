"""Absolute URLs, signed per-recipient links and message ids.

A digest is rendered once per edition with a placeholder (a slot) where each recipient's
signed token goes; recipient_links() gives one recipient's values for those slots.
"""

from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse

from newsletter import tokens

# Per-recipient stand-ins: plain letters, untouched by escaping, CSS inlining and 8bit transfer.
UNSUBSCRIBE_TOKEN = "xxunsubscribetokenxx"
PREFERENCES_TOKEN = "xxpreferencestokenxx"
FEEDBACK_TOKEN = "xxfeedbacktokenxx"
VIEW_TOKEN = "xxviewtokenxx"
SLOTS = {
    UNSUBSCRIBE_TOKEN: tokens.UNSUBSCRIBE,
    PREFERENCES_TOKEN: tokens.PREFERENCES,
    FEEDBACK_TOKEN: tokens.FEEDBACK,
    VIEW_TOKEN: tokens.VIEW,
}


def absolute(viewname, *args):
    return settings.SITE_URL + reverse(viewname, args=args)


def confirm_url(subscriber):
    return absolute("newsletter:confirm", tokens.make(tokens.CONFIRM, subscriber.pk))


def preferences_path(subscriber):
    return reverse("newsletter:preferences", args=[tokens.make(tokens.PREFERENCES, subscriber.pk)])


def preferences_url(subscriber):
    return settings.SITE_URL + preferences_path(subscriber)


def data_url(subscriber):
    return absolute("newsletter:data", tokens.make(tokens.DATA, subscriber.pk))


def unsubscribe_path(subscriber):
    return reverse("newsletter:unsubscribe", args=[tokens.make(tokens.UNSUBSCRIBE, subscriber.pk)])


def unsubscribe_url(token):
    """The one-click unsubscribe URL for a token (or for its slot)."""
    return _unsubscribe_pattern(settings.SITE_URL).replace(UNSUBSCRIBE_TOKEN, token)


@lru_cache(maxsize=4)
def _unsubscribe_pattern(site_url):
    # Reversed once, with the slot, rather than for every recipient; keyed by SITE_URL, which
    # absolute() reads (tests change it).
    return absolute("newsletter:unsubscribe", UNSUBSCRIBE_TOKEN)


def recipient_links(subscriber_id):
    """{slot: the subscriber's signed token} for each link in a digest."""
    return dict(zip(SLOTS, tokens.make_many(SLOTS.values(), subscriber_id)))


def site_domain():
    """The host name of SITE_URL, for List-Id and Message-IDs."""
    return _hostname(settings.SITE_URL)


@lru_cache(maxsize=4)
def _hostname(url):
    return urlsplit(url).hostname


def digest_message_id_format(day):
    """Message-ID of a subscriber's digest of `day`, with a field for the subscriber's id: the
    same if a copy were ever sent twice, so mail clients fold duplicates."""
    return f"<digest.{day:%Y%m%d}.{{}}@{site_domain()}>"


def digest_metadata(day_iso, subscriber_id, delivery_id):
    """What ESP tracking webhooks hand back, to map an event to its subscriber and delivery."""
    return {"subscriber": str(subscriber_id), "edition": day_iso, "delivery": str(delivery_id)}
