"""The hosted tools of Anthropic's Messages API both ways: the MCP connector's servers (both
betas' shapes) and the web search and fetch server tools as the uses the gateway runs, each
option it cannot honour refused by name; the runs as Anthropic's blocks, whole and streamed
between the texts of the turns."""

from __future__ import annotations

from dataclasses import replace

import pytest

from proxy.api.serve import left_out_headers
from proxy.core.answers import Completion, Usage
from proxy.core.errors import InvalidRequestError, UntranslatableError
from proxy.core.events import (
    Finish,
    PromptCounted,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolRan,
    ToolsListed,
    UsageReport,
)
from proxy.core.tooluse import Source, ToolListing, ToolRun, ToolUse
from proxy.core.types import ToolCall
from proxy.dialects import anthropic as messages
from proxy.dialects.anthropic import MessagesStream, parse

from .payloads import accumulate, payloads

HI = [{"role": "user", "content": "hi"}]
FS = {"type": "url", "url": "https://mcp.example.com/sse", "name": "fs"}
SEARCH = {"type": "web_search_20250305", "name": "web_search"}
FETCH = {"type": "web_fetch_20250910", "name": "web_fetch"}
WEB_SEARCH = ToolUse("web", label="web_search", allowed=("web_search",), kind="web_search")
WEB_FETCH = ToolUse("web", label="web_fetch", allowed=("web_fetch",), kind="web_fetch")


def body(**fields) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HI, **fields}


def toolset(**fields) -> dict:
    return {"type": "mcp_toolset", "mcp_server_name": "fs", **fields}


# -- requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "hosted"),
    [
        pytest.param({"mcp_servers": [FS]}, (ToolUse("fs", label="fs"),), id="every-tool"),
        pytest.param(
            {"mcp_servers": [{"type": "url", "name": "fs"}]},
            (ToolUse("fs", label="fs"),),
            id="no-url-the-gateway-knows-its-own",
        ),
        pytest.param(
            {"mcp_servers": [{**FS, "tool_configuration": {"allowed_tools": ["read_file"]}}]},
            (ToolUse("fs", label="fs", allowed=("read_file",)),),
            id="2025-04-04-allowed-tools",
        ),
        pytest.param(
            {
                "mcp_servers": [
                    {**FS, "tool_configuration": {"enabled": False}},
                    {**FS, "name": "gh"},
                ]
            },
            (ToolUse("gh", label="gh"),),
            id="2025-04-04-a-server-turned-off-is-not-offered",
        ),
        pytest.param(
            {"mcp_servers": [FS], "tools": [toolset(cache_control={"type": "ephemeral"})]},
            (ToolUse("fs", label="fs"),),
            id="2025-11-20-toolset",
        ),
        pytest.param(
            {
                "mcp_servers": [FS],
                "tools": [
                    toolset(
                        default_config={"enabled": False, "defer_loading": False},
                        configs={"read_file": {"enabled": True}, "write_file": {}},
                    )
                ],
            },
            (ToolUse("fs", label="fs", allowed=("read_file",)),),
            id="2025-11-20-allow-list",
        ),
        pytest.param(
            {"mcp_servers": [FS], "tools": [toolset(configs={"read_file": {"enabled": True}})]},
            (ToolUse("fs", label="fs"),),
            id="2025-11-20-every-tool-on",
        ),
        pytest.param(
            {"mcp_servers": [FS], "tools": [toolset(default_config={"enabled": False})]},
            (),
            id="2025-11-20-every-tool-off-is-not-offered",
        ),
        pytest.param({"tools": [SEARCH]}, (WEB_SEARCH,), id="web-search"),
        pytest.param(
            {
                "tools": [
                    {
                        **SEARCH,
                        "type": "web_search_20260209",
                        "cache_control": {"type": "ephemeral"},
                        "strict": True,
                        "allowed_callers": ["direct"],
                        "defer_loading": False,
                        "max_uses": None,
                    }
                ]
            },
            (WEB_SEARCH,),
            id="web-search-a-later-version-with-what-it-can-honour",
        ),
        pytest.param(
            {"tools": [{**SEARCH, "max_uses": 8}]},  # as Claude Code's WebSearch asks
            (replace(WEB_SEARCH, max_uses=8),),
            id="web-search-used-at-most-8-times",
        ),
        pytest.param(
            {"tools": [{**FETCH, "citations": {"enabled": False}}, SEARCH]},
            (WEB_FETCH, WEB_SEARCH),
            id="web-fetch",
        ),
        pytest.param(
            {"mcp_servers": [FS], "tools": [SEARCH], "tool_choice": {"type": "none"}},
            (),
            id="tool-choice-none-offers-none",
        ),
    ],
)
def test_hosted_tools_become_the_uses_of_the_gateways_servers(fields, hosted):
    parsed = parse(body(**fields))
    assert parsed.request.uses == hosted
    assert parsed.not_run == () and parsed.not_offered == () and parsed.request.tools == ()


def test_a_messages_server_runs_its_own_and_a_fallback_names_them_not_offered():
    parsed = parse(body(mcp_servers=[FS], tools=[SEARCH]), passing=True)
    assert parsed.request.uses == () and parsed.not_run == ()
    assert left_out_headers(messages, parsed) == {"x-oai-proxy-left-out-tools": "fs, web_search"}


@pytest.mark.parametrize(
    ("fields", "runs"),
    [
        ({"tools": [SEARCH, FETCH]}, (("web", "tools"),)),
        ({"mcp_servers": [FS], "tools": [toolset()]}, (("fs", "tools"), ("fs", "mcp_servers"))),
        (
            {"tools": [{"type": "code_execution_20250522", "name": "code_execution"}]},
            (("code_execution", "tools"),),
        ),
        ({"tools": [{"name": "f", "input_schema": {}}]}, ()),
        # read as the upstream reads them, whatever the proxy cannot read beside them
        (
            {"messages": [{"role": "user", "content": [{"type": "future"}]}], "tools": [SEARCH]},
            (("web", "tools"),),
        ),
    ],
)
def test_what_a_passed_body_asks_its_upstream_to_run_is_named_for_the_grants(fields, runs):
    assert parse(body(**fields), passing=True).upstream_runs == runs
    assert parse(body(mcp_servers=[FS]), passing=False).upstream_runs == ()


@pytest.mark.parametrize(
    ("junk", "runs"),
    [
        ([], ()),
        ({"tools": "no list", "mcp_servers": [7]}, (("7", "mcp_servers"),)),
        ({"tools": [None, {"type": 3}, {"type": "mcp_toolset"}]}, (("None", "tools"),)),
    ],
)
def test_any_body_is_read_for_what_it_asks_its_upstream_to_run(junk, runs):
    assert messages.hosted.upstream_runs(junk) == runs


@pytest.mark.parametrize(
    ("fields", "param", "untranslatable"),
    [
        pytest.param(
            {"mcp_servers": [{**FS, "authorization_token": "secret"}]},
            "mcp_servers[0].authorization_token",
            True,
            id="a-client-token",
        ),
        pytest.param({"mcp_servers": {"fs": FS}}, "mcp_servers", False, id="not-a-list"),
        pytest.param(
            {"mcp_servers": [{**FS, "type": "stdio"}]}, "mcp_servers[0].type", False, id="type"
        ),
        pytest.param(
            {"mcp_servers": [{"type": "url", "url": "u"}]},
            "mcp_servers[0].name",
            False,
            id="no-name",
        ),
        pytest.param({"mcp_servers": [FS, FS]}, "mcp_servers[1].name", False, id="one-name-twice"),
        pytest.param(
            {"mcp_servers": [{**FS, "url": 7}]}, "mcp_servers[0].url", False, id="url-type"
        ),
        pytest.param(
            {"mcp_servers": [{**FS, "headers": {"Authorization": "x"}}]},
            "mcp_servers[0].headers",
            True,
            id="a-field-not-read",
        ),
        pytest.param(
            {"mcp_servers": [{**FS, "tool_configuration": {"allowed_tools": "read_file"}}]},
            "mcp_servers[0].tool_configuration.allowed_tools",
            False,
            id="allowed-tools-not-a-list",
        ),
        pytest.param(
            {"mcp_servers": [{**FS, "tool_configuration": {"enabled": "yes"}}]},
            "mcp_servers[0].tool_configuration.enabled",
            False,
            id="enabled-not-a-boolean",
        ),
        pytest.param(
            {"mcp_servers": [{**FS, "tool_configuration": {}}], "tools": [toolset()]},
            "mcp_servers[0].tool_configuration",
            False,
            id="configured-twice",
        ),
        pytest.param(
            {"mcp_servers": [FS], "tools": [toolset(), toolset()]},
            "tools[1].mcp_server_name",
            False,
            id="two-toolsets-of-one-server",
        ),
        pytest.param(
            {"tools": [toolset()]}, "tools[0].mcp_server_name", False, id="a-toolset-of-no-server"
        ),
        pytest.param(
            {"mcp_servers": [FS], "tools": [toolset(configs={"write_file": {"enabled": False}})]},
            "tools[0].configs.write_file.enabled",
            True,
            id="a-deny-list",
        ),
        pytest.param(
            {"mcp_servers": [FS], "tools": [toolset(default_config={"defer_loading": True})]},
            "tools[0].default_config.defer_loading",
            True,
            id="deferred-loading",
        ),
        pytest.param(
            {"mcp_servers": [FS], "tools": [toolset(configs=["read_file"])]},
            "tools[0].configs",
            False,
            id="configs-not-an-object",
        ),
        pytest.param(
            {"tools": [{**SEARCH, "max_uses": 0}]}, "tools[0].max_uses", False, id="max-uses-0"
        ),
        pytest.param(
            {"tools": [{**SEARCH, "allowed_domains": ["example.com"]}]},
            "tools[0].allowed_domains",
            True,
            id="allowed-domains",
        ),
        pytest.param(
            {"tools": [{**FETCH, "blocked_domains": ["example.com"]}]},
            "tools[0].blocked_domains",
            True,
            id="blocked-domains",
        ),
        pytest.param(
            {"tools": [{**SEARCH, "user_location": {"type": "approximate", "city": "Oslo"}}]},
            "tools[0].user_location",
            True,
            id="user-location",
        ),
        pytest.param(
            {"tools": [{**FETCH, "max_content_tokens": 1000}]},
            "tools[0].max_content_tokens",
            True,
            id="max-content-tokens",
        ),
        pytest.param(
            {"tools": [{**FETCH, "citations": {"enabled": True}}]},
            "tools[0].citations",
            True,
            id="cited-fetches",
        ),
        pytest.param(
            {"tools": [{**SEARCH, "citations": {"enabled": False}}]},
            "tools[0].citations",
            True,
            id="citations-are-a-fetchs",
        ),
        pytest.param(
            {"tools": [{**SEARCH, "allowed_callers": ["code_execution_20250825"]}]},
            "tools[0].allowed_callers",
            True,
            id="called-by-code",
        ),
        pytest.param(
            {"tools": [{**SEARCH, "search_profile": "deep"}]},
            "tools[0].search_profile",
            True,
            id="a-web-field-not-read",
        ),
        pytest.param(
            {"tools": [{**SEARCH, "defer_loading": True}]},
            "tools[0].defer_loading",
            True,
            id="a-deferred-search",
        ),
        pytest.param(
            {"tools": [{**SEARCH, "x" * 500: 1}]},
            "tools[0]." + "x" * 64 + "…",
            True,
            id="a-long-field-name-is-cut",
        ),
    ],
)
def test_what_the_gateway_cannot_honour_is_refused_by_name(fields, param, untranslatable):
    with pytest.raises(InvalidRequestError) as error:
        parse(body(**fields))
    assert error.value.param == param and param in error.value.message
    assert isinstance(error.value, UntranslatableError) is untranslatable
    if untranslatable:  # a Messages API server reads it: the body goes to one as it came
        sent = parse(body(**fields), passing=True).request.verbatim
        assert sent.untranslated is not None and sent.body["messages"] == HI


def test_a_client_token_is_never_repeated():
    with pytest.raises(UntranslatableError) as error:
        parse(body(mcp_servers=[{**FS, "authorization_token": "sk-secret-token"}]))
    assert "sk-secret-token" not in error.value.message


def test_earlier_runs_stay_out_of_the_prompt_and_their_texts_stay_in():
    earlier = [
        {"type": "text", "text": "Looking."},
        {"type": "mcp_tool_use", "id": "m1", "name": "read", "server_name": "fs", "input": {}},
        {
            "type": "mcp_tool_result",
            "tool_use_id": "m1",
            "content": [{"type": "text", "text": "x"}],
        },
        {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}},
        {"type": "web_search_tool_result", "tool_use_id": "s1", "content": []},
        {"type": "text", "text": "Found it."},
    ]
    history = [*HI, {"role": "assistant", "content": earlier}, {"role": "user", "content": "ok"}]
    parsed = parse(body(messages=history))
    assert [(m.role, m.content) for m in parsed.request.messages] == [
        ("user", "hi"),
        ("assistant", "Looking.\nFound it."),
        ("user", "ok"),
    ]


# -- answers ----------------------------------------------------------------------------------

LISTING = ToolListing("fs", (("read_file", "Read a file", {"type": "object"}),))
READ = ToolRun("call_1", "fs", "read_file", '{"path":"a.txt"}', output="hello", kind="mcp")
FAILED = ToolRun("call_2", "fs", "read_file", '{"path":"b.txt"}', error="no such file")
PAGES = (Source("https://a.example/", "A", "about a"), Source("https://b.example/", "B"))
SEARCHED = ToolRun(
    "call_3",
    "web_search",
    "web_search",
    '{"query":"news"}',
    output="A: about a",
    sources=PAGES,
    kind="web_search",
)
FETCHED = ToolRun(
    "call_4",
    "web",  # the operator's own web search, given to the model
    "web_fetch",
    '{"url":"https://a.example/"}',
    output="The page's text.",
    sources=(Source("https://a.example/", "A"),),
    kind="web_search",
)


def render(runs, text="It says hello.", **fields) -> dict:
    completion = Completion(text, "stop", Usage(20, 4), runs=tuple(runs), **fields)
    return messages.render(parse(body()), "msg_1", "claude", [completion])


def test_each_run_is_its_call_and_its_result_before_the_text():
    content = render([LISTING, READ, FAILED, SEARCHED, FETCHED])["content"]
    ids = [block.get("id") or block["tool_use_id"] for block in content[:-1]]
    assert ids[0::2] == ids[1::2] and len(set(ids)) == 4
    assert ids[0].startswith("mcptoolu_") and ids[4].startswith("srvtoolu_")
    for block in content[:-1]:
        block.pop("id", None), block.pop("tool_use_id", None)
    assert content == [
        {
            "type": "mcp_tool_use",
            "name": "read_file",
            "server_name": "fs",
            "input": {"path": "a.txt"},
        },
        {
            "type": "mcp_tool_result",
            "is_error": False,
            "content": [{"type": "text", "text": "hello"}],
        },
        {
            "type": "mcp_tool_use",
            "name": "read_file",
            "server_name": "fs",
            "input": {"path": "b.txt"},
        },
        {
            "type": "mcp_tool_result",
            "is_error": True,
            "content": [{"type": "text", "text": "no such file"}],
        },
        {"type": "server_tool_use", "name": "web_search", "input": {"query": "news"}},
        {
            "type": "web_search_tool_result",
            "content": [
                {
                    "type": "web_search_result",
                    "url": "https://a.example/",
                    "title": "A",
                    "encrypted_content": "",
                    "page_age": None,
                },
                {
                    "type": "web_search_result",
                    "url": "https://b.example/",
                    "title": "B",
                    "encrypted_content": "",
                    "page_age": None,
                },
            ],
        },
        {"type": "server_tool_use", "name": "web_fetch", "input": {"url": "https://a.example/"}},
        {
            "type": "web_fetch_tool_result",
            "content": {
                "type": "web_fetch_result",
                "url": "https://a.example/",
                "content": {
                    "type": "document",
                    "source": {
                        "type": "text",
                        "media_type": "text/plain",
                        "data": "The page's text.",
                    },
                    "title": "A",
                },
                "retrieved_at": None,
            },
        },
        {"type": "text", "text": "It says hello."},
    ]


@pytest.mark.parametrize(
    ("runs", "server_tool_use"),
    [
        pytest.param([LISTING, READ], None, id="no-search"),
        pytest.param(
            [SEARCHED, SEARCHED, FETCHED],
            {"web_search_requests": 2, "web_fetch_requests": 1},
            id="searches-and-fetches",
        ),
    ],
)
def test_the_usage_counts_the_searches_and_fetches(runs, server_tool_use):
    usage = render(runs)["usage"]
    assert usage.get("server_tool_use") == server_tool_use
    assert (usage["input_tokens"], usage["output_tokens"]) == (20, 4)


@pytest.mark.parametrize(
    ("run", "result"),
    [
        pytest.param(
            ToolRun(
                "c",
                "web_search",
                "web_search",
                '{"query":"q"}',
                error="timed out",
                kind="web_search",
            ),
            {"type": "web_search_tool_result_error", "error_code": "unavailable"},
            id="a-failed-search",
        ),
        pytest.param(
            ToolRun("c", "web_search", "web_search", "{not json", error="bad", kind="web_search"),
            {"type": "web_search_tool_result_error", "error_code": "invalid_tool_input"},
            id="a-search-the-model-called-wrong",
        ),
        pytest.param(
            ToolRun(
                "c",
                "web_fetch",
                "web_fetch",
                '{"url":"http://10.0.0.1/"}',
                error="no",
                kind="web_fetch",
            ),
            {"type": "web_fetch_tool_result_error", "error_code": "unavailable"},
            id="a-failed-fetch",
        ),
        pytest.param(
            ToolRun("c", "fs", "read_file", "{}", pending=True, approval_id="mcpr_1"),
            [
                {
                    "type": "text",
                    "text": "this call waits for an approval, which the Messages API cannot give",
                }
            ],
            id="a-call-held-for-an-approval-messages-never-asks",
        ),
    ],
)
def test_a_failed_run_is_told_in_anthropics_shape(run, result):
    call, told = render([run], text="")["content"]
    assert told["tool_use_id"] == call["id"] and told["content"] == result
    if told["type"] == "mcp_tool_result":
        assert told["is_error"] is True


def test_a_run_whole_or_streamed_is_the_same_and_streamed_where_it_ran():
    parsed = parse(body())
    batches = [
        [PromptCounted(20), TextDelta("Let me look.")],
        [ToolsListed(LISTING), ToolRan(READ)],
        [ToolRan(SEARCHED), TextDelta("\n\nIt says "), TextDelta("hello.")],
        [
            ToolCallStart(0, "toolu_1", "shell"),
            ToolCallDelta(0, "{}"),
            ToolCallEnd(0),
            UsageReport(Usage(20, 4)),
            Finish("tool_calls"),
        ],
    ]
    events = payloads(MessagesStream(parsed, "msg_1", "claude").render(iter(batches)))
    assert [
        (event["type"], event.get("content_block", event.get("delta", {})).get("type"))
        for event in events
    ] == [
        ("message_start", None),
        ("content_block_start", "text"),
        ("content_block_delta", "text_delta"),
        ("content_block_stop", None),
        ("content_block_start", "mcp_tool_use"),
        ("content_block_delta", "input_json_delta"),
        ("content_block_stop", None),
        ("content_block_start", "mcp_tool_result"),
        ("content_block_stop", None),
        ("content_block_start", "server_tool_use"),
        ("content_block_delta", "input_json_delta"),
        ("content_block_stop", None),
        ("content_block_start", "web_search_tool_result"),
        ("content_block_stop", None),
        ("content_block_start", "text"),
        ("content_block_delta", "text_delta"),
        ("content_block_delta", "text_delta"),
        ("content_block_stop", None),
        ("content_block_start", "tool_use"),
        ("content_block_delta", "input_json_delta"),
        ("content_block_stop", None),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[4]["content_block"]["input"] == {}
    streamed = accumulate(events)
    whole = messages.render(
        parsed,
        "msg_1",
        "claude",
        [
            Completion(
                "Let me look.\n\nIt says hello.",
                "tool_calls",
                Usage(20, 4),
                tool_calls=(ToolCall("toolu_1", "shell", "{}"),),
                runs=(LISTING, READ, SEARCHED),
            )
        ],
    )
    text = streamed["content"].pop(0)  # a whole answer's text is every turn's, after the runs
    streamed["content"][-2]["text"] = text["text"] + streamed["content"][-2]["text"]
    assert streamed == whole
    assert whole["usage"]["server_tool_use"] == {"web_search_requests": 1, "web_fetch_requests": 0}
