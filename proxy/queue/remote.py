"""A gunicorn worker's view of one upstream's queue, which the supervisor keeps for every
worker (:mod:`proxy.queue.supervised`): a :class:`~proxy.queue.shared.SharedQueue`.

A request waits on a connection of its own and keeps it while it leases its slot; while it
waits, this worker watches its client, and closes the connection if the client goes (the
supervisor takes that as the request giving up). A supervisor that cannot be reached is an
``OSError``, on which the worker's own queue takes over.
"""

from __future__ import annotations

import os
from multiprocessing.connection import Connection
from typing import Optional, Protocol

from proxy.core.caller import Caller
from proxy.core.errors import ClientGoneError
from proxy.queue.admission import POLL
from proxy.queue.lease import Ticket
from proxy.queue.supervised import REFUSALS

HANDED_ON = object()  # a shared ticket whose slot was handed on: its connection is back in the pool


class Connections(Protocol):
    """The worker's connections to the supervisor (:class:`proxy.servers.remote.Supervised`):
    one taken for a call, given back once it is answered."""

    def take(self) -> Connection: ...

    def give(self, connection: Connection) -> None: ...


class SupervisedQueue:
    """Upstream ``upstream``'s queue in the supervisor; ``settings`` make it there at first
    use (see :meth:`proxy.queue.supervised.Queues.admission`)."""

    def __init__(self, supervised: Connections, upstream: str, settings: tuple) -> None:
        self.supervised = supervised
        self.upstream = upstream
        self.settings = settings
        self._busy: tuple = (0, None)

    def wait(self, caller: Caller, ticket: Optional[Ticket]) -> Ticket:
        party = caller.party
        again = None
        if ticket is not None:
            again = (ticket.deadline, ticket.stamp, ticket.order, ticket.joined,
                     ticket.not_before, ticket.refusals)  # fmt: skip
        connection = self.supervised.take()
        try:
            connection.send(
                (
                    "queue.wait",
                    self.upstream,
                    (self.settings, (party.name, party.weight, party.priority, party.cap),
                     again, os.getpid()),
                )
            )  # fmt: skip
            while not connection.poll(POLL):
                if caller.gone():
                    raise ClientGoneError("the client went away while waiting for a slot")
            outcome, value, _ = self._received(connection)
        except BaseException:
            connection.close()  # the supervisor hands on what it may have given
            raise
        if outcome == "refused":
            self.supervised.give(connection)
            code, message, retry_after = value
            raise REFUSALS[code](message, retry_after=retry_after)
        if outcome != "ok":
            connection.close()
            raise ConnectionError(f"the supervisor's queue answered {outcome}: {value}")
        (deadline, stamp, order, joined), self._busy = value
        if ticket is None:
            ticket = Ticket(deadline, party)
        ticket.stamp, ticket.order, ticket.joined = stamp, order, joined
        ticket.shared = connection
        return ticket

    def release(self, ticket: Ticket) -> None:
        connection, ticket.shared = ticket.shared, HANDED_ON
        self._busy = self._ask(connection, "queue.release")
        self.supervised.give(connection)

    def accepted(self, ticket: Ticket, slot: Optional[int]) -> None:
        self._busy = self._ask(ticket.shared, "queue.accepted", slot)

    def finished(self, ticket: Ticket) -> None:
        self._busy = self._ask(ticket.shared, "queue.finished")

    def refused(self, ticket: Ticket) -> None:
        ticket.not_before, ticket.refusals = self._ask(ticket.shared, "queue.refused")

    def saw_slot(self, slot_id: object) -> None:
        self._call("queue.saw_slot", slot_id)

    def report(self, total: Optional[int], queues: bool) -> None:
        self._call("queue.report", total, queues)

    def snapshot(self) -> dict:
        return self._call("queue.snapshot")

    def busy(self) -> tuple:
        return self._busy

    def _call(self, method: str, *args):
        connection = self.supervised.take()
        try:
            value = self._ask(connection, method, *args)
        except BaseException:
            connection.close()
            raise
        self.supervised.give(connection)
        return value

    def _ask(self, connection: Connection, method: str, *args):
        connection.send((method, self.upstream, (self.settings, *args)))
        outcome, value, _ = self._received(connection)
        if outcome != "ok":
            raise ConnectionError(f"the supervisor's queue answered {outcome}: {value}")
        return value

    @staticmethod
    def _received(connection: Connection) -> tuple:
        try:
            return connection.recv()
        except EOFError:
            raise ConnectionError("the supervisor closed the connection") from None
