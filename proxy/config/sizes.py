"""Sizes as operators write them (``20GiB``, ``512 MiB``, ``8g`` or bytes)."""

from __future__ import annotations

import re

UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kb": 10**3,
    "kib": 2**10,
    "m": 2**20,
    "mb": 10**6,
    "mib": 2**20,
    "g": 2**30,
    "gb": 10**9,
    "gib": 2**30,
    "t": 2**40,
    "tb": 10**12,
    "tib": 2**40,
}
SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """A size as operators write one: ``"20GiB"``, ``"512 MiB"``, ``"8g"`` or bytes."""
    match = SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if unit not in UNITS:
        raise ValueError(f"{text!r} is not a size (say 20GiB, 512MiB or a number of bytes)")
    return int(float(match.group(1)) * UNITS[unit])


def parse_memory(text: str) -> int:
    """``--max-memory``, read as a size."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ValueError(f"--max-memory: {exc}") from None
