"""llama.cpp's ``POST /infill`` through the Flask test client: what the core is asked, and
llama.cpp's answer, whole, cut to ``response_fields``, and streamed."""

from __future__ import annotations

import pytest

from proxy.core.errors import InvalidRequestError
from proxy.core.types import SourceChunk
from tests.conftest import read_events

EDITOR = {  # what llama.vim sends, less its cache and sampler tuning
    "input_prefix": "def add(a, b):\n",
    "input_suffix": "\n\nprint(add(1, 2))\n",
    "input_extra": [{"text": "x = 1\n", "filename": "util.py"}, {"text": "y = 2\n"}],
    "prompt": "    ret",
    "n_predict": 64,
    "n_indent": 4,
    "top_k": 40,
    "top_p": 0.99,
    "samplers": ["top_k", "top_p", "infill"],
    "cache_prompt": True,
    "t_max_prompt_ms": 500,
    "t_max_predict_ms": 1000,
    "repeat_last_n": 128,
}


def test_the_gap_its_files_and_llama_cpps_own_limits_reach_the_core(client, backend):
    response = client.post("/infill", json=EDITOR)
    assert response.status_code == 200
    request = backend.requests[-1]
    assert (request.prompt, request.suffix, request.cursor) == (
        EDITOR["input_prefix"],
        EDITOR["input_suffix"],
        "    ret",
    )
    assert request.nearby == (SourceChunk("x = 1\n", "util.py"), SourceChunk("y = 2\n", "tmp"))
    assert request.unread == {
        "n_indent": 4,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 1000,
        "repeat_last_n": 128,
        "samplers": ["top_k", "top_p", "infill"],
    }
    assert request.max_tokens == 64 and request.sampling.top_k == 40
    assert request.cache_prompt is True


def test_the_answer_is_llama_cpps(client):
    body = client.post("/infill", json={"input_prefix": "a", "input_suffix": "b"}).json
    assert body["content"] == "Hello world" and body["stop"] is True
    assert body["stop_type"] == "eos" and body["stopping_word"] == ""
    assert (body["tokens_evaluated"], body["tokens_predicted"]) == (5, 2)
    assert body["timings"]["prompt_n"] == 5 and body["timings"]["predicted_n"] == 2


def test_response_fields_cut_the_answer_to_the_paths_named(client):
    wanted = ["content", "timings/prompt_n", "timings/predicted_n", "truncated", "nothing/here"]
    body = client.post("/infill", json={"input_prefix": "a", "response_fields": wanted}).json
    assert body == {
        "content": "Hello world",
        "timings/prompt_n": 5,
        "timings/predicted_n": 2,
        "truncated": False,
    }


def test_a_stream_is_content_events_then_the_last_with_the_counts(client):
    response = client.post("/infill", json={"input_prefix": "a", "stream": True})
    assert response.mimetype == "text/event-stream"
    events = read_events(response.data)
    assert [event["content"] for event in events[:-1]] == ["Hello", " world"]
    assert not any(event["stop"] for event in events[:-1])
    assert events[-1]["stop"] is True and events[-1]["tokens_predicted"] == 2
    assert b"[DONE]" not in response.data


@pytest.mark.parametrize(
    "body, param",
    [
        ({"input_prefix": 1}, "input_prefix"),
        ({"input_suffix": ["x"]}, "input_suffix"),
        ({"input_extra": "x"}, "input_extra"),
        ({"input_extra": [{"text": 1}]}, "input_extra[0].text"),
        ({"input_extra": [{"text": "x", "filename": 2}]}, "input_extra[0].filename"),
        ({"input_extra": [{"filename": "a.py"}]}, "input_extra[0].text"),
        ({"input_extra": [{}]}, "input_extra[0].text"),
        ({"prompt": 5}, "prompt"),
        ({"n_predict": -2}, "n_predict"),
        ({"n_indent": -1}, "n_indent"),
        ({"t_max_prompt_ms": -2}, "t_max_prompt_ms"),
        ({"t_max_predict_ms": "1s"}, "t_max_predict_ms"),
        ({"samplers": "top_k"}, "samplers"),
        ({"response_fields": [1]}, "response_fields"),
        ({"response_fields": ["content"] * 65}, "response_fields"),
        ({"temperature": 3}, "temperature"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_a_bad_field_is_named(client, body, param):
    response = client.post("/infill", json=body)
    assert response.status_code == 400
    assert response.json["error"]["param"] == param


def test_too_many_chunks_of_other_files_are_refused(client):
    chunks = [{"text": "x"}] * 1000
    response = client.post("/infill", json={"input_prefix": "a", "input_extra": chunks})
    assert response.status_code == 400 and response.json["error"]["param"] == "input_extra"


def test_a_gap_the_model_cannot_fill_is_named_as_this_api_names_it(client, backend):
    backend.error = InvalidRequestError("suffix cannot be served: no FIM tokens", param="suffix")
    response = client.post("/infill", json={"input_prefix": "a", "input_suffix": "b"})
    assert response.status_code == 400
    assert response.json["error"]["param"] == "input_suffix"
    assert response.json["error"]["message"].startswith("input_suffix cannot be served")
