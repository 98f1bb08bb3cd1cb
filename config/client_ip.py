"""The client's address, as far as the proxies in front of the site can be trusted.

X-Forwarded-For is a list that each proxy appends the address it was reached from to; only
the entries added by our own proxies are true, anything to their left is what the client
chose to send. python-ipware parses the header (ports, IPv6, RFC 7239 forms, junk tokens).
"""

from functools import lru_cache

from django.conf import settings
from python_ipware import IpWare

_DIRECT = IpWare(precedence=("REMOTE_ADDR",))


@lru_cache(maxsize=4)
def _forwarded(count):
    # ipware counts the proxies listed in the header besides the client: N - 1.
    return IpWare(precedence=("HTTP_X_FORWARDED_FOR",), proxy_count=count - 1)


def client_ip(request):
    """REMOTE_ADDR with TRUSTED_PROXY_COUNT = 0; with N, the Nth address from the right of
    X-Forwarded-For, or REMOTE_ADDR when the header is shorter or unreadable. None when there
    is no valid address at all."""
    ip = None
    if settings.TRUSTED_PROXY_COUNT:
        ip, _ = _forwarded(settings.TRUSTED_PROXY_COUNT).get_client_ip(request.META)
    if ip is None:
        ip, _ = _DIRECT.get_client_ip(request.META)
    return str(ip) if ip else None


def ratelimit_ip(request):
    """django-ratelimit's RATELIMIT_IP_META_KEY: the client's address; without one (a Unix
    socket and no proxy setting) everyone shares one bucket rather than getting a 500."""
    return client_ip(request) or "0.0.0.0"
