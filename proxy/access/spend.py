"""What keys spent: usage rows priced at the models file's prices. Pure.

A row is priced at its model's price as the models file says now (a model with none costs
nothing), so a changed price reprices what was used before it.
"""

from __future__ import annotations

from typing import Mapping

from proxy.config.catalog import Price


def priced(rows: list, prices: Mapping[str, Price]) -> list:
    """Each usage row (``key``, ``model``, token counts) with its ``spend_usd``, where its
    model has a price."""
    return [
        {**row, "spend_usd": round(price.of(row["prompt_tokens"], row["completion_tokens"]), 6)}
        if (price := prices.get(row["model"])) is not None
        else row
        for row in rows
    ]


def by_key(rows: list, prices: Mapping[str, Price]) -> dict:
    """Each key's spend in US dollars over every priced model."""
    spent: dict = {}
    for row in priced(rows, prices):
        if "spend_usd" in row:
            spent[row["key"]] = round(spent.get(row["key"], 0.0) + row["spend_usd"], 6)
    return spent
