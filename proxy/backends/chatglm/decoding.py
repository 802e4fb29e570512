"""Turn generated token ids into text as they arrive, never splitting a character."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

REPLACEMENT = "\ufffd"  # what a tokenizer shows for bytes that are not a whole character yet


class TextDecoder:
    """Decode ids one at a time; text is released once it decodes to whole characters.

    Each step decodes a short window: the ids released last time, as context, plus the new
    ones. The context keeps tokenizers that drop the leading space of the first piece they
    decode (SentencePiece) right, and the window keeps the cost per id small.

    ``decode`` returns ``None`` when the ids end inside a character it cannot show yet.
    """

    def __init__(self, decode: Callable[[Sequence[int]], Optional[str]]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._start = 0  # first id of the context window
        self._read = 0  # first id not released yet

    def add(self, token: int) -> str:
        """Take one more id; return the text it completes, if any."""
        self._ids.append(token)
        text = self._decode(self._ids[self._start :])
        if text is None or text.endswith(REPLACEMENT):
            return ""
        context = self._context()
        if not text.startswith(context):
            return ""
        self._start, self._read = self._read, len(self._ids)
        return text[len(context) :]

    def flush(self) -> str:
        """Return the text still held at the end; a cut-off character becomes U+FFFD."""
        if self._read == len(self._ids):
            return ""
        context = self._context()
        released = REPLACEMENT
        for end in range(len(self._ids), self._read, -1):
            text = self._decode(self._ids[self._start : end])
            if text is not None and text.startswith(context):
                released = text[len(context) :] + (REPLACEMENT if end < len(self._ids) else "")
                break
        self._start = self._read = len(self._ids)
        return released

    def _context(self) -> str:
        if self._start == self._read:
            return ""
        return self._decode(self._ids[self._start : self._read]) or ""
