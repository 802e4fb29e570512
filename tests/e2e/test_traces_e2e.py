"""Traces as the operator's stack gets them: the proxy (``--otel on``) over a current
llama-server and an ``openai`` upstream that refuses, exporting over OTLP, HTTP and gRPC, to
a receiver that decodes the real protobuf (:mod:`tests.otlp`). A client's chat, its
``traceparent`` sent, is one trace under the client's span: the request's span, each attempt
at a model with its wait for a slot (the refused one failed, naming why; the fallback's
answered), the charge; llama-server was sent the attempt's ``traceparent``; no message text
and no secret in any span; an ``anthropic`` client's Messages request is a trace of its own,
likewise. A tool loop over the real filesystem MCP server is one trace too,
turn by turn, its tool call between the model's two attempts."""

from __future__ import annotations

import json

import pytest

from tests.otlp import OtlpReceiver
from tests.processes import ProxyProcess

from .hostedtools import ANSWER, CONTENT, MODEL, QUESTION, SERVER, TOOL, hosted
from .llama_server import LlamaServer
from .marks import CURRENT, on
from .refusing import RefusingServer
from .tap import Tap

pytestmark = [pytest.mark.e2e, *on(CURRENT, why="the traces' attributes of a current server")]

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
MESSAGES_TRACE = "7d0e9c1b2a3f4e5d6c7b8a9f0e1d2c3b"
SAID = "Tell me about the quarterly numbers."
MODELS = """
[models.tiny]
upstreams = ["{tap}"]

[models.cloud]
backend = "openai"
upstreams = ["{refusing}/v1"]
upstream_key_env = "CLOUD_KEY"
fallbacks = ["tiny"]
"""
SECRET = "sk-cloud-5e1f0c9d"


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_chat_that_falls_back_is_one_trace_under_the_clients(
    kind, model, logs, tmp_path, protocol
):
    with (
        LlamaServer(model, logs / f"traces-{protocol[:4]}.log", kind=kind, parallel=1) as server,
        Tap(server.url) as tap,
        RefusingServer(503, logs / f"traces-refusing-{protocol[:4]}.log") as refusing,
        OtlpReceiver() as receiver,
    ):
        (tmp_path / "models.toml").write_text(MODELS.format(tap=tap.url, refusing=refusing.url))
        env = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc if protocol == "grpc" else receiver.http,
            "OTEL_SERVICE_NAME": "team-gateway",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "CLOUD_KEY": SECRET,
        }
        args = ["--otel", "on", "--config", str(tmp_path / "models.toml")]
        with ProxyProcess(server.url, logs / f"proxy-traces-{protocol[:4]}.log", args=args,
                          env=env) as proxy:  # fmt: skip
            chunks = proxy.sdk().chat.completions.create(
                model="cloud",
                messages=[{"role": "user", "content": SAID}],
                max_tokens=8,
                stream=True,
                extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
            )
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            spans = receiver.trace(CLIENT_TRACE, "POST /v1/chat/completions")
            claude = proxy.anthropic().messages.create(
                model="tiny", max_tokens=8, messages=[{"role": "user", "content": SAID}],
                extra_headers={"traceparent": f"00-{MESSAGES_TRACE}-{CLIENT_SPAN}-01"},
            )  # fmt: skip
            messages = receiver.trace(MESSAGES_TRACE, "POST /v1/messages")
    assert sorted((span.name, span.kind) for span in messages) == [
        ("POST /v1/messages", "server"), ("charge", "internal"), ("chat tiny", "client"),
        ("queue", "internal")]  # fmt: skip
    (asked,) = [span for span in messages if span.name == "chat tiny"]
    assert asked.attributes["gen_ai.usage.output_tokens"] == claude.usage.output_tokens
    by_name = {span.name: span for span in spans}
    root = by_name["POST /v1/chat/completions"]
    assert (root.kind, root.parent, root.failed) == ("server", CLIENT_SPAN, False)
    assert root.resource["service.name"] == "team-gateway"
    assert root.attributes["http.response.status_code"] == 200
    assert (root.attributes["gen_ai.request.model"], root.attributes["gen_ai.response.model"]) == (
        "cloud", "tiny")  # fmt: skip
    refused, answered = by_name["chat cloud"], by_name["chat tiny"]
    assert (refused.kind, refused.failed, refused.parent) == ("client", True, root.id)
    assert refused.attributes["gen_ai.provider.name"] == "openai"
    assert refused.attributes["error.type"] == "upstream_unavailable"
    assert "overloaded" in refused.description  # what the engine said, as the client reads it
    assert (answered.kind, answered.failed, answered.parent) == ("client", False, root.id)
    assert answered.attributes["gen_ai.provider.name"] == "llama.cpp"
    assert answered.attributes["gen_ai.response.model"] == "tiny"
    assert answered.attributes["gen_ai.usage.output_tokens"] > 0
    assert "gen_ai.first_token" in answered.events
    assert by_name["charge"].parent == root.id
    queued = [span.parent for span in spans if span.name == "queue"]  # a wait for each one's slot
    assert sorted(queued) == sorted([refused.id, answered.id])
    sent = tap.to("/v1/chat/completions")[0]  # the chat's (the Messages request's after)
    assert sent.headers["traceparent"] == f"00-{CLIENT_TRACE}-{answered.id}-01"
    everything = json.dumps([[span.attributes, span.description] for span in spans])
    assert SAID not in everything and SECRET not in everything


@pytest.mark.mcp
def test_a_tool_loop_over_a_real_mcp_server_is_one_trace_turn_by_turn(kind, logs, tmp_path):
    trace = "5c1e0a7f2b9d4e6f8a0b1c2d3e4f5a6b"
    with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with hosted(kind, tmp_path, logs, args=("--otel", "on"), env=env) as served:
            answer = served.proxy.sdk().chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": QUESTION}],
                temperature=0, max_tokens=200,
                extra_headers={"traceparent": f"00-{trace}-{CLIENT_SPAN}-01"},
            )  # fmt: skip
            assert answer.choices[0].message.content == ANSWER
            spans = receiver.trace(trace, "POST /v1/chat/completions")
    names = {span.id: span.name for span in spans}
    assert sorted((span.name, names.get(span.parent, span.parent)) for span in spans) == sorted([
        ("POST /v1/chat/completions", CLIENT_SPAN),
        ("turn", "POST /v1/chat/completions"), ("turn", "POST /v1/chat/completions"),
        (f"chat {MODEL}", "turn"), (f"chat {MODEL}", "turn"),
        ("queue", f"chat {MODEL}"), ("queue", f"chat {MODEL}"),
        (f"execute_tool {TOOL}", "turn"),
        ("charge", "POST /v1/chat/completions"),
    ])  # fmt: skip
    (ran,) = [span for span in spans if span.name == f"execute_tool {TOOL}"]
    assert ran.attributes["oai_proxy.tool_server"] == SERVER and not ran.failed
    turns = {span.id: span.attributes["oai_proxy.turn"] for span in spans if span.name == "turn"}
    assert turns[ran.parent] == 1  # the first turn called it; the second read its result
    everything = json.dumps([span.attributes for span in spans])
    assert QUESTION not in everything and CONTENT not in everything
