"""The pieces of GBNF every grammar the proxy writes is made of: literals, bounded repetition
spelt out with ``?`` alone (what every server.cpp kind's grammar parser knows), and the
error of a schema that cannot be expressed."""

from __future__ import annotations

import re
from typing import Optional

MAX_REPEAT = 1000  # longest bounded repetition spelt out


class UnsupportedSchemaError(ValueError):
    """A schema keyword the compiler cannot express; ``path`` says where it stands."""

    def __init__(self, keyword: str, path: str, why: str = "is not supported") -> None:
        self.keyword = keyword
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"the JSON Schema keyword '{keyword}'{where} {why}")


def literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\x00-\x1f]", lambda m: f"\\x{ord(m.group()):02x}", escaped)
    return f'"{escaped}"'


def repeat(item: str, low: int, high: Optional[int]) -> str:
    """``item`` from ``low`` to ``high`` times (``None``: no upper bound), with ``?`` only."""
    if high is not None and (high < low or high > MAX_REPEAT):
        raise ValueError(f"cannot repeat between {low} and {high} times")
    parts = [item] * low
    if high is None:
        parts.append(f"({item})*")
    elif high > low:
        optional = ""
        for _ in range(high - low):
            optional = f"({item} {optional})?" if optional else f"({item})?"
        parts.append(optional)
    return " ".join(parts) if parts else '""'
