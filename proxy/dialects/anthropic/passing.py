"""A Messages stream the upstream wrote itself (an answer sent on verbatim), passed on line by
line: only its ``message_start`` changes, to name the model as the client asked for it. Pure.

A stream that had to wait before its first byte has already started, with the proxy's own
``message_start`` and pings (Anthropic's clients read nothing before a ``message_start``);
the upstream's is then left out, and the usage it told is carried into the
``message_delta``'s where that does not tell it again.
"""

from __future__ import annotations

import json
from typing import Iterable, Optional

START = b"message_start"


class Passing:
    """The lines of one stream, passed on in order."""

    def __init__(self, model: str, started: bool) -> None:
        """``started``: the proxy's own ``message_start`` has gone out."""
        self.model = model
        self.started = started
        self.skipping = False  # within the upstream's message_start, which is left out
        self.usage: Optional[dict] = None  # what that message_start told of the usage

    def write(self, lines: Iterable[bytes]) -> bytes:
        """The bytes of ``lines`` (a read's whole lines), as they go to the client."""
        kept = []
        for line in lines:
            line = self._line(line)
            if line is not None:
                kept.append(line + b"\n")
        return b"".join(kept)

    def _line(self, line: bytes) -> Optional[bytes]:
        if self.skipping:
            if not line.strip():
                self.skipping = False
            elif line[:5] == b"data:":
                self.usage = _told(_event(line))
            return None
        if START in line and line[:6] == b"event:" and self.started:
            self.skipping = True
            return None
        if line[:5] != b"data:" or (START not in line and self.usage is None):
            return line
        event = _event(line)
        kind = event.get("type")
        if kind == "message_start":
            if self.started:
                self.usage = _told(event)
                self.skipping = True
                return None
            if not isinstance(event.get("message"), dict):
                return line
            event["message"]["model"] = self.model
        elif kind == "message_delta" and self.usage is not None:
            told, self.usage = self.usage, None
            usage = event.get("usage")
            event["usage"] = {**told, **(usage if isinstance(usage, dict) else {})}
        else:
            return line
        return b"data: " + json.dumps(event, ensure_ascii=False).encode()


def _told(event: dict) -> Optional[dict]:
    """The usage a ``message_start`` event told."""
    message = event.get("message")
    usage = message.get("usage") if isinstance(message, dict) else None
    return usage if isinstance(usage, dict) else None


def _event(line: bytes) -> dict:
    """The JSON of a data line (the backend has read it already: it is an object)."""
    event = json.loads(line[5:])
    return event if isinstance(event, dict) else {}
