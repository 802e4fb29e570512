"""Admission to one upstream: no more generations than it has slots, the rest wait in its queue.

Old servers (PowerInfer, llama.cpp of 2023) refuse at once when every slot is busy. So
requests take a lease before they reach the upstream; those beyond the slot count wait in
the queue, bounded in length (``--max-queue``) and in time (``--queue-timeout``), and a freed slot
goes to the key whose turn it is (:mod:`proxy.queue.fair`), within the slots its cap
allows (:mod:`proxy.core.party`). A request the server still refuses (another client or
proxy process shares it) goes back to the head of its key's queue: the client never hears of
it while the queue has room and time.

Current llama.cpp queues what it has no slot for. While one key alone asks, it is given one
request per slot beyond its slots, to wait inside it: a slot that frees then starts its next
generation at once, instead of after the answer's way back through the proxy and the next
request's way out (with a fast model, a quarter of the server's throughput at 16 clients).
Once another key has asked within :data:`SHARED_FOR` seconds, nothing more waits inside the
server, where it would be served first come first served, ahead of the other key's turn.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from typing import Callable, Iterator, Optional, TypeVar

from proxy.core.caller import NOBODY, Caller
from proxy.core.errors import (
    ClientGoneError,
    QueueFullError,
    QueueTimeoutError,
    SlotUnavailableError,
)
from proxy.core.party import Party
from proxy.queue.fair import FairQueue, SlotCount
from proxy.queue.lease import Attempt, Lease, Ticket

POLL = 0.2  # seconds between checks, while waiting, that the client is still there
FIRST_BACKOFF = 0.05  # a refused request waits this long before trying again, doubling
MAX_BACKOFF = 1.0
SLOT_RETRY_AFTER = 2  # seconds a client refused a slot is told to wait for one
SHARED_FOR = 5.0  # seconds after a key last asked that others share the server with it
T = TypeVar("T")


class QueueWatch:
    """Told how many generations run and how many requests wait, at every change, and how long
    each admitted request waited: what metrics show."""

    def counted(self, running: int, waiting: int) -> None:
        """Generations now running on the upstream, and requests waiting for a slot (in the
        proxy's queue or inside a server that queues)."""

    def admitted(self, waited: float) -> None:
        """A request got its slot after ``waited`` seconds (0: no queue)."""

    def turns(self, key: str, running: int, waiting: int, served: bool) -> None:
        """Key ``key`` now runs ``running`` generations here and has ``waiting`` requests in
        the queue; ``served``: one of them has just got its slot. Told only while keys are in
        use."""


class Admission:
    """Leases on one upstream's slots, handed out by turns.

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
        watch: QueueWatch = QueueWatch(),
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
        self._queue = FairQueue()
        self._running = 0
        self._running_by: dict = {}  # key name: generations it runs here
        self._asked: dict = {}  # key name: when it last asked here
        self._accepted: set = set()  # tickets the server is answering
        self._queued_inside = 0  # requests per slot the server may hold waiting
        # one lock; each waiter sleeps on a condition of its own, so a freed slot wakes the
        # head of the queue alone rather than every waiter
        self._lock = threading.Lock()

    def run(self, attempt: Callable[[], T], caller: Caller = NOBODY) -> T:
        """Call ``attempt`` holding a lease for ``caller``; a refusal sends it back to the head
        of the queue."""
        with closing(self.attempts(caller)) as attempts:
            for each in attempts:
                try:
                    return attempt()
                except SlotUnavailableError as exc:
                    each.refused(exc)
        raise AssertionError("an attempt returns or raises")  # pragma: no cover

    def stream(
        self,
        start: Callable[[], Iterator[T]],
        caller: Caller = NOBODY,
        ends: Callable[[T], bool] = lambda item: False,
        slot: Callable[[T], Optional[int]] = lambda item: None,
    ) -> Iterator[T]:
        """Yield what ``start()`` yields, holding a lease until it ends or is closed; a
        refusal before the first item sends the request back to the head of the queue. The
        item ``ends`` knows for the upstream's last has freed the server's slot; ``slot``
        reads the server's slot from the first item, where it names one (see
        :meth:`attempts`, which a route whose every item counts reads itself)."""
        with closing(self.attempts(caller)) as attempts:
            for attempt in attempts:
                try:
                    with closing(start()) as items:
                        for item in items:
                            attempt.began(slot(item))
                            if ends(item):
                                attempt.ended()
                            yield item
                    return
                except SlotUnavailableError as exc:
                    attempt.refused(exc)

    def attempts(self, caller: Caller = NOBODY) -> Iterator[Attempt]:
        """One request's attempts at the upstream, each holding a lease while it runs (the
        lease waited for by turns, given up once ``caller``'s client has gone): the next
        only once the server refused the last before it began answering, from the head of
        the queue. Close it once done: that hands the lease on.

        A generator the attempt's own code iterates: it is on no stack while the answer
        streams, which the per-token path wants.
        """
        ticket = None
        while True:
            with self.lease(caller, ticket) as ticket:
                attempt = Attempt(self, ticket)
                yield attempt
                if not attempt.was_refused:
                    return
                self.refused(ticket)

    def lease(self, caller: Caller = NOBODY, ticket: Optional[Ticket] = None) -> Lease:
        """Wait for a slot for ``caller`` (its turn by its party, given up once its client has
        gone), hold it for the ``with`` block, then hand it on.

        Pass back the ticket of a refused attempt to keep its place at the head of the queue
        and its original deadline.
        """
        return Lease(self, caller, ticket)

    def release(self, ticket: Ticket) -> None:
        """Hand ``ticket``'s slot on."""
        with self._lock:
            self._running -= 1
            self._unaccept(ticket)
            self._ran(ticket.party, -1)
            self._wake_head()
            self._count()
        if ticket.party.cap:  # outside the lock: it wakes this queue and others
            ticket.party.leases.give()

    def accepted(self, ticket: Ticket, slot: Optional[int]) -> None:
        """The server has begun answering ``ticket``'s request (in ``slot``, where it says)."""
        with self._lock:
            ticket.accepted, ticket.slot = True, slot
            self._accepted.add(ticket)

    def finished(self, ticket: Ticket) -> None:
        """The server's last item for ``ticket``'s request has freed its slot."""
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

    def reported(self) -> tuple:
        """What the server last said of its slots: their count, and whether it queues."""
        return self.slots.reported, bool(self._queued_inside)

    def busy(self) -> tuple:
        """``(generations running or waiting, slot limit)``: what placement weighs."""
        return self._running + len(self._queue), self.slots.limit

    def snapshot(self) -> dict:
        """``in_flight``: generations running; ``queued``: requests waiting for a slot, in
        the proxy's queue or inside the server."""
        with self._lock:
            running, waiting = self._counts()
            shown = {
                "slots": self.slots.limit,
                "slots_source": self.slots.source,
                "in_flight": running,
                "queued": waiting,
            }
            keys = self._by_key()
            if set(keys) - {""}:  # keys in use: each one's part of the queue
                shown["keys"] = keys
            return shown

    def _by_key(self) -> dict:
        waiting = self._queue.waiting()
        return {
            name: {"running": self._running_by.get(name, 0), "waiting": waiting.get(name, 0)}
            for name in sorted(set(waiting) | set(self._running_by))
        }

    def _counts(self) -> tuple:
        limit = self.slots.limit
        running = self._running if limit is None else min(self._running, limit)
        return running, len(self._queue) + self._running - running

    def _count(self, party: Optional[Party] = None) -> None:
        """Tell the watch the new counts (call holding the lock, after every change), and
        ``party``'s, whose place in the queue changed."""
        self.watch.counted(*self._counts())
        if party is not None:
            self._tell(party)

    def _tell(self, party: Party, served: bool = False) -> None:
        """Tell the watch ``party``'s part of the queue, while keys are in use (call holding
        the lock)."""
        if party.name:
            name = party.name
            running, waiting = self._running_by.get(name, 0), self._queue.waiting().get(name, 0)
            self.watch.turns(name, running, waiting, served)

    # -- waiting ----------------------------------------------------------------------------

    def wait(self, caller: Caller, ticket: Optional[Ticket]) -> Ticket:
        """``caller``'s ticket once a slot is its (``ticket``: a refused attempt's, back at
        the head of the queue), by turns; given up once its client has gone."""
        gone = caller.gone
        with self._lock:
            now = self.clock()
            if ticket is None:
                party = caller.party
                self._asked[party.name] = now
                if not self._queue and self._free(party) and not party.capped():
                    self._queue.passed(party)
                    return self._admit(Ticket(now + self.queue_timeout, party), 0.0)
                if len(self._queue) >= self.max_queue and not self._free(party):
                    raise QueueFullError(
                        f"all {self._slots_text()} of {self.name} are busy and "
                        f"{len(self._queue)} requests already wait for one; retry shortly, or "
                        f"raise --max-queue{self.remedy}",
                        retry_after=SLOT_RETRY_AFTER,
                    )
                ticket = Ticket(now + self.queue_timeout, party)
                self._queue.join(ticket, now)
            else:
                self._queue.rejoin(ticket)
            if ticket.party.cap:
                ticket.party.leases.watch(self, self._poke)
            if ticket.wake is None:
                ticket.wake = threading.Condition(self._lock)
            self._count(ticket.party)
            try:
                while not self._turn_of(ticket, now):
                    if now >= ticket.deadline:
                        raise QueueTimeoutError(
                            f"waited {self.queue_timeout:g}s for one of the "
                            f"{self._slots_text()} of {self.name}; retry shortly, or raise "
                            f"--queue-timeout{self.remedy}",
                            retry_after=SLOT_RETRY_AFTER,
                        )
                    self._lock.release()  # the probe may block on a socket: not under the lock
                    try:
                        if gone():
                            raise ClientGoneError("the client went away while waiting for a slot")
                    finally:
                        self._lock.acquire()
                    now = self.clock()  # others may have joined meanwhile
                    pause = min(POLL, ticket.deadline - now)
                    if self._queue.first(now, Party.capped) is ticket and self._free(ticket.party):
                        pause = min(pause, max(ticket.not_before - now, 0.0))
                    ticket.wake.wait(pause)
                    now = self.clock()
            except BaseException:
                self._queue.leave(ticket)
                self._wake_head()  # the next in the queue may be free to go now
                self._count(ticket.party)
                raise
            self._queue.served(ticket)
            self._asked[ticket.party.name] = now
            self._admit(ticket, now - ticket.joined)
            self._wake_head()  # more than one slot may be free
            return ticket

    def _turn_of(self, ticket: Ticket, now: float) -> bool:
        """Whether ``ticket`` may go now (call holding the lock)."""
        return (
            self._queue.first(now, Party.capped) is ticket
            and self._free(ticket.party)
            and now >= ticket.not_before
        )

    def _admit(self, ticket: Ticket, waited: float) -> Ticket:
        """``ticket`` takes a slot (call holding the lock)."""
        self._running += 1
        if ticket.party.cap:  # only a capped key's slots need counting across queues
            ticket.party.leases.take()
        self._ran(ticket.party, 1, served=True)
        self._count()
        self.watch.admitted(waited)
        return ticket

    def _ran(self, party: Party, change: int, served: bool = False) -> None:
        running = self._running_by.get(party.name, 0) + change
        if running:
            self._running_by[party.name] = running
        else:
            self._running_by.pop(party.name, None)
        self._tell(party, served)

    def _poke(self) -> None:
        """A key gave a slot back somewhere: its capped request here may go now."""
        with self._lock:
            self._wake_head()

    def _wake_head(self) -> None:
        """Wake the request whose turn it is if a slot is free for it (call holding the
        lock)."""
        if self._queue:
            first = self._queue.first(self.clock(), Party.capped)
            if first is not None and self._free(first.party):
                first.wake.notify()

    def _free(self, party: Party) -> bool:
        """Whether a slot is free for ``party`` (call holding the lock): one of the server's,
        or a place inside a server that queues while no other key shares it."""
        limit = self.slots.limit
        if limit is None or self._running < limit:
            return True
        return bool(self._queued_inside) and self._running < 2 * limit and not self._shared(party)

    def _shared(self, party: Party) -> bool:
        """Whether another key than ``party``'s has asked here lately (call holding the
        lock); keys that have not are forgotten."""
        since = self.clock() - SHARED_FOR
        for name, asked in list(self._asked.items()):
            if asked < since and name not in self._running_by:
                del self._asked[name]
        return any(name != party.name for name in self._asked)

    def _slots_text(self) -> str:
        limit = self.slots.limit
        return "slots" if not limit else "1 slot" if limit == 1 else f"{limit} slots"
