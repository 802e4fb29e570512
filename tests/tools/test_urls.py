"""A host a model names for the gateway to reach (a page web_fetch reads): reached only at a
public address it resolves to, every one of its addresses public."""

from __future__ import annotations

import pytest

from proxy.tools.urls import public_address

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
