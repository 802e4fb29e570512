"""What keys spent: usage rows priced at the models file's prices."""

from __future__ import annotations

from proxy.access.spend import by_key, priced
from proxy.config.catalog import Price

PRICES = {"cloud": Price(input=1.0, output=4.0)}
ROWS = [
    {"key": "alice", "model": "cloud", "prompt_tokens": 1_000_000, "completion_tokens": 500_000},
    {"key": "alice", "model": "local", "prompt_tokens": 9_000, "completion_tokens": 9_000},
    {"key": "bob", "model": "cloud", "prompt_tokens": 10, "completion_tokens": 20},
]


def test_a_priced_models_rows_say_what_they_cost():
    assert [row.get("spend_usd") for row in priced(ROWS, PRICES)] == [3.0, None, 0.00009]


def test_each_key_spent_the_sum_of_its_priced_rows():
    assert by_key(ROWS, PRICES) == {"alice": 3.0, "bob": 0.00009}


def test_nothing_is_spent_without_prices():
    assert priced(ROWS, {}) == ROWS and by_key(ROWS, {}) == {}
