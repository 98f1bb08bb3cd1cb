"""newsletter.esp: the shortcuts must give what anymail and requests would have."""

import pytest
import requests
from anymail.exceptions import AnymailInvalidAddress
from anymail.utils import force_non_lazy_dict as anymail_force_non_lazy_dict
from anymail.utils import parse_address_list as anymail_parse_address_list
from django.utils.translation import gettext_lazy

from newsletter.esp import MailgunBackend, force_non_lazy_dict, parse_address_list


@pytest.mark.parametrize("addresses", [
    ["reader@example.org", "first.last+tag@sub.example.co.uk", "o'neil@example.org"],
    ["Reader <reader@example.org>", "plain@example.org"],  # a display name: anymail's parser
    ['"quoted local"@example.org'],
    ["zoë@exämple.org"],
    ["a@b.c, d@e.f"],  # two in one string
    "Paperboy <digest@paperboy.test>",  # a single address (the From address): parsed once
])
def test_addresses_parse_as_anymail_parses_them(addresses):
    ours, theirs = parse_address_list(addresses), anymail_parse_address_list(addresses)
    assert parse_address_list(addresses) == ours and parse_address_list(addresses) is not ours
    def seen(address):
        return (address.display_name, address.addr_spec, address.address, address.username, address.domain,
                address.format(idna_encode=lambda domain: domain.encode("idna").decode()), str(address))

    assert [seen(a) for a in ours] == [seen(a) for a in theirs]


@pytest.mark.parametrize("data", [
    {"reader@example.org": {"unsubscribe": "token", "v:edition": "2024-03-14"}},
    {"reader@example.org": {"note": gettext_lazy("Yes")}, "other@example.org": {}},  # a lazy string
    {"a": ["list", gettext_lazy("No")], "b": 3, "c": None},
    "not a dict",
])
def test_merge_data_is_copied_as_anymail_copies_it(data):
    ours, theirs = force_non_lazy_dict(data), anymail_force_non_lazy_dict(data)
    assert ours == theirs and repr(ours) == repr(theirs)
    assert (ours is data) == (theirs is data)  # a copy of a dict, never the same one


def test_an_invalid_address_is_refused_as_anymail_refuses_it():
    with pytest.raises(AnymailInvalidAddress, match="no-domain"):
        parse_address_list(["reader@example.org", "no-domain"])
    for _ in range(2):
        with pytest.raises(AnymailInvalidAddress, match="no-domain.*in `from_email`"):
            parse_address_list("no-domain", field="from_email")


@pytest.mark.parametrize("no_proxy, expected", [("", {"https": "http://proxy.local:3128"}), ("api.mailgun.net", {})])
def test_the_session_uses_the_environments_proxy_for_the_api_host(settings, monkeypatch, no_proxy, expected):
    settings.ANYMAIL = {"MAILGUN_API_KEY": "key"}
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = MailgunBackend().create_session()
    assert {k: v for k, v in session.proxies.items() if k == "https"} == expected
    assert session.verify == "/etc/ssl/certs/ca-certificates.crt"


def test_a_request_goes_out_as_a_requests_session_sends_it(httpserver, settings):
    settings.ANYMAIL = {"MAILGUN_API_KEY": "key"}
    httpserver.expect_request("/v3/example.org/messages", method="POST").respond_with_json({"id": "<1@x>"})
    ours = MailgunBackend().create_session()
    theirs = requests.Session()
    theirs.headers = ours.headers  # anymail's User-Agent
    params = {
        "method": "POST", "url": httpserver.url_for("/v3/example.org/messages"), "params": {"o:testmode": "yes"},
        "data": b"--b\r\n...", "headers": {"Content-Type": "multipart/form-data; boundary=b"}, "files": None,
        "auth": ("api", "key"), "timeout": 5,
    }
    assert [session.request(**params).json() for session in (ours, theirs)] == [{"id": "<1@x>"}] * 2
    (a, _), (b, _) = httpserver.log
    assert (a.method, a.full_path, dict(a.headers), a.data) == (b.method, b.full_path, dict(b.headers), b.data)
    assert a.authorization.username == "api" and "django-anymail" in a.headers["User-Agent"]
