"""A model's headers, timeouts and filters on servers of a public API, over real HTTP: what
each upstream is sent, the fields the answer names, and a timeout before the first byte
handing the request to the model's fallback."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest

from proxy.app import create_app
from proxy.config.modelsfile import parse_catalog
from proxy.config.settings import Settings
from proxy.core.answers import Served
from proxy.core.caller import Caller
from proxy.core.errors import InvalidRequestError, UpstreamTimeoutError
from proxy.core.types import GenerationRequest, Message, Sampling
from proxy.fleet.build import build_fleet
from proxy.ops.measure import Measure
from tests.fakes.canned import CannedServer
from tests.runtimes import NO_FILES

SECRET = "tok-5e1f0c9a"  # a header's value from the environment: shown nowhere
WHOLE = {
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}
MESSAGES_WHOLE = {
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 1},
}


def events(*texts: str) -> str:
    """A chat stream of ``texts``, as an OpenAI-compatible server sends it."""
    pieces = [{"choices": [{"index": 0, "delta": {"content": text}}]} for text in texts]
    pieces += [
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": len(texts)}},
    ]
    return "".join(f"data: {json.dumps(piece)}\n\n" for piece in pieces) + "data: [DONE]\n\n"


@pytest.fixture
def upstreams():
    with ExitStack() as stack:
        yield [stack.enter_context(CannedServer()) for _ in range(2)]


def fleet_of(models: dict):
    return build_fleet(Settings(), NO_FILES, parse_catalog({"models": models}, "t"))


def asked(model: str, **fields) -> GenerationRequest:
    return GenerationRequest(
        model=model, messages=(Message("user", "hi"),), caller=Caller(measure=Measure()), **fields
    )


def sent(server: CannedServer) -> dict:
    return json.loads(server.calls[-1].body)


@pytest.mark.parametrize(
    ("backend", "path", "answer", "key_header"),
    [
        ("openai", "/v1/chat/completions", WHOLE, "authorization"),
        ("anthropic", "/v1/messages", MESSAGES_WHOLE, "x-api-key"),
    ],
)
def test_headers_go_with_every_request_and_their_values_are_shown_nowhere(
    upstreams, monkeypatch, backend, path, answer, key_header
):
    upstream = upstreams[0]
    upstream.post(path, json_body=answer)
    upstream.get("/v1/models", json_body={"data": []})
    monkeypatch.setenv("TEAM_TOKEN", SECRET)
    monkeypatch.setenv("BOX_KEY", "sk-box")
    model = {
        "backend": backend,
        "upstreams": [upstream.url + ("/v1" if backend == "openai" else "")],
        "upstream_key_env": "BOX_KEY",
        "headers": {"HTTP-Referer": "https://example.org"},
        "headers_env": {"X-Team-Token": "TEAM_TOKEN"},
    }
    with fleet_of({"cloud": model}) as fleet:
        assert fleet.complete(asked("cloud")).text == "Hi"
        health = fleet.check()
        shown = json.dumps([health.detail, fleet.status()], default=str)
    assert [call.method for call in upstream.calls] == ["POST", "GET"]
    for call in upstream.calls:  # the chat and the health check's model list
        assert call.headers["http-referer"] == "https://example.org"
        assert call.headers["x-team-token"] == SECRET
        assert "sk-box" in call.headers[key_header]
    assert SECRET not in shown and "example.org" not in shown


def test_an_unset_variable_stops_the_fleet_naming_it(upstreams, monkeypatch):
    monkeypatch.delenv("TEAM_TOKEN", raising=False)
    model = {
        "backend": "openai",
        "upstreams": [upstreams[0].url],
        "headers_env": {"X-T": "TEAM_TOKEN"},
    }
    with pytest.raises(ValueError, match="TEAM_TOKEN, which holds the header X-T of model 'cloud'"):
        fleet_of({"cloud": model})


@pytest.fixture
def filtered(upstreams):
    upstream = upstreams[0]
    upstream.post("/v1/chat/completions", json_body=WHOLE)
    model = {
        "backend": "openai",
        "upstreams": [upstream.url + "/v1"],
        "filters": {
            "strip": ["top_k", "min_p", "cache_prompt"],
            "set": {"temperature": 0.2, "chat_template_kwargs": {"enable_thinking": False}},
        },
    }
    with fleet_of({"cloud": model}) as fleet:
        yield fleet, upstream


def test_filters_change_the_body_and_the_answer_names_the_clients_fields(filtered):
    fleet, upstream = filtered
    request = asked(
        "cloud", sampling=Sampling(top_k=40, temperature=0.9, seed=1), cache_prompt=True
    )
    answer = fleet.complete(request)
    assert answer.text == "Hi"
    body = sent(upstream)
    assert "top_k" not in body and "cache_prompt" not in body
    assert body["temperature"] == 0.2 and body["seed"] == 1
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert answer.served == Served("cloud", False, ("cache_prompt", "top_k"), ("temperature",))


def test_a_request_that_gave_none_of_the_fields_is_named_nothing(filtered):
    fleet, upstream = filtered
    answer = fleet.complete(asked("cloud"))
    assert sent(upstream)["temperature"] == 0.2
    assert answer.served == Served("cloud", False)


def test_a_streamed_answer_names_them_before_its_first_chunk(upstreams):
    upstream = upstreams[0]
    upstream.post(
        "/v1/chat/completions", body=events("Hi", "!"), content_type="text/event-stream", chunks=3
    )
    model = {
        "backend": "openai",
        "upstreams": [upstream.url + "/v1"],
        "filters": {"strip": ["min_p"]},
    }
    with fleet_of({"cloud": model}) as fleet:
        chunks = fleet.stream(asked("cloud", sampling=Sampling(min_p=0.1)))
        assert next(chunks) == Served("cloud", False, ("min_p",))
        assert next(chunks).text == "Hi"
        assert "".join(chunk.text for chunk in chunks) == "!"
    assert "min_p" not in sent(upstream)


def test_the_answers_headers_name_the_fields(filtered, runtime):
    fleet, upstream = filtered
    client = create_app(Settings(), runtime, backend=fleet).test_client()
    chat = {"model": "cloud", "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        if stream:
            upstream.post(
                "/v1/chat/completions",
                body=events("Hi"),
                content_type="text/event-stream",
                chunks=1,
            )
        answer = client.post(
            "/v1/chat/completions", json={**chat, "top_k": 5, "temperature": 1, "stream": stream}
        )
        assert answer.status_code == 200
        assert b"Hi" in answer.data
        assert answer.headers["x-oai-proxy-left-out-fields"] == "top_k"
        assert answer.headers["x-oai-proxy-replaced-fields"] == "temperature"
    plain = client.post("/v1/chat/completions", json=chat)
    assert "x-oai-proxy-left-out-fields" not in plain.headers
    assert "x-oai-proxy-replaced-fields" not in plain.headers


def test_a_field_the_api_has_no_place_for_that_no_filter_strips_is_still_refused(filtered):
    fleet, _ = filtered
    with pytest.raises(InvalidRequestError, match="n_keep cannot be served"):
        fleet.complete(asked("cloud", n_keep=4))


@pytest.fixture
def slow_and_spare(upstreams):
    """``slow``: an upstream whose stream begins (its head at once, its first event) only
    long after the first-byte timeout; ``spare``: the fallback of one of its models."""
    slow, spare = upstreams
    late = {"content_type": "text/event-stream", "chunks": 1, "pause": 5.0}
    slow.post("/v1/chat/completions", body=events("Late"), **late)
    spare.post("/v1/chat/completions", body=events("Spare"), **{**late, "pause": 0.0})
    first_byte = {"backend": "openai", "upstreams": [slow.url + "/v1"]}
    first_byte["timeouts"] = {"first_byte": 0.3, "read": 30}
    models = {
        "slow": {**first_byte, "fallbacks": ["spare"]},
        "alone": first_byte,
        "spare": {"backend": "openai", "upstreams": [spare.url + "/v1"]},
    }
    with fleet_of(models) as fleet:
        yield fleet, slow, spare


def test_a_stream_that_does_not_begin_in_time_is_a_timeout(slow_and_spare):
    fleet, _, _ = slow_and_spare
    with pytest.raises(UpstreamTimeoutError) as late:
        list(fleet.stream(asked("alone")))
    assert late.value.message == (
        "the server of model 'alone' did not begin its answer in time; raise the model's "
        "timeouts.first_byte"
    )


def test_a_stream_that_does_not_begin_in_time_falls_back(slow_and_spare):
    fleet, _, spare = slow_and_spare
    served, *chunks = fleet.stream(asked("slow"))
    assert served == Served("spare", True) and "".join(c.text for c in chunks) == "Spare"
    assert len(spare.calls) == 1


def test_once_begun_a_stream_waits_the_read_timeout_between_its_events(upstreams):
    upstream = upstreams[0]
    upstream.post(
        "/v1/chat/completions",
        body=events("a", "b", "c"),
        content_type="text/event-stream",
        chunks=4,
        gap=0.4,
    )
    model = {
        "backend": "openai",
        "upstreams": [upstream.url + "/v1"],
        "timeouts": {"first_byte": 0.2, "read": 30},
    }
    with fleet_of({"cloud": model}) as fleet:
        _, *chunks = fleet.stream(asked("cloud"))
        assert "".join(chunk.text for chunk in chunks) == "abc"


def test_a_whole_answer_past_the_read_timeout_falls_back(upstreams):
    slow, spare = upstreams
    slow.post("/v1/chat/completions", json_body=WHOLE, delay=5.0)
    spare.post("/v1/chat/completions", json_body=WHOLE)
    models = {
        "slow": {
            "backend": "openai",
            "upstreams": [slow.url + "/v1"],
            "timeouts": {"read": 0.3},
            "fallbacks": ["spare"],
        },
        "alone": {"backend": "openai", "upstreams": [slow.url + "/v1"], "timeouts": {"read": 0.3}},
        "spare": {"backend": "openai", "upstreams": [spare.url + "/v1"]},
    }
    with fleet_of(models) as fleet:
        answer = fleet.complete(asked("slow"))
        assert answer.text == "Hi" and answer.served == Served("spare", True)
        with pytest.raises(UpstreamTimeoutError, match="raise the model's timeouts.read"):
            fleet.complete(asked("alone"))


def test_the_connect_timeout_is_the_models(upstreams):
    model = {"backend": "openai", "upstreams": [upstreams[0].url], "timeouts": {"connect": 1.5}}
    with fleet_of(
        {"cloud": model, "other": {"backend": "openai", "upstreams": [upstreams[1].url]}}
    ) as fleet:
        pools = {
            model_id: fleet._model(model_id).replicas[0].backend.client.pool
            for model_id in ("cloud", "other")
        }
    assert pools["cloud"].connect_timeout == 1.5
    assert pools["other"].connect_timeout == Settings().upstream.connect_timeout
