"""newsletter.esp: the shortcuts must give what anymail and requests would have."""

import pytest
from anymail.exceptions import AnymailInvalidAddress
from anymail.utils import parse_address_list as anymail_parse_address_list

from newsletter.esp import MailgunBackend, parse_address_list


@pytest.mark.parametrize("addresses", [
    ["reader@example.org", "first.last+tag@sub.example.co.uk", "o'neil@example.org"],
    ["Reader <reader@example.org>", "plain@example.org"],  # a display name: anymail's parser
    ['"quoted local"@example.org'],
    ["zoë@exämple.org"],
    ["a@b.c, d@e.f"],  # two in one string
])
def test_addresses_parse_as_anymail_parses_them(addresses):
    ours, theirs = parse_address_list(addresses), anymail_parse_address_list(addresses)
    assert [(a.display_name, a.addr_spec, a.address) for a in ours] == [
        (a.display_name, a.addr_spec, a.address) for a in theirs
    ]


def test_an_invalid_address_is_refused_as_anymail_refuses_it():
    with pytest.raises(AnymailInvalidAddress, match="no-domain"):
        parse_address_list(["reader@example.org", "no-domain"])


@pytest.mark.parametrize("no_proxy, expected", [("", {"https": "http://proxy.local:3128"}), ("api.mailgun.net", {})])
def test_the_session_uses_the_environments_proxy_for_the_api_host(settings, monkeypatch, no_proxy, expected):
    settings.ANYMAIL = {"MAILGUN_API_KEY": "key"}
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = MailgunBackend().create_session()
    assert {k: v for k, v in session.proxies.items() if k == "https"} == expected
    assert session.verify == "/etc/ssl/certs/ca-certificates.crt"
