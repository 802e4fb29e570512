"""What keys spent: usage rows priced at the models file's prices, and what an answer costs a
money budget, in micro-dollars."""

from __future__ import annotations

import pytest

from proxy.access.spend import by_key, cost, dollars, micro_usd, priced
from proxy.config.price import Price

PRICES = {"cloud": Price(input=1.0, output=4.0), "cached": Price(2.0, 8.0, cached_input=0.5)}
ROWS = [
    {"key": "alice", "model": "cloud", "prompt_tokens": 1_000_000, "completion_tokens": 500_000},
    {"key": "alice", "model": "local", "prompt_tokens": 9_000, "completion_tokens": 9_000},
    {"key": "bob", "model": "cloud", "prompt_tokens": 10, "completion_tokens": 20},
    {"key": "bob", "model": "cached", "prompt_tokens": 1_000_000, "cached_tokens": 800_000,
     "completion_tokens": 0},
]  # fmt: skip


def test_a_priced_models_rows_say_what_they_cost():
    assert [row.get("spend_usd") for row in priced(ROWS, PRICES)] == [3.0, None, 0.00009, 0.8]


def test_each_key_spent_the_sum_of_its_priced_rows():
    assert by_key(ROWS, PRICES) == {"alice": 3.0, "bob": 0.80009}


TIERED = Price(1.0, 4.0, audio_input=40.0, store=10.0, tiers=(("priority", Price(3.0, 12.0)),))
TIERS = [
    {"key": "carol", "model": "gpt", "prompt_tokens": 1_000_000, "completion_tokens": 0},
    {"key": "carol", "model": "gpt", "service_tier": "priority", "prompt_tokens": 1_000_000,
     "completion_tokens": 0},
    {"key": "carol", "model": "gpt", "service_tier": "gone", "prompt_tokens": 1_000_000,
     "completion_tokens": 0},
    {"key": "carol", "model": "gpt", "prompt_tokens": 100_000, "completion_tokens": 0,
     "audio_prompt_tokens": 50_000, "stored": 100},
]  # fmt: skip


def test_a_tiers_rows_are_priced_at_its_price_and_audio_and_stored_at_theirs():
    """A tier the models file names no more is priced at the model's own."""
    rows = priced(TIERS, {"gpt": TIERED})
    assert [row["spend_usd"] for row in rows] == [1.0, 3.0, 1.0, 0.05 + 2.0 + 1.0]
    assert by_key(TIERS, {"gpt": TIERED}) == {"carol": 8.05}


def test_pictures_of_a_size_are_priced_at_its_price():
    """A size the models file names no more leaves its pictures unpriced."""
    sized = Price(image_sizes=(("512x512", 0.01), ("1024x1024", 0.04)))
    rows = [{"key": "dana", "model": "sd", "size": size, "prompt_tokens": 0,
             "completion_tokens": 0, "pictures": 10}
            for size in ("512x512", "1024x1024", "gone")]  # fmt: skip
    assert [row["spend_usd"] for row in priced(rows, {"sd": sized})] == [0.1, 0.4, 0.0]


def test_nothing_is_spent_without_prices():
    assert priced(ROWS, {}) == ROWS and by_key(ROWS, {}) == {}


@pytest.mark.parametrize(
    "price, prompt, cached, completion, micros",
    [
        (Price(1.0, 4.0), 100, 0, 10, 140),  # dollars a million tokens: micro-dollars a token
        (Price(1.0, 4.0), 100, 80, 10, 140),  # cached tokens at the input's price by default
        (Price(1.0, 4.0, cached_input=0.1), 100, 80, 10, 68),  # 20 + 8 + 40
        (Price(1.0, 4.0, cached_input=0.0), 100, 500, 0, 0),  # never more cached than prompted
        (Price(0.15, 0.6), 3, 0, 0, 1),  # 0.45: a part of a micro-dollar costs one
        (Price(0.15, 0.6), 100, 0, 100, 75),  # 15 + 60 exactly, not a float's 75.00000000001
        (Price(0.1, 0.2), 10, 0, 10, 3),  # 1 + 2: 0.1 as written, not the float nearest it
        (None, 1000, 0, 1000, 0),  # a model without a price costs nothing
    ],
)
def test_an_answer_costs_its_tokens_at_its_models_price_in_whole_micro_dollars(
    price, prompt, cached, completion, micros
):
    assert cost(price, prompt, cached, completion) == micros


@pytest.mark.parametrize(
    "given, micros, written",
    [(5, 5_000_000, "5"), (0.5, 500_000, "0.5"), (0.000001, 1, "0.000001"),
     (12.345678, 12_345_678, "12.345678"), (0.1, 100_000, "0.1")],
)  # fmt: skip
def test_dollars_are_counted_in_micro_dollars_and_written_as_short_as_exact(given, micros, written):
    assert micro_usd(given) == micros and dollars(micros) == written
