"""What a key may ask its models to make (``kinds`` in the keys file), checked at the door by
the view a request goes to, over an OpenAI-compatible engine that chats, draws and speaks
(the tests' echo engine, in a thread): a kind of every model, or of one model alone; a
refusal names what the key may ask of that model; a batch whose lines ask for what its key
may not is refused before it starts."""

from __future__ import annotations

import pytest

from proxy.access.keyring import KINDS
from proxy.api.kinds import KIND_OF_VIEW
from tests.batches.test_views import jsonl, upload
from tests.echoengine import echo_engine
from tests.gateways import gateway
from tests.polling import wait_for

MODELS = """
[models.cloud]
backend = "openai"
upstreams = ["{0}/v1"]
endpoints = ["chat", "image_generations", "speech"]

[models.pic]
backend = "openai"
upstreams = ["{0}/v1"]
endpoints = ["chat", "image_generations"]
"""
KEYS = """
[[keys]]
name = "talker"
key = "sk-talker"
kinds = ["text"]

[[keys]]
name = "painter"
key = "sk-painter"
kinds = ["text", "pic.image"]

[[keys]]
name = "anyone"
key = "sk-anyone"
"""
# the POST views that ask a model for nothing it makes: no grant of a kind bounds them
UNKINDED = {
    "admin.add_key", "admin.load", "admin.unload", "admin.reload", "ollama.manage",
    "ollama.pull_view", "ollama.show", "native.post", "openai.detokenize", "openai.tokenize",
    "glm.tokenize", "anthropic.count_tokens", "responses.count_input_tokens", "vertex.predict",
    "batches.create_batch", "batches.cancel_batch", "batches.upload_file",
    "messagebatches.create_message_batch", "messagebatches.cancel_message_batch",
}  # fmt: skip
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
DRAW = {"prompt": "a fox", "response_format": "b64_json"}


@pytest.fixture
def client(tmp_path):
    with (
        echo_engine() as url,
        gateway(tmp_path, MODELS.format(url), KEYS, files_dir=str(tmp_path / "files")) as made,
    ):
        yield made


def asked(client, key: str, path: str, model: str, body: dict):
    return client.post(path, json={"model": model, **body},
                       headers={"Authorization": f"Bearer {key}"})  # fmt: skip


def test_every_view_that_makes_something_has_a_kind_a_key_can_grant(client):
    posted = {rule.endpoint for rule in client.application.url_map.iter_rules()
              if "POST" in (rule.methods or ())}  # fmt: skip
    assert posted - UNKINDED == set(KIND_OF_VIEW)
    assert set(KIND_OF_VIEW.values()) == set(KINDS)


@pytest.mark.parametrize(
    ("key", "path", "model", "body", "status"),
    [
        ("sk-talker", "/v1/chat/completions", "cloud", CHAT, 200),
        ("sk-talker", "/v1/images/generations", "cloud", DRAW, 403),
        ("sk-talker", "/images/generations", "pic", DRAW, 403),
        ("sk-painter", "/v1/images/generations", "pic", DRAW, 200),
        ("sk-painter", "/v1/images/generations", "cloud", DRAW, 403),
        ("sk-painter", "/v1/chat/completions", "cloud", CHAT, 200),
        ("sk-anyone", "/v1/images/generations", "cloud", DRAW, 200),
    ],
)
def test_a_key_asks_its_models_for_what_its_kinds_grant(client, key, path, model, body, status):
    answer = asked(client, key, path, model, body)
    assert answer.status_code == status, answer.json


def test_a_refusal_names_what_the_key_may_ask_of_the_model(client):
    answer = asked(client, "sk-painter", "/v1/audio/speech", "cloud", {"input": "hi", "voice": "x"})
    assert answer.status_code == 403 and answer.json["error"]["param"] == "model"
    assert answer.json["error"]["message"] == (
        "the key 'painter' may not ask the model 'cloud' for speech; it may ask it for text"
    )
    drawn = asked(client, "sk-painter", "/v1/images/generations", "pic", DRAW)
    assert drawn.status_code == 200  # the same key, of the model its grant names


def test_a_batch_whose_lines_ask_for_what_its_key_may_not_fails_before_it_starts(client):
    line = {"custom_id": "a", "method": "POST", "url": "/v1/embeddings",
            "body": {"model": "cloud", "input": "hi"}}  # fmt: skip
    file_id = upload(client, "sk-painter", jsonl([line])).get_json()["id"]
    made = client.post("/v1/batches", json={"input_file_id": file_id,
                                            "endpoint": "/v1/embeddings",
                                            "completion_window": "24h"},
                       headers={"Authorization": "Bearer sk-painter"})  # fmt: skip
    assert made.status_code == 200, made.json
    batch = made.json

    def ended() -> bool:
        nonlocal batch
        batch = client.get(f"/v1/batches/{batch['id']}",
                           headers={"Authorization": "Bearer sk-painter"}).json  # fmt: skip
        return batch["status"] in ("completed", "failed")

    wait_for(ended, "the batch to end", timeout=30)
    assert batch["status"] == "failed"
    (fault,) = batch["errors"]["data"]
    assert "may not ask the model" in fault["message"] and "for embedding" in fault["message"]
