"""Budgets of tokens per day and per month: periods, costs, and both stores, on an injected
clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from proxy.access.budgets import Budgets, cost, period
from proxy.access.keyring import KeySpec
from proxy.access.usage import Charge, RedisUsage, SqliteUsage
from proxy.core.errors import QuotaExceededError


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "now, length, name, left",
    [
        ("2026-11-26T10:00:00", "day", "2026-11-26", 14 * 3600),
        ("2026-11-26T23:59:59", "day", "2026-11-26", 1),
        ("2026-11-26T00:00:00", "month", "2026-11", 5 * 86400),
        ("2026-12-31T23:00:00", "month", "2026-12", 3600),
        ("2027-02-28T00:00:00", "month", "2027-02", 86400),
    ],
    ids=["day", "last-second", "month", "year-end", "february"],
)
def test_periods_are_utc_calendar_days_and_months(now, length, name, left):
    assert period(at(now), length) == (name, left)


@pytest.mark.parametrize(
    "rate, prompt, cached, completion, charged",
    [
        (1.0, 100, 80, 10, 110),
        (0.1, 100, 80, 10, 38),
        (0.0, 100, 80, 10, 30),
        (0.1, 100, 500, 0, 10),  # never more cached than the prompt
        (0.5, 3, 1, 0, 3),  # a part of a token costs a token
    ],
)
def test_an_answer_costs_its_tokens_with_cached_ones_at_the_keys_rate(
    rate, prompt, cached, completion, charged
):
    key = KeySpec("k", b"s", tokens_per_day=1000, cached_token_cost=rate)
    assert cost(key, prompt, cached, completion) == charged


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteUsage(str(tmp_path / "usage.sqlite3"))
    return RedisUsage(request.getfixturevalue("redis_client"))


def charge(budgets: Budgets, key: KeySpec, tokens: int) -> None:
    """An answer of ``key`` costing ``tokens``, charged as the gate charges it."""
    budgets.store.apply([Charge(key.name, "m", tokens, 0, False, budgets.periods(key), tokens)])


def test_a_spent_budget_refuses_until_its_period_turns(store):
    now = [at("2026-11-26T23:59:00")]
    budgets = Budgets(store, clock=lambda: now[0])
    key = KeySpec("alice", b"s", tokens_per_day=100, tokens_per_month=1000)
    charge(budgets, key, 60)
    standing = budgets.standing(key)
    assert standing.spent == {"day": 60, "month": 60} and standing.refusal() is None
    assert standing.headers() == {
        "x-budget-limit-tokens-day": "100",
        "x-budget-remaining-tokens-day": "40",
        "x-budget-reset-tokens-day": "60s",
        "x-budget-limit-tokens-month": "1000",
        "x-budget-remaining-tokens-month": "940",
        "x-budget-reset-tokens-month": f"{4 * 86400 + 60}s",
    }
    charge(budgets, key, 45)  # the answer that crosses the budget was served in full
    refusal = budgets.standing(key).refusal()
    assert isinstance(refusal, QuotaExceededError) and refusal.retry_after == 60
    assert "spent its 100 tokens of the day; it resets in 1m 0s, at 2026-11-27T00:00:00Z" in (
        str(refusal)
    )
    now[0] = at("2026-11-27T00:00:01")  # a new day: the month goes on
    standing = budgets.standing(key)
    assert standing.spent == {"day": 0, "month": 105} and standing.refusal() is None
    assert budgets.standing(KeySpec("bob", b"t")) is None  # no budget, nothing read


def test_the_month_refuses_with_its_own_reset_when_both_are_spent(store):
    budgets = Budgets(store, clock=lambda: at("2026-11-30T12:00:00"))
    key = KeySpec("alice", b"s", tokens_per_day=10, tokens_per_month=10)
    charge(budgets, key, 10)
    assert "of the month; it resets in 12h 0m" in str(budgets.standing(key).refusal())
