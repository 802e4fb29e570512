"""The fault tier: an upstream that fails in every way we know, and what the client then sees.

The proxy runs as a process (waitress) in front of the fake server of each kind, on a
real port; each fault is scripted in the fake and the exact answer is checked through raw
HTTP: status, error code, the server named by its model (its address only in the proxy's
log), and for streams the events up to ``[DONE]``.
(The real servers' faults, killed mid-stream and gone then back, are in the e2e tier; a
client that vanishes while queued, in ``test_live_admission.py``.)
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.fakes.servercpp import FakeServerCpp
from tests.processes import ProxyProcess

pytestmark = [pytest.mark.live, pytest.mark.faults]

BODY = {"model": "m", "prompt": "hi", "max_tokens": 8}


@pytest.fixture(scope="module", params=["powerinfer", "llamacpp-2023", "llamacpp"])
def setup(request, tmp_path_factory):
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with (
        FakeServerCpp(request.param) as fake,
        ProxyProcess(
            fake.url, log, args=("--upstream-timeout", "1", "--queue-timeout", "1")
        ) as proxy,
    ):
        yield fake, proxy


@pytest.fixture
def fake(setup):
    fake, _ = setup
    fake.fail_mode, fake.loading = None, False
    yield fake
    fake.fail_mode, fake.loading = None, False


@pytest.fixture
def proxy(setup):
    return setup[1]


def ask(proxy: ProxyProcess, stream: bool) -> requests.Response:
    return requests.post(proxy.url + "/v1/completions", json={**BODY, "stream": stream}, timeout=30)


def events(response: requests.Response) -> list:
    found = []
    for block in response.text.split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            found.append(data if data == "[DONE]" else json.loads(data))
    return found


def assert_error(
    response: requests.Response, status: int, code: str, fake: FakeServerCpp, proxy: ProxyProcess
):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert_names_the_server(error["message"], fake, proxy)
    assert "Traceback" not in response.text


def assert_names_the_server(message: str, fake: FakeServerCpp, proxy: ProxyProcess):
    """The client reads which model's server failed; only the log has its address."""
    assert "the server of the model" in message
    assert fake.url not in message and "127.0.0.1" not in message
    assert f"[upstream {fake.url}]" in proxy.log()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    "mode,status,code",
    [
        ("http500", 502, "bad_gateway"),
        ("garbage", 502, "bad_gateway"),
        ("hang", 504, "upstream_timeout"),
    ],
    ids=["500", "garbage", "never-answers"],
)
def test_a_fault_before_the_first_byte_is_an_http_error(proxy, fake, stream, mode, status, code):
    fake.fail_mode = mode
    assert_error(ask(proxy, stream), status, code, fake, proxy)
    fake.fail_mode = None
    assert ask(proxy, stream).status_code == 200  # and the next turn is answered again


@pytest.mark.parametrize("kind", ["powerinfer", "llamacpp-2023"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_old_server_that_never_frees_a_slot_is_a_503_queue_timeout(tmp_path, kind, stream):
    with (
        FakeServerCpp(kind, fail_mode="busy") as fake,
        ProxyProcess(fake.url, tmp_path / "proxy.log", args=("--queue-timeout", "1")) as proxy,
    ):
        answer = ask(proxy, stream)
        assert_error(answer, 503, "queue_timeout", fake, proxy)
        assert answer.headers["Retry-After"]
        attempts = [path for path, _, _ in fake.requests if path == "/completion"]
        assert len(attempts) > 1  # refused, and sent again while the queue had time


@pytest.mark.parametrize("mode", ["midstream_error", "truncated_stream"])
def test_a_fault_after_the_first_byte_is_one_error_event_then_done(proxy, fake, mode):
    fake.fail_mode = mode
    answer = ask(proxy, stream=True)
    assert answer.status_code == 200
    found = events(answer)
    assert found[0]["choices"][0]["text"] == "Hello"
    assert found[-1] == "[DONE]"
    error = found[-2]["error"]
    assert error["code"] in ("bad_gateway",)
    assert_names_the_server(error["message"], fake, proxy)
    assert [event for event in found[1:-2] if "error" in event] == []
    fake.fail_mode = None
    assert (
        "".join(
            e["choices"][0]["text"]
            for e in events(ask(proxy, stream=True))[:-1]
            if e.get("choices")
        )
        == "Hello, world!"
    )


@pytest.mark.parametrize("mode", ["midstream_error", "truncated_stream"])
def test_a_whole_answer_cut_short_is_a_502(proxy, fake, mode):
    fake.fail_mode = mode
    assert_error(ask(proxy, stream=False), 502, "bad_gateway", fake, proxy)


def test_a_server_still_loading_is_a_503_with_retry_after(tmp_path):
    with (
        FakeServerCpp("llamacpp", loading=True) as fake,
        ProxyProcess(fake.url, tmp_path / "proxy.log") as proxy,
    ):
        assert requests.get(proxy.url + "/health", timeout=10).status_code == 503
        answer = ask(proxy, stream=False)
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        assert_names_the_server(answer.json()["error"]["message"], fake, proxy)
        fake.loading = False
        assert ask(proxy, stream=False).status_code == 200
