"""Exchanges kept for the inspector, through a proxy in front of real llama-server, from the
real ``openai`` and ``anthropic`` SDKs: each request as the SDK sent it and the answer as it
got it, whole and streamed; only the keys that ask for it; no secret in the store."""

from __future__ import annotations

import json

import pytest

from tests.processes import ADMIN, ProxyProcess
from tests.servertiming import as_kept, timing

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

KEYS = """
[[keys]]
name = "alice"
key = "sk-alice-secret"
capture = true

[[keys]]
name = "bob"
key = "sk-bob-secret"
"""


def texts_of(events: str) -> str:
    """The answer's text in a chat completion stream as it was sent."""
    chunks = [
        json.loads(line[len("data: ") :])
        for line in events.splitlines()
        if line.startswith("data: {")
    ]
    return "".join(
        chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"]
    )


def test_what_the_sdks_sent_and_got_is_kept(model, logs, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    with (
        LlamaServer(model, logs / "capture.log", parallel=2) as server,
        ProxyProcess(server.url, logs / "proxy-capture.log", args=["--keys", str(keys)]) as proxy,
    ):
        question = [{"role": "user", "content": "Say hello."}]
        alice, bob = proxy.sdk("sk-alice-secret"), proxy.sdk("sk-bob-secret")
        whole = alice.chat.completions.create(model="tiny", messages=question, max_tokens=8)
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in alice.chat.completions.create(
                model="tiny", messages=question, max_tokens=8, stream=True
            )
            if chunk.choices
        )
        claude = proxy.anthropic("sk-alice-secret").messages.create(
            model="tiny", max_tokens=8, messages=question
        )
        bob.chat.completions.create(model="tiny", messages=question, max_tokens=8)
        exchanges = proxy.exchanges()
        stored = proxy.exchanges_db.read_bytes()
    assert [(e["key"], e["api"], e["streamed"]) for e in exchanges] == [
        ("alice", "openai", False),
        ("alice", "openai", True),
        ("alice", "anthropic", False),
    ]
    first, second, third = exchanges
    assert first["request"]["messages"] == question and first["request"]["max_tokens"] == 8
    assert first["answer"]["choices"][0]["message"]["content"] == whole.choices[0].message.content
    assert first["completion_tokens"] == whole.usage.completion_tokens
    assert second["request"]["stream"] is True and second["answer"].endswith("data: [DONE]\n\n")
    assert streamed and texts_of(second["answer"]) == streamed
    assert third["path"] == "/v1/messages"
    assert third["answer"]["content"][0]["text"] == claude.content[0].text
    for secret in (b"sk-alice-secret", b"sk-bob-secret", ADMIN.encode()):
        assert secret not in stored


def test_server_timing_tells_the_servers_time_as_the_inspector_keeps_it(model, logs, tmp_path):
    """Over real llama-server: a whole answer's ``Server-Timing`` is the inspector's record of
    it, the server's time told apart from the proxy's; a stream's headers tell what is known
    when it starts (its wait for a slot, whole by then), the record the whole."""
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    with (
        LlamaServer(model, logs / "timing.log", parallel=2) as server,
        ProxyProcess(server.url, logs / "proxy-timing.log", args=["--keys", str(keys)]) as proxy,
    ):
        alice = proxy.sdk("sk-alice-secret")
        asked = {"model": "tiny", "messages": [{"role": "user", "content": "Hi."}], "max_tokens": 8}
        whole = alice.chat.completions.with_raw_response.create(**asked)
        with alice.chat.completions.with_streaming_response.create(**asked, stream=True) as r:
            started = timing(r.headers["server-timing"])
            assert list(r.iter_lines())
        kept, streamed = proxy.exchanges()
    figures = timing(whole.headers["server-timing"])
    assert figures == as_kept(kept)
    assert figures["upstream"] > figures["proxy"] > 0  # a real model's time, and the proxy's
    assert started["queue"] == streamed["queued_ms"]
    assert started["total"] < round(streamed["seconds"] * 1000, 3)
