"""Exchanges kept for the inspector, through a proxy in front of real llama-server, from the
real ``openai`` and ``anthropic`` SDKs: each request as the SDK sent it and the answer as it
got it, whole and streamed; only the keys that ask for it; no secret in the store."""

from __future__ import annotations

import json

import pytest

from tests.processes import ADMIN, ProxyProcess

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
