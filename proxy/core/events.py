"""The one stream every answer is told in, whatever API the client speaks.

The core (:mod:`proxy.core.generation`) turns what a backend generates into these events, each
choice's chunks through a :class:`ChoiceEvents` of its own; each
dialect (:mod:`proxy.dialects`) renders them into its API's answers. A choice's events may
begin with :class:`Passed` or :class:`PromptCounted` and end with :class:`UsageReport` and
then :class:`Finish`; the choices of a request follow one another. :data:`WAITING` may come
before a choice's first event, while its server starts.

Events are plain slotted classes, made once per token: a frozen dataclass sets each field
through ``object.__setattr__``, several times slower.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from proxy.core.answers import Chunk, ToolCallPiece, Usage


class Event:
    """Something that happened in an answer."""

    __slots__ = ()


class PromptCounted(Event):
    """How many tokens the prompt holds, when the backend says so before the answer (it comes
    first, if at all; the choice's :class:`UsageReport` has the final counts)."""

    __slots__ = ("tokens",)

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens

    def __repr__(self) -> str:
        return f"PromptCounted({self.tokens})"


class TextDelta(Event):
    """More of the answer's text, with the log probabilities of its tokens when asked."""

    __slots__ = ("text", "logprobs")

    def __init__(self, text: str, logprobs: tuple = ()) -> None:
        self.text = text
        self.logprobs = logprobs

    def __repr__(self) -> str:
        return f"TextDelta({self.text!r})"


class ReasoningDelta(Event):
    """More of the model's reasoning: what it wrote before its answer (``<think>…``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"ReasoningDelta({self.text!r})"


class ToolCallStart(Event):
    """A tool call begins: the ``index``-th of its choice, with its id and the tool's name."""

    __slots__ = ("index", "id", "name")

    def __init__(self, index: int, id: str, name: str) -> None:
        self.index = index
        self.id = id
        self.name = name

    def __repr__(self) -> str:
        return f"ToolCallStart({self.index}, {self.id!r}, {self.name!r})"


class ToolCallDelta(Event):
    """More of a tool call's arguments, as JSON text."""

    __slots__ = ("index", "arguments")

    def __init__(self, index: int, arguments: str) -> None:
        self.index = index
        self.arguments = arguments

    def __repr__(self) -> str:
        return f"ToolCallDelta({self.index}, {self.arguments!r})"


class ToolCallEnd(Event):
    """A tool call's arguments are complete."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"ToolCallEnd({self.index})"


class UsageReport(Event):
    """What a choice cost: prompt tokens (counted once for the choices of one prompt),
    completion tokens, and prompt tokens the server took from its cache."""

    __slots__ = ("usage",)

    def __init__(self, usage: Usage) -> None:
        self.usage = usage

    def __repr__(self) -> str:
        return f"UsageReport({self.usage})"


class Finish(Event):
    """A choice ended: ``stop`` (end of text or a stop word), ``length`` (the token limit)
    or ``tool_calls``; ``stop_sequence`` is the stop word that ended it, when known."""

    __slots__ = ("reason", "stop_sequence", "truncated", "prompt_token_ids")

    def __init__(
        self,
        reason: str,
        stop_sequence: Optional[str] = None,
        truncated: bool = False,
        prompt_token_ids: Optional[tuple] = None,
    ) -> None:
        self.reason = reason
        self.stop_sequence = stop_sequence
        self.truncated = truncated
        self.prompt_token_ids = prompt_token_ids

    def __repr__(self) -> str:
        return f"Finish({self.reason!r})"


class Passed(Event):
    """The upstream's own lines, framed in the client's API already: an answer sent on
    verbatim (see :class:`proxy.core.types.Verbatim`). A stream's first event says whether
    it is one; its other events still tell the inspector and the usage what it holds."""

    __slots__ = ("lines",)

    def __init__(self, lines: tuple) -> None:
        self.lines = lines

    def __repr__(self) -> str:
        return f"Passed({len(self.lines)} lines)"


class Extras(Event):
    """The engine's own fields told with a piece of the answer (llama-server's ``timings``,
    ``prompt_progress``, a fingerprint): a client's API with room for them writes them into
    the piece it writes next, or, for the prompt's progress, a piece of their own."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields

    def __repr__(self) -> str:
        return f"Extras({sorted(self.fields)})"


class ToolsListed(Event):
    """The gateway listed a server's tools for the model (a :class:`ToolListing`)."""

    __slots__ = ("listing",)

    def __init__(self, listing) -> None:
        self.listing = listing

    def __repr__(self) -> str:
        return f"ToolsListed({self.listing.label!r})"


class ToolRan(Event):
    """The gateway ran a hosted tool the model called, or leaves the call pending the
    client's approval (a :class:`ToolRun`); the answer goes on after it."""

    __slots__ = ("run",)

    def __init__(self, run) -> None:
        self.run = run

    def __repr__(self) -> str:
        return f"ToolRan({self.run.tool!r})"


class Waiting(Event):
    """Nothing yet: the model's server is starting. Streams send something harmless (a
    comment, a ping) so that clients and proxies in between do not time out."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WAITING"


WAITING = Waiting()


class ChoiceEvents:
    """One choice's chunks as they become events: the prompt's count first, where its first
    chunk tells it; its tool calls numbered from 0 as they begin, one open at a time; its
    end, the call left open closed. Pure: what to write, never when."""

    __slots__ = ("begun", "open", "counted", "prompt")

    def __init__(self) -> None:
        self.begun = 0  # the tool calls begun
        self.open: Optional[int] = None  # the backend's index of the open call
        self.counted = False  # its first chunk is read: a count after it is not told
        self.prompt: Optional[int] = None  # the prompt's tokens, where its first chunk told them

    def add(self, chunk: Chunk, out: list) -> bool:
        """``chunk``'s events onto ``out``; whether it said anything (text, thoughts, calls)."""
        if chunk.extras:
            out.append(Extras(chunk.extras))
        if not self.counted:
            self.counted = True
            if chunk.prompt_count is not None:
                self.prompt = chunk.prompt_count
                out.append(PromptCounted(chunk.prompt_count))
        said = False
        if chunk.reasoning:
            out.append(ReasoningDelta(chunk.reasoning))
            said = True
        if chunk.text or chunk.logprobs:
            out.append(TextDelta(chunk.text, chunk.logprobs))
            said = True
        if chunk.tool_calls:
            for piece in chunk.tool_calls:
                self._call(piece, out)
            said = True
        return said

    def end(self, chunk: Chunk, usage: Usage, out: list) -> None:
        """The choice's end as ``chunk`` tells it, having cost ``usage``, onto ``out``."""
        self._close(out)
        out.append(UsageReport(usage))
        out.append(
            Finish(
                chunk.finish_reason, chunk.stop_sequence, chunk.truncated, chunk.prompt_token_ids
            )
        )

    def _call(self, piece: ToolCallPiece, out: list) -> None:
        if piece.name is not None:
            self._close(out)
            self.open = piece.index
            out.append(ToolCallStart(self.begun, piece.id or "", piece.name))
            self.begun += 1
        if piece.arguments and piece.index == self.open:
            out.append(ToolCallDelta(self.begun - 1, piece.arguments))

    def _close(self, out: list) -> None:
        if self.open is not None:
            out.append(ToolCallEnd(self.begun - 1))
            self.open = None
