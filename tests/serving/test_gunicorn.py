"""The proxy as a real process (waitress, gunicorn, granian) in front of a fake server.cpp,
via the openai SDK."""

from __future__ import annotations

import threading

import openai
import pytest
import requests

from tests.fakes.servercpp import FakeServerCpp
from tests.polling import wait_for
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

TOKENS = ["Hello", ",", " world", "!"]
CHAT = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream():
    with FakeServerCpp("llamacpp") as fake:
        yield fake


@pytest.fixture
def fake(upstream):
    """The shared upstream, back to its default script for each test."""
    upstream.tokens, upstream.token_delay, upstream.fail_mode = list(TOKENS), 0.0, None
    upstream.gate = None
    upstream.reset()
    return upstream


@pytest.fixture(scope="module", params=["waitress", "gunicorn", "granian", "wsgi"])
def proxy(request, upstream, tmp_path_factory):
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with ProxyProcess(upstream.url, log, how=request.param) as process:
        yield process


@pytest.fixture
def client(proxy):
    return proxy.sdk()


def test_chat(client, fake):
    answer = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=8)
    assert answer.choices[0].message.content == "Hello, world!"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "tiny" and answer.id.startswith("chatcmpl-")
    assert answer.usage.completion_tokens == 4
    assert fake.requests[-1][1]["n_predict"] == 8 and fake.type_violations == []


def test_each_request_gets_a_line_in_the_log(proxy, client, fake):
    client.completions.create(model="logged", prompt="hi", max_tokens=2)
    wait_for(lambda: "POST /v1/completions 200 " in proxy.log(), "no access line")
    line = next(line for line in proxy.log().splitlines() if "POST /v1/completions 200 " in line)
    assert "INFO proxy.access: 127.0.0.1 POST /v1/completions 200 " in line
    assert line.endswith(" key=-") and " model=default " in line


def test_a_path_cannot_add_a_line_of_its_own_to_the_log(proxy):
    requests.get(proxy.url + "/v1/models%0d%0aFORGED%20line", timeout=10)
    wait_for(lambda: "FORGED" in proxy.log(), "no access line")
    lines = proxy.log().splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    (line,) = [line for line in lines if "FORGED" in line]
    assert "INFO proxy.access: 127.0.0.1 GET /v1/models\\r\\nFORGED line 404 " in line


def test_gunicorns_own_lines_are_escaped_too(capsys):
    from gunicorn.config import Config

    from proxy.config.settings import Settings
    from proxy.serving.gunicorn import gunicorn_options

    config = Config()
    for key, value in gunicorn_options(Settings()).items():
        config.set(key, value)
    logger = config.logger_class(config)
    try:
        logger.error("Error handling request %s", "/x\r\nFORGED")
    finally:
        logger.error_log.handlers.clear()
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("[ERROR] Error handling request /x\\r\\nFORGED")


def test_chat_stream_with_usage(client, fake):
    stream = client.chat.completions.create(
        model="tiny", messages=CHAT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world!"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert len({c.id for c in chunks}) == 1


def test_completions(client, fake):
    answer = client.completions.create(model="tiny", prompt="Once", max_tokens=2)
    assert answer.choices[0].text == "Hello," and answer.choices[0].finish_reason == "length"
    assert answer.id.startswith("cmpl-") and answer.usage.completion_tokens == 2
    streamed = client.completions.create(model="tiny", prompt="Once", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "Hello, world!"


def test_errors_are_typed_sdk_exceptions(client, fake):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=CHAT, temperature=5)
    assert info.value.body["param"] == "temperature"
    fake.fail_mode = "http500"
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="tiny", messages=CHAT)
    assert info.value.status_code == 502


def test_stream_is_delivered_chunk_by_chunk(client, fake):
    """The upstream holds the rest of its answer until the client has seen the first piece."""
    fake.gate = threading.Event()
    stream = client.chat.completions.create(model="tiny", messages=CHAT, stream=True)
    pieces = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            fake.gate.set()
    assert pieces == TOKENS
    assert fake.gate_released_in_time is True


def test_client_disconnect_stops_the_upstream(proxy, fake):
    fake.tokens, fake.token_delay = ["x"] * 200, 0.05
    with requests.post(
        proxy.url + "/v1/chat/completions",
        stream=True,
        timeout=10,
        json={"messages": CHAT, "stream": True},
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith(b"data: ")
    assert fake.cancelled.wait(10), "the upstream kept generating after the client left"


@pytest.mark.parametrize("kind", ["powerinfer", "llamacpp-2023", "llamacpp"])
def test_every_server_kind(kind, tmp_path):
    with FakeServerCpp(kind) as fake, ProxyProcess(fake.url, tmp_path / "proxy.log") as proxy:
        client = proxy.sdk()
        answer = client.chat.completions.create(model="m", messages=CHAT, max_tokens=1)
        assert answer.choices[0].finish_reason == "length"
        streamed = client.chat.completions.create(
            model="m", messages=CHAT, stream=True, temperature=0.2, seed=3
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == "Hello, world!"
        health = proxy.health()
        assert health["generation"] == kind
        assert fake.type_violations == []
        slot_field = "id_slot" if kind == "llamacpp" else "slot_id"
        assert all(slot_field in body for path, body, _ in fake.requests if path == "/completion")


def test_upstream_down_then_back(tmp_path):
    with FakeServerCpp("llamacpp") as fake, ProxyProcess(fake.url, tmp_path / "proxy.log") as proxy:
        client = proxy.sdk()
        assert client.chat.completions.create(model="m", messages=CHAT).choices
        fake.stop()
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="m", messages=CHAT)
        assert info.value.status_code == 503
        assert requests.get(proxy.url + "/health", timeout=5).status_code == 503
        fake.kind = "powerinfer"  # restarted on another build
        fake.start()
        assert client.chat.completions.create(model="m", messages=CHAT).choices
        assert proxy.health()["generation"] == "powerinfer"
        completions = [body for path, body, _ in fake.requests if path == "/completion"]
        assert "slot_id" in completions[-1] and "id_slot" not in completions[-1]


def test_api_keys(tmp_path, upstream):
    with ProxyProcess(
        upstream.url, tmp_path / "proxy.log", args=["--api-key", "k1", "k2"]
    ) as proxy:
        good = proxy.sdk("k2")
        assert good.models.list().data
        bad = proxy.sdk("nope")
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="m", messages=CHAT)
        assert requests.get(proxy.url + "/health", timeout=5).status_code == 200
        assert "k1" not in proxy.log() and "k2" not in proxy.log()


def test_upstream_timeout_is_a_504(tmp_path, upstream):
    with ProxyProcess(
        upstream.url, tmp_path / "proxy.log", args=["--upstream-timeout", "0.5"]
    ) as proxy:
        client = proxy.sdk()
        assert client.models.list().data
        upstream.fail_mode = "hang"
        try:
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model="m", messages=CHAT)
        finally:
            upstream.fail_mode = None
    assert info.value.status_code == 504
    assert "did not answer in time" in info.value.body["message"]
    assert upstream.url not in info.value.body["message"]
