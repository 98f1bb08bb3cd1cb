"""Signed links. One salt per purpose, so a token made for one link never opens another."""

import datetime as dt

from django.conf import settings
from django.core import signing

CONFIRM = "newsletter.confirm"
PREFERENCES = "newsletter.preferences"
UNSUBSCRIBE = "newsletter.unsubscribe"

PREFERENCES_MAX_AGE = dt.timedelta(days=365)


class BadToken(Exception):
    def __init__(self, expired=False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def make(purpose, subscriber_id):
    return signing.dumps(subscriber_id, salt=purpose, compress=False)


def read(purpose, token, max_age=None):
    """Return the subscriber id a token was made for, or raise BadToken."""
    try:
        value = signing.loads(token, salt=purpose, max_age=max_age)
    except signing.SignatureExpired:
        raise BadToken(expired=True) from None
    except signing.BadSignature:
        raise BadToken() from None
    if not isinstance(value, int):
        raise BadToken()
    return value


def confirm_max_age():
    return dt.timedelta(hours=settings.CONFIRM_MAX_AGE_HOURS)
