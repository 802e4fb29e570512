"""Mistral's ``POST /v1/fim/completions`` through the Flask test client: the gap reaches the
core, the answer is a chat completion, whole and streamed."""

from __future__ import annotations

import pytest

from tests.conftest import read_events

GAP = {"model": "coder", "prompt": "def add(a, b):\n", "suffix": "\nprint(add(1, 2))\n"}


@pytest.mark.parametrize("path", ["/v1/fim/completions", "/fim/completions"])
def test_the_gap_reaches_the_core_and_the_answer_is_a_chat_completion(client, backend, path):
    body = {**GAP, "max_tokens": 16, "temperature": 0.2, "random_seed": 7, "stop": ["\n\n"]}
    response = client.post(path, json=body)
    assert response.status_code == 200
    request = backend.requests[-1]
    assert (request.prompt, request.suffix) == (GAP["prompt"], GAP["suffix"])
    assert request.max_tokens == 16 and request.sampling.seed == 7 and request.stop == ("\n\n",)
    answer = response.json
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello world"}
    assert answer["usage"]["completion_tokens"] == 2


def test_no_suffix_is_a_gap_at_the_end_of_the_file(client, backend):
    client.post("/v1/fim/completions", json={"prompt": "x = "})
    assert backend.requests[-1].suffix == ""


def test_a_stream_is_chat_completion_chunks(client):
    response = client.post("/v1/fim/completions", json={**GAP, "stream": True})
    events = read_events(response.data)
    assert events[-1] == "[DONE]"
    chunks = [event for event in events[:-1] if event["choices"]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == "Hello world"


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "prompt"),
        ({"prompt": 1}, "prompt"),
        ({"prompt": "x", "suffix": 2}, "suffix"),
        ({"prompt": "x", "min_tokens": 4}, "min_tokens"),
        ({"prompt": "x", "random_seed": -1}, "random_seed"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ],
)
def test_a_bad_field_is_named(client, body, param):
    response = client.post("/v1/fim/completions", json=body)
    assert response.status_code == 400 and response.json["error"]["param"] == param
