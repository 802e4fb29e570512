"""What a request holds of an upstream's admission (:mod:`proxy.queue.admission`): its
ticket (its place in the queue, then its slot), the lease on that slot for a ``with`` block,
and each attempt it makes at the server while it holds one."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional, Protocol

from proxy.core.caller import UNTRACED, Caller
from proxy.core.errors import SlotUnavailableError
from proxy.core.party import Party
from proxy.ops.measure import queueing


class Admits(Protocol):
    """What a ticket's holder tells the admission that handed it out
    (:class:`proxy.queue.admission.Admission`)."""

    def wait(self, caller: Caller, ticket: Optional[Ticket]) -> Ticket: ...

    def release(self, ticket: Ticket) -> None: ...

    def accepted(self, ticket: Ticket, slot: Optional[int]) -> None: ...

    def finished(self, ticket: Ticket) -> None: ...


@dataclass(eq=False)
class Ticket:
    """One request's lease or place in the queue, and how to wake it when its turn comes."""

    deadline: float
    party: Party = Party()
    wake: Optional[threading.Condition] = None  # made when it has to wait in the queue
    joined: float = 0.0  # stamped by the queue (proxy.queue.fair)
    stamp: float = 0.0
    order: int = 0
    not_before: float = 0.0
    refusals: int = 0
    accepted: bool = False  # the server has started answering it and not yet ended
    slot: Optional[int] = None  # the server's slot answering it, when its answer says
    shared: object = None  # a shared queue's handle on it (proxy.backends.shared); None: ours


class Attempt:
    """One attempt of a request at the upstream, holding its lease (``Admission.attempts``):
    told when the server began answering it (and in which slot, where it says), when its
    last item freed the server's slot, and when the server refused it."""

    __slots__ = ("admission", "ticket", "answered", "was_refused")

    def __init__(self, admission: Admits, ticket: Ticket) -> None:
        self.admission, self.ticket = admission, ticket
        self.answered = False
        self.was_refused = False

    def began(self, slot: Optional[int] = None) -> None:
        """The server answers: it holds a slot for this attempt (``slot``, where it says)."""
        if not self.answered:
            self.answered = True
            self.admission.accepted(self.ticket, slot)

    def ended(self) -> None:
        """The upstream's last item has freed the server's slot: the lease lasts until the
        client has read it, but a refusal meanwhile does not count it among the slots in
        use."""
        self.admission.finished(self.ticket)

    def refused(self, exc: SlotUnavailableError) -> None:
        """The server had no free slot: the request goes back to the head of the queue, unless
        the server had begun answering it (then ``exc`` is the client's to see)."""
        if self.answered:
            raise exc
        self.was_refused = True


class Lease:
    """A slot of :class:`Admission` leased for a ``with`` block, waited for on entry."""

    __slots__ = ("admission", "caller", "ticket")

    def __init__(self, admission: Admits, caller: Caller, ticket: Optional[Ticket]) -> None:
        self.admission = admission
        self.caller = caller
        self.ticket = ticket

    def __enter__(self) -> Ticket:
        # a queue for the upstream's slots: not the proxy's own time
        caller = self.caller
        trace = caller.trace
        with queueing(caller.measure), UNTRACED if trace is None else trace.span("queue"):
            self.ticket = self.admission.wait(caller, self.ticket)
        return self.ticket

    def __exit__(self, *exc_info) -> None:
        self.admission.release(self.ticket)
