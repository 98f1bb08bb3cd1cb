"""Signed links. One salt per purpose, so a token made for one link never opens another."""

import datetime as dt
from functools import lru_cache

from django.conf import settings
from django.core import signing

CONFIRM = "newsletter.confirm"
PREFERENCES = "newsletter.preferences"
UNSUBSCRIBE = "newsletter.unsubscribe"
FEEDBACK = "newsletter.feedback"

PREFERENCES_MAX_AGE = dt.timedelta(days=365)


class BadToken(Exception):
    def __init__(self, expired=False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


@lru_cache(maxsize=16)
def _signer(purpose, secret):
    return signing.TimestampSigner(key=secret, salt=purpose)


def make(purpose, subscriber_id):
    """The same token as signing.dumps(subscriber_id, salt=purpose); a digest run makes two
    per recipient, so the signer is made once."""
    return _signer(purpose, settings.SECRET_KEY).sign_object(subscriber_id)


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
