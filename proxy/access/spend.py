"""What keys spent: usage rows priced at the models file's prices, and answers' costs in the
micro-dollars money budgets count. Pure.

A usage row is priced at its model's price as the models file says now (a model with none
costs nothing), so a changed price reprices what was used before it; a money budget is
charged as each answer ends, at its price then.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Mapping, Optional

from proxy.config.catalog import Price

MICRO = 1_000_000  # micro-dollars in a US dollar


def priced(rows: list, prices: Mapping[str, Price]) -> list:
    """Each usage row (``key``, ``model``, token counts) with its ``spend_usd``, where its
    model has a price."""
    return [
        {**row, "spend_usd": round(price.of(*_tokens(row)), 6)}
        if (price := prices.get(row["model"])) is not None
        else row
        for row in rows
    ]


def _tokens(row: dict) -> tuple:
    return (
        row["prompt_tokens"],
        row["completion_tokens"],
        row.get("cached_tokens", 0),
        row.get("web_searches", 0),
    )


def by_key(rows: list, prices: Mapping[str, Price]) -> dict:
    """Each key's spend in US dollars over every priced model."""
    spent: dict = {}
    for row in priced(rows, prices):
        if "spend_usd" in row:
            spent[row["key"]] = round(spent.get(row["key"], 0.0) + row["spend_usd"], 6)
    return spent


def cost(
    price: Optional[Price], prompt: int, cached: int, completion: int, web_searches: int = 0
) -> int:
    """What an answer costs in whole micro-dollars, a part of one counting as one (as a part
    of a token costs a token); nothing at all on a model without a price."""
    if price is None:
        return 0
    exact = price.micro_usd(prompt, completion, cached, web_searches)
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def micro_usd(dollars: float) -> int:
    """US dollars (as the keys file wrote them) in micro-dollars."""
    return int((Decimal(repr(dollars)) * MICRO).to_integral_value(rounding=ROUND_HALF_EVEN))


def dollars(micros: int) -> str:
    """Micro-dollars as US dollars, written as short as they are exact: ``0.0025``, ``5``."""
    return format(Decimal(micros).scaleb(-6).normalize(), "f")
