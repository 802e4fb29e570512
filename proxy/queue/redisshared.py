"""One upstream's queue in Redis, shared by every proxy with ``--redis-url``: a
:class:`~proxy.queue.shared.SharedQueue`.

The same turns as the process's own queue (:mod:`proxy.queue.fair`, the slots of
:mod:`proxy.queue.admission`), decided by Lua scripts on Redis's clock, so that proxies on
machines whose clocks differ agree: each key's requests in a list of its own per priority,
stamped with their virtual start; the slots leased in a sorted set scored by when their lease
ends; each key's slots over every upstream in a sorted set of its own, for its cap. A freed
slot wakes the waiter whose turn it is by a push on its own list, which it waits on with a
blocking pop; each waiter also looks in once every :data:`HEARTBEAT` seconds, which keeps it
counted as alive.

A proxy that dies leaves leases that end within :data:`LEASE` seconds, and waiters that are
dropped as soon as they are found silent for as long; a lease is renewed while its request
runs (:class:`Renewals`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Callable, Optional

from proxy.core.caller import Caller
from proxy.core.errors import ClientGoneError, QueueFullError, QueueTimeoutError
from proxy.queue.admission import FIRST_BACKOFF, MAX_BACKOFF, POLL, SHARED_FOR, SLOT_RETRY_AFTER
from proxy.queue.fair import AGE_EVERY
from proxy.queue.lease import Ticket
from proxy.queue.redisscripts import SCRIPTS

LEASE = 6.0  # seconds a slot or a place in the queue outlives a proxy that stopped renewing it
RENEW_EVERY = LEASE / 3
HEARTBEAT = 1.0  # seconds between a waiter's looks at the queue when nothing woke it
PREFIX = "oai-proxy:{queue}:"  # one hash slot for every queue: a cap counts across them


class Renewals:
    """The leases this process has in Redis, renewed every :data:`RENEW_EVERY` seconds by a
    thread of its own while there are any."""

    def __init__(self, every: float = RENEW_EVERY) -> None:
        self.every = every
        self._leases: dict = {}  # queue: set of its tickets' ids
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def add(self, queue: "RedisQueue", ticket: str) -> None:
        with self._lock:
            self._leases.setdefault(queue, set()).add(ticket)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="leases")
                self._thread.start()

    def drop(self, queue: "RedisQueue", ticket: str) -> None:
        with self._lock:
            self._leases.get(queue, set()).discard(ticket)

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            with self._lock:
                due = {queue: list(ids) for queue, ids in self._leases.items() if ids}
            for queue, ids in due.items():
                queue.renew(ids)


class RedisQueue:
    """Upstream ``upstream``'s queue in Redis (``client``): ``name`` and ``remedy`` for its
    errors, ``configured`` its slots by the operator (0: none), and the queue's bounds."""

    def __init__(
        self,
        client,
        upstream: str,
        renewals: Renewals,
        *,
        name: str,
        configured: int,
        max_queue: int,
        queue_timeout: float,
        remedy: str = "",
        lease: float = LEASE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.renewals = renewals
        self.name, self.remedy = name, remedy
        self.max_queue, self.queue_timeout = max_queue, queue_timeout
        self.clock = clock
        self._prefix = f"{PREFIX}{upstream}:"
        self._common = [configured or 0, AGE_EVERY, SHARED_FOR, lease]
        self._heartbeat = min(HEARTBEAT, lease / 3)  # a waiter looks in well within its lease
        self._scripts = {name: client.register_script(text) for name, text in SCRIPTS.items()}
        self._busy: tuple = (0, None)

    # -- the calls a lease makes ------------------------------------------------------------

    def wait(self, caller: Caller, ticket: Optional[Ticket]) -> Ticket:
        if ticket is None:
            ticket = Ticket(
                self.clock() + self.queue_timeout, caller.party, shared=uuid.uuid4().hex
            )
            status, limit = self._run("join", ticket.shared, *self._party(ticket))
        else:
            status, limit = self._run("rejoin", ticket.shared)
        try:
            status = self._await(caller, ticket, status, limit)
        except BaseException:
            self._run("leave", ticket.shared)
            raise
        self.renewals.add(self, ticket.shared)
        return ticket

    def _await(self, caller: Caller, ticket: Ticket, status: int, limit: Optional[int]) -> int:
        """Wait for ``ticket``'s turn: woken by a push, or looking in every
        :data:`HEARTBEAT` seconds and once its back-off from a refusal has passed."""
        wake = f"{self._prefix}wake:{ticket.shared}"
        look_at = self.clock() + self._heartbeat
        while status != 1:
            if status == -1:
                raise QueueFullError(
                    f"all {slots_text(limit)} of {self.name} are busy and {self.max_queue} "
                    f"requests already wait for one; retry shortly, or raise --max-queue"
                    f"{self.remedy}",
                    retry_after=SLOT_RETRY_AFTER,
                )
            if status == -2:  # silent for a lease (a stalled process): queued again
                status, limit = self._run("join", ticket.shared, *self._party(ticket))
                continue
            now = self.clock()
            if now >= ticket.deadline:
                raise QueueTimeoutError(
                    f"waited {self.queue_timeout:g}s for one of the {slots_text(limit)} of "
                    f"{self.name}; retry shortly, or raise --queue-timeout{self.remedy}",
                    retry_after=SLOT_RETRY_AFTER,
                )
            if caller.gone():
                raise ClientGoneError("the client went away while waiting for a slot")
            pause = max(min(POLL, ticket.deadline - now, look_at - now), 0.01)
            woken = self.client.blpop([wake], timeout=pause)
            if woken or self.clock() >= look_at:
                status, limit = self._run("try", ticket.shared)
                look_at = self.clock() + self._heartbeat
        return status

    def release(self, ticket: Ticket) -> None:
        self.renewals.drop(self, ticket.shared)
        self._run("release", ticket.shared)

    def accepted(self, ticket: Ticket, slot: Optional[int]) -> None:
        self._run("accepted", ticket.shared, 1, "" if slot is None else slot)

    def finished(self, ticket: Ticket) -> None:
        self._run("accepted", ticket.shared, 0, "" if ticket.slot is None else ticket.slot)

    def refused(self, ticket: Ticket) -> None:
        ticket.refusals += 1
        backoff = min(FIRST_BACKOFF * 2 ** (ticket.refusals - 1), MAX_BACKOFF)
        self._run("refused", ticket.shared, backoff)

    def saw_slot(self, slot_id: object) -> None:
        if isinstance(slot_id, int) and not isinstance(slot_id, bool) and 0 <= slot_id < 4096:
            self._run("saw_slot", slot_id)

    def report(self, total: Optional[int], queues: bool) -> None:
        self._run("report", total or 0, int(queues))

    def renew(self, tickets: list) -> None:
        try:
            self._run("renew", *tickets)
        except Exception:  # Redis gone: the leases end, and the requests run on meanwhile
            pass

    # -- what is shown ----------------------------------------------------------------------

    def snapshot(self) -> dict:
        limit, source, running, waiting, by_key, by_process = self._script("look")
        limit = None if limit < 0 else limit
        self._busy = (running + waiting, limit)
        shown = {
            "slots": limit,
            "slots_source": source.decode(),
            "in_flight": running if limit is None else min(running, limit),
            "queued": waiting + (0 if limit is None else max(running - limit, 0)),
            "processes": {
                by_process[i].decode(): by_process[i + 1] for i in range(0, len(by_process), 2)
            },
        }
        keys = {
            by_key[i].decode(): {"running": by_key[i + 1], "waiting": by_key[i + 2]}
            for i in range(0, len(by_key), 3)
        }
        if set(keys) - {""}:
            shown["keys"] = dict(sorted(keys.items()))
        return shown

    def busy(self) -> tuple:
        return self._busy

    # -- Redis ------------------------------------------------------------------------------

    def _run(self, script: str, *args) -> tuple:
        """``script``'s status, having kept what it says of the queue's size."""
        status, busy, limit = self._script(script, *args)
        limit = None if limit < 0 else limit
        self._busy = (busy, limit)
        return status, limit

    def _script(self, script: str, *args):
        return self._scripts[script](keys=[self._prefix], args=[*self._common, *args])

    def _party(self, ticket: Ticket) -> list:
        party = ticket.party
        return [party.name, party.weight, party.priority, party.cap, self.max_queue,
                self._process()]  # fmt: skip

    @staticmethod
    def _process() -> str:
        """This process, as the picture names it: its host and pid."""
        return f"{socket.gethostname()}:{os.getpid()}"


def slots_text(limit: Optional[int]) -> str:
    return "slots" if not limit else "1 slot" if limit == 1 else f"{limit} slots"
