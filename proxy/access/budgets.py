"""Tokens and US dollars per day and per month per key: budgets that outlive restarts and span
proxies.

A key's answers are charged when they end, at once and in full, in the usage store, in the
same write as the answer's usage (:mod:`proxy.access.usage`): tokens (prompt and completion,
the prompt's tokens served from the server's cache at the key's ``cached_token_cost``), and
money (the tokens at the price of the model that answered, a fallback it may be; a model
without a price costs nothing), counted in whole micro-dollars. The store is a SQLite table
beside the usage totals, or Redis with ``--redis-url``, so every proxy sharing it counts one
budget to the token and the micro-dollar. A request is refused before it costs anything once
its key has spent a budget, or when what it may spend does not fit beside what is spent and
what the key's requests in flight hold (:mod:`proxy.access.holds`).

Periods are calendar days and months in UTC, as an operator reads a bill.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional

from proxy.access.keyring import KeySpec
from proxy.access.spend import MICRO, dollars, micro_usd
from proxy.core.errors import QuotaExceededError

PERIODS = ("day", "month")
UNITS = ("tokens", "usd")


def period(now: float, length: str) -> tuple:
    """``(name, seconds left)`` of the ``length`` ("day" or "month") holding ``now``."""
    at = datetime.fromtimestamp(now, timezone.utc)
    if length == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start.timestamp() + 86400
        return start.strftime("%Y-%m-%d"), end - now
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.strftime("%Y-%m"), following.timestamp() - now


@dataclass(frozen=True)
class Budget:
    """One budget a key may have: tokens or US dollars (``unit``), per day or per month."""

    unit: str
    length: str

    @property
    def name(self) -> str:
        """As ``/admin/keys`` lists it and its periods are stored: ``day``, ``usd_day``."""
        return self.length if self.unit == "tokens" else f"{self.unit}_{self.length}"

    def size(self, key: KeySpec) -> int:
        """``key``'s budget in what it counts, tokens or micro-dollars (0: it has none)."""
        day = self.length == "day"
        if self.unit == "tokens":
            return key.tokens_per_day if day else key.tokens_per_month
        dollars_given = key.usd_per_day if day else key.usd_per_month
        return micro_usd(dollars_given) if dollars_given else 0

    def text(self, amount: int) -> str:
        """An amount as a header says it: tokens, or US dollars."""
        return str(amount) if self.unit == "tokens" else dollars(amount)

    def shown(self, amount: int) -> int | float:
        """An amount as JSON shows it: tokens, or US dollars."""
        return amount if self.unit == "tokens" else amount / MICRO

    def spelled(self, amount: int) -> str:
        """An amount in words: ``5 tokens``, ``0.25 US dollars``."""
        return f"{amount} tokens" if self.unit == "tokens" else f"{dollars(amount)} US dollars"


BUDGETS = tuple(Budget(unit, length) for unit in UNITS for length in PERIODS)
NAMED = {budget.name: budget for budget in BUDGETS}


def cost(key: KeySpec, prompt: int, cached: int, completion: int) -> int:
    """The tokens an answer costs ``key``: its prompt's cached tokens at the key's rate."""
    cached = min(max(cached, 0), prompt)
    return prompt - cached + math.ceil(cached * key.cached_token_cost) + completion


@dataclass(frozen=True)
class Standing:
    """What a key has left of its budgets as a request comes in."""

    key: KeySpec
    spent: dict  # budget name ("day", "usd_month"): tokens or micro-dollars spent this period
    left_seconds: dict  # length: seconds until the period turns
    now: float
    held: dict = field(default_factory=dict)  # unit: what the key's requests in flight hold

    def remaining(self, name: str) -> int:
        """What a new request may still take of the budget ``name``."""
        budget = NAMED[name]
        held = self.held.get(budget.unit, 0)
        return max(budget.size(self.key) - self.spent[name] - held, 0)

    def headers(self) -> dict:
        """``x-budget-*``: each budget's size, what is left, and when it resets."""
        headers = {}
        for name in self.spent:
            budget = NAMED[name]
            size, which = budget.size(self.key), f"{budget.unit}-{budget.length}"
            headers[f"x-budget-limit-{which}"] = budget.text(size)
            headers[f"x-budget-remaining-{which}"] = budget.text(self.remaining(name))
            headers[f"x-budget-reset-{which}"] = f"{self.left_seconds[budget.length]:.0f}s"
        return headers

    def described(self) -> dict:
        """Each budget, what is spent and left of it, and when it resets."""
        described = {}
        for name, spent in self.spent.items():
            budget = NAMED[name]
            size = budget.size(self.key)
            described[name] = {
                budget.unit: budget.shown(size),
                "spent": budget.shown(spent),
                "held": budget.shown(self.held.get(budget.unit, 0)),
                "remaining": budget.shown(self.remaining(name)),
                "resets_in_seconds": round(self.left_seconds[budget.length]),
            }
        return described

    def refusal(self) -> Optional[QuotaExceededError]:
        """The error for a spent budget, the longest wait first; ``None`` while none is."""
        spent = [
            budget for length in reversed(PERIODS) for budget in BUDGETS
            if budget.length == length and budget.name in self.spent
            and self.spent[budget.name] >= budget.size(self.key)
        ]  # fmt: skip
        if not spent:
            return None
        budget = spent[0]
        seconds = self.left_seconds[budget.length]
        resets = datetime.fromtimestamp(self.now + seconds, timezone.utc)
        return QuotaExceededError(
            f"the key {self.key.name!r} has spent its "
            f"{budget.spelled(budget.size(self.key))} of the {budget.length}; it resets in "
            f"{_duration(seconds)}, at {resets.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            retry_after=max(1, math.ceil(seconds)),
            headers=self.headers(),
        )


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s"


class Budgets:
    """Each key's budgets, checked as its requests come in and charged as they end."""

    def __init__(self, store, clock: Callable[[], float] = time.time) -> None:
        """``store``: the usage store, which keeps what each budget period has spent."""
        self.store = store
        self.clock = clock

    def standing(self, key: KeySpec) -> Optional[Standing]:
        """What ``key`` has left (``None``: it has no budget)."""
        budgets = [budget for budget in BUDGETS if budget.size(key)]
        if not budgets:
            return None
        now = self.clock()
        periods = {budget.length: period(now, budget.length) for budget in budgets}
        names = [f"{budget.name}:{periods[budget.length][0]}" for budget in budgets]
        spent = self.store.spent(key.name, names)
        return Standing(
            key,
            {budget.name: amount for budget, amount in zip(budgets, spent, strict=True)},
            {length: left for length, (_, left) in periods.items()},
            now,
            dict(zip(UNITS, self.store.held(key.name, now), strict=True)),
        )

    def periods(self, key: KeySpec, unit: str = "tokens") -> tuple:
        """The periods of ``key``'s budgets of ``unit`` an answer ending now is charged to
        (none: it has no such budget)."""
        now = self.clock()
        return tuple(
            f"{budget.name}:{period(now, budget.length)[0]}"
            for budget in BUDGETS
            if budget.unit == unit and budget.size(key)
        )
