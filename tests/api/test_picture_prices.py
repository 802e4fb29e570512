"""Pictures priced by their size (``price = { image = { "512x512" = … } }``), over an
OpenAI-compatible engine that draws (the tests' echo engine, in a thread): a size the price
does not name, or none, refused by name before any work; each size's pictures held at its
price before the work and charged at it, a usage row of their own that ``/admin/usage``
prices at it."""

from __future__ import annotations

import pytest

from tests.echoengine import echo_engine
from tests.gateways import ADMIN, gateway

MODELS = """
[models.painter]
backend = "openai"
upstreams = ["{0}/v1"]
endpoints = ["image_generations", "image_edits"]
price = {{ input = 1, image = {{ "512x512" = 0.01, "1024x1024" = 0.04 }} }}
"""
KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"
usd_per_day = 0.1
"""
ALICE = {"Authorization": "Bearer sk-alice"}


@pytest.fixture
def client(tmp_path):
    with echo_engine() as url, gateway(tmp_path, MODELS.format(url), KEYS) as made:
        yield made


def drawn(client, **fields):
    body = {"model": "painter", "prompt": "a fox", "response_format": "b64_json", **fields}
    return client.post("/v1/images/generations", json=body, headers=ALICE)


def rows(client) -> list:
    listed = client.get("/admin/usage", headers=ADMIN).json["usage"]
    return sorted((row.get("size"), row["pictures"], row["spend_usd"]) for row in listed)


def test_each_sizes_pictures_are_charged_and_listed_at_its_price(client):
    assert drawn(client, size="512x512", n=2).status_code == 200
    assert drawn(client, size="1024x1024").status_code == 200
    # 2 tokens of prompt at $1 a million besides: a part of a micro-dollar counts as one
    assert rows(client) == [("1024x1024", 1, 0.040002), ("512x512", 2, 0.020002)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "size is required: the model's price names pictures by their size "
             "(512x512, 1024x1024)"),
        ({"size": "256x256"}, "size '256x256' is not priced: the model's price names "
                              "512x512, 1024x1024"),
    ],
)  # fmt: skip
def test_a_size_the_price_does_not_name_is_refused_by_name_before_any_work(client, fields, message):
    answer = drawn(client, **fields)
    assert answer.status_code == 400, answer.json
    assert answer.json["error"] == {**answer.json["error"], "param": "size", "message": message}
    assert rows(client) == [(None, 0, 0.0)]  # an error counted, nothing drawn nor charged


def test_the_hold_is_the_pictures_at_their_sizes_price(client):
    """$0.10 a day: three large pictures ($0.12) do not fit before any is drawn; nine small
    ones ($0.09) do."""
    refused = drawn(client, size="1024x1024", n=3)
    assert refused.status_code == 429, refused.json
    assert rows(client) == [(None, 0, 0.0)]
    assert drawn(client, size="512x512", n=9).status_code == 200
