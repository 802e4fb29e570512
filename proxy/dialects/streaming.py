"""What every dialect's stream renderer shares: the walk over the core's event lists."""
from __future__ import annotations

from typing import Iterator


class EventRenderer:
    """Render the core's lists of events into writes (lists of payloads): one write per list,
    so that tokens read together leave together, and :meth:`closing`'s writes last.

    A subclass says what each event adds (:meth:`event`), and, as a :class:`proxy.sse.Wire`,
    how its API frames and ends a stream.
    """

    def render(self, batches: Iterator[list]) -> Iterator[list]:
        event = self.event
        for events in batches:
            out: list = []
            for each in events:
                event(each, out)
            if out:
                yield out
        yield from self.closing()

    def event(self, event, out: list) -> None:
        """Append the payloads ``event`` makes to ``out``."""
        raise NotImplementedError

    def closing(self) -> list:
        """The writes that end the stream, after the last event."""
        return []
