"""Slow clients against every documented way to serve, with its defaults, on real sockets.

Hundreds of clients that send half a request and stall, or trickle it a byte at a time,
must not keep anyone else from being answered.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from proxy.config.settings import Settings
from tests.fakes.servercpp import FakeServerCpp
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

STALLED = 300
DEFAULT_THREADS = str(Settings().serving.threads)
HALF_A_REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Type: application/json\r\nContent-Length: 200\r\n"
)
HALF_A_BODY = HALF_A_REQUEST + b"\r\n" + b'{"messages": [{"role": "user", "con'
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module", params=["waitress", "gunicorn", "wsgi"])
def proxy(request, tmp_path_factory):
    """The proxy as documented, with its default threads and workers."""
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    args = ("--threads", DEFAULT_THREADS)
    if request.param == "gunicorn":
        args += ("--workers", str(Settings().serving.workers))
    with (
        FakeServerCpp("llamacpp") as fake,
        ProxyProcess(
            fake.url,
            log,
            how=request.param,
            args=() if request.param == "wsgi" else args,
            env={"PROXY_THREADS": DEFAULT_THREADS},
        ) as process,
    ):
        yield process


def stall(proxy: ProxyProcess, data: bytes, count: int) -> list:
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        client.sendall(data)
        clients.append(client)
    return clients


@pytest.mark.parametrize("half", [HALF_A_REQUEST, HALF_A_BODY], ids=["headers", "body"])
def test_half_sent_requests_leave_the_others_served(proxy, half):
    clients = stall(proxy, half, STALLED)
    try:
        time.sleep(0.5)  # let the server take them all in
        for _ in range(3):
            answer = requests.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=10)
            assert answer.status_code == 200
            assert answer.json()["choices"][0]["message"]["content"] == "Hello, world!"
    finally:
        for client in clients:
            client.close()


def test_trickling_clients_leave_the_others_served(proxy):
    clients = stall(proxy, HALF_A_REQUEST[:20], STALLED)
    try:
        for step in range(3):
            for client in clients:
                client.sendall(HALF_A_REQUEST[20 + step : 21 + step])
            answer = requests.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=10)
            assert answer.status_code == 200
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize(
    "half,answer",
    [(HALF_A_REQUEST, b""), (HALF_A_BODY, b"HTTP/1.1 408 ")],
    ids=["headers-dropped", "body-answered-408"],
)
@pytest.mark.parametrize("how", ["gunicorn", "wsgi"])
def test_gunicorn_gives_up_on_a_client_that_stalls_past_client_timeout(tmp_path, how, half, answer):
    with (
        FakeServerCpp("llamacpp") as fake,
        ProxyProcess(
            fake.url,
            tmp_path / "proxy.log",
            how=how,
            args=("--client-timeout", "1") if how == "gunicorn" else (),
            env={"PROXY_CLIENT_TIMEOUT": "1"},
        ) as proxy,
    ):
        (client,) = stall(proxy, half, 1)
        with client:
            client.settimeout(10)
            assert client.recv(len(answer) or 1) == answer
        assert "Traceback" not in proxy.log()
        assert (
            requests.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code
            == 200
        )
