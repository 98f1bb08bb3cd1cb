"""ESP backends tuned for sending digests in batches. EMAIL_BACKEND=newsletter.esp.MailgunBackend.

anymail's Mailgun backend, with these costs of a batch call taken out (measured with
bench/digests.py --mode batch against anymail's own backend, README "How digests are sent";
each tested to change nothing that is sent):

- it posts a message without attachments as an URL-encoded form, which requests encodes
  byte by byte in Python; Mailgun takes the same fields as multipart/form-data, assembled
  here by joining bytes (requests' own multipart encoder builds an object per field);
- anymail parses every recipient's address twice with the email package's full RFC 5322
  parsers and formats it back; subscribers' addresses are plain dot-atom addr-specs,
  recognised here by a strict pattern and formatted as they are (anything else still goes
  through anymail's parser);
- anymail copies each recipient's merge data, headers and metadata making sure no value is a
  lazy string, by raising and catching an exception for every plain one;
- it parses the From address, the same in every call, with those parsers each time; here
  once per address;
- requests reads proxy and CA settings from the environment on every request (two scans of
  os.environ); they are read once per connection instead, for the API's host;
- requests' Session.request() merges the session's cookies, parameters, auth and headers
  into each request; this session has no cookies, parameters or auth of its own, so a
  request takes the session's headers and hooks and is sent as it is.
"""

import os
import re
import uuid
from functools import lru_cache

import requests
from anymail.backends.mailgun import EmailBackend, MailgunPayload
from anymail.utils import EmailAddress
from anymail.utils import force_non_lazy_dict as anymail_force_non_lazy_dict
from anymail.utils import parse_address_list as anymail_parse_address_list
from requests.utils import get_environ_proxies

ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_ADDRESS = re.compile(rf"({ATOM}(?:\.{ATOM})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


class PlainAddress(EmailAddress):
    """An EmailAddress that is a plain local@domain (PLAIN_ADDRESS): it formats as itself."""

    def __init__(self, address, username, domain):
        super().__init__(username=username, domain=domain)
        self._address = address

    @property
    def addr_spec(self):
        return self._address

    def format(self, *, use_rfc2047=False, idna_encode=None):
        return self._address  # no display name to encode; an ASCII domain


def parse_address_list(address_list, field=None):
    """anymail's parse_address_list(), without its full parse when every address is a plain
    local@domain (no display name, quoting, comments or non-ASCII), and parsing a single
    address (the From address) once."""
    if isinstance(address_list, str):
        return list(_parsed(address_list, field))
    if isinstance(address_list, (list, tuple)) and all(isinstance(a, str) for a in address_list):
        matches = [PLAIN_ADDRESS.fullmatch(address) for address in address_list]
        if address_list and all(matches):
            return [PlainAddress(m[0], m[1], m[2]) for m in matches]
    return anymail_parse_address_list(address_list, field=field)


@lru_cache(maxsize=64)
def _parsed(address, field):
    return tuple(anymail_parse_address_list(address, field=field))


def force_non_lazy_dict(obj):
    """anymail's force_non_lazy_dict() (a deep copy, lazy strings made str), without raising
    and catching an exception for each plain string in it."""
    if type(obj) is str:
        return obj
    if type(obj) is dict:
        return {key: force_non_lazy_dict(value) for key, value in obj.items()}
    return anymail_force_non_lazy_dict(obj)


OURS = {anymail_parse_address_list: parse_address_list, anymail_force_non_lazy_dict: force_non_lazy_dict}


def _with_ours(attrs):
    return tuple((attr, combiner, OURS.get(converter, converter)) for attr, combiner, converter in attrs)


class MultipartMailgunPayload(MailgunPayload):
    base_message_attrs = _with_ours(MailgunPayload.base_message_attrs)
    anymail_message_attrs = _with_ours(MailgunPayload.anymail_message_attrs)

    def get_request_params(self, api_url):
        params = super().get_request_params(api_url)
        fields = [
            (name, value)
            for name, values in (params.pop("data") or {}).items()
            for value in (values if isinstance(values, list) else [values])
        ]
        if params.get("files"):  # attachments: requests encodes them with the fields
            return {**params, "files": [(name, (None, value)) for name, value in fields] + list(params["files"])}
        boundary = uuid.uuid4().hex
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'.encode()
            + (value if isinstance(value, bytes) else str(value).encode())
            + b"\r\n"
            for name, value in fields
        )
        headers = {**(params.get("headers") or {}), "Content-Type": f"multipart/form-data; boundary={boundary}"}
        return {**params, "data": body + f"--{boundary}--\r\n".encode(), "headers": headers, "files": None}


def _quoted(name):
    # As browsers (and urllib3) escape a form field's name (HTML5).
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class PlainSession(requests.Session):
    """A session that sends each request with its own headers and hooks only (see above)."""

    def request(self, method, url, params=None, data=None, headers=None, files=None, auth=None, timeout=None, **kwargs):
        prepared = requests.Request(
            method, url, params=params, data=data, files=files, auth=auth,
            headers={**self.headers, **(headers or {})}, hooks=self.hooks,
        ).prepare()
        return self.send(prepared, timeout=timeout, **kwargs)


class MailgunBackend(EmailBackend):
    def build_message_payload(self, message, defaults):
        return MultipartMailgunPayload(message, defaults, self)

    def create_session(self):
        configured = super().create_session()  # anymail's User-Agent, and hooks when debugging
        session = PlainSession()
        session.headers, session.hooks = configured.headers, configured.hooks
        configured.close()
        # What requests would otherwise look up in the environment for every request.
        session.trust_env = False
        session.proxies = get_environ_proxies(self.api_url)  # honours NO_PROXY
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        return session
