"""Check the server.cpp fake against the wire reference before other tests rely on it."""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack

import pytest
import requests

from .servercpp import FakeServerCpp

GENS = ["powerinfer", "llamacpp-2023", "llamacpp"]


@pytest.fixture
def make_fake():
    """Start fakes on demand and stop them all at the end of the test."""
    with ExitStack() as stack:
        yield lambda gen, **script: stack.enter_context(FakeServerCpp(gen, **script))


def _events(text: str) -> list[str]:
    return [e for e in text.split("\n\n") if e]


@pytest.mark.parametrize(
    ("gen", "slot_key", "stop_keys", "settings_key", "has_n_ctx"),
    [
        ("powerinfer", "slot_id", {"stopped_eos", "stopped_word", "stopped_limit"}, "temp", True),
        (
            "llamacpp-2023",
            "slot_id",
            {"stopped_eos", "stopped_word", "stopped_limit"},
            "temperature",
            True,
        ),
        ("llamacpp", "id_slot", {"stop_type"}, "temperature", False),
    ],
    ids=GENS,
)
def test_non_stream_shape(make_fake, gen, slot_key, stop_keys, settings_key, has_n_ctx):
    fake = make_fake(gen)
    resp = requests.post(f"{fake.url}/completion", json={"prompt": "Say hi", "n_predict": 16})
    body = resp.json()
    assert resp.status_code == 200
    assert body["content"] == "Hello, world!"
    assert body["stop"] is True and slot_key in body and stop_keys <= set(body)
    assert body["tokens_evaluated"] == 3 and body["tokens_predicted"] == 4
    assert settings_key in body["generation_settings"]
    assert ("n_ctx" in body["generation_settings"]) is has_n_ctx
    keys = list(json.loads(resp.text))
    assert (keys == sorted(keys)) is (gen != "llamacpp")


@pytest.mark.parametrize("gen", GENS)
def test_stream_framing(make_fake, gen):
    fake = make_fake(gen, keepalive=True)
    resp = requests.post(f"{fake.url}/completion", json={"prompt": "x", "stream": True})
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = _events(resp.text)
    if gen == "llamacpp":
        assert events.pop(0) == ":"
    assert all(e.startswith("data: ") for e in events)
    chunks = [json.loads(e[len("data: ") :]) for e in events]
    assert "".join(c["content"] for c in chunks) == "Hello, world!"
    assert [c["stop"] for c in chunks] == [False] * 4 + [True]
    assert chunks[-1]["content"] == ""


@pytest.mark.parametrize(
    ("gen", "health", "models"),
    [("powerinfer", 404, 404), ("llamacpp-2023", 404, 200), ("llamacpp", 200, 200)],
    ids=GENS,
)
def test_detection_signals(make_fake, gen, health, models):
    fake = make_fake(gen)
    resp = requests.get(f"{fake.url}/health")
    assert resp.status_code == health
    if health == 404:
        assert resp.text == "File Not Found"
    assert requests.get(f"{fake.url}/v1/models").status_code == models


@pytest.mark.parametrize("gen", GENS)
def test_type_violation_is_recorded(make_fake, gen):
    fake = make_fake(gen)
    if gen == "llamacpp":  # C logs and falls back to the default
        assert requests.post(f"{fake.url}/completion", json={"prompt": "x", "n_predict": "2"}).ok
    else:  # A/B abort the process: no response at all
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{fake.url}/completion", json={"prompt": "x", "n_predict": "2"})
    assert fake.type_violations == ["n_predict"]


@pytest.mark.parametrize("gen", GENS)
def test_cancellation_detected(make_fake, gen):
    fake = make_fake(gen, tokens=["a"] * 50, token_delay=0.05)
    with requests.post(
        f"{fake.url}/completion", json={"prompt": "x", "stream": True}, stream=True
    ) as r:
        assert next(r.iter_content(chunk_size=None))
    assert fake.cancelled.wait(5)
    assert fake.active_streams == 0


@pytest.mark.parametrize("gen", GENS)
def test_stop_word_and_limit(make_fake, gen):
    fake = make_fake(gen)
    body = requests.post(f"{fake.url}/completion", json={"prompt": "x", "stop": [" wor"]}).json()
    assert (body["content"], body["stopping_word"]) == ("Hello,", " wor")
    limited = requests.post(f"{fake.url}/completion", json={"prompt": "x", "n_predict": 2}).json()
    assert limited["content"] == ("Hello," if gen == "llamacpp" else "Hello, world!")


@pytest.mark.parametrize(
    ("gen", "status", "stream_body"),
    [
        ("powerinfer", 404, ""),
        ("llamacpp-2023", 404, 'error: {"content":"slot unavailable"}\n\n'),
        ("llamacpp", 200, None),
    ],
    ids=GENS,
)
def test_busy(make_fake, gen, status, stream_body):
    fake = make_fake(gen, fail_mode="busy", busy_wait=0.01)
    assert requests.post(f"{fake.url}/completion", json={"prompt": "x"}).status_code == status
    resp = requests.post(f"{fake.url}/completion", json={"prompt": "x", "stream": True})
    assert resp.status_code == 200
    if stream_body is not None:
        assert resp.text == stream_body


def test_auth_c(make_fake):
    fake = make_fake("llamacpp", api_key="k")
    resp = requests.post(f"{fake.url}/completion", json={"prompt": "x"})
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "authentication_error"
    assert requests.get(f"{fake.url}/health").ok
    ok = requests.post(
        f"{fake.url}/completion", json={"prompt": "x"}, headers={"Authorization": "Bearer k"}
    )
    assert ok.ok


def test_restart_on_same_port(make_fake):
    fake = make_fake("llamacpp")
    port = fake.port
    fake.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fake.url}/health")
    fake.start()
    assert fake.port == port and requests.get(f"{fake.url}/health").ok


def test_gate_sends_first_token_before_release(make_fake):
    gate = threading.Event()
    fake = make_fake("llamacpp-2023", gate=gate)
    with requests.post(
        f"{fake.url}/completion", json={"prompt": "x", "stream": True}, stream=True
    ) as r:
        chunks = r.iter_content(chunk_size=None)
        assert b'"content":"Hello"' in next(chunks)
        gate.set()
        rest = b"".join(chunks)
    assert b'"stop":true' in rest and fake.gate_released_in_time is True
