"""Tokens per day and per month per key: budgets that outlive restarts and span proxies.

A key's answers are charged when they end (prompt and completion tokens, the prompt's tokens
served from the server's cache at the key's ``cached_token_cost``), at once and in full, in
the usage store, in the same write as the answer's usage (:mod:`proxy.access.usage`): a SQLite
table beside the usage totals, or Redis with ``--redis-url``, so every proxy sharing it counts
one budget to the token. A request is refused before it costs
anything once its key has spent a budget; the one that crosses it is answered in full.

Periods are calendar days and months in UTC, as an operator reads a bill.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional

from proxy.access.keyring import KeySpec
from proxy.core.errors import QuotaExceededError

PERIODS = ("day", "month")


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


def budget_of(key: KeySpec, length: str) -> int:
    return key.tokens_per_day if length == "day" else key.tokens_per_month


def cost(key: KeySpec, prompt: int, cached: int, completion: int) -> int:
    """The tokens an answer costs ``key``: its prompt's cached tokens at the key's rate."""
    cached = min(max(cached, 0), prompt)
    return prompt - cached + math.ceil(cached * key.cached_token_cost) + completion


@dataclass(frozen=True)
class Standing:
    """What a key has left of its budgets as a request comes in."""

    key: KeySpec
    spent: dict  # length: tokens spent in the current period
    left_seconds: dict  # length: seconds until the period turns
    now: float

    def headers(self) -> dict:
        """``x-budget-*``: each budget's size, what is left, and when it resets."""
        headers = {}
        for length, spent in self.spent.items():
            budget = budget_of(self.key, length)
            headers[f"x-budget-limit-tokens-{length}"] = str(budget)
            headers[f"x-budget-remaining-tokens-{length}"] = str(max(budget - spent, 0))
            headers[f"x-budget-reset-tokens-{length}"] = f"{self.left_seconds[length]:.0f}s"
        return headers

    def described(self) -> dict:
        """Each budget, what is spent and left of it, and when it resets."""
        return {
            length: {
                "tokens": budget_of(self.key, length),
                "spent": spent,
                "remaining": max(budget_of(self.key, length) - spent, 0),
                "resets_in_seconds": round(self.left_seconds[length]),
            }
            for length, spent in self.spent.items()
        }

    def refusal(self) -> Optional[QuotaExceededError]:
        """The error for a spent budget, the longest wait first; ``None`` while none is."""
        spent = [
            length for length in reversed(PERIODS)
            if length in self.spent and self.spent[length] >= budget_of(self.key, length)
        ]  # fmt: skip
        if not spent:
            return None
        length = spent[0]
        seconds = self.left_seconds[length]
        resets = datetime.fromtimestamp(self.now + seconds, timezone.utc)
        return QuotaExceededError(
            f"the key {self.key.name!r} has spent its {budget_of(self.key, length)} tokens "
            f"of the {length}; it resets in {_duration(seconds)}, at "
            f"{resets.strftime('%Y-%m-%dT%H:%M:%SZ')}",
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
        lengths = [length for length in PERIODS if budget_of(key, length)]
        if not lengths:
            return None
        now = self.clock()
        periods = [period(now, length) for length in lengths]
        spent = self.store.spent(key.name, [f"{length}:{name}" for length, (name, _) in
                                            zip(lengths, periods)])  # fmt: skip
        return Standing(
            key,
            dict(zip(lengths, spent)),
            {length: left for length, (_, left) in zip(lengths, periods)},
            now,
        )

    def periods(self, key: KeySpec) -> tuple:
        """The periods an answer of ``key`` ending now is charged to (none: no budget)."""
        now = self.clock()
        return tuple(
            f"{length}:{period(now, length)[0]}" for length in PERIODS if budget_of(key, length)
        )
