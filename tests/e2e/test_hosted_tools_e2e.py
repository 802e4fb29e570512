"""The tool loop on real processes: a model whose models file entry gives it the reference
filesystem server's tools (``tools = ["fs"]``) calls ``read_text_file``, the gateway runs
the call on the real server from npm and gives the model the file's content, and the model
answers with the file's word (see :mod:`.hostedtools`), which it could have read nowhere
else.

On every server generation, whole and streamed, through the ``openai`` SDK's chat
completions: the call is read out of the model's text by current llama-server's chat layer,
and by the proxy's own formats on the servers of 2023, a whole answer and a stream each
their own way. ``/metrics`` counts each call; the inspector keeps the request as one
exchange with the runs. On current llama-server: an ``ollama`` client's chat, and the keys
file's grants (a key granted the server gets the answer; a key granted nothing has the
model offered no tool).
"""

from __future__ import annotations

import json

import pytest

from .hostedtools import ANSWER, CONTENT, MODEL, NOTES, QUESTION, SERVER, TOOL, WORD, call, hosted
from .marks import CLIENT, CURRENT, PROXY, only

pytestmark = [pytest.mark.e2e, pytest.mark.mcp]

READER, PLAIN = "sk-reader-0001", "sk-plain-0002"
KEYS = f"""
[[keys]]
name = "reader"
key = "{READER}"
tools = ["{SERVER}"]

[[keys]]
name = "plain"
key = "{PLAIN}"
"""
ASKED = [{"role": "user", "content": QUESTION}]
FIGURES = ("prompt_tokens", "cached_tokens", "completion_tokens", "seconds", "tool_runs")


@pytest.fixture(scope="module")
def served(kind, tmp_path_factory, logs):
    """The model on a server of ``kind`` behind the proxy, with the keys file and every
    exchange kept for the inspector."""
    work = tmp_path_factory.mktemp(f"hosted-{kind}")
    with hosted(kind, work, logs, keys=KEYS, args=("--capture", "on")) as running:
        yield running


def chat(served, key: str, stream: bool) -> tuple:
    """``(text, finish reason)`` of the question asked with ``key``."""
    options = dict(model=MODEL, messages=ASKED, temperature=0, max_tokens=200)
    client = served.proxy.sdk(api_key=key)
    if not stream:
        choice = client.chat.completions.create(**options).choices[0]
        assert choice.message.tool_calls is None
        return choice.message.content, choice.finish_reason
    texts, finish = [], None
    for chunk in client.chat.completions.create(**options, stream=True):
        for choice in chunk.choices:
            assert not choice.delta.tool_calls
            texts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    return "".join(texts), finish


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_model_answers_with_the_word_of_the_file_the_gateway_read(served, stream):
    """What differs by generation: who reads the call out of the model's text (the chat
    layer, or the proxy's formats), whole or from a stream."""
    before = served.calls()
    assert chat(served, READER, stream) == (ANSWER, "stop")
    assert served.calls() == before + 1
    assert "Traceback" not in served.proxy.log()


def test_the_inspector_keeps_one_exchange_with_the_run_between_the_turns(served):
    """The request is one exchange: its run (server, tool, arguments, the file's content),
    the last turn's upstream body and prompt (the question, the call and its result in the
    conversation), the usage of both turns."""
    assert chat(served, READER, stream=False) == (ANSWER, "stop")
    exchange = served.proxy.exchanges("?limit=1")[-1]
    print(json.dumps({key: exchange[key] for key in FIGURES}))
    assert exchange["status"] == 200 and exchange["model"] == MODEL
    (run,) = exchange["tool_runs"]
    assert (run["server"], run["tool"], run["output"], run["error"]) == (SERVER, TOOL, CONTENT, "")
    assert json.loads(run["arguments"]) == {"path": NOTES}
    body = exchange["upstream_body"]
    if "messages" in body:  # the server's chat layer renders the prompt
        assert body["messages"][-1] == {
            "role": "tool",
            "content": CONTENT,
            "tool_call_id": body["messages"][-2]["tool_calls"][0]["id"],
        }
        assert exchange["prompt_by"] == "server" and exchange["raw"] is None
    else:  # the proxy renders it, and reads the call out of the text
        assert CONTENT in body["prompt"] and exchange["prompt_by"] == "proxy"
        assert exchange["raw"] == call(TOOL, {"path": NOTES}) + ANSWER
    assert QUESTION in exchange["prompt"] and CONTENT in exchange["prompt"]  # the last turn's
    assert exchange["prompt_tokens"] > 2 * len(QUESTION)


@only(CURRENT, why=CLIENT)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_ollama_clients_chat_answers_with_the_word(served, stream):
    before = served.calls()
    client = served.proxy.ollama(READER)
    if stream:
        text = "".join(
            part.message.content or ""
            for part in client.chat(model=MODEL, messages=ASKED, stream=True)
        )
    else:
        text = client.chat(model=MODEL, messages=ASKED).message.content
    assert text == ANSWER
    assert served.calls() == before + 1


@only(CURRENT, why=PROXY)
def test_a_key_granted_no_tool_has_its_model_offered_none(served):
    """The key without ``tools``: the model is offered no tool and runs none; it writes its
    call as text, which stays text, and never sees the file."""
    before = served.calls()
    text, finish = chat(served, PLAIN, stream=False)
    assert (text, finish) == (call(TOOL, {"path": NOTES}), "stop")
    assert WORD not in text and served.calls() == before
    exchange = served.proxy.exchanges("?limit=1")[-1]
    assert exchange["tool_runs"] == [] and "tools" not in exchange["upstream_body"]
    assert chat(served, READER, stream=False) == (ANSWER, "stop")  # the other key's runs
    assert served.calls() == before + 1


@only(CURRENT, why=CLIENT)
def test_the_openai_sdks_mcp_tool_asks_approval_then_runs_whole_and_streamed(served):
    """The Responses API's ``mcp`` tool through the ``openai`` SDK, as OpenAI documents
    it: the first answer asks approval for the model's call; the next, given it, runs the
    call on the real server and the model answers with the file's word; and the same
    asked with no approval needed, streamed."""
    client = served.proxy.sdk(api_key=READER)
    tool = {"type": "mcp", "server_label": SERVER, "require_approval": "always"}
    before = served.calls()
    asked = client.responses.create(model=MODEL, input=QUESTION, tools=[tool])
    listing, request = asked.output
    assert listing.type == "mcp_list_tools" and TOOL in [t.name for t in listing.tools]
    assert (request.type, request.server_label, request.name) == (
        "mcp_approval_request",
        SERVER,
        TOOL,
    )
    assert json.loads(request.arguments) == {"path": NOTES} and served.calls() == before
    given = client.responses.create(
        model=MODEL,
        previous_response_id=asked.id,
        tools=[tool],
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],
    )
    ran = [item for item in given.output if item.type == "mcp_call"]
    assert len(ran) == 1 and ran[0].approval_request_id == request.id
    assert ran[0].output == CONTENT and ran[0].error is None
    assert given.output_text == ANSWER and served.calls() == before + 1
    with client.responses.stream(
        model=MODEL, input=QUESTION, tools=[{**tool, "require_approval": "never"}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.mcp_call.completed" in kinds
    assert [item.type for item in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert final.output_text == ANSWER and served.calls() == before + 2


@only(CURRENT, why=CLIENT)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_anthropic_sdks_mcp_servers_run_on_the_gateway(served, stream):
    """Anthropic's MCP connector through the ``anthropic`` SDK: the server is the gateway's
    by its name, and the answer tells the call and its result as Anthropic's blocks."""
    client = served.proxy.anthropic(api_key=READER)
    before = served.calls()
    options = dict(
        model=MODEL,
        max_tokens=200,
        messages=ASKED,
        mcp_servers=[{"type": "url", "url": "https://ignored.example/mcp", "name": SERVER}],
        betas=["mcp-client-2025-04-04"],
    )
    if stream:
        with client.beta.messages.stream(**options) as streamed:
            message = streamed.get_final_message()
    else:
        message = client.beta.messages.create(**options)
    use, result, text = message.content
    assert (use.type, use.name, use.server_name, use.input) == (
        "mcp_tool_use",
        TOOL,
        SERVER,
        {"path": NOTES},
    )
    assert result.type == "mcp_tool_result" and result.tool_use_id == use.id
    assert not result.is_error and result.content[0].text == CONTENT
    assert text.text == ANSWER and served.calls() == before + 1
