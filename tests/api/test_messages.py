"""Anthropic's Messages API through Flask's test client: routes, keys, errors in Anthropic's
shape, streams, count_tokens."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import replace

import anthropic
import pytest

from proxy.config.catalog import Catalog, ModelSpec
from proxy.core.answers import Chunk, Completion, Usage, pieces
from proxy.core.errors import UpstreamError, UpstreamUnavailableError
from proxy.core.events import Passed
from proxy.core.tooluse import Source
from proxy.core.types import ToolCall
from proxy.fleet.fleet import Fleet
from proxy.fleet.health import Rotation
from proxy.fleet.replica import Replica
from proxy.fleet.servedmodel import ServedModel
from proxy.tools.results import ToolResult, ToolSpec
from proxy.tools.toolbox import Toolbox
from tests.fakes.backend import FakeBackend

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}
KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"
models = ["qwen"]
requests_per_minute = 1
"""


def named_events(body: bytes) -> list:
    """``(event, data)`` of each event; every event must have both lines."""
    found = []
    for block in body.decode().split("\n\n")[:-1]:
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: "), block
        payload = json.loads(data[len("data: ") :])
        assert payload["type"] == event[len("event: ") :]
        found.append(payload)
    return found


def assert_anthropic_error(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.data
    body = response.get_json()
    assert body["type"] == "error" and set(body) == {"type", "error"}
    assert body["error"]["type"] == kind and body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize("path", ["/v1/messages", "/messages", "/v1/messages?beta=true"])
def test_a_whole_message(client, backend, path):
    response = client.post(path, json=BODY)
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"].startswith("msg_") and body["type"] == "message"
    assert body["model"] == "claude-sonnet-4-5"
    assert body["content"] == [{"type": "text", "text": "Hello world"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["input_tokens"] == 5 and body["usage"]["output_tokens"] == 2
    assert backend.requests[0].max_tokens == 64


def test_a_streamed_message(client):
    response = client.post("/v1/messages", json={**BODY, "stream": True})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = named_events(response.data)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert (
        "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
        == "Hello world"
    )


def test_a_failure_after_the_first_byte_is_an_error_event(make_client):
    backend = FakeBackend(error=UpstreamError("the server died"), fail_after=1)
    response = make_client(backend).post("/v1/messages", json={**BODY, "stream": True})
    events = named_events(response.data)
    assert events[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "the server died"},
    }
    assert "message_stop" not in [e["type"] for e in events]


def test_a_failure_before_the_first_byte_is_an_http_error(make_client):
    backend = FakeBackend(error=UpstreamUnavailableError("down", retry_after=2))
    response = make_client(backend).post("/v1/messages", json={**BODY, "stream": True})
    assert_anthropic_error(response, 503, "overloaded_error")
    assert response.headers["Retry-After"] == "2"


def test_bad_input_is_a_400_in_anthropics_shape(client):
    body = {**BODY, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}
    error = assert_anthropic_error(
        client.post("/v1/messages", json=body), 400, "invalid_request_error"
    )
    assert "messages[0].content[0]" in error["message"]
    assert_anthropic_error(client.post("/v1/messages", data=b"{nope"), 400, "invalid_request_error")


def test_tools_its_client_runs_are_named_in_a_header(client, backend):
    tools = [
        {"name": "f", "input_schema": {"type": "object"}},
        {"type": "bash_20250124", "name": "bash"},
    ]
    response = client.post("/v1/messages", json={**BODY, "tools": tools})
    assert response.status_code == 200
    assert response.headers["x-oai-proxy-left-out-tools"] == "bash"
    assert [t["function"]["name"] for t in backend.requests[0].tools] == ["f"]


@pytest.mark.parametrize(
    ("asked", "named", "not_offered"),
    [
        pytest.param(
            {"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]},
            "'code_execution_20250825'",
            "code_execution",
            id="a-tool-the-gateway-never-runs",
        ),
        pytest.param(
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "'web_search'",
            "web_search",
            id="no-web-search-configured",
        ),
        pytest.param(
            {"tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]},
            "'web_fetch'",
            "web_fetch",
            id="no-web-fetch-configured",
        ),
        pytest.param(
            {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "gh"}]},
            "'gh'",
            "mcp",
            id="an-mcp-server-not-declared",
        ),
    ],
)
def test_a_hosted_tool_the_gateway_cannot_run_is_refused_unless_the_operator_leaves_it_out(
    make_client, backend, asked, named, not_offered
):
    refused = make_client().post("/v1/messages", json={**BODY, **asked})
    error = assert_anthropic_error(refused, 400, "invalid_request_error")
    assert named in error["message"] and "mcp.example.com" not in error["message"]
    assert backend.requests == []
    dropped = make_client(hosted_tools="drop").post("/v1/messages", json={**BODY, **asked})
    assert dropped.status_code == 200
    assert not_offered in dropped.headers["x-oai-proxy-left-out-tools"].split(", ")
    assert backend.requests[0].uses == () and backend.requests[0].tools == ()


def test_count_tokens(client, backend):
    body = {"model": "m", "system": "Be nice.", "messages": [{"role": "user", "content": "hi"}]}
    for path in ("/v1/messages/count_tokens", "/messages/count_tokens?beta=true"):
        response = client.post(path, json=body)
        assert response.status_code == 200
        assert response.get_json() == {"input_tokens": len("Be nice.") + len("hi")}


def fleet_of(*names: str):
    """A fleet of the named models on fake backends; other names are not found."""
    specs = tuple(ModelSpec(name) for name in names)
    return Fleet(
        Catalog(specs, names[0], catch_all=False),
        [
            ServedModel(
                spec, (Replica(f"fake-{spec.id}", FakeBackend()),), Rotation(lambda name: True)
            )
            for spec in specs
        ],
    )


@pytest.fixture
def keyed(make_client, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    return make_client(fleet_of("qwen", "llama"), keys=str(keys))


def test_keys_as_anthropic_clients_send_them(keyed):
    body = {**BODY, "model": "qwen"}
    assert_anthropic_error(keyed.post("/v1/messages", json=body), 401, "authentication_error")
    assert_anthropic_error(
        keyed.post("/v1/messages", json=body, headers={"x-api-key": "sk-bob"}),
        401,
        "authentication_error",
    )
    assert_anthropic_error(
        keyed.post(
            "/v1/messages", json={**body, "model": "llama"}, headers={"x-api-key": "sk-alice"}
        ),
        403,
        "permission_error",
    )
    ok = keyed.post(
        "/v1/messages",
        json=body,
        headers={"x-api-key": "sk-alice", "anthropic-version": "2023-06-01"},
    )
    assert ok.status_code == 200
    limited = keyed.post("/v1/messages", json=body, headers={"x-api-key": "sk-alice"})
    assert_anthropic_error(limited, 429, "rate_limit_error")
    assert "Retry-After" in limited.headers


def test_an_unknown_model_is_not_found(make_client):
    error = assert_anthropic_error(
        make_client(fleet_of("qwen")).post("/v1/messages", json=BODY), 404, "not_found_error"
    )
    assert "qwen" in error["message"]


def test_a_stream_waiting_for_its_first_token_gets_pings(make_client):
    """The first token comes only once the client has had a ping."""
    pinged = threading.Event()

    class Slow(FakeBackend):
        def stream(self, request):
            pinged.wait(30)  # a slot comes free late; the wait detects a hang only
            yield from super().stream(request)

    body = b""
    with make_client(Slow()).post(
        "/v1/messages", json={**BODY, "stream": True}, buffered=False
    ) as response:
        for piece in response.response:
            body += piece
            if b"event: ping" in body:
                pinged.set()
    kinds = [event["type"] for event in named_events(body)]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-1] == "message_stop"


OWN = {"id": "msg_up", "type": "message", "model": "up", "content": [{"type": "redacted"}]}
OWN_LINES = (
    b"event: message_start",
    b'data: {"type":"message_start","message":{"model":"up"}}',
    b"",
)


class MessagesServer(FakeBackend):
    """Answers as a server of the Messages API writes, for a client of that API."""

    def complete(self, request):
        return replace(super().complete(request), verbatim=OWN)

    def stream(self, request):
        chunks = list(super().stream(request))
        return iter([Passed(OWN_LINES), *chunks])


def test_an_answer_its_server_wrote_comes_back_as_written_and_nothing_is_left_out(make_client):
    client = make_client(MessagesServer())
    body = {**BODY, "tools": [{"type": "bash_20250124", "name": "bash"}]}
    whole = client.post("/v1/messages", json=body)
    assert whole.get_json() == {**OWN, "model": BODY["model"]}
    streamed = client.post("/v1/messages", json={**body, "stream": True})
    assert streamed.data.startswith(
        b'event: message_start\ndata: {"type": "message_start", "message": {"model": "%s"}}\n\n'
        % BODY["model"].encode()
    )
    for response in (whole, streamed):
        assert "x-oai-proxy-left-out-tools" not in response.headers


READ_FILE = ToolSpec("read_file", "Read a file", {"type": "object", "properties": {"path": {}}})
SEARCH = ToolSpec("web_search", "Search the web", {"type": "object", "properties": {"query": {}}})
PAGE = Source("https://news.example/", "News", "what happened")


class Tools:
    """An MCP server ``fs`` that reads one file, and a web search that finds one page."""

    def __init__(self):
        self.calls = []

    def names(self):
        return ("fs",)

    def list_tools(self, server, timeout=None, key=""):
        return (SEARCH,) if server == "web" else (READ_FILE,)

    def call(self, server, tool, arguments, timeout=None, key="", trace_context=None):
        self.calls.append((server, tool, arguments))
        if tool == "web_search":
            return ToolResult("News: what happened", sources=(PAGE,))
        return ToolResult("hello from a.txt")


class Scripted(Toolbox):
    """A toolbox whose MCP servers and web search are both ``tools``."""

    def _web(self):
        return self._mcp


class Caller(FakeBackend):
    """A model that calls the file's and the search's tools, then tells what they said."""

    def complete(self, request):
        self.requests.append(request)
        results = [message.content for message in request.messages if message.role == "tool"]
        if results:
            return Completion(" and ".join(results), "stop", Usage(30, 6))
        offered = [tool["function"]["name"] for tool in request.tools]
        calls = (
            ToolCall("c1", offered[0], '{"path": "a.txt"}'),
            ToolCall("c2", offered[1], '{"query": "news"}'),
        )
        return Completion("", "tool_calls", Usage(10, 4), tool_calls=calls)

    def stream(self, request):
        answer = self.complete(request)
        yield Chunk(text=answer.text)
        yield Chunk(
            tool_calls=pieces(answer.tool_calls),
            finish_reason=answer.finish_reason,
            usage=answer.usage,
        )


def in_process(app) -> anthropic.DefaultHttpxClient:
    """The SDK's own HTTP client calling ``app`` in this process: its HTTP library (httpx, or
    httpx2 in later SDKs) runs the app as its transport."""
    library = sys.modules[anthropic.DefaultHttpxClient.__mro__[1].__module__.partition(".")[0]]
    return anthropic.DefaultHttpxClient(transport=library.WSGITransport(app=app))


def test_the_anthropic_sdk_reads_the_runs_of_its_mcp_servers_and_search(make_client):
    backend, tools = Caller(), Tools()
    app = make_client(backend).application
    state = app.extensions["proxy"]
    app.extensions["proxy"] = replace(state, tools=Scripted(tools))
    sdk = anthropic.Anthropic(
        api_key="unused", base_url="http://localhost", http_client=in_process(app)
    )
    asked = {
        "model": "qwen",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "What is in a.txt, and in the news?"}],
        "mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "fs"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "betas": ["mcp-client-2025-04-04"],
    }
    whole = sdk.beta.messages.create(**asked)
    with sdk.beta.messages.stream(**asked) as stream:
        streamed = stream.get_final_message()
    for message in (whole, streamed):
        call, result, search, found, text = message.content
        assert (call.type, call.name, call.server_name) == ("mcp_tool_use", "read_file", "fs")
        assert call.input == {"path": "a.txt"} and result.tool_use_id == call.id
        assert result.content[0].text == "hello from a.txt" and not result.is_error
        assert (search.type, search.name, search.input) == (
            "server_tool_use",
            "web_search",
            {"query": "news"},
        )
        assert found.tool_use_id == search.id
        assert [(page.url, page.title) for page in found.content] == [(PAGE.url, PAGE.title)]
        assert text.text == "hello from a.txt and News: what happened"
        assert message.usage.server_tool_use.web_search_requests == 1
        assert (message.usage.input_tokens, message.usage.output_tokens) == (40, 10)
    assert (
        tools.calls
        == [("fs", "read_file", {"path": "a.txt"}), ("web", "web_search", {"query": "news"})] * 2
    )
