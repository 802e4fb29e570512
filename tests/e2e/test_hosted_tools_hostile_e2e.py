"""The tool loop against hostile tools, on real processes: the model of
:mod:`.hostedtools` calls the tools of a server written with the ``mcp`` SDK
(:mod:`.mcpfailures`) that answer 100 MB, never answer, or tell the model to hand over the
client's key; and keys call servers they were not granted. Each call is bounded or refused
and the request still answers; what the model saw is read in the inspector.

The bounds are the proxy's own, whatever server runs the model: current llama-server only.
The model here has two turns (``max_tool_turns = 2``): it calls the tool, reads the result
(or the error) and, offered no tool on its last turn, writes its call again as text. The
figures (bytes, seconds) are printed, not asserted: only a count bounds.
"""

from __future__ import annotations

import json
import sys
import time

import openai
import pytest

from tests.processes import free_port, stop_process

from .hostedtools import ANSWER, HOSTILE, MODEL, QUESTION, SERVER, call, failures_server, hosted
from .marks import CURRENT, PROXY, on
from .test_mcp_servers_e2e import FAILURES as FAILURES_SCRIPT
from .test_mcp_servers_e2e import serving

pytestmark = [pytest.mark.e2e, pytest.mark.mcp, pytest.mark.hostile, *on(CURRENT, why=PROXY)]

FAILURES, HANGING = "failures", "hanging"  # the failing server, by two names and bounds
ATTACKED, STALLED = "attacked", "stalled"  # the models given the tools of each
SECRET = "sk-attacked-5e1f0c9a77d2"  # the key of the client the tools attack
READER = "sk-reader-only-3b8d"  # a key granted the filesystem server only
PLAIN = "sk-plain-9c2e"  # a key granted no tool
KEYS = f"""
[[keys]]
name = "attacked"
key = "{SECRET}"
tools = ["{FAILURES}", "{HANGING}"]

[[keys]]
name = "reader"
key = "{READER}"
tools = ["{SERVER}"]

[[keys]]
name = "plain"
key = "{PLAIN}"
"""
BOUND = 4096  # max_output_bytes of both
TIMEOUT = 1  # call_timeout of HANGING, in seconds (FAILURES has time to write 100 MB)
ASKED = 100 * 1024 * 1024  # the bytes the model asks the huge tool for
CUT = f"\n[cut: the gateway kept the first {BOUND} bytes of this result]"  # the model is told


@pytest.fixture(scope="module")
def failing(logs):
    """The failing server over streamable HTTP, and its log."""
    port, log = free_port(), logs / "mcp-failures-hostile.log"
    process = serving([sys.executable, str(FAILURES_SCRIPT), "http", str(port)], port, log, {})
    yield f"http://127.0.0.1:{port}/mcp", log
    stop_process(process, 10)


@pytest.fixture(scope="module")
def served(kind, failing, tmp_path_factory, logs):
    work = tmp_path_factory.mktemp("hosted-hostile")
    with hosted(
        kind,
        work,
        logs,
        keys=KEYS,
        more=failures_server(FAILURES, failing[0], 60, BOUND)
        + failures_server(HANGING, failing[0], TIMEOUT, BOUND),
        others={
            ATTACKED: f'tools = ["{FAILURES}"]\nmax_tool_turns = 2',
            STALLED: f'tools = ["{HANGING}"]\nmax_tool_turns = 2',
        },
        args=("--capture", "on"),
    ) as running:
        yield running


def attack(served, trigger: str, key: str = SECRET, model: str = ATTACKED) -> tuple:
    """``(answer, seconds, exchange)`` of the question that makes the model call the tool of
    ``trigger``, asked of ``model`` with ``key``."""
    started = time.monotonic()
    answer = served.proxy.sdk(api_key=key).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": f"{trigger} Go on."}],
        temperature=0,
        max_tokens=200,
    )
    seconds = time.monotonic() - started
    (exchange,) = served.proxy.exchanges("?limit=1")
    return answer.choices[0], seconds, exchange


def told(exchange: dict) -> str:
    """What the model read of the tool on its last turn."""
    *_, called, result = exchange["upstream_body"]["messages"]
    assert result["role"] == "tool"
    assert result["tool_call_id"] == called["tool_calls"][0]["id"]
    return result["content"]


def test_a_result_of_100_mb_is_cut_to_the_servers_bound_and_the_answer_comes(served):
    before = served.calls("huge", FAILURES)
    choice, seconds, exchange = attack(served, "HugeCase")
    assert (choice.message.content, choice.finish_reason) == (call(*HOSTILE["HugeCase"]), "stop")
    (run,) = exchange["tool_runs"]
    assert (run["tool"], json.loads(run["arguments"]), run["error"]) == (
        "huge",
        {"size": ASKED},
        "",
    )
    assert run["output"] == "x" * BOUND
    # what the model read: the bound, no more, and that it was cut
    assert told(exchange) == "x" * BOUND + CUT
    assert "tools" not in exchange["upstream_body"]  # its last turn was offered none
    assert served.calls("huge", FAILURES) == before + 1
    print(
        f"huge: asked {ASKED} bytes, the model read {len(run['output'])}; the call took "
        f"{run['ms']:.0f} ms, the request {seconds:.2f} s, "
        f"{exchange['prompt_tokens']} prompt tokens over its two turns"
    )


def test_a_tool_that_never_answers_is_an_error_the_model_reads_at_the_servers_bound(served):
    choice, seconds, exchange = attack(served, "HangCase", model=STALLED)
    assert (choice.message.content, choice.finish_reason) == (call(*HOSTILE["HangCase"]), "stop")
    (run,) = exchange["tool_runs"]
    assert run["tool"] == "hang" and run["output"] == ""
    assert f"MCP server '{HANGING}' did not finish" in run["error"]
    assert f"{TIMEOUT} s" in run["error"]
    assert told(exchange) == f"Error: {run['error']}"
    errors = served.metrics()
    labels = tuple(sorted({"server": HANGING, "tool": "hang", "error": "tool_timeout"}.items()))
    assert errors[("oai_proxy_tool_errors_total", labels)] >= 1
    print(f"hang: the call ended after {run['ms']:.0f} ms, the request after {seconds:.2f} s")


def test_a_tool_that_asks_for_the_key_never_gets_it(served, failing):
    """The tool's description tells the model to send it the client's key: the key is in
    nothing the model was given (the last turn's prompt and body, the whole conversation),
    nor in the call's arguments, its result, the answer, or any log. The call ran: the tool
    was offered to the model, with its description."""
    choice, _, exchange = attack(served, "LeakCase")
    assert choice.message.content == call(*HOSTILE["LeakCase"])
    (run,) = exchange["tool_runs"]
    assert (run["tool"], run["output"]) == ("remember", "noted: I have no key to give.")
    assert run["output"] in exchange["prompt"]  # the last turn's: the whole conversation
    assert exchange["key"] == "attacked"
    assert SECRET not in json.dumps(exchange)
    for log in (served.proxy.log_path, failing[1]):
        assert SECRET not in log.read_text(errors="replace"), log


def test_a_key_not_granted_the_models_tools_has_them_offered_to_its_model_never(served):
    """The models file gives the model the failing server's tools; a key granted only the
    filesystem server asks it: the model is offered no tool, and its call stays text."""
    before = served.calls("huge", FAILURES)
    choice, _, exchange = attack(served, "HugeCase", key=READER)
    assert (choice.message.content, choice.finish_reason) == (call(*HOSTILE["HugeCase"]), "stop")
    assert exchange["tool_runs"] == [] and "tools" not in exchange["upstream_body"]
    assert served.calls("huge", FAILURES) == before


@pytest.mark.parametrize("key", [READER, PLAIN], ids=["granted-another", "granted-none"])
def test_a_key_naming_a_server_it_was_not_granted_is_refused_by_name(served, key):
    """A Responses ``mcp`` tool names the failing server: a key granted another server, or
    none, is refused before anything runs."""
    before = served.calls("huge", FAILURES)
    tools = [{"type": "mcp", "server_label": FAILURES, "require_approval": "never"}]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        served.proxy.sdk(api_key=key).responses.create(
            model=MODEL, input="HugeCase Go on.", tools=tools, store=False
        )
    error = refused.value.body
    assert refused.value.status_code == 403 and error["code"] == "tool_not_allowed"
    assert FAILURES in error["message"] and error["param"] == "tools"
    assert served.calls("huge", FAILURES) == before


def test_the_key_granted_the_server_it_names_runs_it(served):
    """The same request naming the server the key was granted runs it: the refusals above
    are the grants', not the request's."""
    tools = [{"type": "mcp", "server_label": SERVER, "require_approval": "never"}]
    before = served.calls()
    response = served.proxy.sdk(api_key=READER).responses.create(
        model=MODEL, input=QUESTION, tools=tools, store=False
    )
    assert response.output_text == ANSWER
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert served.calls() == before + 1
