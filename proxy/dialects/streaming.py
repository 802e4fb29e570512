"""What every dialect's stream renderer shares: the walk over the core's event lists, each
event sent to the renderer's method for its type by one table."""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from proxy.core.answers import Served, Usage
from proxy.core.events import (
    Extras,
    Finish,
    PromptCounted,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolRan,
    ToolsListed,
    UsageReport,
    Waiting,
)
from proxy.core.sse import COMMENT, EVENT_STREAM, encode_line, encode_named

# the method of a renderer that each kind of event goes to
HANDLERS = {
    TextDelta: "text",
    ReasoningDelta: "reasoning",
    ToolCallStart: "call_started",
    ToolCallDelta: "call_arguments",
    ToolCallEnd: "call_ended",
    ToolsListed: "tools_listed",
    ToolRan: "tool_ran",
    PromptCounted: "prompt_counted",
    UsageReport: "usage_reported",
    Finish: "finished",
    Waiting: "waiting",
    Served: "told_served",
    Extras: "told_extras",
}


class EventRenderer:
    """Render the core's lists of events into writes (lists of payloads): one write per list,
    so that tokens read together leave together, and :meth:`closing`'s writes last.

    A subclass says what each kind of event adds (its methods named in :data:`HANDLERS`; an
    event it has no method for adds nothing) and, as a :class:`proxy.core.sse.Framing`, how
    its API frames and ends a stream.
    """

    # told the whole answer's body before its last write, by renderers that build one
    kept: Optional[Callable[[dict], None]] = None
    passed = False  # the upstream wrote the answer in the client's API itself
    model = ""  # the model the answer names
    served: tuple = ()  # who served the answer so far (each choice's or turn's Served)
    _table: dict = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._table = {kind: getattr(cls, name, _nothing) for kind, name in HANDLERS.items()}

    def write(self, events: list) -> list:
        """The payloads of one list of events (those of one upstream read), for one write."""
        table, out = self._table, []
        for event in events:
            table[type(event)](self, event, out)
        return out

    def closing(self) -> list:
        """The payloads that end the stream, after the last event."""
        return []

    def render(self, batches: Iterator[list]) -> Iterator[list]:
        """The writes of a whole stream of event lists, as :class:`proxy.core.sse.EventStream`
        makes them, unframed."""
        for events in batches:
            out = self.write(events)
            if out:
                yield out
        out = self.closing()
        if out:
            yield out

    def told_served(self, event: Served, out: list) -> None:
        """Who serves the answer: another model than the one asked for is the one it
        names, before anything names one."""
        if event.instead and not self.served:
            self.model = event.model
        self.served += (event,)


def _nothing(renderer: EventRenderer, event, out: list) -> None:
    """What an event adds to a stream that has no use for it."""


class NamedEvents:
    """The framing of APIs whose events name their type on an ``event:`` line (Anthropic's
    Messages, OpenAI's Responses): nothing after the last."""

    encode = staticmethod(encode_named)
    mimetype = EVENT_STREAM
    end = b""


class Lines:
    """The framing of newline-delimited JSON (Ollama): one object a line, nothing after the
    last."""

    encode = staticmethod(encode_line)
    mimetype = "application/x-ndjson"
    end = b""


class LinesOf(Lines):
    """A stream of objects, each a line of its own (a pull's progress, records exported)."""

    @staticmethod
    def write(payload: dict) -> list:
        return [payload]

    @staticmethod
    def closing() -> list:
        return []

    @staticmethod
    def failure(error) -> list:
        """A failure once the lines have begun: the stream ends where it is."""
        return []


class BlockStream(EventRenderer):
    """A stream that opens with a start event (:meth:`_start`) and holds its content in
    blocks it opens and closes (:meth:`_close`): a call's end closes its block, and while the
    answer waits the stream starts and sends :attr:`keepalive`."""

    keepalive: object = COMMENT
    usage = Usage()

    def _start(self, out: list) -> None:
        raise NotImplementedError

    def _close(self, out: list) -> None:
        raise NotImplementedError

    def call_ended(self, event: ToolCallEnd, out: list) -> None:
        self._close(out)

    def usage_reported(self, event: UsageReport, out: list) -> None:
        self._start(out)
        self.usage = event.usage

    def waiting(self, event: Waiting, out: list) -> None:
        self._start(out)
        out.append(self.keepalive)
