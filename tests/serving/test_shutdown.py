"""Stopping the proxy (SIGTERM) under every way to serve it: nobody is cut off mid-answer.

Streams in flight finish within --graceful-timeout; those that cannot end with an error event
and [DONE]; no new connection is taken meanwhile; the process then exits.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
import requests

from tests.fakes.servercpp import FakeServerCpp
from tests.polling import wait_for
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

GRACE = 2


def events(response: requests.Response, first: threading.Event = None) -> list:
    """The stream's events; ``first`` is set once one has arrived."""
    found = []
    for line in response.iter_lines():
        if line:
            data = line.decode().removeprefix("data: ")
            found.append(data if data == "[DONE]" else json.loads(data))
            if first is not None:
                first.set()
    return found


HOW = pytest.mark.parametrize("how", ["waitress", "gunicorn", "granian", "wsgi"])
# started by a shell in the background (``oai-proxy … &``), a process ignores SIGINT
SIGINT = pytest.mark.parametrize("sigint", ["default", "ignored"])


def refused(url: str) -> bool:
    """Whether a new request is refused: its connection (waitress, gunicorn), or the request
    itself, told to come again (granian, whose workers keep listening while they drain)."""
    try:
        answer = requests.get(url, timeout=5)
    except requests.ConnectionError:
        return True
    return answer.status_code == 503 and answer.json()["error"]["code"] == "shutting_down"


def proxy_of(fake, tmp_path, how: str, sigint: str) -> ProxyProcess:
    return ProxyProcess(
        fake.url,
        tmp_path / "proxy.log",
        how=how,
        sigint=sigint,
        args=() if how == "wsgi" else ("--graceful-timeout", str(GRACE)),
        env={"PROXY_GRACEFUL_TIMEOUT": str(GRACE)},
    ).start()


@HOW
@SIGINT
def test_an_idle_proxy_exits_on_sigterm(tmp_path, how, sigint):
    with FakeServerCpp("llamacpp") as fake:
        proxy = proxy_of(fake, tmp_path, how, sigint)
        try:
            kept_alive = requests.Session()  # an idle connection kept open does not hold it
            assert kept_alive.get(proxy.url + "/health", timeout=5).status_code == 200
            proxy.process.send_signal(signal.SIGTERM)
            assert proxy.process.wait(GRACE + 10) == 0
            kept_alive.close()
        finally:
            proxy.stop()
    assert "Traceback" not in proxy.log()


@HOW
@SIGINT
def test_sigterm_lets_streams_finish_then_ends_the_rest_cleanly(tmp_path, how, sigint):
    with FakeServerCpp("llamacpp", tokens=["la "] * 400, token_delay=0.05) as fake:
        proxy = proxy_of(fake, tmp_path, how, sigint)
        try:
            results = {}
            begun = {"short": threading.Event(), "long": threading.Event()}

            def stream(name: str, max_tokens: int) -> None:
                with requests.post(
                    proxy.url + "/v1/completions",
                    stream=True,
                    timeout=30,
                    json={"prompt": name, "max_tokens": max_tokens, "stream": True},
                ) as response:
                    results[name] = events(response, begun[name])

            short = threading.Thread(target=stream, args=("short", 20))  # about 1 s
            long = threading.Thread(target=stream, args=("long", 400))  # about 20 s
            short.start()
            long.start()
            # in flight = the client has its first event (the upstream's stream alone may open
            # before the proxy has begun answering)
            assert all(started.wait(10) for started in begun.values()), "the streams did not start"
            stopped_at = time.monotonic()
            proxy.process.send_signal(signal.SIGTERM)
            wait_for(lambda: refused(proxy.url + "/health"), "new connections to be refused", 5)
            short.join(30)
            long.join(30)
            assert proxy.process.wait(30) == 0
            took = time.monotonic() - stopped_at
        finally:
            proxy.stop()

    short_events, long_events = results["short"], results["long"]
    assert short_events[-1] == "[DONE]"
    assert not any("error" in event for event in short_events[:-1])
    assert short_events[-2]["choices"][0]["finish_reason"] == "length"
    assert long_events[-1] == "[DONE]"
    assert long_events[-2]["error"]["code"] == "shutting_down"
    assert GRACE <= took < GRACE + 10
    assert "Traceback" not in proxy.log()
