"""Every route's request parsing, fuzzed: any JSON in any field, and bodies that are not JSON.

Whatever arrives, the answer is a 2xx or a 4xx OpenAI error (naming the field when one field
is to blame); never a 5xx, never a traceback. The number of examples is bounded so CI stays
fast; ``HYPOTHESIS_PROFILE=long`` runs many more (see ``tests/conftest.py``).
"""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.app import create_app
from proxy.config import Settings
from tests.fakes.backend import FakeBackend

ROUTES = {
    "/v1/chat/completions": ("messages", "model", "max_tokens", "max_completion_tokens",
                             "temperature", "top_p", "top_k", "min_p", "presence_penalty",
                             "frequency_penalty", "repeat_penalty", "seed", "mirostat",
                             "logit_bias", "stop", "n", "logprobs", "top_logprobs", "stream",
                             "stream_options", "response_format", "tools", "tool_choice",
                             "grammar", "n_keep", "cache_prompt", "id_slot", "slot_id",
                             "tokenize"),
    "/v1/completions": ("prompt", "model", "max_tokens", "temperature", "stop", "n", "echo",
                        "logprobs", "best_of", "suffix", "stream", "stream_options",
                        "logit_bias", "seed", "grammar", "response_format"),
    "/v1/embeddings": ("input", "model", "encoding_format"),
    "/v1/tokenize": ("prompt", "content", "input"),
    "/v1/detokenize": ("tokens",),
    "/chat": ("prompt", "history", "max_length", "top_p", "temperature", "model"),
    "/chat-stream": ("prompt", "history", "max_length", "top_p", "temperature"),
    "/tokenize": ("prompt", "max_length"),
    "/embedding": ("prompt",),
}
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant",
                                                          "tool", "nobody"])},
                                optional={"content": st.text(max_size=20), "name": st.text()})

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2 ** 63)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
# values shaped like the real thing, so parsing gets past the first field
plausible = st.one_of(json_values, st.lists(MESSAGE, min_size=1, max_size=3),
                      st.lists(st.integers(min_value=0, max_value=2 ** 40), min_size=1,
                               max_size=5),
                      st.sampled_from(["json_object", {"type": "json_object"},
                                       {"type": "json_schema", "json_schema": {"schema": {}}},
                                       {"include_usage": True}, {"x": 1}]))


def app_client():
    return create_app(Settings(max_choices=4), backend=FakeBackend()).test_client()


def check(response, *, blame_a_field: bool = False) -> None:
    """2xx, or a 4xx OpenAI error; nothing from inside the proxy leaks out."""
    body = response.get_data()
    assert response.status_code < 500, body[:500]
    assert b"Traceback" not in body
    if response.status_code >= 400:
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]
        if blame_a_field and response.status_code == 400:
            assert error["param"], error
    elif response.mimetype == "text/event-stream":
        assert body.endswith(b"data: [DONE]\n\n")
        assert b'"error"' not in body


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(sorted(ROUTES)), data=st.data())
def test_any_json_in_any_field(route, data):
    names = ROUTES[route]
    body = data.draw(st.dictionaries(st.sampled_from(names), plausible, max_size=len(names)))
    body.update(data.draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    check(app_client().post(route, data=json.dumps(body), content_type="application/json"),
          blame_a_field=True)


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda text: text.encode("utf-8")),
    st.sampled_from([b'{"prompt": NaN}', b'{"prompt": "x", "temperature": Infinity}',
                     b'{"prompt": "x", "max_tokens": -Infinity}', b"[" * 5000 + b"]" * 5000,
                     b'{"prompt": "x", "max_tokens": 1e999}', b'{"prompt": "\\ud800"}',
                     b'{"prompt": "x", "n": 99999999999999999999999999999}',
                     b'{"prompt": "\xff\xfe"}', b'{"messages": [{"role": "user", '
                     b'"content": "' + b"a" * 100_000 + b'"}]}', b"null", b"", b"\x00"]),
    st.builds(lambda depth: b'{"prompt": ' + b"[" * depth + b"]" * depth + b"}",
              st.integers(min_value=1, max_value=3000)),
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(sorted(ROUTES)), body=raw_bodies)
def test_bodies_that_are_not_json(route, body):
    check(app_client().post(route, data=body, content_type="application/json"))


@given(route=st.sampled_from(sorted(ROUTES)), field=st.data(),
       text=st.text(min_size=1, max_size=5).map(lambda t: t + "\ud800"))
def test_a_lone_surrogate_in_any_field_is_named(route, field, text):
    name = field.draw(st.sampled_from(ROUTES[route]))
    response = app_client().post(route, data=json.dumps({name: text}),
                                 content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["param"] == name
