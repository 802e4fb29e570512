"""The GLM API, embeddings and tokenization routes through the Flask test client."""

from __future__ import annotations

import base64
import struct

import pytest

from proxy.core.errors import NotImplementedByBackendError
from tests.conftest import read_events


def test_glm_chat_turns_history_into_messages(client, backend):
    response = client.post(
        "/chat",
        json={
            "prompt": "and now?",
            "history": [["hi", "hello"]],
            "max_length": 64,
            "top_p": 0.5,
            "temperature": 0.1,
        },
    )
    assert response.status_code == 200
    assert response.json == {
        "content": "Hello world",
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "model": "fake-model",
        "object": "chat.completion",
        "finish_reason": "stop",
    }
    request = backend.requests[-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "and now?"),
    ]
    assert request.max_tokens == 64 and request.sampling.top_p == 0.5


def test_glm_chat_stream_framing(client):
    response = client.post("/chat-stream", json={"prompt": "hi"})
    assert response.mimetype == "text/event-stream"
    events = read_events(response.data)
    assert [e["delta"] for e in events[:-2]] == ["Hello", " world"]
    assert events[-2]["content"] == "Hello world" and events[-2]["total_tokens"] == 7
    assert events[-1] == "[DONE]"


@pytest.mark.parametrize(
    "body,param",
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "history": "no"}, "history"),
        ({"prompt": "x", "history": [["only one"]]}, "history[0]"),
        ({"prompt": "x", "max_length": 0}, "max_length"),
        ({"prompt": "x", "top_p": 3}, "top_p"),
    ],
    ids=["missing", "empty", "history-type", "history-pair", "max-length", "top-p"],
)
def test_glm_chat_bad_input(client, body, param):
    response = client.post("/chat", json=body)
    assert response.status_code == 400 and response.json["error"]["param"] == param


def test_glm_tokenize(client):
    response = client.post("/tokenize", json={"prompt": "héllo", "max_length": 3})
    assert response.json == {"tokenIds": [104, 233, 108], "tokens": ["h", "é", "l"]}


def test_glm_embedding(client, backend):
    response = client.post("/embedding", json={"prompt": ["ab", "c"]})
    assert response.json == {
        "data": [[2.0, 97.0, 0.5], [1.0, 99.0, 0.5]],
        "model": "fake-model",
        "object": "embedding",
    }


def test_openai_embeddings_float_and_base64(client):
    floats = client.post("/v1/embeddings", json={"input": ["ab", "c"], "model": "e"}).json
    assert floats["object"] == "list" and floats["model"] == "e"
    assert [d["embedding"] for d in floats["data"]] == [[2.0, 97.0, 0.5], [1.0, 99.0, 0.5]]
    assert [d["index"] for d in floats["data"]] == [0, 1]
    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    packed = client.post("/v1/embeddings", json={"input": "ab", "encoding_format": "base64"}).json
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert struct.unpack("<3f", raw) == (2.0, 97.0, 0.5)


def test_openai_embeddings_token_ids_are_detokenized(client, backend):
    client.post("/v1/embeddings", json={"input": [[104, 105], [106]]})
    assert backend.embedded == ["hi", "j"]


def test_token_ids_among_texts_and_an_empty_text_are_embedded_as_llama_server_reads_them(
    client, backend
):
    client.post("/v1/embeddings", json={"input": [[104, "ey ", 106], ""]})
    assert backend.embedded == ["hey j", ""]


@pytest.mark.parametrize(
    "body,param",
    [
        ({}, "input"),
        ({"input": []}, "input"),
        ({"input": [1.5]}, "input[0]"),
        ({"input": ["a"] * 300}, "input"),
        ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
    ],
    ids=["missing", "empty", "floats", "too-many", "encoding"],
)
def test_openai_embeddings_bad_input(client, body, param):
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400 and response.json["error"]["param"] == param


def test_embeddings_unsupported_by_backend_is_501(make_client, backend):
    backend.error = NotImplementedByBackendError("no embeddings here")
    response = make_client().post("/v1/embeddings", json={"input": "a"})
    assert response.status_code == 501
    assert response.json["error"]["type"] == "not_supported_error"


def test_openai_tokenize_and_detokenize(client):
    tokens = client.post("/v1/tokenize", json={"prompt": "hé"}).json
    assert tokens == {"tokens": [104, 233], "pieces": ["h", "é"], "count": 2}
    assert client.post("/v1/detokenize", json={"tokens": [104, 233]}).json == {"prompt": "hé"}
    assert client.post("/v1/detokenize", json={"tokens": ["x"]}).status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/chat",
        "/chat-stream",
        "/tokenize",
        "/embedding",
        "/v1/embeddings",
        "/v1/tokenize",
        "/v1/detokenize",
    ],
)
def test_every_route_needs_the_key(make_client, path):
    response = make_client(api_key=("k",)).post(path, json={})
    assert response.status_code == 401
