"""Every route fuzzed through the real thing: a fleet of two models (aliases, no catch-all),
keys limited to some models, rate limits and metrics on.

Whatever arrives (any JSON in any field, ``model`` of every JSON type, bodies that are not
JSON, invalid or surrogate-encoding UTF-8 bytes inside any field, arrays and objects nested
to any depth, control characters and text beyond Latin-1 where the answer names it in a
header, any Content-Type, keys right, wrong or missing), the answer is a 2xx or a 4xx error
in the route's own shape, naming the field when one field is to blame (Anthropic's and
Ollama's shapes have no place for it, and name it in the message), its headers visible
ASCII; never a 5xx, never a traceback. The number of
examples is bounded so CI stays fast; ``HYPOTHESIS_PROFILE=long`` runs many more (see
``tests/conftest.py``).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.app import create_app
from proxy.config.catalog import Catalog, ModelSpec
from proxy.config.settings import Settings
from proxy.fleet.fleet import Fleet
from proxy.fleet.health import Rotation
from proxy.fleet.replica import Replica
from proxy.fleet.servedmodel import ServedModel
from tests.fakes.backend import FakeBackend
from tests.runtimes import runtime_in

ROUTES = {
    "/v1/chat/completions": (
        "messages",
        "model",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "presence_penalty",
        "frequency_penalty",
        "repeat_penalty",
        "seed",
        "mirostat",
        "logit_bias",
        "stop",
        "n",
        "logprobs",
        "top_logprobs",
        "stream",
        "stream_options",
        "response_format",
        "tools",
        "tool_choice",
        "grammar",
        "n_keep",
        "cache_prompt",
        "id_slot",
        "slot_id",
        "tokenize",
    ),
    "/v1/completions": (
        "prompt",
        "model",
        "max_tokens",
        "temperature",
        "stop",
        "n",
        "echo",
        "logprobs",
        "best_of",
        "suffix",
        "stream",
        "stream_options",
        "logit_bias",
        "seed",
        "grammar",
        "response_format",
    ),
    "/v1/embeddings": ("input", "model", "encoding_format"),
    "/v1/tokenize": ("prompt", "content", "input", "model"),
    "/v1/detokenize": ("tokens", "model"),
    "/chat": ("prompt", "history", "max_length", "top_p", "temperature", "model"),
    "/chat-stream": ("prompt", "history", "max_length", "top_p", "temperature", "model"),
    "/tokenize": ("prompt", "max_length", "model"),
    "/embedding": ("prompt", "model"),
    "/v1/messages": (
        "model",
        "max_tokens",
        "messages",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
    ),
    "/v1/messages/count_tokens": ("model", "messages", "system", "tools", "tool_choice"),
    "/v1/responses": (
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "stream",
        "store",
        "previous_response_id",
        "max_output_tokens",
        "temperature",
        "text",
        "reasoning",
        "prompt_cache_key",
        "metadata",
        "include",
    ),
    "/v1/responses/input_tokens": ("model", "input", "instructions", "tools"),
    "/api/chat": (
        "model",
        "messages",
        "tools",
        "format",
        "options",
        "stream",
        "keep_alive",
        "think",
    ),
    "/api/generate": (
        "model",
        "prompt",
        "system",
        "raw",
        "images",
        "format",
        "options",
        "stream",
        "keep_alive",
        "think",
        "suffix",
    ),
}
ANTHROPIC = ("/v1/messages", "/v1/messages/count_tokens")
RESPONSES = ("/v1/responses", "/v1/responses/input_tokens")
OLLAMA = ("/api/chat", "/api/generate")
NAMED_BY_MESSAGE = ANTHROPIC + OLLAMA  # error shapes without a field for the one to blame
MAX_NESTING = Settings().limits.max_nesting
KEYS = """
[[keys]]
name = "alpha-only"
key = "sk-alpha"
models = ["alpha"]
requests_per_minute = 1000000

[[keys]]
name = "everything"
key = "sk-all"
tokens_per_minute = 1000000000
"""
MODELS = st.sampled_from(["alpha", "gpt-4o-mini", "beta", "nobody", ""])
BLOCK = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "tool_use", "tool_result", "thinking", "image", "document"])},
    optional={
        "text": st.text(max_size=10),
        "id": st.text(max_size=5),
        "tool_use_id": st.text(max_size=5),
        "name": st.text(max_size=5),
        "input": st.just({}),
        "content": st.text(max_size=5),
        "source": st.just({"type": "text", "data": "d"}),
    },
)
ITEM = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["message", "function_call", "function_call_output", "reasoning", "item_reference"]
        )
    },
    optional={
        "role": st.sampled_from(["user", "assistant"]),
        "content": st.text(max_size=5),
        "call_id": st.text(),
        "name": st.text(max_size=5),
        "arguments": st.text(max_size=5),
        "output": st.text(max_size=5),
    },
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "nobody"])},
    optional={"content": st.text(max_size=20) | st.lists(BLOCK, max_size=3), "name": st.text()},
)

# text with what a header line cannot carry: line ends, other controls, beyond Latin-1
hostile_text = st.builds(
    lambda text, bad: text + bad,
    st.text(max_size=5),
    st.sampled_from(
        ["\r\n", "\n", "\r", "\x00", "\x7f", "\x85", "\u2028", "名", "€", "\U0001f600", "%0d"]
    ),
)
SERVER_TOOL = st.fixed_dictionaries(
    {"type": hostile_text | st.just("web_search_20250305"), "name": hostile_text}
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# values shaped like the real thing, so parsing gets past the first field
plausible = st.one_of(
    json_values,
    MODELS,
    st.lists(MESSAGE, min_size=1, max_size=3),
    st.lists(ITEM, min_size=1, max_size=3),
    st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=5),
    st.sampled_from(
        [
            "json_object",
            {"type": "json_object"},
            {"type": "json_schema", "json_schema": {"schema": {}}},
            {"include_usage": True},
            {"x": 1},
        ]
    ),
    st.dictionaries(hostile_text, scalars, max_size=3),  # like options
    st.lists(SERVER_TOOL, min_size=1, max_size=3),
)
# bytes no JSON text may hold, or that decode to text no server can be sent
BAD_BYTES = st.sampled_from(
    [
        b"\xff",
        b"\xfe\xff",
        b"\xc0\x80",
        b"\xc3",
        b"\xe2\x82",
        b"\xf0\x9f\x98",  # invalid UTF-8
        b"\xed\xa0\x80",
        b"\xed\xbf\xbf",  # a surrogate's UTF-8 bytes
        b"\xed\xa0\xbd\xed\xb8\x80",  # CESU-8: a surrogate pair as two three-byte sequences
        b"\xf4\x90\x80\x80",
        b"\x80",
        b"\x00",
        b"\\ud800",
        b"\\udfff\\ud800",
    ]
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/plain", None, "application/x-www-form-urlencoded"]
)
HEADERS = st.sampled_from(
    [
        {"Authorization": "Bearer sk-all"},
        {"Authorization": "Bearer sk-alpha"},
        {"x-api-key": "sk-all"},
        {"x-api-key": "sk-alpha"},
        {"Authorization": "Bearer sk-nope"},
        {},
    ]
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The app over a real fleet: alpha (alias gpt-4o-mini) and beta, each on a fake
    backend; unknown names are not found."""
    folder = tmp_path_factory.mktemp("fuzz")
    keys = folder / "keys.toml"
    keys.write_text(KEYS)
    specs = (ModelSpec("alpha", aliases=("gpt-4o-mini",)), ModelSpec("beta"))
    fleet = Fleet(
        Catalog(specs, "alpha", catch_all=False),
        [
            ServedModel(
                spec, (Replica(f"fake-{spec.id}", FakeBackend()),), Rotation(lambda name: True)
            )
            for spec in specs
        ],
    )
    app = create_app(
        Settings.of(max_choices=4, keys=str(keys), usage_db=str(folder / "u.db"), metrics="on"),
        runtime_in(folder),
        backend=fleet,
    )
    yield app.test_client()
    fleet.close()


def check(response, route: str, *, blame_a_field: bool = False) -> None:
    """2xx, or a 4xx error in the route's own shape; nothing from inside the proxy leaks
    out."""
    body = response.get_data()
    assert response.status_code < 500, body[:500]
    assert b"Traceback" not in body
    assert all(" " <= char < "\x7f" for value in response.headers.values() for char in value), (
        response.headers
    )
    if route in OLLAMA:
        if response.status_code >= 400:
            assert json.loads(body)["error"]
        elif response.mimetype == "application/x-ndjson":
            last = json.loads(body.splitlines()[-1])
            assert last.get("done") is True or last.get("error"), last
        return
    if route in ANTHROPIC:
        if response.status_code >= 400:
            answer = json.loads(body)
            assert answer["type"] == "error" and answer["error"]["message"]
        elif response.mimetype == "text/event-stream":
            assert body.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        return
    if response.status_code >= 400:
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]
        if blame_a_field and response.status_code == 400:
            assert error["param"], error
    elif response.mimetype == "text/event-stream" and route in RESPONSES:
        assert body.startswith(b"event: response.created\n")
        assert b"event: response.completed\n" in body or b"event: response.incomplete" in body
    elif response.mimetype == "text/event-stream":
        assert body.endswith(b"data: [DONE]\n\n")
        assert b'"error"' not in body


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(sorted(ROUTES)), data=st.data(), headers=HEADERS)
def test_any_json_in_any_field(client, route, data, headers):
    names = ROUTES[route]
    body = data.draw(st.dictionaries(st.sampled_from(names), plausible, max_size=len(names)))
    body.update(data.draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    check(
        client.post(route, data=json.dumps(body), content_type="application/json", headers=headers),
        route,
        blame_a_field=True,
    )


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(sorted(ROUTES)),
    data=st.data(),
    bad=BAD_BYTES,
    content_type=CONTENT_TYPES,
    headers=HEADERS,
)
def test_bad_bytes_inside_any_field(client, route, data, bad, content_type, headers):
    """A valid body but for the raw bytes of one string field (the model's too)."""
    names = ROUTES[route]
    body = data.draw(st.dictionaries(st.sampled_from(names), plausible, max_size=len(names)))
    field = data.draw(st.sampled_from(names))
    body[field] = "\x01"  # where the bytes go, in a string of the field's own
    if data.draw(st.booleans()):
        body[field] = ["a", "\x01"]  # or in a list of strings (stop, prompt, input)
    raw = (
        json.dumps(body).encode().replace(b"\\u0001", data.draw(st.text(max_size=3)).encode() + bad)
    )
    check(client.post(route, data=raw, content_type=content_type, headers=headers), route)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(sorted(ROUTES)), model=json_values | MODELS, headers=HEADERS)
def test_a_model_of_every_json_type(client, route, model, headers):
    body = {
        "model": model,
        "prompt": "hi",
        "input": "hi",
        "tokens": [1],
        "messages": [{"role": "user", "content": "hi"}],
    }
    body["max_tokens"] = 8
    response = client.post(route, json=body, headers=headers)
    check(response, route)
    if (
        response.status_code == 400
        and not isinstance(model, str)
        and model is not None
        and route not in NAMED_BY_MESSAGE
    ):
        assert response.json["error"]["param"] == "model"


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda text: text.encode("utf-8")),
    st.sampled_from(
        [
            b'{"prompt": NaN}',
            b'{"prompt": "x", "temperature": Infinity}',
            b'{"prompt": "x", "max_tokens": -Infinity}',
            b"[" * 5000 + b"]" * 5000,
            b'{"prompt": "x", "max_tokens": 1e999}',
            b'{"prompt": "\\ud800"}',
            b'{"prompt": "x", "n": 99999999999999999999999999999}',
            b'{"prompt": "\xff\xfe"}',
            b'{"messages": [{"role": "user", "content": "' + b"a" * 100_000 + b'"}]}',
            b"null",
            b"",
            b"\x00",
            b"\xff\xfe{\x00}\x00",
            b'\xef\xbb\xbf{"prompt": "x"}',
        ]
    ),
    st.builds(
        lambda depth: b'{"prompt": ' + b"[" * depth + b"]" * depth + b"}",
        st.integers(min_value=1, max_value=3000),
    ),
)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(sorted(ROUTES)),
    body=raw_bodies,
    content_type=CONTENT_TYPES,
    headers=HEADERS,
)
def test_bodies_that_are_not_json(client, route, body, content_type, headers):
    check(client.post(route, data=body, content_type=content_type, headers=headers), route)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(sorted(ROUTES)),
    field=st.data(),
    text=st.text(min_size=1, max_size=5).map(lambda t: t + "\ud800"),
)
def test_a_lone_surrogate_in_any_field_is_named(client, route, field, text):
    name = field.draw(st.sampled_from(ROUTES[route]))
    response = client.post(
        route,
        data=json.dumps({name: text}),
        content_type="application/json",
        headers={"Authorization": "Bearer sk-all"},
    )
    assert response.status_code == 400
    assert_names(response, route, name)


def assert_names(response, route: str, name: str) -> None:
    """The 400 names the field ``name``: as its ``param``, else in its message."""
    if route in ANTHROPIC:
        assert response.json["error"]["type"] == "invalid_request_error"
        assert f"'{name}'" in response.json["error"]["message"]
    elif route in OLLAMA:
        assert f"'{name}'" in response.json["error"]
    else:
        assert response.json["error"]["param"] == name


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(sorted(ROUTES)),
    data=st.data(),
    depth=st.integers(min_value=1, max_value=1100),
    opener=st.sampled_from(["[", '{"a":']),
)
def test_nesting_of_any_depth_in_any_field(client, route, data, depth, opener):
    """A field nested deeper than the body may be is a 400 naming it; never a recursion."""
    name = data.draw(st.sampled_from(ROUTES[route]))
    closer = "]" if opener == "[" else "}"
    deep = opener * depth + "0" * (opener == "[") + "null" * (opener != "[") + closer * depth
    body = json.dumps(
        {
            **data.draw(
                st.fixed_dictionaries(
                    {}, optional={field: plausible for field in ROUTES[route] if field != name}
                )
            ),
            name: "DEEP",
        }
    )
    response = client.post(
        route,
        data=body.replace('"DEEP"', deep),
        content_type="application/json",
        headers={"Authorization": "Bearer sk-all"},
    )
    check(response, route)
    if depth + 1 > MAX_NESTING:
        assert response.status_code == 400
        if depth + 1 < 1024:  # deeper than any parser reads: the body as a whole
            assert_names(response, route, name)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), names=st.lists(hostile_text, min_size=1, max_size=4))
def test_client_text_named_in_a_header(client, data, names):
    """Option names, server tools' names and tool types the answer names in a header."""
    route, body = data.draw(
        st.sampled_from(
            [
                (
                    "/api/chat",
                    {
                        "model": "alpha",
                        "stream": False,
                        "messages": [{"role": "user", "content": "hi"}],
                        "options": {name: 1 for name in names},
                    },
                ),
                (
                    "/api/generate",
                    {"model": "alpha", "prompt": "hi", "options": {name: 1 for name in names}},
                ),
                (
                    "/v1/messages",
                    {
                        "model": "alpha",
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": "hi"}],
                        "tools": [{"type": "bash_20250124", "name": name} for name in names],
                    },
                ),
                (
                    "/v1/responses",
                    {  # types no hosted tool's begins as: these are left out, named
                        "model": "alpha",
                        "input": "hi",
                        "tools": [{"type": "x" + name} for name in names],
                    },
                ),
            ]
        )
    )
    response = client.post(route, json=body, headers={"Authorization": "Bearer sk-all"})
    check(response, route)
    assert response.status_code == 200
