"""Strict readers for settings taken from the environment.

A value that is set but malformed is a configuration error, never a silent default.
"""

import ipaddress
import os

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name, default, minimum=None, maximum=None):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_hour(name, default):
    """An hour of the day, 0-23."""
    return env_int(name, default, minimum=0, maximum=23)


def env_url(name, default, *, https):
    """An absolute http(s) URL without a trailing slash; https only when `https` is true."""
    value = os.environ.get(name) or default
    scheme, _, rest = value.partition("://")
    allowed = ("https",) if https else ("http", "https")
    if scheme not in allowed or not rest.strip("/"):
        raise ImproperlyConfigured(f"{name} must be an absolute {' or '.join(allowed)}:// URL, got {value!r}")
    return value.rstrip("/")


def env_list(name, default=""):
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_floats(name, allowed):
    """NAME=key:1.5,other:2 as {key: 1.5, other: 2.0}; keys must be among `allowed`."""
    result = {}
    for item in env_list(name):
        key, _, value = item.partition(":")
        if key not in allowed:
            raise ImproperlyConfigured(f"{name}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")
        try:
            result[key] = float(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {key} must be a number, got {value!r}") from None
    return result


def env_networks(name):
    """NAME=10.0.0.5,192.168.0.0/24,::1 as IP networks (an address is a network of one)."""
    try:
        return [ipaddress.ip_network(item, strict=False) for item in env_list(name)]
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}: {error}") from None
