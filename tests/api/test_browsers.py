"""What web pages can make a browser send the proxy, and how its own pages are protected."""

from __future__ import annotations

import re

import pytest

CHAT_BODY = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost:8081", 200),
        ("127.0.0.1:8081", 200),
        ("[::1]:8081", 200),
        ("attacker.example:8081", 403),
        ("192.168.1.10:8081", 403),
    ],
)
def test_a_loopback_proxy_serves_only_this_machines_names(client, host, status):
    for path in ("/v1/models", "/status", "/health"):
        response = client.get(path, headers={"Host": host})
        assert response.status_code == status, path
    refused = client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"Host": "attacker.example"}
    )
    assert (
        refused.status_code == 403 and "--allowed-hosts" in refused.get_json()["error"]["message"]
    )


def test_the_operator_adds_names_and_a_network_proxy_serves_any(make_client):
    named = make_client(allowed_hosts=("llm.lan",))
    assert named.get("/v1/models", headers={"Host": "llm.lan:8081"}).status_code == 200
    on_the_lan = make_client(host="0.0.0.0")
    assert on_the_lan.get("/v1/models", headers={"Host": "llm.lan"}).status_code == 200


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("http://localhost", 200),  # the proxy's own pages (the test client's host)
        ("http://localhost:5173", 200),  # a page of this machine
        ("http://127.0.0.1:3000", 200),
        ("https://attacker.example", 403),  # a cross-site text/plain POST
        ("null", 403),
    ],
)
def test_a_page_elsewhere_cannot_make_the_browser_generate(client, origin, status):
    response = client.post(
        "/v1/chat/completions",
        data='{"messages": [{"role": "user", "content": "hi"}]}',
        content_type="text/plain",
        headers={"Origin": origin},
    )
    assert response.status_code == status
    if status == 403:
        assert response.get_json()["error"]["code"] == "origin_not_allowed"


def test_every_answer_says_nosniff_and_pages_are_never_framed(client):
    api = client.get("/v1/models")
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in api.headers
    for path in ("/", "/playground"):
        page = client.get(path, headers={"Accept": "text/html"})
        policy = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        nonce = re.search(r"script-src 'nonce-([^']+)'", policy).group(1)
        scripts = re.findall(rb"<script([^>]*)>", page.data)
        assert scripts and all(f'nonce="{nonce}"'.encode() in tag for tag in scripts)
        assert not re.search(rb"<[^>]*\son[a-z]+=", page.data)  # no inline handler to run
    again = client.get("/playground").headers["Content-Security-Policy"]
    assert again != client.get("/playground").headers["Content-Security-Policy"]
