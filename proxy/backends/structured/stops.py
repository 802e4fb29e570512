"""Cut streamed text at the first stop word, never letting any part of one reach the client."""

from __future__ import annotations

from contextlib import closing
from typing import Iterator, Sequence

from proxy.core.answers import Chunk, Usage
from proxy.core.types import amended


class StopWords:
    """Pass text through until a stop word appears; withhold what could be the start of one.

    Text arrives in pieces that may split a stop word anywhere, so the tail of the text seen
    so far that is a prefix of some stop word waits until the next piece decides it.
    """

    def __init__(self, words: Sequence[str]) -> None:
        self.words = tuple(word for word in words if word)
        self.stopped = False
        self.word: str | None = None  # the one that stopped it
        self._withheld = ""

    def feed(self, piece: str) -> str:
        """Return the text that is safe to show now."""
        if self.stopped:
            return ""
        text = self._withheld + piece
        hits = [
            (at, word) for at, word in ((text.find(word), word) for word in self.words) if at >= 0
        ]
        if hits:
            at, self.word = min(hits)
            self.stopped = True
            self._withheld = ""
            return text[:at]
        keep = self._partial_suffix(text)
        self._withheld = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """Return the withheld text once the generation is over: it was no stop word."""
        withheld, self._withheld = self._withheld, ""
        return withheld

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins some stop word."""
        longest = 0
        for word in self.words:
            for size in range(min(len(word) - 1, len(text)), longest, -1):
                if text.endswith(word[:size]):
                    longest = size
                    break
        return longest


class Stopped:
    """A stream's chunks cut at the first of its stop words, one chunk at a time (its reader
    calls it; the streamed path has no generator of its own for it)."""

    def __init__(self, words: Sequence[str]) -> None:
        self.stops = StopWords(words)
        self.done = False  # a stop word ended the answer: read no more

    def cut(self, chunk: Chunk) -> tuple:
        """``chunk`` as the client gets it (none, itself, or with its text cut), and after a
        stop word a last chunk that says so, with the usage the chunk before it carried."""
        stops = self.stops
        text = stops.feed(chunk.text) if chunk.text else ""
        if chunk.finish_reason is not None:
            text += stops.flush()
            self.done = True
            return (amended(chunk, text=text) if text != chunk.text else chunk,)
        if text != chunk.text:
            chunk = amended(chunk, text=text, followed=False)
        told = (
            (chunk,)
            if text or chunk.reasoning or chunk.tool_calls or chunk.prompt_count is not None
            else ()
        )
        if stops.stopped:
            self.done = True
            end = Chunk(
                finish_reason="stop", usage=chunk.usage or Usage(), stop_sequence=stops.word
            )
            return (*told, end)
        return told

    def cut_all(self, chunks: list) -> list:
        """The chunks of one read, cut (:meth:`cut`); none after the one that ends it."""
        out: list = []
        for chunk in chunks:
            out += self.cut(chunk)
            if self.done:
                break
        return out


def stopping(chunks: Iterator[Chunk], words: Sequence[str]) -> Iterator[Chunk]:
    """``chunks``, their text cut at the first of ``words``: then a last chunk that says so
    (with the usage the last chunk before it carried), and the rest is not read (closing
    the stream stops the generation)."""
    stopped = Stopped(words)
    with closing(chunks):
        for chunk in chunks:
            yield from stopped.cut(chunk)
            if stopped.done:
                return
