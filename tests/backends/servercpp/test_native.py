"""llama.cpp's own ``POST /completion`` through the proxy, on each kind of server.cpp's
faithful fake: the client's body reaches the server as it came (only ``stream`` set), the
answer comes back as the server wrote it, whole or streamed, and its tokens are charged to
the key that asked; a model on another engine refuses it by name."""

from __future__ import annotations

import json

import pytest

from proxy.backends.servercpp.nativeroute import answered
from tests.conftest import read_events
from tests.fakes.servercpp import FakeServerCpp
from tests.fakes.servercpp_wire import A, B, C
from tests.gateways import gateway, usage

KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"
"""
MODELS = """
[models.tiny]
upstreams = ["{0}"]
[models.cloud]
backend = "openai"
upstreams = ["http://127.0.0.1:9"]
"""
ALICE = {"Authorization": "Bearer sk-alice"}
BODY = {
    "prompt": "Once upon a time",
    "n_predict": 8,
    "n_probs": 2,
    "samplers": ["top_k", "temperature"],
    "an_engines_own_field": {"kept": [1, 2]},
}


@pytest.fixture(scope="module", params=[A, B, C])
def fake(request):
    with FakeServerCpp(request.param) as fake:
        yield fake


@pytest.fixture
def client(fake, tmp_path):
    fake.reset()
    with gateway(tmp_path, MODELS.format(fake.url), KEYS) as client:
        yield client


def sent(fake) -> list:
    return [body for path, body, _ in fake.requests if path == "/completion"]


def test_the_body_reaches_the_server_as_it_came(client, fake):
    answer = client.post("/completion", json={**BODY, "model": "tiny"}, headers=ALICE)
    assert answer.status_code == 200, answer.json
    assert sent(fake) == [{**BODY, "model": "tiny", "stream": False}]


def test_the_whole_answer_is_the_servers_own_and_charged(client, fake):
    answer = client.post("/completion", json=BODY, headers=ALICE).json
    assert answer["content"] == "Hello, world!"
    slot = "id_slot" if fake.kind == C else "slot_id"
    assert slot in answer and "generation_settings" in answer
    row = usage(client)[("alice", "tiny")]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        answer["tokens_evaluated"],
        answer["tokens_predicted"],
    )


def test_a_stream_is_the_servers_own_lines_and_charged(client, fake):
    with client.post("/completion", json={**BODY, "stream": True}, headers=ALICE) as answer:
        assert answer.mimetype == "text/event-stream"
        events = read_events(answer.data)
    assert sent(fake)[-1]["stream"] is True
    assert "".join(event["content"] for event in events) == "Hello, world!"
    assert events[-1]["stop"] is True and not any(event["stop"] for event in events[:-1])
    row = usage(client)[("alice", "tiny")]
    assert row["completion_tokens"] == events[-1]["tokens_predicted"] > 0
    assert row["prompt_tokens"] == events[-1]["tokens_evaluated"] > 0


@pytest.mark.parametrize("fake", [C], indirect=True)
@pytest.mark.parametrize(
    "body, param",
    [
        ({"prompt": ["one", "two"], "stream": True}, "prompt"),
        ({"prompt": "x", "model": "cloud"}, "model"),
        ({"prompt": "x", "stream": "yes"}, "stream"),
        ({"prompt": "x", "model": 3}, "model"),
    ],
    ids=["several-prompts-streamed", "another-engine", "stream-not-a-boolean", "model-not-a-text"],
)
def test_what_the_gateway_cannot_serve_is_refused_in_llama_servers_shape(client, fake, body, param):
    answer = client.post("/completion", json=body, headers=ALICE)
    assert answer.status_code == 400
    error = answer.json["error"]
    assert (error["code"], error["type"], error["param"]) == (400, "invalid_request_error", param)
    assert sent(fake) == []


@pytest.mark.parametrize("fake", [C], indirect=True)
def test_the_servers_own_refusal_reaches_the_client(client, fake):
    answer = client.post("/completion", json={"n_predict": 4}, headers=ALICE)
    assert answer.status_code == 400
    assert "prompt" in json.dumps(answer.json["error"])


def test_several_answers_are_charged_their_sum():
    one = {"content": "a", "tokens_evaluated": 3, "tokens_predicted": 2, "stop_type": "eos"}
    two = {"content": "b", "tokens_evaluated": 4, "tokens_predicted": 5, "stop_type": "limit"}
    completion = answered([one, two], "the server")
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 7)
    assert completion.verbatim == [one, two] and completion.finish_reason == "length"
