"""Every client API's body fuzzed against the real gateway: any JSON in any field, whole and
streamed, with each tenant's key, a wrong one or none. Every answer is a 2xx or a 4xx in the
route's own shape (or a 501 where the model's server lacks what was asked); no other 5xx, no
traceback reaches a client or the log, and the proxy's memory stays where it was."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.test_fuzz import ROUTES, json_values, plausible

from .conftest import ALICE, BOB
from .cost import MiB, resident

pytestmark = pytest.mark.hostile

EVERY_ROUTE = {
    **ROUTES,
    "/api/generate": (*ROUTES["/api/generate"], "template"),
    "/api/embed": ("model", "input", "truncate", "options", "keep_alive", "dimensions"),
    "/api/show": ("model", "name", "verbose"),
    "/v1/rerank": ("model", "query", "documents", "top_n", "return_documents", "texts"),
}
MODELS = st.sampled_from(["tiny", "secret", "nobody"])
KEYS = st.sampled_from(
    [
        {"Authorization": f"Bearer {ALICE}"},
        {"x-api-key": BOB},
        {"Authorization": "Bearer sk-wrong"},
        {},
    ]
)
SMALL = {"max_tokens": 4, "max_output_tokens": 16, "num_predict": 4}
# JSON text nested to any depth, past every parser's and encoder's own limit too
DEEP = st.builds(
    lambda depth, pair: pair[0] * depth + pair[1] * depth,
    st.integers(1, 1100),
    st.sampled_from([("[", "]"), ('{"a":', "}")]),
)
PLACE = "\x01deep\x01"  # where a deep value goes in the body's text


@pytest.fixture(scope="module")
def watched(gateway):
    """The gateway, and what it held before the fuzzing began; after it, its memory and its
    log are looked at."""
    before = resident(gateway.pid)
    yield gateway
    assert resident(gateway.pid) - before < 64 * MiB
    assert "Traceback" not in gateway.proxy.log()


def check(answer: requests.Response, route: str) -> None:
    # 501: the model's server lacks what was asked (embeddings of a server started without
    # them), said as such; any other 5xx is the proxy's failure
    assert answer.status_code < 500 or (
        answer.status_code == 501 and "not_supported" in answer.text
    ), answer.text[:500]
    assert "Traceback" not in answer.text
    if answer.status_code >= 400:
        error = answer.json()
        if route.startswith("/v1/messages"):
            assert error["type"] == "error" and error["error"]["message"]
        elif route.startswith("/api/"):
            assert isinstance(error["error"], str) and error["error"]
        else:
            assert error.get("error") or error.get("message"), error
    elif answer.headers.get("Content-Type", "").startswith("text/event-stream"):
        assert '"error"' not in answer.text or route.startswith("/v1/responses")


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    route=st.sampled_from(sorted(EVERY_ROUTE)),
    data=st.data(),
    key=KEYS,
    stream=st.booleans(),
    model=MODELS,
)
def test_any_json_in_any_field_of_every_api(watched, route, data, key, stream, model):
    names = EVERY_ROUTE[route]
    body = data.draw(st.dictionaries(st.sampled_from(names), plausible, max_size=len(names)))
    body.update(data.draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    deep = data.draw(st.none() | st.tuples(st.sampled_from(names), DEEP))
    if deep is not None:
        body[deep[0]] = PLACE
    body.update({"model": model, "stream": stream, **SMALL})
    text = json.dumps(body)
    if deep is not None:
        text = text.replace(json.dumps(PLACE), deep[1].replace('{"a":}', "{}"))
    answer = requests.post(
        watched.url + route,
        data=text.encode(),
        headers={"Content-Type": "application/json", **key},
        timeout=60,
    )
    check(answer, route)
