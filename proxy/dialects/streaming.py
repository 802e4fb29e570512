"""What every dialect's stream renderer shares: the walk over the core's event lists, each
event sent to the renderer's method for its type by one table."""
from __future__ import annotations

from typing import Callable, Iterator, Optional

from proxy.core.events import (Finish, PromptCounted, ReasoningDelta, TextDelta, ToolCallDelta,
                               ToolCallEnd, ToolCallStart, UsageReport, Waiting)

# the method of a renderer that each kind of event goes to
HANDLERS = {
    TextDelta: "text",
    ReasoningDelta: "reasoning",
    ToolCallStart: "call_started",
    ToolCallDelta: "call_arguments",
    ToolCallEnd: "call_ended",
    PromptCounted: "prompt_counted",
    UsageReport: "usage_reported",
    Finish: "finished",
    Waiting: "waiting",
}


class EventRenderer:
    """Render the core's lists of events into writes (lists of payloads): one write per list,
    so that tokens read together leave together, and :meth:`closing`'s writes last.

    A subclass says what each kind of event adds (its methods named in :data:`HANDLERS`; an
    event it does not handle adds nothing) and, as a :class:`proxy.core.sse.Wire`, how its
    API frames and ends a stream.
    """

    # told the whole answer's body before its last write, by renderers that build one
    kept: Optional[Callable[[dict], None]] = None
    _table: dict = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._table = {kind: getattr(cls, name) for kind, name in HANDLERS.items()}

    def render(self, batches: Iterator[list]) -> Iterator[list]:
        table = self._table
        for events in batches:
            out: list = []
            for event in events:
                table[type(event)](self, event, out)
            if out:
                yield out
        yield from self.closing()

    def closing(self) -> list:
        """The writes that end the stream, after the last event."""
        return []

    def text(self, event: TextDelta, out: list) -> None:
        pass

    def reasoning(self, event: ReasoningDelta, out: list) -> None:
        pass

    def call_started(self, event: ToolCallStart, out: list) -> None:
        pass

    def call_arguments(self, event: ToolCallDelta, out: list) -> None:
        pass

    def call_ended(self, event: ToolCallEnd, out: list) -> None:
        pass

    def prompt_counted(self, event: PromptCounted, out: list) -> None:
        pass

    def usage_reported(self, event: UsageReport, out: list) -> None:
        pass

    def finished(self, event: Finish, out: list) -> None:
        pass

    def waiting(self, event: Waiting, out: list) -> None:
        pass
