"""What keys spent: usage rows priced at the models file's prices, and answers' costs in the
micro-dollars money budgets count. Pure.

A usage row is priced at its model's price as the models file says now (a model with none
costs nothing; a row of a service tier at that tier's, or the model's own if the models file
names it no more; a row of pictures of a size at that size's, or nothing if it names the
size no more), so a changed price reprices what was used before it; a money budget is
charged as each answer ends, at its price then.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Mapping, Optional

from proxy.config.price import Price

MICRO = 1_000_000  # micro-dollars in a US dollar
# a usage row's counts a price reads beside its prompt's and completion's tokens
PRICED_COUNTS = (
    "cached_tokens", "web_searches", "audio_prompt_tokens", "stored", "pictures",
    "audio_seconds", "speech_characters",
)  # fmt: skip


def priced(rows: list, prices: Mapping[str, Price]) -> list:
    """Each usage row (``key``, ``model``, its ``service_tier`` where it was served at one
    priced apart and its pictures' ``size`` where priced by size, counts) with its
    ``spend_usd``, where its model has a price."""
    return [
        {
            **row,
            "spend_usd": round(
                price.at(row.get("service_tier")).sized(row.get("size", "")).of(**_counts(row)), 6
            ),
        }
        if (price := prices.get(row["model"])) is not None
        else row
        for row in rows
    ]


def _counts(row: dict) -> dict:
    """What a price reads of a usage row, by :meth:`Price.micro_usd`'s names."""
    return {
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        **{name: row.get(name, 0) for name in PRICED_COUNTS},
    }


def by_key(rows: list, prices: Mapping[str, Price]) -> dict:
    """Each key's spend in US dollars over every priced model."""
    spent: dict = {}
    for row in priced(rows, prices):
        if "spend_usd" in row:
            spent[row["key"]] = round(spent.get(row["key"], 0.0) + row["spend_usd"], 6)
    return spent


def cost(price: Optional[Price], prompt: int, cached: int, completion: int, **priced: int) -> int:
    """What an answer costs in whole micro-dollars, a part of one counting as one (as a part
    of a token costs a token); nothing at all on a model without a price. ``priced``: what
    else the price reads (:meth:`Price.micro_usd`'s searches, audio tokens, stored
    completions)."""
    if price is None:
        return 0
    exact = price.micro_usd(prompt, completion, cached, **priced)
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def micro_usd(dollars: float) -> int:
    """US dollars (as the keys file wrote them) in micro-dollars."""
    return int((Decimal(repr(dollars)) * MICRO).to_integral_value(rounding=ROUND_HALF_EVEN))


def dollars(micros: int) -> str:
    """Micro-dollars as US dollars, written as short as they are exact: ``0.0025``, ``5``."""
    return format(Decimal(micros).scaleb(-6).normalize(), "f")
