"""API keys and CORS in front of the OpenAI routes."""

from __future__ import annotations

import pytest

from tests.api.openai_calls import CHAT_BODY, COMPLETION_BODY, assert_openai_error, post

KEYS = ("key-one", "key-two")


@pytest.mark.parametrize(
    "headers",
    [
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
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("post", "/v1/chat/completions", id="chat"),
        pytest.param("post", "/completions", id="completions"),
        pytest.param("get", "/v1/models", id="models"),
    ],
)
def test_requests_without_the_right_key_are_401(make_client, backend, headers, method, path):
    client = make_client(api_key=KEYS)
    body = CHAT_BODY if "chat" in path else COMPLETION_BODY
    kwargs = {"json": body} if method == "post" else {}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert_openai_error(response, 401, type="authentication_error", code="invalid_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert backend.requests == []


@pytest.mark.parametrize(
    "header",
    ["Bearer {key}", "bearer {key}", " \tBearer {key} \t"],
    ids=["plain", "scheme-in-any-case", "http-whitespace-around"],
)
@pytest.mark.parametrize("key", KEYS)
def test_any_configured_key_is_accepted(make_client, key, header):
    client = make_client(api_key=KEYS)
    headers = {"Authorization": header.format(key=key)}
    response = client.post("/v1/chat/completions", json=CHAT_BODY, headers=headers)
    assert response.status_code == 200
    assert client.get("/v1/models", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"x-api-key": "key-two"}, 200, id="x-api-key"),
        pytest.param({"x-api-key": " \tkey-one "}, 200, id="x-api-key-http-whitespace"),
        pytest.param({"x-api-key": "key-three"}, 401, id="x-api-key-wrong"),
        pytest.param({"x-api-key": ""}, 401, id="x-api-key-empty"),
        pytest.param(
            {"x-api-key": "key-one", "Authorization": "Bearer nope"}, 401, id="authorization-wins"
        ),
        pytest.param(
            {"x-api-key": "nope", "Authorization": "Bearer key-one"},
            200,
            id="authorization-wins-again",
        ),
    ],
)
def test_anthropic_clients_send_their_key_as_x_api_key(make_client, headers, status):
    client = make_client(api_key=KEYS)
    response = client.post("/v1/chat/completions", json=CHAT_BODY, headers=headers)
    assert response.status_code == status


def test_the_admin_and_metrics_keys_take_x_api_key_too(make_client):
    client = make_client(admin_key="adm", metrics_key="met")
    assert client.get("/admin/models", headers={"x-api-key": "adm"}).status_code == 200
    assert client.get("/admin/models", headers={"x-api-key": "met"}).status_code == 401
    assert client.get("/metrics", headers={"x-api-key": "met"}).status_code == 200
    assert client.get("/metrics").status_code == 401


def test_no_keys_means_no_auth(client):
    assert post(client, "/v1/chat/completions", CHAT_BODY).status_code == 200


def test_preflight_is_exempt_from_auth(make_client):
    client = make_client(api_key=KEYS)
    response = client.options("/v1/chat/completions")
    assert response.status_code < 300


def test_preflight_with_cors_is_exempt_from_auth(make_client):
    client = make_client(api_key=KEYS, cors_origins=("http://a",))
    response = client.options(
        "/v1/chat/completions",
        headers={
            "Origin": "http://a",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://a"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


# -- CORS ----------------------------------------------------------------------------------


def test_cors_is_off_by_default(client):
    response = client.get("/v1/models", headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    ("origins", "origin", "status", "allowed"),
    [
        pytest.param(("http://a",), "http://a", 200, "http://a", id="listed"),
        pytest.param(("http://a",), "http://b", 403, None, id="not-listed"),
        pytest.param(("http://a",), "http://a.evil", 403, None, id="prefix-not-enough"),
        pytest.param(("http://a", "http://b"), "http://b", 200, "http://b", id="second-listed"),
        pytest.param(("*",), "http://anything", 200, "*", id="any"),
    ],
)
def test_cors_origins(make_client, origins, origin, status, allowed):
    client = make_client(cors_origins=origins)
    response = client.post("/v1/chat/completions", json=CHAT_BODY, headers={"Origin": origin})
    assert response.status_code == status
    assert response.headers.get("Access-Control-Allow-Origin") == allowed


def test_cors_headers_on_streams_and_errors(make_client):
    client = make_client(cors_origins=("http://a",), api_key=KEYS)
    denied = client.post("/v1/chat/completions", json=CHAT_BODY, headers={"Origin": "http://a"})
    assert denied.status_code == 401
    assert denied.headers["Access-Control-Allow-Origin"] == "http://a"
    streamed = client.post(
        "/v1/chat/completions",
        json={**CHAT_BODY, "stream": True},
        headers={"Origin": "http://a", "Authorization": "Bearer key-one"},
    )
    assert streamed.status_code == 200
    assert streamed.headers["Access-Control-Allow-Origin"] == "http://a"


@pytest.mark.parametrize("path", ["/infill", "/v1/fim/completions"])
def test_an_editors_completion_needs_a_key_too(make_client, backend, path):
    client = make_client(api_key=KEYS)
    body = {"input_prefix": "a", "prompt": "a", "suffix": "b"}
    assert client.post(path, json=body).status_code == 401
    answered = client.post(path, json=body, headers={"Authorization": "Bearer key-one"})
    assert answered.status_code == 200 and len(backend.requests) == 1
