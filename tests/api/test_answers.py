"""Whole OpenAI answers through Flask's test client, over a scripted FakeBackend."""

from __future__ import annotations

import threading

import pytest

from proxy.core.answers import Usage
from tests.api.openai_calls import (
    CHAT_BODY,
    CHAT_ROUTES,
    COMPLETION_BODY,
    COMPLETION_ROUTES,
    ROUTES,
    post,
)
from tests.fakes.backend import FakeBackend


@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_chat_completion_shape(client, backend, path):
    response = post(client, path, CHAT_BODY)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert type(body["created"]) is int
    assert body["model"] == "fake-model"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello world"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert body["truncated"] is False
    assert "promptToken" not in body
    assert backend.requests[0].messages[0].content == "hi"


@pytest.mark.parametrize("path", COMPLETION_ROUTES)
def test_text_completion_shape(client, backend, path):
    body = post(client, path, COMPLETION_BODY).get_json()
    assert body["id"].startswith("cmpl-")
    assert body["object"] == "text_completion"
    assert type(body["created"]) is int
    assert body["model"] == "fake-model"
    assert body["choices"] == [
        {"index": 0, "text": "Hello world", "logprobs": None, "finish_reason": "stop"}
    ]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert backend.requests[0].prompt == "Once"


@pytest.mark.parametrize(("path", "body"), ROUTES)
def test_ids_are_unique_per_response(client, path, body):
    first = post(client, path, body).get_json()["id"]
    second = post(client, path, body).get_json()["id"]
    assert first != second


def test_finish_reason_and_usage_come_from_the_backend(make_client):
    client = make_client(FakeBackend(("x",), finish_reason="length", usage=Usage(11, 16)))
    body = post(client, "/v1/chat/completions", CHAT_BODY).get_json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 16, "total_tokens": 27}


@pytest.mark.parametrize(
    ("fields", "settings", "expected"),
    [
        pytest.param(
            {"model": "asked-model"},
            {"model_name": "configured"},
            "asked-model",
            id="request-model",
        ),
        pytest.param({}, {"model_name": "configured"}, "configured", id="settings-model"),
        pytest.param({}, {}, "backend-model", id="backend-model"),
    ],
)
@pytest.mark.parametrize(("path", "body"), ROUTES)
def test_model_name(make_client, path, body, fields, settings, expected):
    client = make_client(FakeBackend(model="backend-model"), **settings)
    assert post(client, path, body, **fields).get_json()["model"] == expected


def test_request_fields_reach_the_backend(client, backend):
    post(
        client,
        "/v1/chat/completions",
        CHAT_BODY,
        max_tokens=7,
        temperature=0.5,
        stop="END",
        logit_bias={"3": False},
    )
    (request,) = backend.requests
    assert request.max_tokens == 7
    assert request.sampling.temperature == 0.5
    assert request.stop == ("END",)
    assert request.sampling.logit_bias == ((3, False),)


def test_utf8_is_sent_unescaped(make_client):
    client = make_client(FakeBackend(("h\u00e9llo ", "\u4f60\u597d")))
    response = post(client, "/v1/chat/completions", CHAT_BODY)
    assert "h\u00e9llo \u4f60\u597d".encode("utf-8") in response.data
    assert response.get_json()["choices"][0]["message"]["content"] == "h\u00e9llo \u4f60\u597d"


def test_tokenize_returns_prompt_tokens(client):
    body = post(client, "/v1/chat/completions", CHAT_BODY, tokenize=True).get_json()
    assert body["promptToken"] == [1, 2, 3]


def test_completion_tokenize_returns_prompt_tokens(client):
    body = post(client, "/v1/completions", COMPLETION_BODY, tokenize=True).get_json()
    assert body["promptToken"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("echo", "text"),
    [
        pytest.param(True, "OnceHello world", id="echo"),
        pytest.param(False, "Hello world", id="no-echo"),
    ],
)
def test_completion_echo(client, echo, text):
    body = post(client, "/v1/completions", COMPLETION_BODY, echo=echo).get_json()
    assert body["choices"][0]["text"] == text


def test_n_gives_several_chat_choices(client, backend):
    body = post(client, "/v1/chat/completions", CHAT_BODY, n=2).get_json()
    assert [choice["index"] for choice in body["choices"]] == [0, 1]
    assert all(choice["message"]["content"] == "Hello world" for choice in body["choices"])
    assert len(backend.requests) == 2
    # the prompt is counted once, the completions once each
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def test_n_gives_several_text_choices(client):
    body = post(client, "/v1/completions", COMPLETION_BODY, n=2).get_json()
    assert [choice["index"] for choice in body["choices"]] == [0, 1]
    assert body["usage"]["total_tokens"] == 9


def test_several_prompts_give_choices_prompt_by_prompt(client, backend):
    body = post(client, "/v1/completions", {"prompt": ["A", "B"]}, echo=True).get_json()
    assert [choice["text"] for choice in body["choices"]] == ["AHello world", "BHello world"]
    assert [choice["index"] for choice in body["choices"]] == [0, 1]
    assert sorted(request.prompt for request in backend.requests) == ["A", "B"]
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}


def test_choices_take_turns_on_a_backend_that_cannot_run_them_at_once(make_client):
    class OneAtATime(FakeBackend):
        concurrent = False

        def complete(self, request):
            self.threads.add(threading.get_ident())
            return super().complete(request)

    backend = OneAtATime()
    backend.threads = set()
    response = make_client(backend).post("/v1/completions", json={"prompt": "x", "n": 3})
    assert response.status_code == 200 and len(response.json["choices"]) == 3
    assert backend.threads == {threading.get_ident()}  # in turn, on the request's thread
