"""Admission to one upstream: no more generations than it has slots, the rest wait in line.

Old servers (PowerInfer, llama.cpp of 2023) refuse at once when every slot is busy. So
requests take a lease before they reach the upstream; those beyond the slot count wait in one
FIFO line, bounded in length (``--max-queue``) and in time (``--queue-timeout``). A request
the server still refuses (another client or proxy process shares it) goes back to the head of
the line: the client never hears of it while the line has room and time.

Current llama.cpp queues what it has no slot for. It is given one request per slot beyond
its slots, to wait inside it: a slot that frees then starts its next generation at once,
instead of after the answer's way back through the proxy and the next request's way out
(with a fast model, a quarter of the server's throughput at 16 clients).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TypeVar

from proxy.backends.slots import SlotCount
from proxy.core.errors import (
    ClientGoneError,
    QueueFullError,
    QueueTimeoutError,
    SlotUnavailableError,
)
from proxy.ops.measure import waiting
from proxy.ops.seen import queueing

POLL = 0.2  # seconds between checks, while waiting, that the client is still there
FIRST_BACKOFF = 0.05  # a refused request waits this long before trying again, doubling
MAX_BACKOFF = 1.0
RETRY_AFTER = 2  # seconds a refused client is told to wait
T = TypeVar("T")


def never() -> bool:
    return False


@dataclass(eq=False)
class Ticket:
    """One request's lease or place in line, and how to wake it when it reaches the head."""

    deadline: float
    wake: Optional[threading.Condition] = None  # made when it has to wait in line
    not_before: float = 0.0
    refusals: int = 0
    accepted: bool = False  # the server has started answering it and not yet ended
    slot: Optional[int] = None  # the server's slot answering it, when its answer says


class LineWatch:
    """Told how many generations run and how many requests wait, at every change, and how long
    each admitted request waited: what metrics show."""

    def counted(self, running: int, waiting: int) -> None:
        """Generations now running on the upstream, and requests waiting for a slot (in the
        proxy's line or inside a server that queues)."""

    def admitted(self, waited: float) -> None:
        """A request got its slot after ``waited`` seconds (0: no line)."""


class Admission:
    """Leases on one upstream's slots, handed out in arrival order.

    ``slots`` says how many at once; ``None`` (nothing known yet) lets every request through
    until the server's refusals show its size. Every lease is released in a ``finally``.
    """

    def __init__(
        self,
        name: str,
        slots: SlotCount,
        *,
        max_queue: int,
        queue_timeout: float,
        remedy: str = "",
        clock: Callable[[], float] = time.monotonic,
        watch: LineWatch = LineWatch(),
    ) -> None:
        """``name`` says what the slots belong to in errors ("the upstream http://…");
        ``remedy`` how else to get more of them."""
        self.name = name
        self.watch = watch
        self.remedy = remedy
        self.slots = slots
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.clock = clock
        self._line: deque = deque()
        self._running = 0
        self._accepted: set = set()  # tickets the server is answering
        self._queued_inside = 0  # requests per slot the server may hold waiting
        # one lock; each waiter sleeps on a condition of its own, so a freed slot wakes the
        # head of the line alone rather than every waiter
        self._lock = threading.Lock()

    def run(self, attempt: Callable[[], T], gone: Callable[[], bool] = never) -> T:
        """Call ``attempt`` holding a lease; a refusal sends it back to the head of the line."""
        ticket = None
        while True:
            with self.lease(gone, ticket) as ticket:
                try:
                    return attempt()
                except SlotUnavailableError:
                    self.refused(ticket)

    def stream(
        self,
        start: Callable[[], Iterator[T]],
        gone: Callable[[], bool] = never,
        ends: Callable[[T], bool] = lambda item: False,
        slot: Callable[[T], Optional[int]] = lambda item: None,
    ) -> Iterator[T]:
        """Yield what ``start()`` yields, holding a lease until it ends or is closed.

        A refusal before the first item sends the request back to the head of the line; after
        it, the client has bytes and the failure is theirs to see. The item ``ends`` knows
        for the upstream's last has freed the server's slot: the lease lasts until the client
        has read it, but a refusal meanwhile does not count it among the slots in use.
        ``slot`` reads the server's slot from the first item, where it names one.
        """
        ticket = None
        while True:
            with self.lease(gone, ticket) as ticket:
                accepted = False
                try:
                    with closing(start()) as items:
                        for item in items:
                            if not accepted:
                                accepted = True
                                self._accept(ticket, slot(item))
                            if ends(item):
                                self._done(ticket)
                            yield item
                    return
                except SlotUnavailableError:
                    if accepted:
                        raise
                    self.refused(ticket)

    def lease(self, gone: Callable[[], bool] = never, ticket: Optional[Ticket] = None) -> "Lease":
        """Wait for a slot, hold it for the ``with`` block, then hand it on.

        Pass back the ticket of a refused attempt to keep its place at the head of the line
        and its original deadline.
        """
        return Lease(self, gone, ticket)

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            self._running -= 1
            self._unaccept(ticket)
            self._wake_head()
            self._count()

    def _accept(self, ticket: Ticket, slot: Optional[int]) -> None:
        with self._lock:
            ticket.accepted, ticket.slot = True, slot
            self._accepted.add(ticket)

    def _done(self, ticket: Ticket) -> None:
        with self._lock:
            self._unaccept(ticket)

    def _unaccept(self, ticket: Ticket) -> None:
        """The server no longer holds a slot for ``ticket`` (call holding the lock)."""
        if ticket.accepted:
            ticket.accepted = False
            self._accepted.discard(ticket)

    def refused(self, ticket: Ticket) -> None:
        """The server had no free slot for ``ticket``'s request: learn, and back off.

        Only requests it has started answering surely hold a slot; those still waiting for
        their first byte may be refused in turn. Two answered from one slot hold one: the
        first has ended on the server, its last item not yet read here.
        """
        with self._lock:
            named = {held.slot for held in self._accepted if held.slot is not None}
            unnamed = sum(1 for held in self._accepted if held.slot is None)
            self.slots.refused(len(named) + unnamed)
            ticket.refusals += 1
            backoff = min(FIRST_BACKOFF * 2 ** (ticket.refusals - 1), MAX_BACKOFF)
            ticket.not_before = self.clock() + backoff

    def saw_slot(self, slot_id: object) -> None:
        with self._lock:
            self.slots.saw_slot(slot_id)
            self._wake_head()

    def report(self, total: Optional[int], queues: bool = False) -> None:
        """A server (re)appeared and said how many slots it has (``None``: it did not say),
        and whether it queues requests beyond them rather than refusing them.

        What earlier answers taught is forgotten: it may be another server now.
        """
        with self._lock:
            self.slots = SlotCount(configured=self.slots.configured, reported=total)
            self._queued_inside = 1 if queues else 0
            self._wake_head()
            self._count()

    def busy(self) -> tuple:
        """``(generations running or waiting, slot limit)``: what placement weighs."""
        return self._running + len(self._line), self.slots.limit

    def snapshot(self) -> dict:
        """``in_flight``: generations running; ``queued``: requests waiting for a slot, in
        the proxy's line or inside the server."""
        with self._lock:
            running, waiting = self._counts()
            return {
                "slots": self.slots.limit,
                "slots_source": self.slots.source,
                "in_flight": running,
                "queued": waiting,
            }

    def _counts(self) -> tuple:
        limit = self.slots.limit
        running = self._running if limit is None else min(self._running, limit)
        return running, len(self._line) + self._running - running

    def _count(self) -> None:
        """Tell the watch the new counts (call holding the lock, after every change)."""
        self.watch.counted(*self._counts())

    # -- waiting ----------------------------------------------------------------------------

    def _wait(self, gone: Callable[[], bool], ticket: Optional[Ticket]) -> Ticket:
        with self._lock:
            if ticket is None:
                if not self._line and self._free():  # nobody ahead: no line to join
                    self._running += 1
                    self._count()
                    self.watch.admitted(0.0)
                    return Ticket(self.clock() + self.queue_timeout)
                if len(self._line) >= self.max_queue and not self._free():
                    raise QueueFullError(
                        f"all {self._slots_text()} of {self.name} are busy and "
                        f"{len(self._line)} requests already wait for one; retry shortly, or "
                        f"raise --max-queue{self.remedy}",
                        retry_after=RETRY_AFTER,
                    )
                ticket = Ticket(self.clock() + self.queue_timeout)
                self._line.append(ticket)
            else:
                self._line.appendleft(ticket)
            if ticket.wake is None:
                ticket.wake = threading.Condition(self._lock)
            self._count()
            try:
                while not (
                    self._line[0] is ticket and self._free() and self.clock() >= ticket.not_before
                ):
                    now = self.clock()
                    if now >= ticket.deadline:
                        raise QueueTimeoutError(
                            f"waited {self.queue_timeout:g}s for one of the "
                            f"{self._slots_text()} of {self.name}; retry shortly, or raise "
                            f"--queue-timeout{self.remedy}",
                            retry_after=RETRY_AFTER,
                        )
                    self._lock.release()  # the probe may block on a socket: not under the lock
                    try:
                        if gone():
                            raise ClientGoneError("the client went away while waiting for a slot")
                    finally:
                        self._lock.acquire()
                    pause = min(POLL, ticket.deadline - now)
                    if self._line[0] is ticket and self._free():
                        pause = min(pause, max(ticket.not_before - now, 0.0))
                    ticket.wake.wait(pause)
            except BaseException:
                self._line.remove(ticket)
                self._wake_head()  # the next in line may be free to go now
                self._count()
                raise
            self._line.popleft()
            self._running += 1
            self._wake_head()  # more than one slot may be free
            self._count()
            self.watch.admitted(self._waited(ticket))
            return ticket

    def _waited(self, ticket: Ticket) -> float:
        return self.clock() - (ticket.deadline - self.queue_timeout)

    def _wake_head(self) -> None:
        """Wake the first in line if a slot is free for it (call holding the lock)."""
        if self._line and self._free():
            self._line[0].wake.notify()

    def _free(self) -> bool:
        limit = self.slots.limit
        return limit is None or self._running < limit * (1 + self._queued_inside)

    def _slots_text(self) -> str:
        limit = self.slots.limit
        return "slots" if not limit else "1 slot" if limit == 1 else f"{limit} slots"


class Lease:
    """A slot of :class:`Admission` held for a ``with`` block, waited for on entry."""

    __slots__ = ("admission", "gone", "ticket")

    def __init__(
        self, admission: Admission, gone: Callable[[], bool], ticket: Optional[Ticket]
    ) -> None:
        self.admission = admission
        self.gone = gone
        self.ticket = ticket

    def __enter__(self) -> Ticket:
        # a line for the upstream's slots: not the proxy's own time
        with waiting(), queueing():
            self.ticket = self.admission._wait(self.gone, self.ticket)
        return self.ticket

    def __exit__(self, *exc_info) -> None:
        self.admission._release(self.ticket)
