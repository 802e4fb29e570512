"""Generated ids into what the client sees: decoded into whole characters as they arrive, then
trimmed, cut at stop words, maybe a tool call."""

from __future__ import annotations

from typing import Callable, Collection, Optional, Sequence

from proxy.backends.structured import chatglm3
from proxy.backends.structured.stops import StopWords


class ReplyFilter:
    """Decide, piece by piece, which of the generated text may be shown now.

    ``trim`` drops the leading whitespace of a chat answer: ChatGLM starts every turn with a
    metadata line, empty for plain text. With ``tool_names``, text that may still become
    ``<name>\\n`` of one of those tools is withheld, because a tool call is only known once
    the turn ends, and it must not leak out as content.
    """

    def __init__(
        self, stop: Sequence[str], tool_names: Collection[str] = (), *, trim: bool
    ) -> None:
        self._stops = StopWords(stop)
        self._heads = tuple(name + "\n" for name in tool_names)
        self._names = frozenset(tool_names)
        self._trim = trim
        self._deciding = bool(self._heads)
        self._withheld = ""

    @property
    def stopped(self) -> bool:
        """A stop word ended the answer: the generation can stop."""
        return self._stops.stopped

    @property
    def stop_word(self) -> str | None:
        """The stop word that ended the answer, if one did."""
        return self._stops.word

    def feed(self, piece: str) -> str:
        """Take the next generated text; return the content that is safe to show now."""
        if self._trim:
            piece = piece.lstrip()
            if not piece:
                return ""
            self._trim = False
        return self._release(self._stops.feed(piece))

    def finish(self, tool_turn: bool) -> tuple:
        """Return ``(remaining content, tool calls)`` once the generation is over.

        ``tool_turn`` says the model ended its turn asking for a tool's result.
        """
        text = self._release(self._stops.flush())
        withheld, self._withheld = self._withheld, ""
        call = chatglm3.parse(withheld, self._names) if withheld and tool_turn else None
        if call is not None:
            return text, (call,)
        return text + withheld, ()

    def _release(self, text: str) -> str:
        if not self._deciding:
            return text
        self._withheld += text
        withheld = self._withheld
        if any(withheld.startswith(head) or head.startswith(withheld) for head in self._heads):
            return ""
        self._deciding = False
        self._withheld = ""
        return withheld


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
        """Return the text still withheld at the end; a cut-off character becomes U+FFFD."""
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
