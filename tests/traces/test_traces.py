"""Each request's trace, through the app over a fake engine, the SDK's own exporter in
memory: the request's span (under the client's, where it sent a ``traceparent``), each attempt
at a model under it in GenAI's conventions, the charge; no message text, no key's secret, and
a key's name only where the operator allows it."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from proxy.core.errors import UpstreamUnavailableError
from tests.batches.test_views import chat_line, run_batch
from tests.fakes.backend import FakeBackend
from tests.fakes.servercpp import FakeServerCpp
from tests.gateways import gateway
from tests.spans import finished, kept_spans, tree

SAID = "the secret plan is tea"
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": SAID}],
        "max_tokens": 7, "temperature": 0.5}  # fmt: skip
KEYS = '[[keys]]\nname = "alice"\nkey = "sk-alice"\n'
ALICE = {"Authorization": "Bearer sk-alice"}
CLIENTS = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans(monkeypatch):
    return kept_spans(monkeypatch)


def ask(client, body: dict, **options) -> int:
    """A chat's status, its answer read and closed as a server closes it: only then has the
    request ended."""
    with client.post("/v1/chat/completions", json=body, **options) as response:
        response.get_data()
        return response.status_code


def by_name(client, kept) -> dict:
    """The spans ended so far, by name."""
    return {span.name: span for span in finished(client, kept)}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_chat_is_a_request_span_over_its_attempt_and_charge(make_client, spans, stream):
    client = make_client(otel="on")
    assert ask(client, {**CHAT, "stream": stream}) == 200
    assert tree(finished(client, spans)) == [
        ("chat default", "POST /v1/chat/completions"),
        ("charge", "POST /v1/chat/completions"),
        ("POST /v1/chat/completions", None),
    ]
    named = {span.name: span for span in finished(client, spans)}
    root, attempt = named["POST /v1/chat/completions"], named["chat default"]
    assert root.kind == SpanKind.SERVER and attempt.kind == SpanKind.CLIENT
    assert root.attributes["http.response.status_code"] == 200
    assert {name: attempt.attributes.get(name) for name in (
        "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model",
        "gen_ai.request.max_tokens", "gen_ai.request.temperature",
        "gen_ai.response.finish_reasons", "gen_ai.usage.output_tokens")} == {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "default",
        "gen_ai.response.model": "default", "gen_ai.request.max_tokens": 7,
        "gen_ai.request.temperature": 0.5, "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.output_tokens": 2}  # fmt: skip
    assert [event.name for event in attempt.events] == (["gen_ai.first_token"] if stream else [])
    assert root.end_time >= attempt.end_time
    assert SAID not in json.dumps([dict(span.attributes) for span in named.values()])


def test_a_clients_traceparent_is_the_requests_parent(make_client, spans):
    client = make_client(otel="on")
    assert ask(client, CHAT, headers={"traceparent": CLIENTS}) == 200
    root = by_name(client, spans)["POST /v1/chat/completions"]
    assert f"{root.context.trace_id:032x}" == CLIENTS.split("-")[1]
    assert f"{root.parent.span_id:016x}" == CLIENTS.split("-")[2] and root.parent.is_remote


def test_an_attempt_that_failed_says_why(make_client, spans):
    failing = FakeBackend(error=UpstreamUnavailableError("the engine is down"))
    client = make_client(fake=failing, otel="on")
    assert ask(client, CHAT) == 503
    named = by_name(client, spans)
    attempt = named["chat default"]
    assert attempt.status.status_code == StatusCode.ERROR
    assert attempt.status.description == "the engine is down"
    assert attempt.attributes["error.type"] == "upstream_unavailable"  # its code, as told
    assert named["POST /v1/chat/completions"].status.status_code == StatusCode.ERROR


@pytest.mark.parametrize("allowed", ["on", "off"])
def test_a_keys_name_is_on_the_span_only_where_allowed(make_client, spans, tmp_path, allowed):
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "alice"\nkey = "sk-alice-secret"\n')
    client = make_client(otel="on", otel_key_names=allowed, keys=str(keys))
    assert ask(client, CHAT, headers={"Authorization": "Bearer sk-alice-secret"}) == 200
    named = by_name(client, spans)
    root = named["POST /v1/chat/completions"]
    assert root.attributes.get("oai_proxy.key") == ("alice" if allowed == "on" else None)
    assert "sk-alice-secret" not in json.dumps([dict(s.attributes) for s in named.values()])


def test_the_messages_go_on_the_span_only_where_the_operator_opts_in(
    make_client, spans, monkeypatch
):
    client = make_client(otel="on")
    assert ask(client, CHAT) == 200
    assert SAID not in json.dumps([dict(s.attributes) for s in by_name(client, spans).values()])
    spans.clear()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    client = make_client(otel="on")
    assert ask(client, CHAT) == 200
    attempt = by_name(client, spans)["chat default"]
    assert json.loads(attempt.attributes["gen_ai.input.messages"]) == CHAT["messages"]
    assert json.loads(attempt.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "content": "Hello world"}
    ]


def test_choices_run_at_once_are_each_an_attempt_under_the_request(make_client, spans):
    client = make_client(otel="on")
    assert ask(client, {**CHAT, "n": 3}) == 200
    ended = finished(client, spans)
    assert sorted(tree(ended)) == [
        ("POST /v1/chat/completions", None),
        ("charge", "POST /v1/chat/completions"),
        *[("chat default", "POST /v1/chat/completions")] * 3,
    ]


def test_a_batchs_lines_are_traced_under_the_request_that_made_the_batch(
    make_client, spans, tmp_path
):
    """Each line a span of its own, under the span of the request that made its batch (long
    ended by then, in whichever process runs the line), its attempt and charge under it."""
    client = make_client(otel="on", api_key=["sk-alice"], files_dir=str(tmp_path / "files"))
    lines = [chat_line("first"), chat_line("second")]
    batch = run_batch(client, "sk-alice", lines, headers={"traceparent": CLIENTS})
    assert batch["status"] == "completed"
    traced = [span for span in finished(client, spans)
              if f"{span.context.trace_id:032x}" == CLIENTS.split("-")[1]]  # fmt: skip
    assert sorted(tree(traced)) == sorted([
        ("POST /v1/batches", None), ("charge", "POST /v1/batches"),
        *[("POST /v1/chat/completions", "POST /v1/batches")] * 2,
        *[("chat default", "POST /v1/chat/completions")] * 2,
        *[("charge", "POST /v1/chat/completions")] * 2,
    ])  # fmt: skip
    ran = [span for span in traced if span.name == "POST /v1/chat/completions"]
    assert {span.kind for span in ran} == {SpanKind.INTERNAL}
    assert sorted((span.attributes["oai_proxy.batch.id"], span.attributes[
        "oai_proxy.batch.custom_id"]) for span in ran) == [
        (batch["id"], "first"), (batch["id"], "second")]  # fmt: skip


def test_the_instances_of_a_prediction_are_traced_under_it(make_client, spans):
    client = make_client(otel="on")
    chat = {"@requestFormat": "chatCompletions", **CHAT}
    with client.post("/predict", json={"instances": [chat, chat]}) as answer:
        assert answer.status_code == 200, answer.get_json()
    assert sorted(tree(finished(client, spans))) == sorted([
        ("POST /predict", None), ("charge", "POST /predict"),
        *[("POST /v1/chat/completions", "POST /predict")] * 2,
        *[("chat default", "POST /v1/chat/completions")] * 2,
        *[("charge", "POST /v1/chat/completions")] * 2,
    ])  # fmt: skip


def test_a_model_of_two_replicas_traces_its_choice_of_one(spans, tmp_path):
    """The choice is a span before the attempt, naming the replica it chose; a model of one
    replica has none to make, and no such span."""
    with (
        FakeServerCpp("llamacpp") as first,
        FakeServerCpp("llamacpp") as second,
        gateway(tmp_path, f'[models.pair]\nupstreams = ["{first.url}", "{second.url}"]\n'
                f'[models.one]\nupstreams = ["{first.url}"]\n', KEYS, otel="on") as client,
    ):  # fmt: skip
        assert ask(client, {**CHAT, "model": "pair"}, headers=ALICE) == 200
        assert ask(client, {**CHAT, "model": "one"}, headers=ALICE) == 200
        ended = finished(client, spans)
    assert tree(ended) == [
        ("placement", "POST /v1/chat/completions"),
        ("queue", "chat pair"),
        ("chat pair", "POST /v1/chat/completions"),
        ("charge", "POST /v1/chat/completions"),
        ("POST /v1/chat/completions", None),
        ("queue", "chat one"),
        ("chat one", "POST /v1/chat/completions"),
        ("charge", "POST /v1/chat/completions"),
        ("POST /v1/chat/completions", None),
    ]
    placement, attempt = ended[0], ended[2]
    assert placement.attributes["oai_proxy.placement.candidates"] == 2
    assert placement.attributes["server.port"] == attempt.attributes["server.port"]
    assert attempt.start_time >= placement.end_time
