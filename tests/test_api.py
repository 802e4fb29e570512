"""The OpenAI HTTP surface through Flask's test client, over a scripted FakeBackend."""
from __future__ import annotations

import json
import threading

import pytest

from proxy.errors import (InvalidRequestError, NotImplementedByBackendError, UpstreamError,
                          UpstreamTimeoutError, UpstreamUnavailableError)
from proxy.types import Usage
from tests.conftest import read_events
from tests.fakes.backend import FakeBackend

CHAT_BODY = {"messages": [{"role": "user", "content": "hi"}]}
COMPLETION_BODY = {"prompt": "Once"}

ROUTES = [
    pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
    pytest.param("/chat/completions", CHAT_BODY, id="chat-no-v1"),
    pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
    pytest.param("/completions", COMPLETION_BODY, id="completions-no-v1"),
]
CHAT_ROUTES = [
    pytest.param("/v1/chat/completions", id="v1"),
    pytest.param("/chat/completions", id="no-v1"),
]
COMPLETION_ROUTES = [
    pytest.param("/v1/completions", id="v1"),
    pytest.param("/completions", id="no-v1"),
]
ERROR_KEYS = {"message", "type", "param", "code"}


def post(client, path, body, **fields):
    return client.post(path, json={**body, **fields})


def assert_openai_error(response, status, *, type=None, code=None):
    """Check the status and the ``{"error": {message, type, param, code}}`` shape."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    if type is not None:
        assert body["error"]["type"] == type
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def stream(client, path, body, **fields):
    """POST a streaming request; return the response and its decoded events."""
    response = post(client, path, body, stream=True, **fields)
    assert response.status_code == 200, response.data
    return response, read_events(response.data)


def chunks_of(events):
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1
    return events[:-1]


# -- non-streaming shapes ------------------------------------------------------------------

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
    assert body["choices"] == [{"index": 0,
                                "message": {"role": "assistant", "content": "Hello world"},
                                "logprobs": None, "finish_reason": "stop"}]
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
    assert body["choices"] == [{"index": 0, "text": "Hello world", "logprobs": None,
                                "finish_reason": "stop"}]
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


@pytest.mark.parametrize(("fields", "settings", "expected"), [
    pytest.param({"model": "asked-model"}, {"model_name": "configured"}, "asked-model",
                 id="request-model"),
    pytest.param({}, {"model_name": "configured"}, "configured", id="settings-model"),
    pytest.param({}, {}, "backend-model", id="backend-model"),
])
@pytest.mark.parametrize(("path", "body"), ROUTES)
def test_model_name(make_client, path, body, fields, settings, expected):
    client = make_client(FakeBackend(model="backend-model"), **settings)
    assert post(client, path, body, **fields).get_json()["model"] == expected


def test_request_fields_reach_the_backend(client, backend):
    post(client, "/v1/chat/completions", CHAT_BODY, max_tokens=7, temperature=0.5, stop="END",
         logit_bias={"3": False})
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


@pytest.mark.parametrize(("echo", "text"), [
    pytest.param(True, "OnceHello world", id="echo"),
    pytest.param(False, "Hello world", id="no-echo"),
])
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


# -- models and health ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/models", "/models"])
def test_models(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.get_json()
    assert body["object"] == "list"
    assert [(model["id"], model["object"]) for model in body["data"]] == [("fake-model", "model")]
    assert type(body["data"][0]["created"]) is int
    assert isinstance(body["data"][0]["owned_by"], str)


@pytest.mark.parametrize(("error", "status", "state"), [
    pytest.param(None, 200, "ok", id="up"),
    pytest.param(UpstreamUnavailableError("down"), 503, "unavailable", id="down"),
])
def test_health(make_client, error, status, state):
    response = make_client(FakeBackend(error=error)).get("/health")
    assert response.status_code == status
    assert response.get_json()["status"] == state
    assert response.get_json()["backend"] == "fake"


def test_health_is_public_even_with_keys(make_client):
    assert make_client(api_key=("k1",)).get("/health").status_code == 200


# -- streaming -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_chat_stream(client, backend, path):
    response, events = stream(client, path, CHAT_BODY)
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    chunks = chunks_of(events)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["created"] for chunk in chunks}) == 1
    assert type(chunks[0]["created"]) is int
    assert {chunk["model"] for chunk in chunks} == {"fake-model"}
    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [
        {"role": "assistant", "content": ""}, {"content": "Hello"}, {"content": " world"}, {}]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None,
                                                                          "stop"]
    assert all("usage" not in chunk for chunk in chunks)
    assert backend.finished_streams == 1


@pytest.mark.parametrize("path", COMPLETION_ROUTES)
def test_completion_stream(client, backend, path):
    response, events = stream(client, path, COMPLETION_BODY)
    assert response.mimetype == "text/event-stream"
    chunks = chunks_of(events)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["id"].startswith("cmpl-")
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert [chunk["choices"][0]["text"] for chunk in chunks] == ["Hello", " world", ""]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, "stop"]
    assert all("usage" not in chunk for chunk in chunks)
    assert backend.finished_streams == 1


@pytest.mark.parametrize(("path", "body", "object"), [
    pytest.param("/v1/chat/completions", CHAT_BODY, "chat.completion.chunk", id="chat"),
    pytest.param("/v1/completions", COMPLETION_BODY, "text_completion", id="completions"),
])
def test_stream_usage_chunk_only_with_include_usage(client, path, body, object):
    _, events = stream(client, path, body, stream_options={"include_usage": True})
    chunks = chunks_of(events)
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert last["object"] == object
    assert last["id"] == chunks[0]["id"]
    assert all("usage" not in chunk for chunk in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_with_include_usage_false_has_no_usage(client):
    _, events = stream(client, "/v1/chat/completions", CHAT_BODY,
                       stream_options={"include_usage": False})
    assert all("usage" not in chunk for chunk in chunks_of(events))


def test_chat_stream_with_n_2(client):
    _, events = stream(client, "/v1/chat/completions", CHAT_BODY, n=2,
                       stream_options={"include_usage": True})
    chunks = chunks_of(events)
    choices = [chunk["choices"][0] for chunk in chunks[:-1]]
    for index in (0, 1):
        mine = [choice for choice in choices if choice["index"] == index]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        assert "".join(choice["delta"].get("content", "") for choice in mine) == "Hello world"
        assert [choice["finish_reason"] for choice in mine if choice["finish_reason"]] == ["stop"]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4,
                                   "total_tokens": 9}


def test_completion_stream_with_n_2(client):
    _, events = stream(client, "/v1/completions", COMPLETION_BODY, n=2)
    choices = [chunk["choices"][0] for chunk in chunks_of(events)]
    for index in (0, 1):
        mine = [choice for choice in choices if choice["index"] == index]
        assert "".join(choice["text"] for choice in mine) == "Hello world"
        assert [choice["finish_reason"] for choice in mine if choice["finish_reason"]] == ["stop"]


def test_completion_stream_echo_sends_the_prompt_first(client):
    _, events = stream(client, "/v1/completions", COMPLETION_BODY, echo=True)
    assert [chunk["choices"][0]["text"] for chunk in chunks_of(events)] == [
        "Once", "Hello", " world", ""]


def test_stream_utf8_is_sent_unescaped(make_client):
    client = make_client(FakeBackend(("\u4f60\u597d",)))
    response, events = stream(client, "/v1/chat/completions", CHAT_BODY)
    assert "\u4f60\u597d".encode("utf-8") in response.data
    assert chunks_of(events)[1]["choices"][0]["delta"] == {"content": "\u4f60\u597d"}


@pytest.mark.parametrize(("path", "body"), [
    pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
    pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
])
def test_error_before_the_first_byte_is_an_http_error(make_client, path, body):
    fake = FakeBackend(error=UpstreamUnavailableError("llama-server is down", retry_after=7))
    response = post(make_client(fake), path, body, stream=True)
    error = assert_openai_error(response, 503, type="upstream_error",
                                code="upstream_unavailable")
    assert error["message"] == "llama-server is down"
    assert response.headers["Retry-After"] == "7"


def test_error_before_the_first_byte_without_retry_after(make_client):
    fake = FakeBackend(error=UpstreamTimeoutError("llama-server did not answer"))
    response = post(make_client(fake), "/v1/chat/completions", CHAT_BODY, stream=True)
    assert_openai_error(response, 504, code="upstream_timeout")
    assert "Retry-After" not in response.headers


def test_echo_stream_error_before_the_first_byte_is_an_http_error(make_client):
    fake = FakeBackend(error=UpstreamUnavailableError("llama-server is down", retry_after=7))
    response = post(make_client(fake), "/v1/completions", COMPLETION_BODY, stream=True,
                    echo=True)
    assert_openai_error(response, 503, code="upstream_unavailable")


@pytest.mark.parametrize(("path", "body", "first_text"), [
    pytest.param("/v1/chat/completions", CHAT_BODY,
                 lambda chunk: chunk["choices"][0]["delta"].get("content"), id="chat"),
    pytest.param("/v1/completions", COMPLETION_BODY,
                 lambda chunk: chunk["choices"][0]["text"], id="completions"),
])
def test_error_after_the_first_byte_is_one_error_event_then_done(make_client, path, body,
                                                                 first_text):
    fake = FakeBackend(("a", "b", "c"), error=UpstreamError("upstream broke off"), fail_after=1)
    response, events = stream(make_client(fake), path, body)
    chunks = chunks_of(events)
    errors = [chunk for chunk in chunks if "error" in chunk]
    assert errors == [{"error": {"message": "upstream broke off", "type": "upstream_error",
                                 "param": None, "code": "bad_gateway"}}]
    assert chunks[-1] is errors[0]
    assert [first_text(chunk) for chunk in chunks[:-1] if first_text(chunk)] == ["a"]
    assert not any(chunk["choices"][0]["finish_reason"] for chunk in chunks[:-1])
    assert fake.closed_streams == 1


def test_unexpected_error_mid_stream_is_generic(make_client):
    fake = FakeBackend(("a", "b"), error=RuntimeError("secret /etc/passwd"), fail_after=1)
    response, events = stream(make_client(fake), "/v1/chat/completions", CHAT_BODY)
    error = chunks_of(events)[-1]["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == "internal_error"
    assert b"secret" not in response.data
    assert b"RuntimeError" not in response.data


@pytest.mark.parametrize(("path", "body"), [
    pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
    pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
])
def test_client_that_stops_reading_closes_the_backend_stream(make_client, path, body):
    fake = FakeBackend(("a", "b", "c", "d", "e"))
    response = make_client(fake).post(path, json={**body, "stream": True}, buffered=False)
    assert response.status_code == 200
    received = iter(response.response)
    first = next(received)
    second = next(received)
    assert first.startswith(b"data: ") and second.startswith(b"data: ")
    response.close()
    assert fake.closed_streams == 1
    assert fake.finished_streams == 0


# -- errors --------------------------------------------------------------------------------

BACKEND_ERRORS = [
    pytest.param(InvalidRequestError("prompt too long for the context", param="messages"),
                 400, "invalid_request_error", None, id="400"),
    pytest.param(NotImplementedByBackendError("no embeddings here"), 501,
                 "not_supported_error", "not_supported", id="501"),
    pytest.param(UpstreamError("llama-server answered 500"), 502, "upstream_error",
                 "bad_gateway", id="502"),
    pytest.param(UpstreamUnavailableError("llama-server refused the connection"), 503,
                 "upstream_error", "upstream_unavailable", id="503"),
    pytest.param(UpstreamTimeoutError("llama-server did not answer in 600 s"), 504,
                 "upstream_error", "upstream_timeout", id="504"),
]


@pytest.mark.parametrize(("error", "status", "type", "code"), BACKEND_ERRORS)
@pytest.mark.parametrize(("path", "body"), [
    pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
    pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
])
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_backend_errors_map_to_statuses(make_client, path, body, streaming, error, status,
                                        type, code):
    response = post(make_client(FakeBackend(error=error)), path, body, stream=streaming)
    found = assert_openai_error(response, status, type=type, code=code)
    assert found["message"] == error.message
    assert found["param"] == error.param


def test_retry_after_is_sent_when_set(make_client):
    fake = FakeBackend(error=UpstreamUnavailableError("all slots busy", retry_after=3))
    response = post(make_client(fake), "/v1/chat/completions", CHAT_BODY)
    assert_openai_error(response, 503)
    assert response.headers["Retry-After"] == "3"


@pytest.mark.parametrize(("path", "body"), [
    pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
    pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
])
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_unexpected_backend_error_is_a_generic_500(make_client, path, body, streaming):
    fake = FakeBackend(error=RuntimeError("secret detail in /home/me/model.gguf"))
    response = post(make_client(fake), path, body, stream=streaming)
    error = assert_openai_error(response, 500, type="server_error", code="internal_error")
    text = response.get_data(as_text=True)
    assert "secret" not in text
    assert "RuntimeError" not in text
    assert error["param"] is None


@pytest.mark.parametrize(("data", "content_type"), [
    pytest.param(b"{bad json", "application/json", id="malformed"),
    pytest.param(b'{"messages": [', "application/json", id="truncated"),
    pytest.param(b'{"a": "\xc3\x28"}', "application/json", id="not-utf8"),
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(b"[]", "application/json", id="array"),
    pytest.param(b'"hi"', "text/plain", id="string"),
])
def test_bad_bodies_are_400(client, data, content_type):
    response = client.post("/v1/chat/completions", data=data, content_type=content_type)
    error = assert_openai_error(response, 400, type="invalid_request_error")
    assert error["param"] is None


def test_json_without_content_type_is_accepted(client):
    response = client.post("/v1/chat/completions", data=json.dumps(CHAT_BODY))
    assert response.status_code == 200


@pytest.mark.parametrize(("fields", "param"), [
    pytest.param({"temperature": "hot"}, "temperature", id="temperature"),
    pytest.param({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role",
                 id="role"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
                 "messages[0].content[0].type", id="image"),
    pytest.param({"n": 99}, "n", id="n"),
])
def test_validation_errors_name_the_param(client, backend, fields, param):
    response = post(client, "/v1/chat/completions", CHAT_BODY, **fields)
    assert assert_openai_error(response, 400, type="invalid_request_error")["param"] == param
    assert backend.requests == []


def test_deeply_nested_json_is_400(client):
    response = client.post("/v1/chat/completions", data=b"[" * 100_000,
                           content_type="application/json")
    assert_openai_error(response, 400)


@pytest.mark.parametrize("data", [
    pytest.param(b'{"messages":[{"role":"user","content":"hi"}],"temperature":1' + b"0" * 400
                 + b"}", id="huge-temperature"),
    pytest.param('{"messages":[{"role":"user","content":"hi"}],"logit_bias":{"\u00b2":1}}'
                 .encode("utf-8"), id="superscript-logit-bias-key"),
])
def test_unparseable_numbers_are_400(client, data):
    response = client.post("/v1/chat/completions", data=data, content_type="application/json")
    assert_openai_error(response, 400)


@pytest.mark.parametrize("path", ["/v1/nothing", "/v2/chat/completions", "/v1/embeddings/x"])
def test_unknown_route_is_404(client, path):
    assert_openai_error(client.post(path, json={}), 404, code="not_found")


@pytest.mark.parametrize(("method", "path"), [
    pytest.param("get", "/v1/chat/completions", id="get-chat"),
    pytest.param("put", "/v1/completions", id="put-completions"),
    pytest.param("post", "/v1/models", id="post-models"),
])
def test_wrong_method_is_405(client, method, path):
    response = getattr(client, method)(path)
    assert_openai_error(response, 405, code="method_not_allowed")


def test_405_says_which_methods_are_allowed(client):
    response = client.get("/v1/chat/completions")
    assert "POST" in response.headers["Allow"]


def test_body_over_the_limit_is_413(make_client, backend):
    client = make_client(max_body_size=200)
    big = {**CHAT_BODY, "stop": ["x" * 300]}
    response = client.post("/v1/chat/completions", json=big)
    assert_openai_error(response, 413, code="request_too_large")
    assert backend.requests == []


def test_body_under_the_limit_is_fine(make_client):
    assert post(make_client(max_body_size=200), "/v1/chat/completions",
                CHAT_BODY).status_code == 200


# -- auth ----------------------------------------------------------------------------------

KEYS = ("key-one", "key-two")


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": ""}, id="empty"),
    pytest.param({"Authorization": "Basic a2V5LW9uZTo="}, id="basic-scheme"),
    pytest.param({"Authorization": "key-one"}, id="no-scheme"),
    pytest.param({"Authorization": "Bearer"}, id="bearer-no-key"),
    pytest.param({"Authorization": "Bearer "}, id="bearer-blank"),
    pytest.param({"Authorization": "Bearer key-three"}, id="wrong-key"),
    pytest.param({"Authorization": "Bearer key-one-and-more"}, id="key-prefix"),
    pytest.param({"Authorization": "Bearer key-on"}, id="truncated-key"),
    pytest.param({"Authorization": "Bearer  key-one"}, id="two-spaces"),
    pytest.param({"Authorization": "Bearer\tkey-one"}, id="tab-for-space"),
    pytest.param({"Authorization": "Bearer key-one\u00a0"}, id="trailing-nbsp"),
    pytest.param({"Authorization": "\u00a0Bearer key-one"}, id="leading-nbsp"),
    pytest.param({"Authorization": "Bearer key-one\u2003"}, id="trailing-em-space"),
    pytest.param({"Authorization": "Bearer key-one\x0b"}, id="trailing-vertical-tab"),
    pytest.param({"Authorization": "Bearer key-\u00f6ne"}, id="look-alike"),
])
@pytest.mark.parametrize(("method", "path"), [
    pytest.param("post", "/v1/chat/completions", id="chat"),
    pytest.param("post", "/completions", id="completions"),
    pytest.param("get", "/v1/models", id="models"),
])
def test_requests_without_the_right_key_are_401(make_client, backend, headers, method, path):
    client = make_client(api_key=KEYS)
    body = CHAT_BODY if "chat" in path else COMPLETION_BODY
    kwargs = {"json": body} if method == "post" else {}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert_openai_error(response, 401, type="authentication_error", code="invalid_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert backend.requests == []


@pytest.mark.parametrize("header", ["Bearer {key}", "bearer {key}", " \tBearer {key} \t"],
                         ids=["plain", "scheme-in-any-case", "http-whitespace-around"])
@pytest.mark.parametrize("key", KEYS)
def test_any_configured_key_is_accepted(make_client, key, header):
    client = make_client(api_key=KEYS)
    headers = {"Authorization": header.format(key=key)}
    response = client.post("/v1/chat/completions", json=CHAT_BODY, headers=headers)
    assert response.status_code == 200
    assert client.get("/v1/models", headers=headers).status_code == 200


def test_no_keys_means_no_auth(client):
    assert post(client, "/v1/chat/completions", CHAT_BODY).status_code == 200


def test_preflight_is_exempt_from_auth(make_client):
    client = make_client(api_key=KEYS)
    response = client.options("/v1/chat/completions")
    assert response.status_code < 300


def test_preflight_with_cors_is_exempt_from_auth(make_client):
    client = make_client(api_key=KEYS, cors_origins=("http://a",))
    response = client.options("/v1/chat/completions", headers={
        "Origin": "http://a", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://a"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


# -- CORS ----------------------------------------------------------------------------------

def test_cors_is_off_by_default(client):
    response = client.get("/v1/models", headers={"Origin": "http://a"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(("origins", "origin", "allowed"), [
    pytest.param(("http://a",), "http://a", "http://a", id="listed"),
    pytest.param(("http://a",), "http://b", None, id="not-listed"),
    pytest.param(("http://a",), "http://a.evil", None, id="prefix-not-enough"),
    pytest.param(("http://a", "http://b"), "http://b", "http://b", id="second-listed"),
    pytest.param(("*",), "http://anything", "*", id="any"),
])
def test_cors_origins(make_client, origins, origin, allowed):
    client = make_client(cors_origins=origins)
    response = client.post("/v1/chat/completions", json=CHAT_BODY, headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers.get("Access-Control-Allow-Origin") == allowed


def test_cors_headers_on_streams_and_errors(make_client):
    client = make_client(cors_origins=("http://a",), api_key=KEYS)
    denied = client.post("/v1/chat/completions", json=CHAT_BODY, headers={"Origin": "http://a"})
    assert denied.status_code == 401
    assert denied.headers["Access-Control-Allow-Origin"] == "http://a"
    streamed = client.post("/v1/chat/completions", json={**CHAT_BODY, "stream": True},
                           headers={"Origin": "http://a", "Authorization": "Bearer key-one"})
    assert streamed.status_code == 200
    assert streamed.headers["Access-Control-Allow-Origin"] == "http://a"


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


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/chat/completions", '{"messages":[{"role":"user","content":"a \\ud800 b"}]}',
     "messages[0].content"),
    ("/v1/chat/completions", '{"model":"\\udfff","messages":[{"role":"user","content":"hi"}]}',
     "model"),
    ("/v1/completions", '{"prompt":"x","stop":["ok","\\ud83d"]}', "stop[1]"),
    ("/v1/completions", '{"prompt":["a","\\ud800"],"stream":true}', "prompt[1]"),
    ("/v1/embeddings", '{"input":"\\ud800"}', "input"),
    ("/v1/tokenize", '{"prompt":"\\ud800"}', "prompt"),
    ("/chat-stream", '{"prompt":"\\ud800"}', "prompt"),
    ("/v1/completions", '{"prompt":"x","\\ud800":1}', "body"),
], ids=["message", "model", "stop", "streamed-prompt", "embeddings", "tokenize", "glm",
        "a-key"])
def test_a_lone_surrogate_is_a_400_naming_the_field(client, backend, path, body, param):
    response = client.post(path, data=body, content_type="application/json")
    assert_openai_error(response, 400, type="invalid_request_error")
    assert response.json["error"]["param"] == param
    assert "surrogate" in response.json["error"]["message"]
    assert backend.requests == []


def test_a_surrogate_pair_is_text(client, backend):
    response = client.post("/v1/completions", data='{"prompt":"\\ud83d\\ude00"}',
                           content_type="application/json")
    assert response.status_code == 200
    assert backend.requests[-1].prompt == "😀"


def test_an_async_view_is_refused_at_start_up(client):
    from proxy.app import _check_all_plain

    app = client.application

    @app.get("/async")
    async def async_view():
        return "never awaited"

    with pytest.raises(TypeError, match="async_view is async"):
        _check_all_plain(app)
