"""Hostile bodies: requests built to cost the servers memory, to crash the proxy with its own
recursion, to write into its answer's headers or its log. Each is refused or disarmed at
once, in the client's own shape, and costs the proxy little.

The requests go over a plain socket: an HTTP library would parse (or refuse) the very
header lines a probe looks for, and could re-quote a path.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote, urlsplit

import psutil
import pytest

from tests.hostile.conftest import ALICE
from tests.hostile.cost import MiB, measured
from tests.polling import wait_for

pytestmark = pytest.mark.hostile

GROWTH = 64 * MiB  # the most a probe may add to the proxy's memory
CPU_SECONDS = 1.0  # the most processor time a probe may cost the proxy
DEPTH = 1010  # levels: under orjson's own limit (1024), over Python's recursion limit
HOSTILE_NAMES = ("line\r\nX-Forged: yes\x00", "名前ü€")  # control characters; not Latin-1
USER = [{"role": "user", "content": "hi"}]
CHAT = {"model": "tiny", "messages": USER, "max_tokens": 1}
MESSAGES = {"model": "tiny", "messages": USER, "max_tokens": 1}
RESPONSES = {"model": "tiny", "input": "hi", "max_output_tokens": 1, "store": False}
OLLAMA = {"model": "tiny", "messages": USER, "stream": False, "options": {"num_predict": 1}}


@dataclass(frozen=True)
class Answer:
    status: int
    head: bytes  # the status line and headers, as sent
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def error(self) -> dict:
        """The error object of an error body in any of the proxy's shapes."""
        body = json.loads(self.body)
        error = body["error"]
        return error if isinstance(error, dict) else {"message": error}

    def header(self, name: str) -> Optional[str]:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.encode():
                return value.strip().decode("ascii")
        return None


def exchange(
    gateway, method: str, path: str, body: bytes = b"", key: Optional[str] = ALICE
) -> Answer:
    """One request, with ``key`` (Alice's unless told), its answer read whole."""
    url = urlsplit(gateway.url)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        + (f"Authorization: Bearer {key}\r\n" if key else "")
        + "\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=120) as sock:
        sock.sendall(head.encode("ascii") + body)
        chunks = []
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    return Answer(int(head.split(b" ", 2)[1]), head, rest)


def posted(gateway, path: str, body: dict, deep: bytes = b"") -> Answer:
    """POST ``body``, whose string ``"DEEP"`` (if any) stands for the bytes ``deep``."""
    data = json.dumps(body).encode().replace(b'"DEEP"', deep)
    return exchange(gateway, "POST", path, data)


def cheap(gateway, probe):
    """What ``probe`` returns, checked to have cost the proxy little."""
    answer, cost = measured(gateway.pid, probe)
    assert cost.growth < GROWTH, cost
    assert cost.cpu < CPU_SECONDS, cost
    return answer


def nested(levels: int) -> bytes:
    """A JSON object ``levels`` deep, written out: encoding it would recurse as deep."""
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


# -- many tools ------------------------------------------------------------------------------


def function(i: int) -> dict:
    return {
        "name": f"tool_{i}",
        "description": "one of many",
        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
    }


MANY_TOOLS = {
    "chat": (
        "/v1/chat/completions",
        lambda tools: {**CHAT, "tools": [{"type": "function", "function": f} for f in tools]},
    ),
    "messages": (
        "/v1/messages",
        lambda tools: {
            **MESSAGES,
            "tools": [
                {
                    "name": f["name"],
                    "description": f["description"],
                    "input_schema": f["parameters"],
                }
                for f in tools
            ],
        },
    ),
    "responses": (
        "/v1/responses",
        lambda tools: {**RESPONSES, "tools": [{"type": "function", **f} for f in tools]},
    ),
    "ollama": (
        "/api/chat",
        lambda tools: {**OLLAMA, "tools": [{"type": "function", "function": f} for f in tools]},
    ),
}


def refused_before_the_server(gateway, path: str, data: bytes) -> dict:
    """The error of a request the proxy refuses, cheaply, leaving the model server as it
    was."""
    answer, server = measured(
        gateway.server.proc.pid,
        lambda: cheap(gateway, lambda: exchange(gateway, "POST", path, data)),
    )
    assert answer.status == 400, answer.text[:300]
    assert server.growth < MiB, f"the model server grew by {server}"
    assert psutil.Process(gateway.server.proc.pid).is_running()
    return answer.error()


@pytest.mark.parametrize("dialect", sorted(MANY_TOOLS))
def test_fifty_thousand_tools_are_refused_before_they_are_read(gateway, dialect):
    """7 MiB of tools would take the proxy 150 MiB to read: their brackets are counted
    instead."""
    path, build = MANY_TOOLS[dialect]
    data = json.dumps(build([function(i) for i in range(50_000)])).encode()
    assert len(data) > 6 * MiB
    error = refused_before_the_server(gateway, path, data)
    assert "more than 65536 arrays and objects" in error["message"], error


@pytest.mark.parametrize("dialect", sorted(MANY_TOOLS))
def test_one_tool_more_than_allowed_is_named(gateway, dialect):
    path, build = MANY_TOOLS[dialect]
    data = json.dumps(build([function(i) for i in range(129)])).encode()
    error = refused_before_the_server(gateway, path, data)
    assert "'tools' may offer at most 128 tools, got 129" in error["message"], error
    assert error.get("param", "tools") == "tools"


# -- deep JSON -------------------------------------------------------------------------------

ASSISTANT_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "DEEP"}}
    ],
}
TOOL_RESULT = {"role": "tool", "tool_call_id": "c1", "content": "ok"}
TOOL_USE = {
    "role": "assistant",
    "content": [{"type": "tool_use", "id": "c1", "name": "f", "input": "DEEP"}],
}
TOOL_ANSWER = {
    "role": "user",
    "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "ok"}],
}
OLLAMA_CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [{"function": {"name": "f", "arguments": "DEEP"}}],
}
DEEP_PLACES = {  # (route, body, the top-level field that holds the deep value)
    "chat-template-kwargs": (
        "/v1/chat/completions",
        {**CHAT, "chat_template_kwargs": "DEEP"},
        "chat_template_kwargs",
    ),
    "chat-tool-parameters": (
        "/v1/chat/completions",
        {**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": "DEEP"}}]},
        "tools",
    ),
    "chat-call-arguments": (
        "/v1/chat/completions",
        {**CHAT, "messages": [*USER, ASSISTANT_CALL, TOOL_RESULT]},
        "messages",
    ),
    "messages-template-kwargs": (
        "/v1/messages",
        {**MESSAGES, "chat_template_kwargs": "DEEP"},
        "chat_template_kwargs",
    ),
    "messages-input-schema": (
        "/v1/messages",
        {**MESSAGES, "tools": [{"name": "f", "input_schema": "DEEP"}]},
        "tools",
    ),
    "messages-tool-use-input": (
        "/v1/messages",
        {**MESSAGES, "messages": [*USER, TOOL_USE, TOOL_ANSWER]},
        "messages",
    ),
    "responses-template-kwargs": (
        "/v1/responses",
        {**RESPONSES, "chat_template_kwargs": "DEEP"},
        "chat_template_kwargs",
    ),
    "responses-tool-parameters": (
        "/v1/responses",
        {**RESPONSES, "tools": [{"type": "function", "name": "f", "parameters": "DEEP"}]},
        "tools",
    ),
    "ollama-tool-parameters": (
        "/api/chat",
        {
            **OLLAMA,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": "DEEP"}}],
        },
        "tools",
    ),
    "ollama-call-arguments": (
        "/api/chat",
        {**OLLAMA, "messages": [*USER, OLLAMA_CALL, {"role": "tool", "content": "ok"}]},
        "messages",
    ),
}


@pytest.mark.parametrize("place", sorted(DEEP_PLACES))
def test_json_nested_past_the_recursion_limit_is_a_400(gateway, place):
    path, body, field = DEEP_PLACES[place]
    answer = cheap(gateway, lambda: posted(gateway, path, body, nested(DEPTH)))
    assert answer.status == 400, answer.text[:300]
    error = answer.error()
    assert field in error["message"] and "nest" in error["message"], error
    assert error.get("param", field) == field


# -- client text bound for a header ----------------------------------------------------------


def not_offered_tools(names) -> dict:
    return {**MESSAGES, "tools": [{"type": "bash_20250124", "name": name} for name in names]}


HEADER_BOUND = {  # (route, body holding the names, the header that names them)
    "ollama-options": (
        "/api/chat",
        lambda names: {**OLLAMA, "options": {"num_predict": 1, **{name: 1 for name in names}}},
        "x-oai-proxy-ignored-options",
    ),
    "messages-server-tools": ("/v1/messages", not_offered_tools, "x-oai-proxy-left-out-tools"),
    "responses-tool-types": (
        "/v1/responses",
        lambda names: {**RESPONSES, "tools": [{"type": name} for name in names]},
        "x-oai-proxy-left-out-tools",
    ),
}


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["control", "non-latin-1"])
@pytest.mark.parametrize("place", sorted(HEADER_BOUND))
def test_client_text_goes_into_a_header_as_visible_ascii(gateway, place, name):
    path, build, header = HEADER_BOUND[place]
    name = "x" + name  # begins as no hosted tool's type does: left out and named, not refused
    answer = cheap(gateway, lambda: posted(gateway, path, build([name, "plain"])))
    assert answer.status == 200, answer.text[:300]
    lines = answer.head.split(b"\r\n")
    assert all(0x20 <= byte < 0x7F for line in lines for byte in line), answer.head
    assert all(b": " in line for line in lines[1:]), answer.head
    assert not [line for line in lines if line.lower().startswith(b"x-forged")], answer.head
    named = answer.header(header).split(", ")
    assert {unquote(item) for item in named} == {name, "plain"}, named


# -- client text bound for the log -----------------------------------------------------------


def test_a_path_cannot_write_a_line_of_its_own_into_the_log(gateway):
    forged = "FORGED 127.0.0.1 POST /admin/models 200 0.001s model=secret key=admin"
    path = "/v1/models%0d%0a" + forged.replace(" ", "%20")
    answer = cheap(gateway, lambda: exchange(gateway, "GET", path, key=None))
    assert answer.status < 500
    wait_for(lambda: "FORGED" in gateway.proxy.log(), "the access log line")
    lines = gateway.proxy.log().splitlines()
    assert not [line for line in lines if line.startswith("FORGED")], lines[-5:]
    (logged,) = [line for line in lines if "FORGED" in line]
    assert "proxy.access" in logged and "\\r\\nFORGED" in logged, logged
