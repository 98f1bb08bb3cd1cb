"""newsletter.esp: the shortcuts must give what anymail and requests would have."""

import pytest
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
])
def test_addresses_parse_as_anymail_parses_them(addresses):
    ours, theirs = parse_address_list(addresses), anymail_parse_address_list(addresses)
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


@pytest.mark.parametrize("no_proxy, expected", [("", {"https": "http://proxy.local:3128"}), ("api.mailgun.net", {})])
def test_the_session_uses_the_environments_proxy_for_the_api_host(settings, monkeypatch, no_proxy, expected):
    settings.ANYMAIL = {"MAILGUN_API_KEY": "key"}
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = MailgunBackend().create_session()
    assert {k: v for k, v in session.proxies.items() if k == "https"} == expected
    assert session.verify == "/etc/ssl/certs/ca-certificates.crt"
