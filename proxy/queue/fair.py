"""The bookkeeping of one upstream's slots: in which order the requests waiting for them get
them (:class:`FairQueue`), and how many there are (:class:`SlotCount`). Pure: the caller
serialises access.

Turns by key, with start-time fair queueing: each request joining the queue is stamped with a
virtual start, the later of the queue's virtual time and where its key's previous request ended;
a key of ``weight`` w advances by 1/w per request. The next free slot goes to the lowest stamp,
so a key that has had the least recent service goes first, a key alone gets every slot (nothing
waits while a slot is free), and a key's own requests keep their order.

Priorities come before turns: the lowest priority number goes first. A request's priority
improves by one step every :data:`AGE_EVERY` seconds it waits, so a batch at the lowest priority
reaches the highest within half a minute and never waits forever.

How many slots: three sources, most trusted first: the operator (``--slots``), the server
itself (current llama.cpp reports ``total_slots``), and, for servers that say nothing
(PowerInfer, llama.cpp of 2023), what their answers reveal: every slot id seen exists, and a
"no free slot" refusal while ``n`` of our generations run means the server holds no more than
``n``.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Protocol

from proxy.core.party import Party

AGE_EVERY = 0.1  # seconds of waiting that raise a request's priority by one step


class Waiter(Protocol):
    """What the queue reads and stamps on a waiting request."""

    party: Party
    joined: float  # when it joined, on the queue's clock
    stamp: float  # its virtual start
    order: int  # its arrival, to break ties


class FairQueue:
    """Requests waiting for one upstream's slots, each key's in a flow of its own."""

    def __init__(self, age_every: float = AGE_EVERY) -> None:
        self.age_every = age_every
        self._flows: dict = {}  # (key name, priority): deque of its waiting requests
        self._ends: dict = {}  # key name: the virtual end of its latest request
        self._virtual = 0.0  # the stamp of the request served last
        self._arrivals = itertools.count()
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[Waiter]:
        for flow in self._flows.values():
            yield from flow

    def join(self, request: Waiter, now: float) -> None:
        """``request`` waits from ``now``, behind its key's requests of its priority."""
        party = request.party
        request.stamp = max(self._virtual, self._ends.get(party.name, 0.0))
        request.order, request.joined = next(self._arrivals), now
        self._ends[party.name] = request.stamp + 1.0 / party.weight
        self._flow(party).append(request)
        self._length += 1

    def passed(self, party: Party) -> None:
        """A request of ``party``'s took a free slot without waiting: it counts in its key's
        turns as one that waited would (else the key's next request would tie with those
        of keys not yet served)."""
        stamp = max(self._virtual, self._ends.get(party.name, 0.0))
        self._ends[party.name] = stamp + 1.0 / party.weight
        self._virtual = stamp

    def rejoin(self, request: Waiter) -> None:
        """``request``, refused by the server, waits again first of its flow, as stamped."""
        self._flow(request.party).appendleft(request)
        self._length += 1

    def leave(self, request: Waiter) -> None:
        """``request`` stops waiting: it gave up, or got its slot (:meth:`served`)."""
        party = request.party
        flow = self._flows[party.name, party.priority]
        flow.remove(request)
        if not flow:
            del self._flows[party.name, party.priority]
        self._length -= 1

    def served(self, request: Waiter) -> None:
        """``request`` got its slot: the queue's virtual time reaches its stamp."""
        self.leave(request)
        self._virtual = max(self._virtual, request.stamp)

    def first(
        self, now: float, capped: Callable[[Party], bool] = lambda party: False
    ) -> Optional[Waiter]:
        """The request the next free slot goes to; none of a party ``capped`` (its cap
        reached)."""
        heads = [flow[0] for flow in self._flows.values() if not capped(flow[0].party)]
        priorities = sorted({head.party.priority for head in heads})
        best, best_rank = None, None
        for head in heads:
            rank = (self._band(head, now, priorities), head.stamp, head.order)
            if best_rank is None or rank < best_rank:
                best, best_rank = head, rank
        return best

    def _band(self, head: Waiter, now: float, priorities: list) -> int:
        """The priority ``head`` competes at: the best of those waiting that its own, aged,
        has reached. Ageing lifts a request past other priorities, never past its equals;
        a clock read before ``head`` joined counts as no wait."""
        aged = head.party.priority - max(now - head.joined, 0.0) / self.age_every
        return next(priority for priority in priorities if priority >= aged)

    def waiting(self) -> dict:
        """Requests waiting, by key name."""
        counts: dict = {}
        for (name, _), flow in self._flows.items():
            counts[name] = counts.get(name, 0) + len(flow)
        return counts

    def _flow(self, party: Party) -> deque:
        flow = self._flows.get((party.name, party.priority))
        if flow is None:
            flow = self._flows[party.name, party.priority] = deque()
        return flow


@dataclass
class SlotCount:
    configured: Optional[int] = None  # --slots
    reported: Optional[int] = None  # the server's own count
    seen: int = 0  # highest slot id seen in an answer, plus one
    ceiling: Optional[int] = None  # lowest count a refusal has shown; None until one

    @property
    def limit(self) -> Optional[int]:
        """Generations to run at once; ``None`` while nothing is known (send, and learn)."""
        if self.configured:
            return self.configured
        if self.reported:
            return self.reported
        if self.ceiling is None:
            return None
        return max(self.seen, self.ceiling, 1)

    @property
    def source(self) -> str:
        if self.configured:
            return "configured"
        if self.reported:
            return "reported"
        return "learned" if self.ceiling is not None or self.seen else "unknown"

    def saw_slot(self, slot_id: object) -> None:
        """An answer came from slot ``slot_id``: the server has at least ``slot_id + 1``."""
        if isinstance(slot_id, int) and not isinstance(slot_id, bool) and 0 <= slot_id < 4096:
            self.seen = max(self.seen, slot_id + 1)

    def refused(self, others_running: int) -> None:
        """The server had no free slot while ``others_running`` of ours were running."""
        shown = max(others_running, 1)
        self.ceiling = shown if self.ceiling is None else min(self.ceiling, shown)
