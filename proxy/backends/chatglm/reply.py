"""Shape generated text into what the client sees: trimmed, cut at stop words, maybe a tool call."""

from __future__ import annotations

from typing import Collection, Sequence

from proxy.backends.structured import chatglm3
from proxy.backends.structured.stops import StopWords


class ReplyFilter:
    """Decide, piece by piece, which of the generated text may be shown now.

    ``trim`` drops the leading whitespace of a chat answer: ChatGLM starts every turn with a
    metadata line, empty for plain text. With ``tool_names``, text that may still become
    ``<name>\\n`` of one of those tools is held back, because a tool call is only known once
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
        self._held = ""

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
        held, self._held = self._held, ""
        call = chatglm3.parse(held, self._names) if held and tool_turn else None
        if call is not None:
            return text, (call,)
        return text + held, ()

    def _release(self, text: str) -> str:
        if not self._deciding:
            return text
        self._held += text
        held = self._held
        if any(held.startswith(head) or head.startswith(held) for head in self._heads):
            return ""
        self._deciding = False
        self._held = ""
        return held
