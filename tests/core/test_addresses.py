"""Which URLs may be fetched: http(s) ones with a host, at addresses on the internet; what an
IPv6 address stands for judged as itself; clouds' metadata never."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from proxy.core.addresses import has_credentials, http_parts, public


@pytest.mark.parametrize(
    "addresses, expected",
    [
        (["93.184.215.14"], True),
        (["2606:2800:21f:cb07:6820:80da:af6b:8b2c"], True),
        (["10.0.0.7"], False),
        (["169.254.169.254"], False),
        (["::1"], False),
        (["93.184.215.14", "192.168.1.2"], False),
        ([], False),
    ],
)
def test_public_means_every_address_of_the_host_is_on_the_internet(addresses, expected):
    assert public(addresses) is expected


@pytest.mark.parametrize(
    "address, expected",
    [
        # what an IPv6 address stands for is judged: an IPv4 address within it, as itself
        ("::ffff:10.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::10.0.0.1", False),
        ("64:ff9b::169.254.169.254", False),
        ("64:ff9b::8.8.8.8", True),
        ("64:ff9b:1::8.8.8.8", False),  # local-use NAT64: refused
        ("2002:a00:1::1", False),
        ("2002:c0a8:101::1", False),
        ("2002:808:808::1", True),
        ("::10.0.0.1", False),
        ("::127.0.0.1", False),
        ("::8.8.8.8", True),
        ("::", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo: refused
        # clouds' metadata, whatever range it is in
        ("168.63.129.16", False),
        ("::ffff:168.63.129.16", False),
        ("64:ff9b::a83f:8110", False),
        ("100.100.100.200", False),
        ("fd00:ec2::254", False),
        ("169.254.170.2", False),
        ("192.0.0.192", False),
        # the proxy's machine and its networks
        ("127.0.0.1", False),
        ("0.0.0.0", False),
        ("100.64.0.1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("172.16.0.1", False),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
    ],
)
def test_an_address_is_public_only_if_what_it_reaches_is(address, expected):
    assert public([address]) is expected


@pytest.mark.parametrize(
    "url, host",
    [
        ("https://example.org/a?b#c", "example.org"),
        ("HTTP://Example.ORG", "example.org"),
        ("http://[::1]:8080/", "::1"),
        ("mailto:me@example.org", None),
        ("http://", None),
        ("http://h:x/", None),
        (3, None),
    ],
)
def test_an_http_url_is_known_by_its_scheme_and_host(url, host):
    parts = http_parts(url)
    assert (parts.hostname if parts else None) == host


@pytest.mark.parametrize(
    "url, holds",
    [
        ("http://example.org/", False),
        ("http://me@example.org/", True),
        ("http://me:pw@example.org/", True),
        ("http://:pw@example.org/", True),
        ("http://:@example.org/", True),
        ("http://example.org/?at=me@there", False),
    ],
)
def test_a_url_holds_credentials_if_it_names_a_user_or_a_password(url, holds):
    assert has_credentials(urlsplit(url)) is holds
