"""A client's streamed answers come on the connection it keeps open, under every way to serve
the proxy: twenty streamed chats, one connection (as twenty answers whole take)."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.fakes.servercpp import FakeServerCpp
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

HOW = pytest.mark.parametrize("how", ["waitress", "gunicorn", "granian", "wsgi"])
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def sockets_used(url: str, streamed: bool, requests: int = 20) -> int:
    """How many connections ``requests`` chats on one kept-alive client take."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    sockets = []
    try:
        for _ in range(requests):
            body = json.dumps({**CHAT, "stream": streamed})
            connection.request(
                "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}
            )
            if not sockets or sockets[-1] is not connection.sock:
                sockets.append(connection.sock)
            answer = connection.getresponse()
            text = answer.read().decode()
            assert answer.status == 200, text
            assert (
                text.rstrip().endswith("data: [DONE]") if streamed else json.loads(text)["choices"]
            )
    finally:
        connection.close()
    return len(sockets)


@HOW
@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
def test_chats_on_a_kept_connection_use_that_connection(tmp_path, how, streamed):
    with (
        FakeServerCpp("llamacpp") as fake,
        ProxyProcess(fake.url, tmp_path / "proxy.log", how=how) as proxy,
    ):
        assert sockets_used(proxy.url, streamed) == 1


def test_a_client_that_asks_to_close_is_closed(tmp_path):
    with FakeServerCpp("llamacpp") as fake, ProxyProcess(fake.url, tmp_path / "proxy.log") as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        body = json.dumps({**CHAT, "stream": True})
        connection.request("POST", "/v1/chat/completions", body, {"Connection": "close"})
        answer = connection.getresponse()
        assert answer.getheader("Connection") == "close" and answer.read().rstrip().endswith(
            b"[DONE]"
        )
        connection.close()
