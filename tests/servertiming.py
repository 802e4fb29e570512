"""An answer's ``Server-Timing`` header read back, as the API tests and the e2e tier check
it."""

from __future__ import annotations

import re

FIGURE = re.compile(r"^([a-z-]+);dur=(\d+\.\d{3})$")


def timing(header: str) -> dict:
    """A ``Server-Timing`` header's figures, by name, in milliseconds (in their order)."""
    figures = {}
    for part in header.split(", "):
        name, value = FIGURE.match(part).groups()
        figures[name] = float(value)
    return figures


def as_kept(record: dict) -> dict:
    """The same figures in an exchange the inspector kept."""
    figures = {"queue": record["queued_ms"], "upstream": record["upstream_ms"],
               "proxy": record["overhead_ms"]}  # fmt: skip
    if record["first_token_ms"] is not None:
        figures["first-token"] = record["first_token_ms"]
    return {**figures, "total": round(record["seconds"] * 1000, 3)}
