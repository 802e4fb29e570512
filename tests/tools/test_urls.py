"""A URL a client names for the gateway to reach: an http(s) URL of a host the operator
allows, reached at a public address it resolves to, or at the IP literal the operator
lists; refused naming the client's field, never an address the host resolved to."""

from __future__ import annotations

import pytest

from proxy.core.errors import InvalidRequestError
from proxy.tools.urls import check_url, public_address

FIELD = "tools[0].server_url"
DNS = {
    "tools.example": ["93.184.215.14"],
    "both.example": ["93.184.215.14", "10.0.0.9"],
    "lan.example": ["192.168.1.20"],
    "metadata.example": ["169.254.169.254"],
    "six.example": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "mapped.example": ["::ffff:127.0.0.1"],
}


def resolve(host: str) -> list:
    """The table's addresses; an IP literal is itself; any other name does not resolve."""
    if host in DNS:
        return DNS[host]
    if host[0].isdigit() or ":" in host:
        return [host]
    raise OSError("no such host")


ALLOWED = frozenset(
    {
        "tools.example",
        "both.example",
        "lan.example",
        "metadata.example",
        "six.example",
        "mapped.example",
        "Gone.Example",
        "10.0.0.5",
        "[fd00::5]",
        "127.0.0.1",
        "8.8.8.8",
    }
)


@pytest.mark.parametrize(
    "url, address",
    [
        ("https://tools.example/mcp", "93.184.215.14"),
        ("http://TOOLS.example:8080/mcp?x=1", "93.184.215.14"),
        ("https://tools.example./mcp", "93.184.215.14"),
        ("https://six.example/mcp", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
        # an address the operator lists is reached, private as it may be
        ("http://10.0.0.5:3000/mcp", "10.0.0.5"),
        ("http://[fd00::5]/mcp", "fd00::5"),
        ("http://[FD00:0::5]/mcp", "fd00::5"),
        ("http://127.0.0.1:9/mcp", "127.0.0.1"),
        ("https://8.8.8.8/mcp", "8.8.8.8"),
    ],
)
def test_an_allowed_url_is_reached_at_the_address_checked(url, address):
    assert check_url(url, ALLOWED, FIELD, resolve=resolve) == address


@pytest.mark.parametrize(
    "url, allowed, says",
    [
        ("ftp://tools.example/mcp", ALLOWED, "must be an http(s) URL"),
        ("file:///etc/passwd", ALLOWED, "must be an http(s) URL"),
        ("http:///mcp", ALLOWED, "must be an http(s) URL"),
        ("http://tools.example:port/mcp", ALLOWED, "must be an http(s) URL"),
        ("http://tools.example:99999/mcp", ALLOWED, "must be an http(s) URL"),
        ("tools.example/mcp", ALLOWED, "must be an http(s) URL"),
        (None, ALLOWED, "must be an http(s) URL"),
        ("https://tools.example/mcp", frozenset(), "'tools.example', which this gateway is not"),
        ("https://other.example/mcp", ALLOWED, "'other.example', which this gateway is not"),
        ("https://sub.tools.example/mcp", ALLOWED, "'sub.tools.example', which this gateway"),
        ("http://10.0.0.6/mcp", ALLOWED, "'10.0.0.6', which this gateway is not allowed"),
        ("http://localhost/mcp", ALLOWED, "'localhost', which this gateway is not allowed"),
        # allowed by name, but at an address that is not on the internet
        ("http://lan.example/mcp", ALLOWED, "'lan.example', which is not on the internet"),
        ("http://both.example/mcp", ALLOWED, "'both.example', which is not on the internet"),
        ("http://metadata.example/", ALLOWED, "'metadata.example', which is not on the internet"),
        ("http://mapped.example/", ALLOWED, "'mapped.example', which is not on the internet"),
        ("http://gone.example/mcp", ALLOWED, "'gone.example', which is not on the internet"),
    ],
)
def test_any_other_url_is_refused_naming_the_field_and_no_address(url, allowed, says):
    with pytest.raises(InvalidRequestError) as refused:
        check_url(url, allowed, FIELD, resolve=resolve)
    assert refused.value.param == FIELD
    assert refused.value.message.startswith(f"'{FIELD}' ")
    assert says in refused.value.message
    for address in ("192.168.1.20", "10.0.0.9", "169.254.169.254", "127.0.0.1"):
        assert address not in refused.value.message


@pytest.mark.parametrize(
    "host, address",
    [
        ("tools.example", "93.184.215.14"),
        ("8.8.8.8", "8.8.8.8"),
        ("lan.example", None),
        ("both.example", None),
        ("127.0.0.1", None),
        ("gone.example", None),
    ],
)
def test_a_host_has_a_public_address_only_if_all_of_its_are(host, address):
    assert public_address(host, resolve) == address


def test_a_name_that_cannot_be_encoded_has_no_address():
    def resolve(host):
        raise UnicodeError("label too long")

    assert public_address("x" * 100 + ".example", resolve) is None
