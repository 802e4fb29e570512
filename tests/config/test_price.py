"""A model's price at each service tier, with its prompt's audio and stored completions; what a body
sent to a server of OpenAI's API asks of it, what the price refuses of that by the field's
name, and what a request asking it holds."""

from __future__ import annotations

import pytest

from proxy.config.catalog import Filters, ModelSpec
from proxy.config.price import Price, Terms, terms

PRIORITY = Price(input=4, output=16, cached_input=2)
FLEX = Price(input=1, output=4, audio_input=32, store=10)
# US dollars per million tokens: micro-dollars per token; per picture, second and character
PRICE = Price(
    input=2, output=8, audio_input=20, store=5, image=0.04, audio_second=0.0001,
    speech_character=0.000015, tiers=(("priority", PRIORITY), ("flex", FLEX)),
)  # fmt: skip


@pytest.mark.parametrize(
    "tier, counts, micro_usd",
    [
        pytest.param(None, {}, 100 * 2 + 10 * 8, id="own"),
        pytest.param("auto", {}, 100 * 2 + 10 * 8, id="unnamed-tier-is-own"),
        pytest.param("priority", {}, 100 * 4 + 10 * 16, id="priority"),
        pytest.param("flex", {}, 100 * 1 + 10 * 4, id="flex"),
        pytest.param(
            "priority", {"cached_tokens": 60}, 40 * 4 + 60 * 2 + 10 * 16, id="priority-cached"
        ),  # fmt: skip
        pytest.param(
            "flex", {"cached_tokens": 60}, 100 * 1 + 10 * 4, id="flex-cached-at-its-input"
        ),  # fmt: skip
        pytest.param(
            None, {"audio_prompt_tokens": 30}, 70 * 2 + 30 * 20 + 10 * 8, id="own-audio"
        ),  # fmt: skip
        pytest.param(
            "priority",
            {"audio_prompt_tokens": 30},
            100 * 4 + 10 * 16,
            id="priority-audio-at-its-tokens-price",
        ),
        pytest.param(
            "flex",
            {"audio_prompt_tokens": 30, "cached_tokens": 50},
            70 * 1 + 30 * 32 + 10 * 4,
            id="flex-audio-in",
        ),
        pytest.param(
            None,
            {"audio_prompt_tokens": 500, "cached_tokens": 9},
            100 * 20 + 10 * 8,
            id="never-more-audio-than-tokens",
        ),
        pytest.param(None, {"stored": 2}, 100 * 2 + 10 * 8 + 2 * 5_000, id="own-stored"),
        pytest.param("flex", {"stored": 1}, 100 * 1 + 10 * 4 + 10_000, id="flex-stored"),
        pytest.param(
            None,
            {"pictures": 3, "audio_seconds": 61, "speech_characters": 1000},
            100 * 2 + 10 * 8 + 3 * 40_000 + 61 * 100 + 1000 * 15,
            id="media",
        ),
        pytest.param("flex", {"pictures": 1}, 100 * 1 + 10 * 4, id="flex-prices-no-pictures"),
    ],
)
def test_a_price_counts_each_tiers_tokens_audio_and_stored_completions(tier, counts, micro_usd):
    assert PRICE.at(tier).micro_usd(100, 10, **counts) == micro_usd


CHAT = {"model": "m", "messages": []}


@pytest.mark.parametrize(
    "body, asked",
    [
        pytest.param(CHAT, Terms(), id="nothing"),
        pytest.param({**CHAT, "service_tier": "auto"}, Terms(), id="auto-is-own"),
        pytest.param({**CHAT, "service_tier": "default"}, Terms(), id="default-is-own"),
        pytest.param({**CHAT, "service_tier": None}, Terms(), id="null-is-own"),
        pytest.param({**CHAT, "service_tier": "priority"}, Terms("priority"), id="priority"),
        pytest.param({**CHAT, "service_tier": 7}, Terms(7), id="not-a-name"),
        pytest.param({**CHAT, "store": True}, Terms(store=True), id="store"),
        pytest.param({**CHAT, "store": False}, Terms(), id="not-stored"),
    ],
)
def test_what_a_body_asks_of_its_price(body, asked):
    assert terms(body) == asked


@pytest.mark.parametrize(
    "price, fields, refused",
    [
        pytest.param(PRICE, {"service_tier": "priority"}, None, id="tier-priced"),
        pytest.param(PRICE, {"service_tier": "scale"}, "service_tier", id="tier-unpriced"),
        pytest.param(Price(1, 2), {"service_tier": "flex"}, "service_tier", id="no-tiers"),
        pytest.param(Price(1, 2), {"service_tier": "auto"}, None, id="auto-on-any-price"),
        pytest.param(PRICE, {"service_tier": ["priority"]}, "service_tier", id="tier-not-a-name"),
        pytest.param(PRICE, {"store": True}, None, id="store-priced"),
        pytest.param(Price(1, 2, store=0), {"store": True}, None, id="store-free"),
        pytest.param(Price(1, 2), {"store": True}, "store", id="store-unpriced"),
        pytest.param(
            PRICE, {"service_tier": "priority", "store": True}, "store", id="store-at-its-tier"
        ),
        pytest.param(
            Price(), {"store": True, "service_tier": "flex"}, "service_tier", id="zeros-refuse-too"
        ),  # fmt: skip
    ],
)
def test_a_field_the_price_does_not_cover_is_refused_by_name(price, fields, refused):
    problem = price.refusal(terms({**CHAT, **fields}))
    assert (problem[0] if problem else None) == refused


@pytest.mark.parametrize(
    "spec, body, held",
    [
        pytest.param(ModelSpec("m"), {"service_tier": "priority"}, None, id="no-price"),
        pytest.param(
            ModelSpec("m", backend="openai", price=PRICE),
            {"service_tier": "priority"},
            PRIORITY,
            id="tier",
        ),
        pytest.param(
            ModelSpec("m", backend="openai", price=PRICE, filters=Filters(strip=("service_tier",))),
            {"service_tier": "priority"},
            PRICE,
            id="stripped",
        ),
        pytest.param(
            ModelSpec(
                "m", backend="openai", price=PRICE, filters=Filters(set=(("service_tier", "flex"),))
            ),
            {"service_tier": "priority"},
            FLEX,
            id="set",
        ),  # fmt: skip
        pytest.param(
            ModelSpec("m", backend="anthropic", price=PRICE),
            {"service_tier": "priority"},
            PRICE,
            id="another-api",
        ),
        pytest.param(
            ModelSpec("m", backend="openai", price=PRICE),
            {"service_tier": "scale"},
            PRICE,
            id="unpriced-held-at-own-then-refused",
        ),
    ],
)
def test_a_request_is_held_at_the_price_its_body_asks(spec, body, held):
    assert spec.held_price({**CHAT, **body}) == held


SIZED = Price(input=1, image_sizes=(("512x512", 0.01), ("1024x1024", 0.04)))


@pytest.mark.parametrize(
    "price, size, micro_usd",
    [
        pytest.param(SIZED, "512x512", 3 * 10_000, id="small"),
        pytest.param(SIZED, "1024x1024", 3 * 40_000, id="large"),
        pytest.param(SIZED, "2048x2048", 0, id="named-no-more-unpriced"),
        pytest.param(Price(image=0.04), "64x64", 3 * 40_000, id="one-price-any-size"),
        pytest.param(Price(image=0.04), "", 3 * 40_000, id="one-price-no-size"),
    ],
)
def test_pictures_cost_their_sizes_price_where_the_price_names_sizes(price, size, micro_usd):
    assert price.sized(size).micro_usd(0, 0, pictures=3) == micro_usd


@pytest.mark.parametrize(
    "price, size, why",
    [
        pytest.param(SIZED, "512x512", None, id="named"),
        pytest.param(Price(image=0.04), "64x64", None, id="one-price"),
        pytest.param(Price(), None, None, id="no-picture-price"),
        pytest.param(
            SIZED,
            None,
            "is required: the model's price names pictures by their size (512x512, 1024x1024)",
            id="none-asked",
        ),  # fmt: skip
        pytest.param(
            SIZED,
            "64x64",
            "'64x64' is not priced: the model's price names 512x512, 1024x1024",
            id="unnamed",
        ),  # fmt: skip
        pytest.param(
            SIZED,
            "x" * 40,
            "asked is not priced: the model's price names 512x512, 1024x1024",
            id="long-never-echoed",
        ),  # fmt: skip
        pytest.param(
            SIZED,
            512,
            "asked is not priced: the model's price names 512x512, 1024x1024",
            id="not-a-string",
        ),  # fmt: skip
    ],
)
def test_a_size_the_price_does_not_name_is_refused_saying_which_it_names(price, size, why):
    assert price.size_refusal(size) == why
