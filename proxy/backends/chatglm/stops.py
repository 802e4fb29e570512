"""Cut streamed text at the first stop word, never letting any part of one reach the client."""
from __future__ import annotations

from typing import Sequence


class StopWords:
    """Pass text through until a stop word appears; hold back what could be the start of one.

    Text arrives in pieces that may split a stop word anywhere, so the tail of the text seen
    so far that is a prefix of some stop word waits until the next piece decides it.
    """

    def __init__(self, words: Sequence[str]) -> None:
        self.words = tuple(word for word in words if word)
        self.stopped = False
        self.word: str | None = None  # the one that stopped it
        self._held = ""

    def feed(self, piece: str) -> str:
        """Return the text that is safe to show now."""
        if self.stopped:
            return ""
        text = self._held + piece
        hits = [(at, word) for at, word in ((text.find(word), word) for word in self.words)
                if at >= 0]
        if hits:
            at, self.word = min(hits)
            self.stopped = True
            self._held = ""
            return text[:at]
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def flush(self) -> str:
        """Return the held-back text once the generation is over: it was no stop word."""
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins some stop word."""
        longest = 0
        for word in self.words:
            for size in range(min(len(word) - 1, len(text)), longest, -1):
                if text.endswith(word[:size]):
                    longest = size
                    break
        return longest
