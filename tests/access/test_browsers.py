"""What a web page may make a browser send: hosts and origins."""

from __future__ import annotations

import pytest

from proxy.config.settings import hosts
from proxy.inspector.visibility import host_name, host_served, origin_allowed


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8081", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8081", "::1"),
        ("::1", "::1"),
        ("Example.com:80", "Example.com"),
        ("", ""),
    ],
)
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("header", "bound", "allowed", "served"),
    [
        ("localhost:8081", "127.0.0.1", (), True),
        ("LOCALHOST", "127.0.0.1", (), True),
        ("app.localhost:8081", "127.0.0.1", (), True),
        ("127.0.0.1:8081", "127.0.0.1", (), True),
        ("127.1.2.3:8081", "localhost", (), True),
        ("[::1]:8081", "::1", (), True),
        ("attacker.example:8081", "127.0.0.1", (), False),  # a name rebound to loopback
        ("10.0.0.5:8081", "127.0.0.1", (), False),
        ("", "127.0.0.1", (), False),
        ("llm.lan:8081", "127.0.0.1", ("llm.lan",), True),
        ("LLM.lan", "127.0.0.1", ("llm.LAN",), True),
        ("attacker.example", "0.0.0.0", (), True),  # on the network: keys guard it
        ("attacker.example", "10.0.0.5", (), True),
        ("attacker.example:8081", "127.0.0.1,::1", (), False),  # every address a loopback
        ("[::1]:8081", "127.0.0.1,::1", (), True),
        ("attacker.example", "127.0.0.1,10.0.0.5", (), True),  # one on the network
    ],
)
def test_a_loopback_proxy_serves_this_machines_names(header, bound, allowed, served):
    assert host_served(header, hosts(bound), allowed) is served


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        ("http://127.0.0.1:8081", "127.0.0.1:8081", (), True),  # the proxy's own pages
        ("https://llm.example.com", "llm.example.com", (), True),  # behind a TLS front
        ("http://localhost:3000", "127.0.0.1:8081", (), True),  # a page of this machine
        ("http://[::1]:5173", "127.0.0.1:8081", (), True),
        ("http://attacker.example", "127.0.0.1:8081", (), False),
        ("http://attacker.example:8081", "attacker.example:8081", (), True),  # see host_served
        ("null", "127.0.0.1:8081", (), False),  # a sandboxed frame, a file
        ("file://", "127.0.0.1:8081", (), False),
        ("chrome-extension://abc", "127.0.0.1:8081", (), False),
        ("chrome-extension://abc", "127.0.0.1:8081", ("chrome-extension://abc",), True),
        ("https://chat.example.com", "127.0.0.1:8081", ("https://chat.example.com",), True),
        ("https://other.example.com", "127.0.0.1:8081", ("*",), True),
        ("http://[bad", "127.0.0.1:8081", (), False),
    ],
)
def test_pages_of_other_sites_need_the_operators_word(origin, host, allowed, ok):
    assert origin_allowed(origin, host, allowed) is ok
