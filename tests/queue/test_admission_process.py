"""Admission with the proxy as a process: a line for busy slots, and what leaves it.

The upstream is the fake PowerInfer server, which (like the real one) refuses at
once when every slot is busy and counts what reaches it, so these tests can say exactly which
requests got to the server and which never did.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.fakes.servercpp import FakeServerCpp
from tests.polling import wait_for
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

# granian is not among them: its WSGI environment carries no socket to ask (proxy.serving.granian)
SERVINGS = ["waitress", "gunicorn", "wsgi"]


def health(proxy: ProxyProcess) -> dict:
    return proxy.health()


def completions(fake: FakeServerCpp) -> int:
    return sum(1 for path, _, _ in fake.requests if path == "/completion")


def slot_taking_stream(proxy: ProxyProcess) -> requests.Response:
    """A stream that keeps the one slot until the fake's gate opens."""
    response = requests.post(
        proxy.url + "/v1/completions",
        stream=True,
        timeout=30,
        json={"prompt": "hold", "stream": True},
    )
    assert response.status_code == 200
    return response


def raw_request(proxy: ProxyProcess, body: dict) -> socket.socket:
    """Send a completion request on a bare socket, to hang up on it at will."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


@pytest.mark.parametrize("how", SERVINGS)
def test_a_client_that_hangs_up_while_waiting_never_reaches_the_server(tmp_path, how):
    # one worker: /health then speaks for the process that keeps the queue
    args = {
        "waitress": ("--slots", "1"),
        "gunicorn": ("--slots", "1", "--workers", "1"),
        "wsgi": (),
    }[how]
    with (
        FakeServerCpp("powerinfer", n_slots=1, gate=threading.Event()) as fake,
        ProxyProcess(
            fake.url, tmp_path / "proxy.log", how=how, args=args, env={"PROXY_SLOTS": "1"}
        ) as proxy,
    ):
        with slot_taking_stream(proxy) as taking:
            lines = taking.iter_lines()
            assert next(lines).startswith(b"data: ")
            sock = raw_request(proxy, {"prompt": "never sent", "max_tokens": 2})
            wait_for(lambda: health(proxy)["queued"] == 1, "the request joining the queue")
            sock.close()
            wait_for(lambda: health(proxy)["queued"] == 0, "the request leaving the queue")
            fake.gate.set()
            rest = [line for line in lines if line]
        assert rest[-1] == b"data: [DONE]"
        assert [body.get("prompt") for path, body, _ in fake.requests if path == "/completion"] == [
            "hold"
        ]
        assert health(proxy)["in_flight"] == 0


@pytest.mark.parametrize("how", ["waitress", "gunicorn", "granian"])
def test_requests_beyond_the_slots_wait_instead_of_failing(tmp_path, how):
    with (
        FakeServerCpp("powerinfer", n_slots=2, token_delay=0.02) as fake,
        ProxyProcess(fake.url, tmp_path / "proxy.log", how=how) as proxy,
        openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as client,
    ):

        def ask(i: int) -> str:
            answer = client.completions.create(model="m", prompt=f"p{i}", stream=i % 2 == 0)
            if i % 2:
                return answer.choices[0].text
            return "".join(chunk.choices[0].text for chunk in answer if chunk.choices)

        with ThreadPoolExecutor(12) as pool:
            texts = list(pool.map(ask, range(12)))
        assert texts == ["Hello, world!"] * 12
        assert fake.peak_in_flight <= 2
        if how == "waitress":  # one process: it learned the server's size from its answers
            assert health(proxy)["slots"] == 2


def test_a_full_line_and_a_long_wait_are_503s_with_retry_after(tmp_path):
    with (
        FakeServerCpp("powerinfer", n_slots=1, gate=threading.Event()) as fake,
        ProxyProcess(
            fake.url,
            tmp_path / "proxy.log",
            args=("--slots", "1", "--max-queue", "1", "--queue-timeout", "1"),
        ) as proxy,
    ):
        with slot_taking_stream(proxy) as taking:
            lines = taking.iter_lines()
            assert next(lines).startswith(b"data: ")
            waiting = raw_request(proxy, {"prompt": "waits", "max_tokens": 2})
            wait_for(lambda: health(proxy)["queued"] == 1, "the request joining the queue")
            full = requests.post(proxy.url + "/v1/completions", json={"prompt": "x"}, timeout=10)
            assert full.status_code == 503 and full.headers["Retry-After"]
            assert full.json()["error"]["code"] == "queue_full"
            assert "--max-queue" in full.json()["error"]["message"]
            answer = http.client.HTTPResponse(waiting)
            answer.begin()
            error = json.loads(answer.read())["error"]
            waiting.close()
            assert answer.status == 503 and answer.getheader("Retry-After")
            assert error["code"] == "queue_timeout" and "--queue-timeout" in error["message"]
            fake.gate.set()
            list(lines)
        assert completions(fake) == 1


def test_a_slot_taken_by_another_client_sends_the_request_back_in_line(tmp_path):
    with (
        FakeServerCpp("llamacpp-2023", n_slots=1, gate=threading.Event()) as fake,
        ProxyProcess(fake.url, tmp_path / "proxy.log") as proxy,
    ):
        other = requests.post(
            fake.url + "/completion",
            stream=True,
            timeout=30,
            json={"prompt": "another client", "stream": True},
        )
        lines = other.iter_lines()
        assert next(lines).startswith(b"data: ")
        result = []
        thread = threading.Thread(
            target=lambda: result.append(
                requests.post(proxy.url + "/v1/completions", json={"prompt": "mine"}, timeout=30)
            )
        )
        thread.start()
        wait_for(lambda: fake.refusals >= 2, "the server refusing the proxy's request twice")
        fake.gate.set()
        list(lines)
        other.close()
        thread.join(30)
        assert result[0].status_code == 200
        assert result[0].json()["choices"][0]["text"] == "Hello, world!"
