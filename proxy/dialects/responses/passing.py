"""A Responses stream the upstream wrote itself (a body sent on verbatim), passed on line by
line: only the ``response`` objects its events carry change, to name the model as the
client asked for it. Pure."""

from __future__ import annotations

import json
from typing import Iterable

RESPONSE = b'"response"'


def passed(lines: Iterable[bytes], model: str) -> bytes:
    """The bytes of ``lines`` (a read's whole lines), as they go to the client."""
    return b"".join(_line(line, model) + b"\n" for line in lines)


def _line(line: bytes, model: str) -> bytes:
    if line[:5] != b"data:" or RESPONSE not in line:
        return line
    event = json.loads(line[5:])
    response = event.get("response") if isinstance(event, dict) else None
    if not isinstance(response, dict) or "model" not in response:
        return line
    response["model"] = model
    return b"data: " + json.dumps(event, ensure_ascii=False).encode()
