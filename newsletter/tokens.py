"""Signed links. One salt per purpose, so a token made for one link never opens another."""

import binascii
import datetime as dt
import hashlib
import time
from functools import lru_cache

from django.conf import settings
from django.core import signing

CONFIRM = "newsletter.confirm"
PREFERENCES = "newsletter.preferences"
UNSUBSCRIBE = "newsletter.unsubscribe"
FEEDBACK = "newsletter.feedback"
VIEW = "newsletter.view"  # a reader's own copy of a digest on the web
DATA = "newsletter.data"  # export and erasure: mailed on request, never in a digest

PREFERENCES_MAX_AGE = dt.timedelta(days=365)
# Short: the link goes to the subscriber's own address when asked for, so one that is
# forwarded or left in a mailbox soon stops exposing the consent record and erasure.
DATA_MAX_AGE_MINUTES = 60
DATA_MAX_AGE = dt.timedelta(minutes=DATA_MAX_AGE_MINUTES)


class BadToken(Exception):
    def __init__(self, expired=False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


# What XOR with HMAC's inner and outer pad bytes does to each byte, for bytes.translate().
_XOR_36, _XOR_5C = (bytes(b ^ pad for b in range(256)) for pad in (0x36, 0x5C))


@lru_cache(maxsize=16)
def hmac_pads(key):
    """HMAC-SHA256 (RFC 2104) with `key` (bytes), as its two SHA-256 states after the padded
    key: each message then copies them rather than starting HMAC afresh (hmac_digest())."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return hashlib.sha256(key.translate(_XOR_36)), hashlib.sha256(key.translate(_XOR_5C))


def hmac_digest(pads, message):
    """hmac.digest(key, message, "sha256") for the key of these pads (tested)."""
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.digest()


@lru_cache(maxsize=16)
def _pads(purpose, secret):
    # Django's Signer key: sha256(salt + "signer" + secret).
    return hmac_pads(hashlib.sha256(f"{purpose}signer{secret}".encode()).digest())


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data):
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URLSAFE).decode()


@lru_cache(maxsize=2)
def _timestamp(seconds):
    return signing.b62_encode(seconds)


def make(purpose, subscriber_id):
    """The same token as signing.dumps(subscriber_id, salt=purpose) (tested), which read()
    verifies; made directly because a digest run makes three per recipient and Django's
    path (JSON, key derivation, several wrappers) is most of a recipient's cost."""
    return make_many([purpose], subscriber_id)[0]


def make_many(purposes, subscriber_id):
    """make() for each purpose; the signed value is the same for all of them."""
    value = f"{_b64(str(int(subscriber_id)).encode())}:{_timestamp(int(time.time()))}"
    encoded, secret = value.encode(), settings.SECRET_KEY
    return [f"{value}:{_b64(hmac_digest(_pads(purpose, secret), encoded))}" for purpose in purposes]


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
