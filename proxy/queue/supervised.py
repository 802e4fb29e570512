"""The queues the supervisor keeps for every worker: one :class:`Admission` per upstream, so
that a freed slot goes to the turn the whole machine says is next, and a key's cap counts its
slots in every worker.

A worker waits for its slot on a connection of its own and keeps it for as long as it leases
the slot (:mod:`proxy.queue.remote`): a worker that gives up closes it, and one that
dies drops it, and either way the slot is handed on at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from multiprocessing.connection import Connection
from typing import Optional

from proxy.core.caller import Caller
from proxy.core.errors import ClientGoneError, QueueFullError, QueueTimeoutError
from proxy.core.party import Leases, Party
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount
from proxy.queue.lease import Ticket

REFUSALS = {"queue_full": QueueFullError, "queue_timeout": QueueTimeoutError}


class Queues:
    """The upstreams' admissions, made at their first use with the settings the worker sends
    (the same in every worker), and the parties by key name: one count of each key's slots."""

    def __init__(self) -> None:
        self._admissions: dict = {}  # upstream: Admission
        self._leases: dict = {}  # key name: Leases
        self._by_worker: Counter = Counter()  # (upstream, worker pid): slots leased
        self._lock = threading.Lock()

    def admission(self, upstream: str, settings: tuple) -> Admission:
        """``settings``: the name errors give it, its slots by the operator, ``--max-queue``,
        ``--queue-timeout`` and what else gives more slots."""
        with self._lock:
            admission = self._admissions.get(upstream)
            if admission is None:
                name, configured, max_queue, queue_timeout, remedy = settings
                admission = self._admissions[upstream] = Admission(
                    name,
                    SlotCount(configured=configured),
                    max_queue=max_queue,
                    queue_timeout=queue_timeout,
                    remedy=remedy,
                )
            return admission

    def party(self, name: str, weight: float, priority: int, cap: int) -> Party:
        with self._lock:
            leases = self._leases.setdefault(name, Leases())
        return Party(name, weight, priority, cap, leases)

    def link(self) -> "WorkerLink":
        return WorkerLink(self)

    def add_leases(self, upstream: str, pid: int, change: int) -> None:
        with self._lock:
            self._by_worker[upstream, pid] += change
            if not self._by_worker[upstream, pid]:
                del self._by_worker[upstream, pid]

    def processes(self, upstream: str) -> dict:
        """Slots each worker has leased, by its pid."""
        with self._lock:
            return {pid: n for (name, pid), n in self._by_worker.items() if name == upstream}


class WorkerLink:
    """One worker connection's link to the queues, and its calls on them: at most one
    ticket, the one it leased a slot for; handed on when the connection drops."""

    def __init__(self, queues: Queues) -> None:
        self.queues = queues
        self.leased: Optional[tuple] = None  # (upstream, pid, admission, ticket)

    def answer(self, method: str, upstream: str, args: tuple, connection: Connection) -> tuple:
        settings, *args = args
        admission = self.queues.admission(upstream, settings)
        if method == "queue.wait":
            return self.wait(upstream, admission, connection, *args)
        if method == "queue.snapshot":
            shown = admission.snapshot()
            shown["processes"] = self.queues.processes(upstream)
            return "ok", shown, 0
        if method == "queue.report":
            if admission.reported() != tuple(args):  # a worker's first look, or another server
                admission.report(*args)
        elif method == "queue.saw_slot":
            admission.saw_slot(*args)
        elif self.leased is None:
            return "unavailable", "no slot is leased on this connection", 0
        elif method == "queue.accepted":
            admission.accepted(self.leased[3], *args)
        elif method == "queue.finished":
            admission.finished(self.leased[3])
        elif method == "queue.refused":
            ticket = self.leased[3]
            admission.refused(ticket)
            return "ok", (ticket.not_before, ticket.refusals), 0
        elif method == "queue.release":
            self.release()
        else:
            return "unavailable", f"the supervisor has no call {method!r}", 0
        return "ok", admission.busy(), 0

    def wait(
        self,
        upstream: str,
        admission: Admission,
        connection: Connection,
        party: tuple,
        again: Optional[tuple],
        pid: int,
    ) -> tuple:
        """Wait for a slot as the worker's request would (``again``: a refused ticket's place,
        back at the head of its key's queue); the worker's closing its connection is its
        client gone."""
        ticket = None
        if again is not None:
            deadline, stamp, order, joined, not_before, refusals = again
            ticket = Ticket(deadline, self.queues.party(*party), joined=joined, stamp=stamp,
                            order=order, not_before=not_before, refusals=refusals)  # fmt: skip
        caller = Caller(party=self.queues.party(*party), gone=connection.poll)
        try:
            ticket = admission.wait(caller, ticket)
        except (QueueFullError, QueueTimeoutError) as exc:
            return "refused", (exc.code, exc.message, exc.retry_after), 0
        except ClientGoneError:
            return "gone", None, 0
        self.leased = (upstream, pid, admission, ticket)
        self.queues.add_leases(upstream, pid, 1)
        placed = (ticket.deadline, ticket.stamp, ticket.order, ticket.joined)
        return "ok", (placed, admission.busy()), 0

    def release(self) -> None:
        """Hand the slot leased on this connection on, if one is."""
        if self.leased is not None:
            upstream, pid, admission, ticket = self.leased
            self.leased = None
            self.queues.add_leases(upstream, pid, -1)  # first: the slot may go to another at once
            admission.release(ticket)
