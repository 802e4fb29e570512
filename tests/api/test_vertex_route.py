"""Vertex AI's ``/predict`` through the app: each instance served as its key's chat
completion (charged to it, in order), and the first that fails is the answer."""

from __future__ import annotations

import pytest

from tests.fakes.servercpp import FakeServerCpp
from tests.gateways import gateway, usage

KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"
models = ["tiny"]
"""
MODELS = """
[models.tiny]
upstreams = ["{0}"]
[models.other]
upstreams = ["{0}"]
"""
ALICE = {"Authorization": "Bearer sk-alice"}


def instance(**fields) -> dict:
    chat = {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    return {"@requestFormat": "chatCompletions", **chat, **fields}


@pytest.fixture
def client(tmp_path):
    with (
        FakeServerCpp("llamacpp", n_slots=2) as fake,
        gateway(tmp_path, MODELS.format(fake.url), KEYS) as client,
    ):
        yield client


def test_each_instance_is_a_chat_completion_charged_to_the_key(client):
    answer = client.post("/predict", json={"instances": [instance(), instance()]}, headers=ALICE)
    assert answer.status_code == 200, answer.json
    predictions = answer.json["predictions"]
    assert [p["object"] for p in predictions] == ["chat.completion"] * 2
    row = usage(client)[("alice", "tiny")]
    assert row["prompt_tokens"] == sum(p["usage"]["prompt_tokens"] for p in predictions) > 0
    assert row["completion_tokens"] == sum(p["usage"]["completion_tokens"] for p in predictions)


def test_an_instance_for_a_model_the_key_may_not_use_is_refused_in_its_place(client):
    body = {"instances": [instance(), instance(model="other")]}
    answer = client.post("/predict", json=body, headers=ALICE)
    assert answer.status_code == 403 and answer.json["error"]["param"] == "instances[1].model"


def test_predictions_need_a_key(client):
    assert client.post("/predict", json={"instances": [instance()]}).status_code == 401
