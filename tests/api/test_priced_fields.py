"""The fields of a body that change what a cloud charges (``service_tier``, ``store``), on
models of an ``openai`` upstream through the app: sent as the client wrote
them and charged (and held) at what they ask where the model's price covers them; refused by
name, in the client's own shape, before anything is sent where it does not; left out, the
answer saying so, where the operator strips them; sent as they came on a model without a
price, which counts nothing."""

from __future__ import annotations

import json

import pytest

from proxy.app import create_app
from proxy.config.modelsfile import parse_catalog
from proxy.config.settings import Settings
from proxy.fleet.build import build_fleet
from tests.fakes.canned import CannedServer
from tests.runtimes import NO_FILES, runtime_in

KEYS = """
[[keys]]
name = "team"
key = "sk-team"
usd_per_day = 1
[[keys]]
name = "small"
key = "sk-small"
usd_per_day = 0.0005
"""
TEAM, SMALL = ({"Authorization": f"Bearer sk-{name}"} for name in ("team", "small"))
# US dollars per million tokens: micro-dollars per token
PRICE = {
    "input": 1, "output": 2, "store": 10,
    "tiers": {"priority": {"input": 3, "output": 6}, "flex": {"input": 0.5, "output": 1}},
}  # fmt: skip
USAGE = {"prompt_tokens": 100, "completion_tokens": 10}
HI = [{"role": "user", "content": "hi"}]


def whole(usage: dict) -> dict:
    message = {"role": "assistant", "content": "Hi"}
    return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}


def streamed(usage: dict) -> str:
    pieces = [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": usage},
    ]
    return "".join(f"data: {json.dumps(piece)}\n\n" for piece in pieces) + "data: [DONE]\n\n"


RESPONSE = {
    "id": "resp_1", "object": "response", "status": "completed",
    "output": [{"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi"}]}],
    "usage": {"input_tokens": 100, "output_tokens": 10},
}  # fmt: skip


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app over a priced model (``gpt``), one that strips ``service_tier``
    (``stripping``), one priced at its own price alone (``plain``) and one without a price
    (``free``), all on one upstream."""
    folder = tmp_path_factory.mktemp("priced-fields")
    keys = folder / "keys.toml"
    keys.write_text(KEYS)
    with CannedServer() as upstream:
        on = {"backend": "openai", "upstreams": [upstream.url + "/v1"], "upstream_model": "up"}
        models = {
            "gpt": {**on, "price": PRICE, "endpoints": ["chat", "responses"]},
            "stripping": {**on, "price": PRICE, "filters": {"strip": ["service_tier"]}},
            "plain": {**on, "price": {"input": 1, "output": 2}},
            "free": on,
        }
        catalog = parse_catalog({"models": models}, "t")
        with build_fleet(Settings(), NO_FILES, catalog) as fleet:
            settings = Settings.of(keys=str(keys), usage_db=str(folder / "usage.sqlite3"))
            made = create_app(settings, runtime_in(folder), backend=fleet)
            yield made, upstream
            made.extensions["batches"].runner.stop()


@pytest.fixture
def cloud(app):
    """``(client, upstream, spent)``: the app's client, its upstream (asked nothing yet),
    and what the team's money budget has counted so far, in micro-dollars."""
    made, upstream = app
    upstream.calls.clear()
    access = made.extensions["proxy"].access
    team = access.keyring.find(b"sk-team")
    return made.test_client(), upstream, lambda: access.standing(team).spent["usd_day"]


def chat(client, headers=TEAM, **fields):
    """The answer to a chat of ``fields``, read to its end (a stream's charge with it)."""
    answer = client.post(
        "/v1/chat/completions", json={"model": "gpt", "messages": HI, **fields}, headers=headers
    )
    answer.get_data()
    answer.close()
    return answer


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    "fields, usage, micro_usd",
    [
        pytest.param({}, USAGE, 100 * 1 + 10 * 2, id="own"),
        pytest.param({"service_tier": "auto"}, USAGE, 100 * 1 + 10 * 2, id="auto"),
        pytest.param({"service_tier": "priority"}, USAGE, 100 * 3 + 10 * 6, id="priority"),
        pytest.param({"service_tier": "flex"}, USAGE, 100 * 0.5 + 10 * 1, id="flex"),
        pytest.param({"store": True}, USAGE, 100 * 1 + 10 * 2 + 10_000, id="store"),
        pytest.param(
            {"model": "free", "service_tier": "scale", "store": True}, USAGE, 0, id="no-price"
        ),  # fmt: skip
    ],
)
def test_a_priced_field_goes_as_sent_and_is_charged_at_what_it_asks(
    cloud, fields, usage, micro_usd, stream
):
    client, upstream, spent = cloud
    upstream.post("/v1/chat/completions", body=streamed(usage), content_type="text/event-stream",
                  chunks=1, whole=whole(usage))  # fmt: skip
    before = spent()
    answer = chat(client, stream=stream, **fields)
    assert answer.status_code == 200, answer.data
    (call,) = upstream.calls
    sent = json.loads(call.body)
    assert {name: sent[name] for name in fields if name != "model"} == {
        name: value for name, value in fields.items() if name != "model"
    }
    assert spent() - before == micro_usd


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    "model, fields, param",
    [
        pytest.param("gpt", {"service_tier": "scale"}, "service_tier", id="tier-unpriced"),
        pytest.param("plain", {"service_tier": "priority"}, "service_tier", id="no-tiers"),
        pytest.param("plain", {"store": True}, "store", id="store"),
        pytest.param(
            "gpt",
            {"service_tier": "priority", "store": True},
            "store",
            id="store-unpriced-at-its-tier",
        ),  # fmt: skip
    ],
)
def test_a_field_the_price_does_not_cover_is_refused_by_name_before_it_is_sent(
    cloud, model, fields, param, stream
):
    client, upstream, spent = cloud
    before = spent()
    answer = chat(client, model=model, stream=stream, **fields)
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert error["message"].startswith(f"{param} cannot be served on {model}: the model's price")
    assert upstream.calls == [] and spent() == before


def test_a_responses_body_passed_whole_is_priced_and_refused_as_a_chats(cloud):
    client, upstream, spent = cloud
    upstream.post("/v1/responses", json_body=RESPONSE)
    body = {"model": "gpt", "input": "hi", "store": False}
    before = spent()
    refused = client.post("/v1/responses", json={**body, "service_tier": "scale"}, headers=TEAM)
    assert refused.status_code == 400 and refused.get_json()["error"]["param"] == "service_tier"
    answer = client.post("/v1/responses", json={**body, "service_tier": "priority"}, headers=TEAM)
    assert answer.status_code == 200, answer.data
    (call,) = upstream.calls
    assert json.loads(call.body)["service_tier"] == "priority"
    assert spent() - before == 100 * 3 + 10 * 6


def test_a_stripped_field_is_named_and_charged_at_the_models_own_price(cloud):
    client, upstream, spent = cloud
    upstream.post("/v1/chat/completions", json_body=whole(USAGE))
    before = spent()
    answer = chat(client, model="stripping", service_tier="scale")
    assert answer.status_code == 200
    assert answer.headers["x-oai-proxy-left-out-fields"] == "service_tier"
    assert "service_tier" not in json.loads(upstream.calls[0].body)
    assert spent() - before == 100 * 1 + 10 * 2


def test_a_request_is_held_at_what_it_asks(cloud):
    """The small key's 500 micro-dollars hold a prompt of "hi" (74 tokens at most) and 100
    tokens of answer at the model's own price (274), not at the priority tier's (822)."""
    client, upstream, _ = cloud
    upstream.post("/v1/chat/completions", json_body=whole(USAGE))
    held = chat(client, SMALL, max_tokens=100, service_tier="priority")
    assert held.status_code == 429, held.data
    assert upstream.calls == []
    assert chat(client, SMALL, max_tokens=100).status_code == 200
