"""Hosted tools through Flask's test client, on a backend that calls a tool until it reads
the tool's result and a toolbox of one scripted server: OpenAI's Responses ``mcp`` tool
answered with its items (as the ``openai`` package reads them), whole and streamed, with
approval asked and given; the web search of Responses and of chat completions, with their
citations; and each server checked before anything runs (declared, granted, a URL the
gateway does not reach)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from proxy.access import spend
from proxy.config.catalog import McpServerSpec, WebSearchSpec
from proxy.config.modelsfile import parse_catalog
from proxy.config.settings import Settings
from proxy.core.answers import Chunk, Completion, Usage, pieces
from proxy.core.types import ToolCall
from proxy.fleet.build import build_fleet
from proxy.tools.results import ToolResult, ToolSpec
from proxy.tools.toolbox import Toolbox
from tests.fakes.backend import FakeBackend
from tests.fakes.canned import CannedServer
from tests.runtimes import NO_FILES
from tests.searxng import SearXNG
from tests.spans import finished, kept_spans, tree

DECLARED_AT = "https://tools.example.com/mcp"
HI = [{"role": "user", "content": "hi"}]
READ = ToolSpec("read_file", "Read a file", {"type": "object", "properties": {"path": {}}})
ARGUMENTS = {"read_file": {"path": "a.txt"}, "web_search": {"query": "llama facts"}}
MCP = {"type": "mcp", "server_label": "fs", "require_approval": "never"}
KEYS = """
[[keys]]
name = "granted"
key = "sk-granted"
tools = ["fs.read_file"]

[[keys]]
name = "plain"
key = "sk-plain"
"""


class Caller(FakeBackend):
    """Calls the first tool it is offered until a tool's result is in the conversation,
    then says it."""

    def complete(self, request):
        self.requests.append(request)
        last = request.messages[-1]
        if last.role == "tool":
            return Completion(f"The file says: {last.content}", "stop", Usage(7, 3))
        name = request.tools[0]["function"]["name"]
        call = ToolCall("c1", name, json.dumps(ARGUMENTS[name]))
        return Completion("", "tool_calls", Usage(5, 2), tool_calls=(call,))

    def stream(self, request):
        done = self.complete(request)
        if done.text:
            yield Chunk(done.text)
        yield Chunk(
            tool_calls=pieces(done.tool_calls), finish_reason=done.finish_reason, usage=done.usage
        )


class Servers:
    """One declared MCP server, ``fs``, scripted."""

    def __init__(self):
        self.calls = []
        self.trace_contexts = []  # each call's, as the server would be sent it

    def specs(self):
        return (McpServerSpec("fs", url=DECLARED_AT),)

    def names(self):
        return ("fs",)

    def list_tools(self, server, timeout=None, key=""):
        return (READ,)

    def call(self, server, tool, arguments, timeout=None, key="", trace_context=None):
        self.calls.append((server, tool, arguments))
        self.trace_contexts.append(trace_context)
        return ToolResult("ZEBRA42")


@pytest.fixture
def servers():
    return Servers()


@pytest.fixture
def searxng():
    with SearXNG() as stand_in:
        yield stand_in


@pytest.fixture
def toolbox(servers, searxng):
    return Toolbox(servers, web=lambda: WebSearchSpec(searxng.url, fetch="any"))


@pytest.fixture
def tooled(make_client, toolbox, servers):
    """A client of an app over :class:`Caller` whose tools are ``toolbox``'s (``web``:
    with the web search; else ``servers`` alone)."""

    def make(web=True, **settings):
        client = make_client(Caller(), **settings)
        extensions = client.application.extensions
        tools = toolbox if web else Toolbox(servers)
        extensions["proxy"] = replace(extensions["proxy"], tools=tools)
        return client

    return make


def events(body: bytes) -> list:
    return [
        json.loads(block.split("\n", 1)[1][len("data: ") :])
        for block in body.decode().split("\n\n")[:-1]
    ]


def test_the_mcp_tool_is_run_and_answered_with_its_items(tooled, servers):
    body = tooled().post("/v1/responses", json={"input": "read a.txt", "tools": [MCP]}).get_json()
    Response.model_validate(body)
    listing, call, message = body["output"]
    assert listing["type"] == "mcp_list_tools" and listing["server_label"] == "fs"
    assert [tool["name"] for tool in listing["tools"]] == ["read_file"]
    assert (call["type"], call["name"], call["output"], call["status"]) == (
        "mcp_call",
        "read_file",
        "ZEBRA42",
        "completed",
    )
    assert json.loads(call["arguments"]) == {"path": "a.txt"}
    assert message["content"][0]["text"] == "The file says: ZEBRA42"
    assert body["usage"]["input_tokens"] == 12 and body["usage"]["output_tokens"] == 5
    assert servers.calls == [("fs", "read_file", {"path": "a.txt"})]


def test_a_streamed_run_tells_each_item_as_openai_streams_them(tooled):
    response = tooled().post(
        "/v1/responses", json={"input": "read a.txt", "tools": [MCP], "stream": True}
    )
    found = events(response.data)
    kinds = [event["type"] for event in found]
    assert [e["sequence_number"] for e in found] == list(range(len(found)))
    for kind in (
        "response.mcp_list_tools.completed",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
    ):
        assert kind in kinds
    assert kinds.index("response.mcp_call.completed") < kinds.index("response.output_text.delta")
    final = Response.model_validate(found[-1]["response"])
    assert [item.type for item in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert final.output[-1].content[0].text == "The file says: ZEBRA42"


def test_a_call_waits_for_approval_and_runs_once_approved(tooled, servers):
    client = tooled()
    asked = {**MCP, "require_approval": "always"}
    first = client.post("/v1/responses", json={"input": "read a.txt", "tools": [asked]})
    first = first.get_json()
    request = first["output"][-1]
    assert request["type"] == "mcp_approval_request" and servers.calls == []
    Response.model_validate(first)
    second = client.post(
        "/v1/responses",
        json={
            "previous_response_id": first["id"],
            "tools": [asked],
            "input": [
                {
                    "type": "mcp_approval_response",
                    "approval_request_id": request["id"],
                    "approve": True,
                }
            ],
        },
    ).get_json()
    Response.model_validate(second)
    kinds = [item["type"] for item in second["output"]]
    assert kinds == ["mcp_list_tools", "mcp_call", "message"]
    assert second["output"][1]["approval_request_id"] == request["id"]
    assert second["output"][-1]["content"][0]["text"] == "The file says: ZEBRA42"
    assert servers.calls == [("fs", "read_file", {"path": "a.txt"})]


@pytest.mark.parametrize(
    "tool, status, param, words",
    [
        ({**MCP, "server_label": "nope"}, 400, "tools", "no MCP server is declared here as 'nope'"),
        (
            {**MCP, "server_url": "http://127.0.0.1:9/mcp"},
            400,
            "tools",
            "reaches only the MCP servers its operator declares",
        ),
        (
            {**MCP, "server_url": "http://169.254.169.254/latest"},
            400,
            "tools",
            "reaches only the MCP servers its operator declares",
        ),
        ({**MCP, "headers": {"Authorization": "x"}}, 400, "tools[0].headers", "credentials"),
        ({"type": "web_search"}, 400, "tools", "needs a web search"),
        ({"type": "code_interpreter"}, 400, "tools", "'code_interpreter' is a hosted tool"),
    ],
)
def test_a_server_the_gateway_cannot_run_is_refused_by_name(
    tooled, servers, tool, status, param, words
):
    response = tooled(web=False).post("/v1/responses", json={"input": "hi", "tools": [tool]})
    error = response.get_json()["error"]
    assert response.status_code == status and error["param"] == param
    assert words in error["message"] and servers.calls == []


def test_a_key_runs_only_the_tools_granted_to_it(tooled, servers, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    client = tooled(keys=str(keys))
    body = {"input": "read a.txt", "tools": [MCP]}
    refused = client.post("/v1/responses", json=body, headers={"Authorization": "Bearer sk-plain"})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "tool_not_allowed"
    assert servers.calls == []
    granted = client.post(
        "/v1/responses", json=body, headers={"Authorization": "Bearer sk-granted"}
    ).get_json()
    assert granted["output"][-1]["content"][0]["text"] == "The file says: ZEBRA42"


def test_a_server_url_the_operator_declared_names_that_server(tooled, servers):
    tool = {**MCP, "server_label": "files", "server_url": "HTTPS://Tools.Example.com/mcp/"}
    body = tooled().post("/v1/responses", json={"input": "read a.txt", "tools": [tool]})
    listing, call, message = body.get_json()["output"]
    assert listing["server_label"] == call["server_label"] == "files"
    assert servers.calls == [("fs", "read_file", {"path": "a.txt"})]


@pytest.mark.parametrize("stream", [False, True])
def test_the_web_search_is_run_and_answered_with_its_call_and_citations(tooled, searxng, stream):
    tool = {"type": "web_search", "external_web_access": False}  # as Codex asks
    response = tooled().post(
        "/v1/responses", json={"input": "llamas?", "tools": [tool], "stream": stream}
    )
    body = events(response.data)[-1]["response"] if stream else response.get_json()
    Response.model_validate(body)
    call, message = body["output"]
    assert call["type"] == "web_search_call" and call["status"] == "completed"
    assert call["action"]["query"] == "llama facts" and searxng.queries == ["llama facts"]
    found = [source["url"] for source in call["action"]["sources"]]
    assert found[0] == searxng.page("llamas.html") and len(found) == 3
    text = message["content"][0]["text"]
    assert "Llamas of the Andes" in text
    cited = message["content"][0]["annotations"]
    assert [c["url"] for c in cited] == found
    assert all(text[c["start_index"] : c["end_index"]] == c["url"] for c in cited)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions_web_search_options_run_the_search_and_cite_its_pages(
    tooled, searxng, stream
):
    response = tooled().post(
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": "llamas?"}],
            "web_search_options": {"search_context_size": "medium"},
            "stream": stream,
        },
    )
    assert response.status_code == 200
    if stream:
        chunks = [
            ChatCompletionChunk.model_validate(json.loads(block[len("data: ") :]))
            for block in response.data.decode().split("\n\n")
            if block.startswith("data: {")
        ]
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
        (cited,) = [
            c.choices[0].delta.model_extra["annotations"]
            for c in chunks
            if "annotations" in (c.choices[0].delta.model_extra or {})
        ]
        assert chunks[-1].choices[0].finish_reason == "stop"
    else:
        message = ChatCompletion.model_validate(response.get_json()).choices[0].message
        text, cited = message.content, [a.model_dump() for a in message.annotations]
    assert searxng.queries == ["llama facts"] and "Llamas of the Andes" in text
    assert [c["url_citation"]["url"] for c in cited][0] == searxng.page("llamas.html")
    assert len(cited) == 3 and all(c["type"] == "url_citation" for c in cited)
    spans = [c["url_citation"] for c in cited]
    assert all(text[s["start_index"] : s["end_index"]] == s["url"] for s in spans)


@pytest.mark.parametrize(
    "options, web, param, words",
    [
        ({}, False, "web_search_options", "needs a web search"),
        ({"user_location": {"type": "approximate"}}, True,
         "web_search_options.user_location", "no location"),
        ({"search_context_size": "high"}, True,
         "web_search_options.search_context_size", "must be medium"),
        ("on", True, "web_search_options", "must be a JSON object"),
    ],
    ids=["no web search here", "a location", "more context", "not an object"],
)  # fmt: skip
def test_web_search_options_the_gateway_cannot_honour_are_refused_by_name(
    tooled, searxng, options, web, param, words
):
    response = tooled(web=web).post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "web_search_options": options},
    )
    error = response.get_json()["error"]
    assert response.status_code == 400 and error["param"] == param
    assert words in error["message"] and searxng.queries == []


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"api_key": ("sk-bare",)}, "sk-bare"),
        ({"api_key": ("sk-bare",), "admin_key": "sk-admin"}, "sk-admin"),
    ],
    ids=["api-key", "admin-key"],
)
def test_a_key_no_keys_file_names_runs_every_tool(tooled, servers, settings, key):
    """``--api-key`` and the admin key are in no keys file, which alone grants less: they
    run what is configured, as a proxy without keys does."""
    granted = tooled(**settings).post(
        "/v1/responses",
        json={"input": "read a.txt", "tools": [MCP]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert granted.status_code == 200, granted.get_json()
    assert granted.get_json()["output"][-1]["content"][0]["text"] == "The file says: ZEBRA42"
    assert servers.calls == [("fs", "read_file", {"path": "a.txt"})]


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools"),
        ({"mcp_servers": [{"type": "url", "url": DECLARED_AT, "name": "fs"}]}, "mcp_servers"),
    ],
)
def test_a_body_passed_to_a_messages_server_runs_there_only_what_the_key_is_granted(
    make_client, tmp_path, fields, param
):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS + '\n[[keys]]\nname = "all"\nkey = "sk-all"\ntools = ["*"]\n')
    answer = {
        "content": [{"type": "text", "text": "Searched."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 1,
                  "server_tool_use": {"web_search_requests": 2}},
    }  # fmt: skip
    price = {"input": 1, "output": 2, "web_search": 10}  # $10 per 1,000 searches
    with CannedServer() as upstream:
        upstream.post("/v1/messages", json_body=answer)
        catalog = parse_catalog(
            {"models": {"claude": {"backend": "anthropic", "upstreams": [upstream.url],
                                   "price": price}}},
            "t",
        )  # fmt: skip
        with build_fleet(Settings(), NO_FILES, catalog) as fleet:
            client = make_client(fleet, keys=str(keys))
            body = {"model": "claude", "max_tokens": 8, "messages": HI, **fields}
            refused = client.post("/v1/messages", json=body, headers={"x-api-key": "sk-plain"})
            error = refused.get_json()["error"]
            assert refused.status_code == 403 and error["type"] == "permission_error"
            assert upstream.calls == []
            served = client.post("/v1/messages", json=body, headers={"x-api-key": "sk-all"})
            assert served.status_code == 200 and len(upstream.calls) == 1
            assert json.loads(upstream.calls[0].body)[param] == fields[param]
            access = client.application.extensions["proxy"].access
            (row,) = [row for row in access.usage() if row["key"] == "all"]
            (priced,) = spend.priced([row], catalog.prices)
            assert (row["prompt_tokens"], row["completion_tokens"], row["web_searches"]) == (
                3,
                1,
                2,
            )
            assert priced["spend_usd"] == 0.020005  # 3 + 2 micro-dollars, and 2 searches


@pytest.mark.parametrize("answered, status", [(64, 200), (65, 400)])
def test_a_request_answers_64_approval_requests_at_most(tooled, servers, answered, status):
    pairs = []
    for number in range(answered):
        pairs += [
            {"type": "mcp_approval_request", "id": f"mcpr_{number}", "server_label": "fs",
             "name": "read_file", "arguments": '{"path": "a.txt"}'},
            {"type": "mcp_approval_response", "approval_request_id": f"mcpr_{number}",
             "approve": True},
        ]  # fmt: skip
    answer = tooled().post(
        "/v1/responses",
        json={"input": [{"role": "user", "content": "hi"}, *pairs],
              "tools": [{**MCP, "require_approval": "always"}]},
    )  # fmt: skip
    assert answer.status_code == status, answer.get_json()
    if status == 400:
        assert answer.get_json()["error"]["param"] == "input" and servers.calls == []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_tool_loop_is_traced_turn_by_turn(tooled, servers, monkeypatch, stream):
    """Each turn a span: its attempt at the model, then the hosted tools it called (in
    GenAI's conventions, without their arguments unless the operator opts in), whose server
    is sent the call's trace context."""
    spans = kept_spans(monkeypatch)
    client = tooled(otel="on")
    body = {"input": "read a.txt", "tools": [MCP], "stream": stream}
    with client.post("/v1/responses", json=body) as response:
        assert response.status_code == 200 and response.get_data()
    ended = finished(client, spans)
    assert tree(ended) == [
        ("chat default", "turn"),
        ("execute_tool read_file", "turn"),
        ("turn", "POST /v1/responses"),
        ("chat default", "turn"),
        ("turn", "POST /v1/responses"),
        ("charge", "POST /v1/responses"),
        ("POST /v1/responses", None),
    ]
    (tool,) = [span for span in ended if span.name == "execute_tool read_file"]
    assert {name: tool.attributes[name] for name in (
        "gen_ai.operation.name", "gen_ai.tool.name", "oai_proxy.tool_server")} == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_file",
        "oai_proxy.tool_server": "fs"}  # fmt: skip
    assert "gen_ai.tool.call.arguments" not in tool.attributes
    ids = tool.context
    assert servers.trace_contexts == [{"traceparent": (
        f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}")}]  # fmt: skip
    assert [span.attributes.get("oai_proxy.turn") for span in ended if span.name == "turn"] == [
        1, 2]  # fmt: skip
