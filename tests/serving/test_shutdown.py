"""Stopping the proxy (SIGTERM) under every way to serve it: nobody is cut off mid-answer.

Streams and whole answers in flight finish within --graceful-timeout; streams that cannot end
with an error event and [DONE]; no new connection is taken meanwhile; the process then exits.
"""

from __future__ import annotations

import json
import signal
import threading

import pytest
import requests
import waitress

from proxy.serving.cli import close_in_loop
from tests.fakes.servercpp import FakeServerCpp
from tests.polling import wait_for
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

GRACE = 8  # seconds: far past what a stream meant to finish takes on a busy machine


def events(response: requests.Response, name: str, arrived: list) -> None:
    """Add each of the stream's events to ``arrived`` as ``(name, event)``, as it comes."""
    for line in response.iter_lines():
        if line:
            data = line.decode().removeprefix("data: ")
            arrived.append((name, data if data == "[DONE]" else json.loads(data)))


HOW = pytest.mark.parametrize("how", ["waitress", "gunicorn", "granian", "wsgi"])
# started by a shell in the background (``oai-proxy … &``), a process ignores SIGINT
SIGINT = pytest.mark.parametrize("sigint", ["default", "ignored"])


def refused(url: str) -> bool:
    """Whether a new request is refused: its connection (waitress; gunicorn's once its
    workers have drained), or the request itself, told to come again (granian, whose workers
    keep listening while they drain)."""
    try:
        answer = requests.get(url, timeout=30)  # a hang only
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
    """The long stream still gets text after the short one has finished: the rest are ended
    by the grace running out, not by the signal, nor once the streams that could finish
    have."""
    with FakeServerCpp("llamacpp", tokens=["la "] * 400, token_delay=0.05) as fake:
        proxy = proxy_of(fake, tmp_path, how, sigint)
        try:
            arrived = []  # (stream, event), in the order the clients had them

            def stream(name: str, max_tokens: int) -> None:
                with requests.post(
                    proxy.url + "/v1/completions",
                    stream=True,
                    timeout=30,
                    json={"prompt": name, "max_tokens": max_tokens, "stream": True},
                ) as response:
                    events(response, name, arrived)

            short = threading.Thread(target=stream, args=("short", 8))  # about 0.4 s
            long = threading.Thread(target=stream, args=("long", 400))  # about 20 s
            short.start()
            long.start()
            # in flight = the client has its first event (the upstream's stream alone may open
            # before the proxy has begun answering)
            wait_for(lambda: {name for name, _ in arrived} == {"short", "long"}, "the streams", 10)
            proxy.process.send_signal(signal.SIGTERM)
            wait_for(lambda: refused(proxy.url + "/health"), "new connections to be refused", 30)
            short.join(30)
            long.join(30)
            assert proxy.process.wait(30) == 0
        finally:
            proxy.stop()

    short_events = [event for name, event in arrived if name == "short"]
    assert short_events[-1] == "[DONE]"
    assert not any("error" in event for event in short_events[:-1]), short_events[-3:]
    assert short_events[-2]["choices"][0]["finish_reason"] == "length"
    long_events = [event for name, event in arrived if name == "long"]
    assert long_events[-1] == "[DONE]"
    assert long_events[-2]["error"]["code"] == "shutting_down"
    assert not any("error" in event for event in long_events[:-2])
    short_done = arrived.index(("short", "[DONE]"))
    after = [name for name, _ in arrived[short_done:]].count("long")
    assert after > 2, "the rest were ended before the grace was over"  # text, then the end
    assert "Traceback" not in proxy.log()


@HOW
def test_a_whole_answer_in_flight_is_answered_before_the_proxy_exits(tmp_path, how):
    with FakeServerCpp("llamacpp", tokens=["la "] * 30, token_delay=0.05) as fake:  # 1.5 s
        proxy = proxy_of(fake, tmp_path, how, "default")
        try:
            answers = []
            asking = threading.Thread(
                target=lambda: answers.append(
                    requests.post(
                        proxy.url + "/v1/completions",
                        timeout=30,
                        json={"prompt": "whole", "max_tokens": 30},
                    )
                )
            )
            asking.start()
            wait_for(lambda: "whole" in str(fake.requests), "the upstream to be asked", 10)
            proxy.process.send_signal(signal.SIGTERM)
            asking.join(30)
            assert proxy.process.wait(30) == 0
        finally:
            proxy.stop()
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["text"] == "la " * 30
    assert "Traceback" not in proxy.log()


def test_a_stop_after_waitress_loop_has_ended_finds_nothing_left_to_close():
    sockets: dict = {}
    server = waitress.create_server(lambda environ, start: [], sockets, host="127.0.0.1", port=0)
    server.close()
    server.trigger.close()  # the loop's last socket: the loop has ended
    assert close_in_loop(server.trigger, sockets, everything=False)
