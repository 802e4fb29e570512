"""Admission through a queue that every process serving an upstream shares: the supervisor's
under gunicorn (:mod:`proxy.queue.supervised`), Redis's across proxies
(:mod:`proxy.queue.redisshared`). Each is a :class:`SharedQueue`.

The process's own queue, which :class:`SharedAdmission` inherits, takes over while the shared
queue cannot be reached: no request is refused for it, the outage is logged as it begins and
as it ends (:class:`~proxy.core.outages.Outages`), and the shared queue is tried again once every
:data:`PROBE_EVERY` seconds meanwhile. A ticket stays with the queue that handed it out.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional, Protocol

from proxy.core.caller import Caller
from proxy.core.errors import StoreUnavailableError
from proxy.core.outages import Outages
from proxy.queue.admission import Admission
from proxy.queue.lease import Ticket

PROBE_EVERY = 5.0  # seconds between two tries of a shared queue that cannot be reached
SHARED_QUEUE = "queue"  # the one store an outage of the shared queue is tracked as


class SharedQueue(Protocol):
    """One upstream's queue as the processes share it: the bookkeeping calls of
    :class:`~proxy.queue.admission.Admission`, each raising the shared queue's own error (an
    ``OSError``, a ``redis.RedisError``) while it cannot be reached."""

    def wait(self, caller: Caller, ticket: Optional[Ticket]) -> Ticket: ...

    def release(self, ticket: Ticket) -> None: ...

    def accepted(self, ticket: Ticket, slot: Optional[int]) -> None: ...

    def finished(self, ticket: Ticket) -> None: ...

    def refused(self, ticket: Ticket) -> None: ...

    def saw_slot(self, slot_id: object) -> None: ...

    def report(self, total: Optional[int], queues: bool) -> None: ...

    def snapshot(self) -> dict: ...

    def busy(self) -> tuple:
        """``(generations running or waiting, slot limit)`` as of the shared queue's last answer,
        without asking it again."""


class SharedAdmission(Admission):
    """An :class:`Admission` whose turns ``shared_queue`` keeps for every process; its own queue
    while ``shared_queue`` cannot be reached. ``outages`` is told when that begins and ends."""

    def __init__(self, shared_queue: SharedQueue, outages: Outages, **admission) -> None:
        super().__init__(**admission)
        self.shared_queue = shared_queue
        self.outages = outages
        self._mine: dict = {}  # key name: [running, waiting] of this process's shared tickets
        self._counting = threading.Lock()

    # -- the calls a lease makes ------------------------------------------------------------

    def wait(self, caller: Caller, ticket: Optional[Ticket]) -> Ticket:
        if ticket is not None and ticket.shared is None:
            return super().wait(caller, ticket)
        name, began = caller.party.name, self.clock()
        self._tell_mine(name, waiting=1)
        try:
            shared = self._reach(lambda: self.shared_queue.wait(caller, ticket))
        except StoreUnavailableError:
            return super().wait(caller, None)  # a refused shared ticket starts anew here
        finally:
            self._tell_mine(name, waiting=-1)
        self._tell_mine(name, running=1, served=True)
        self.watch.admitted(self.clock() - began)
        return shared

    def release(self, ticket: Ticket) -> None:
        if ticket.shared is None:
            return super().release(ticket)
        self._tell_mine(ticket.party.name, running=-1)
        self._quietly(lambda: self.shared_queue.release(ticket))

    def accepted(self, ticket: Ticket, slot: Optional[int]) -> None:
        if ticket.shared is None:
            return super().accepted(ticket, slot)
        if not self._told():
            self._quietly(lambda: self.shared_queue.accepted(ticket, slot))

    def finished(self, ticket: Ticket) -> None:
        if ticket.shared is None:
            return super().finished(ticket)
        if not self._told():
            self._quietly(lambda: self.shared_queue.finished(ticket))

    def _told(self) -> bool:
        """Whether the slots are known from the operator or the server: then what the server
        is answering teaches nothing, and the shared queue need not hear of it (two round trips a
        request fewer)."""
        return self.slots.source in ("configured", "reported")

    def refused(self, ticket: Ticket) -> None:
        if ticket.shared is None:
            return super().refused(ticket)
        self._quietly(lambda: self.shared_queue.refused(ticket))

    # -- what the server says of its slots --------------------------------------------------

    def saw_slot(self, slot_id: object) -> None:
        super().saw_slot(slot_id)
        self._quietly(lambda: self.shared_queue.saw_slot(slot_id))

    def report(self, total: Optional[int], queues: bool = False) -> None:
        super().report(total, queues)
        self._quietly(lambda: self.shared_queue.report(total, queues))

    # -- what is shown ----------------------------------------------------------------------

    def busy(self) -> tuple:
        """What placement weighs: the shared queue's count as of its last answer."""
        if not self.outages.is_up(SHARED_QUEUE):
            return super().busy()
        running, limit = self.shared_queue.busy()
        return running, limit if limit is not None else self.slots.limit

    def snapshot(self) -> dict:
        """The shared queue's picture, whichever process shows it; this process's own while it
        cannot be reached (``shared`` says which)."""
        try:
            shown = self._reach(self.shared_queue.snapshot)
        except StoreUnavailableError:
            return {**super().snapshot(), "shared": False}
        return {**shown, "shared": True}

    # -- the shared queue's outages ---------------------------------------------------------

    def _reach(self, call: Callable):
        with self.outages.reaching(SHARED_QUEUE):
            return call()

    def _quietly(self, call: Callable) -> None:
        """A call whose failure has nothing to change: a lease the shared queue has lost ends by its
        own expiry (Redis) or with its connection (the supervisor)."""
        try:
            self._reach(call)
        except StoreUnavailableError:
            pass

    def _tell_mine(self, name: str, running: int = 0, waiting: int = 0, served=False) -> None:
        """This process's part of the shared queue, for ``/metrics``: each process tells its
        own, and their sum is the shared queue's."""
        with self._counting:
            mine = self._mine.setdefault(name, [0, 0])
            mine[0] += running
            mine[1] += waiting
            if mine == [0, 0]:
                del self._mine[name]
            ran = sum(each[0] for each in self._mine.values())
            waits = sum(each[1] for each in self._mine.values())
            self.watch.counted(ran, waits)
            if name:
                self.watch.turns(name, mine[0], mine[1], served)
