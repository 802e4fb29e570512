"""Every failure as an OpenAI error: backend errors, bad bodies, routes and methods, sizes."""

from __future__ import annotations

import json

import pytest

from proxy.core.errors import (
    InvalidRequestError,
    NotImplementedByBackendError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from tests.api.openai_calls import CHAT_BODY, COMPLETION_BODY, assert_openai_error, post
from tests.fakes.backend import FakeBackend

BACKEND_ERRORS = [
    pytest.param(
        InvalidRequestError("prompt too long for the context", param="messages"),
        400,
        "invalid_request_error",
        None,
        id="400",
    ),
    pytest.param(
        NotImplementedByBackendError("no embeddings here"),
        501,
        "not_supported_error",
        "not_supported",
        id="501",
    ),
    pytest.param(
        UpstreamError("llama-server answered 500"), 502, "upstream_error", "bad_gateway", id="502"
    ),
    pytest.param(
        UpstreamUnavailableError("llama-server refused the connection"),
        503,
        "upstream_error",
        "upstream_unavailable",
        id="503",
    ),
    pytest.param(
        UpstreamTimeoutError("llama-server did not answer in 600 s"),
        504,
        "upstream_error",
        "upstream_timeout",
        id="504",
    ),
]


@pytest.mark.parametrize(("error", "status", "type", "code"), BACKEND_ERRORS)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
        pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_backend_errors_map_to_statuses(
    make_client, path, body, streaming, error, status, type, code
):
    response = post(make_client(FakeBackend(error=error)), path, body, stream=streaming)
    found = assert_openai_error(response, status, type=type, code=code)
    assert found["message"] == error.message
    assert found["param"] == error.param


def test_retry_after_is_sent_when_set(make_client):
    fake = FakeBackend(error=UpstreamUnavailableError("all slots busy", retry_after=3))
    response = post(make_client(fake), "/v1/chat/completions", CHAT_BODY)
    assert_openai_error(response, 503)
    assert response.headers["Retry-After"] == "3"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
        pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_unexpected_backend_error_is_a_generic_500(make_client, path, body, streaming):
    fake = FakeBackend(error=RuntimeError("secret detail in /home/me/model.gguf"))
    response = post(make_client(fake), path, body, stream=streaming)
    error = assert_openai_error(response, 500, type="server_error", code="internal_error")
    text = response.get_data(as_text=True)
    assert "secret" not in text
    assert "RuntimeError" not in text
    assert error["param"] is None


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        pytest.param(b"{bad json", "application/json", id="malformed"),
        pytest.param(b'{"messages": [', "application/json", id="truncated"),
        pytest.param(b'{"a": "\xc3\x28"}', "application/json", id="not-utf8"),
        pytest.param(b"", "application/json", id="empty"),
        pytest.param(b"[]", "application/json", id="array"),
        pytest.param(b'"hi"', "text/plain", id="string"),
    ],
)
def test_bad_bodies_are_400(client, data, content_type):
    response = client.post("/v1/chat/completions", data=data, content_type=content_type)
    error = assert_openai_error(response, 400, type="invalid_request_error")
    assert error["param"] is None


def test_json_without_content_type_is_accepted(client):
    response = client.post("/v1/chat/completions", data=json.dumps(CHAT_BODY))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        pytest.param({"temperature": "hot"}, "temperature", id="temperature"),
        pytest.param(
            {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", id="role"
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0].image_url",
            id="image",
        ),
        pytest.param({"n": 99}, "n", id="n"),
    ],
)
def test_validation_errors_name_the_param(client, backend, fields, param):
    response = post(client, "/v1/chat/completions", CHAT_BODY, **fields)
    assert assert_openai_error(response, 400, type="invalid_request_error")["param"] == param
    assert backend.requests == []


def test_deeply_nested_json_is_400(client):
    response = client.post(
        "/v1/chat/completions", data=b"[" * 100_000, content_type="application/json"
    )
    assert_openai_error(response, 400)


def nested(levels: int) -> bytes:
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


NESTED = [  # (route, a body whose "DEEP" is the nested value, its field, how errors name it)
    (
        "/v1/chat/completions",
        {**CHAT_BODY, "chat_template_kwargs": "DEEP"},
        "chat_template_kwargs",
        lambda body: body["error"]["param"],
    ),
    (
        "/v1/completions",
        {**COMPLETION_BODY, "anything": ["DEEP"]},
        "anything",
        lambda body: body["error"]["param"],
    ),
    (
        "/v1/messages",
        {
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": "DEEP"}],
        },
        "tools",
        lambda body: body["error"]["message"],
    ),
    (
        "/v1/responses",
        {"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": "DEEP"}]},
        "tools",
        lambda body: body["error"]["param"],
    ),
    (
        "/api/chat",
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "options": {"deep": "DEEP"},
        },
        "options",
        lambda body: body["error"],
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "field", "named"), NESTED, ids=[path for path, *_ in NESTED]
)
def test_a_body_nested_past_max_nesting_is_a_400_naming_its_field(
    make_client, backend, path, body, field, named
):
    client = make_client(max_nesting=12)
    data = json.dumps(body).encode()
    above = data[: data.index(b'"DEEP"')]
    depth = (
        12
        - sum(above.count(bracket) for bracket in b"[{")
        + sum(above.count(bracket) for bracket in b"]}")
    )  # the levels left for the nested value
    fits = client.post(
        path, data=data.replace(b'"DEEP"', nested(depth)), content_type="application/json"
    )
    assert fits.status_code == 200, fits.get_data()
    deep = client.post(
        path, data=data.replace(b'"DEEP"', nested(depth + 1)), content_type="application/json"
    )
    assert deep.status_code == 400
    assert field in named(deep.json) and "--max-nesting" in json.dumps(deep.json)
    assert len(backend.requests) == 1


HI = [{"role": "user", "content": "hi [{" * 20}]  # brackets in text are none of them


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": HI * 3}),
        ("/v1/messages", {"max_tokens": 8, "messages": HI * 3}),
        ("/v1/responses", {"input": HI * 3}),
        ("/api/chat", {"model": "m", "stream": False, "messages": HI * 3}),
    ],
    ids=["chat", "messages", "responses", "ollama"],
)
def test_a_body_of_more_arrays_and_objects_than_max_containers_is_a_400(
    make_client, backend, path, body
):
    client = make_client(max_containers=5)  # the body, its list and three messages
    assert client.post(path, json=body).status_code == 200
    response = client.post(path, json={**body, "extra": []})
    assert response.status_code == 400
    assert "more than 5 arrays and objects" in response.get_data(as_text=True)
    assert "--max-containers" in response.get_data(as_text=True)
    assert len(backend.requests) == 1


def test_a_body_that_is_no_object_is_named_as_the_body(make_client):
    response = make_client(max_nesting=3).post(
        "/v1/chat/completions", data=b"[[[[]]]]", content_type="application/json"
    )
    assert assert_openai_error(response, 400)["param"] == "body"
    assert "The body nests" in response.json["error"]["message"]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            b'{"messages":[{"role":"user","content":"hi"}],"temperature":1' + b"0" * 400 + b"}",
            id="huge-temperature",
        ),
        pytest.param(
            '{"messages":[{"role":"user","content":"hi"}],"logit_bias":{"\u00b2":1}}'.encode(
                "utf-8"
            ),
            id="superscript-logit-bias-key",
        ),
    ],
)
def test_unparseable_numbers_are_400(client, data):
    response = client.post("/v1/chat/completions", data=data, content_type="application/json")
    assert_openai_error(response, 400)


@pytest.mark.parametrize("path", ["/v1/nothing", "/v2/chat/completions", "/v1/embeddings/x"])
def test_unknown_route_is_404(client, path):
    assert_openai_error(client.post(path, json={}), 404, code="not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("get", "/v1/chat/completions", id="get-chat"),
        pytest.param("put", "/v1/completions", id="put-completions"),
        pytest.param("post", "/v1/models", id="post-models"),
    ],
)
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
    assert (
        post(make_client(max_body_size=200), "/v1/chat/completions", CHAT_BODY).status_code == 200
    )


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/chat/completions",
            '{"messages":[{"role":"user","content":"a \\ud800 b"}]}',
            "messages[0].content",
        ),
        (
            "/v1/chat/completions",
            '{"model":"\\udfff","messages":[{"role":"user","content":"hi"}]}',
            "model",
        ),
        ("/v1/completions", '{"prompt":"x","stop":["ok","\\ud83d"]}', "stop[1]"),
        ("/v1/completions", '{"prompt":["a","\\ud800"],"stream":true}', "prompt[1]"),
        ("/v1/embeddings", '{"input":"\\ud800"}', "input"),
        ("/v1/tokenize", '{"prompt":"\\ud800"}', "prompt"),
        ("/chat-stream", '{"prompt":"\\ud800"}', "prompt"),
        ("/v1/completions", '{"prompt":"x","\\ud800":1}', "body"),
    ],
    ids=["message", "model", "stop", "streamed-prompt", "embeddings", "tokenize", "glm", "a-key"],
)
def test_a_lone_surrogate_is_a_400_naming_the_field(client, backend, path, body, param):
    response = client.post(path, data=body, content_type="application/json")
    assert_openai_error(response, 400, type="invalid_request_error")
    assert response.json["error"]["param"] == param
    assert "surrogate" in response.json["error"]["message"]
    assert backend.requests == []


def test_a_surrogate_pair_is_text(client, backend):
    response = client.post(
        "/v1/completions", data='{"prompt":"\\ud83d\\ude00"}', content_type="application/json"
    )
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


@pytest.mark.parametrize(
    "model", [["x"], {"x": 1}, 1, 1.5, True], ids=["list", "object", "int", "float", "bool"]
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/chat"])
def test_a_model_that_is_no_string_is_a_400_with_a_key_limited_to_models(
    make_client, tmp_path, path, model
):
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "alice"\nkey = "sk-alice"\nmodels = ["x"]\n')
    client = make_client(keys=str(keys), model_name="x")
    body = {"model": model, "prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}
    response = client.post(path, json=body, headers={"Authorization": "Bearer sk-alice"})
    assert assert_openai_error(response, 400)["param"] == "model"


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"model": "x\xed\xa0\x80", "prompt": "hi"}', "model"),
        (b'{"prompt": "\xed\xb0\x80"}', "prompt"),
        (b'{"prompt": "\xf0\x9f\x98\x80 \xed\xa0\xbd\xed\xb8\x80"}', "prompt"),  # CESU-8
        (b'{"prompt": "hi", "stop": ["\xed\xbf\xbf"]}', "stop[0]"),
    ],
    ids=["model", "low-half", "cesu-pair", "stop"],
)
def test_utf8_bytes_of_a_surrogate_are_a_400_naming_the_field(
    client, backend, raw, param, content_type
):
    response = client.post("/v1/completions", data=raw, content_type=content_type)
    assert assert_openai_error(response, 400)["param"] == param
    assert backend.requests == []
