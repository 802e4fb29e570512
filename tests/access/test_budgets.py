"""Budgets of tokens per day and per month: periods, costs, and both stores, on an injected
clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from proxy.access.budgets import Budgets, Standing, cost, period
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


MONEY = KeySpec("team", b"s", tokens_per_day=1000, usd_per_day=0.5, usd_per_month=2)
NOON = at("2026-11-30T12:00:00")
LEFT = {"day": 12 * 3600, "month": 12 * 3600}


@pytest.mark.parametrize(
    "spent, remaining, refused",
    [
        ({"day": 10, "usd_day": 0, "usd_month": 0}, ("990", "0.5", "2"), None),
        ({"day": 10, "usd_day": 250_001, "usd_month": 1_999_999}, ("990", "0.249999", "0.000001"),
         None),
        ({"day": 10, "usd_day": 500_000, "usd_month": 500_000}, ("990", "0", "1.5"),
         "spent its 0.5 US dollars of the day"),
        ({"day": 1000, "usd_day": 600_000, "usd_month": 600_000}, ("0", "0", "1.4"),
         "spent its 1000 tokens of the day"),  # tokens, then money, of one length
        ({"day": 1000, "usd_day": 600_000, "usd_month": 2_000_000}, ("0", "0", "0"),
         "spent its 2 US dollars of the month"),  # the longest wait first
    ],
    ids=["fresh", "a-micro-dollar-left", "money-spent", "tokens-first", "month-first"],
)  # fmt: skip
def test_money_budgets_stand_beside_the_token_ones(spent, remaining, refused):
    standing = Standing(MONEY, spent, LEFT, NOON)
    headers = standing.headers()
    assert (
        headers["x-budget-remaining-tokens-day"],
        headers["x-budget-remaining-usd-day"],
        headers["x-budget-remaining-usd-month"],
    ) == remaining
    assert (headers["x-budget-limit-usd-day"], headers["x-budget-limit-usd-month"]) == ("0.5", "2")
    assert headers["x-budget-reset-usd-day"] == headers["x-budget-reset-usd-month"] == "43200s"
    refusal = standing.refusal()
    if refused is None:
        assert refusal is None
    else:
        assert refused in str(refusal) and "it resets in 12h 0m" in str(refusal)
        assert refusal.retry_after == 43200 and refusal.headers == headers


def test_money_budgets_are_described_in_dollars_with_what_requests_in_flight_hold():
    held = {"tokens": 40, "usd": 25_000}
    described = Standing(MONEY, {"day": 10, "usd_day": 125_000}, LEFT, NOON, held).described()
    assert described == {
        "day": {"tokens": 1000, "spent": 10, "held": 40, "remaining": 950,
                "resets_in_seconds": 43200},
        "usd_day": {"usd": 0.5, "spent": 0.125, "held": 0.025, "remaining": 0.35,
                    "resets_in_seconds": 43200},
    }  # fmt: skip


def test_money_is_charged_in_micro_dollars_and_refuses_once_spent(store):
    now = [at("2026-11-30T23:59:00")]
    budgets = Budgets(store, clock=lambda: now[0])
    key = KeySpec("team", b"s", usd_per_day=0.001, usd_per_month=1)
    assert budgets.periods(key) == () and budgets.standing(KeySpec("bob", b"t")) is None
    assert budgets.periods(key, "usd") == ("usd_day:2026-11-30", "usd_month:2026-11")
    for micros in (600, 400):  # the answer that crosses the budget was served in full
        assert budgets.standing(key).refusal() is None
        budgets.store.apply(
            [Charge(key.name, "m", 9, 9, False, usd_periods=budgets.periods(key, "usd"),
                    micro_usd=micros)]
        )  # fmt: skip
    standing = budgets.standing(key)
    assert standing.spent == {"usd_day": 1000, "usd_month": 1000}
    assert "the key 'team' has spent its 0.001 US dollars of the day; it resets in 1m 0s" in (
        str(standing.refusal())
    )
    now[0] = at("2026-12-01T00:00:01")  # a new day and a new month
    assert budgets.standing(key).spent == {"usd_day": 0, "usd_month": 0}
