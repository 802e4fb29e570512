"""Traces as the operator's stack gets them: the proxy (``--otel on``) over a current
llama-server and an ``openai`` upstream that refuses, exporting over OTLP, HTTP and gRPC, to
a receiver that decodes the real protobuf (:mod:`tests.otlp`). A client's chat, its
``traceparent`` sent, is one trace under the client's span: the request's span, its wait for
a slot, each attempt at a model (the refused one failed, naming why; the fallback's
answered), the charge; llama-server was sent the attempt's ``traceparent``; no message text
and no secret in any span."""

from __future__ import annotations

import json

import pytest

from tests.otlp import OtlpReceiver
from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .marks import CURRENT, on
from .refusing import RefusingServer
from .tap import Tap

pytestmark = [pytest.mark.e2e, *on(CURRENT, why="the traces' attributes of a current server")]

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
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
    by_name = {span.name: span for span in spans}
    root = by_name["POST /v1/chat/completions"]
    assert (root.kind, root.parent, root.failed) == ("server", CLIENT_SPAN, False)
    assert root.resource["service.name"] == "team-gateway"
    assert root.attributes["http.response.status_code"] == 200
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
    (sent,) = tap.to("/v1/chat/completions")
    assert sent.headers["traceparent"] == f"00-{CLIENT_TRACE}-{answered.id}-01"
    everything = json.dumps([[span.attributes, span.description] for span in spans])
    assert SAID not in everything and SECRET not in everything
