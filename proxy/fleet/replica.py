"""A replica: one backend of a model as the fleet uses it, kept serving while it is used, its slots
seated, its health and model card as the fleet reports them.

Two kinds answer the same calls: an upstream the proxy only reaches (:class:`Replica`) and one
whose server the proxy runs (:class:`ManagedReplica`), started when first needed and kept
running while it serves, restarted under a request that never reached it, its slots as the
server's keeper knows them.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import ContextManager, Optional

from proxy.backends.base import Backend
from proxy.core.answers import Health, ModelCard, ModelInfo
from proxy.core.errors import UNREACHABLE, UpstreamTimeoutError, UpstreamUnavailableError
from proxy.fleet.seats import Affinity, KeptSeats, RememberedSeats, Seats
from proxy.ops.measure import Measure
from proxy.servers.processes import ManagedServer
from proxy.servers.remote import RemoteServer

RESTARTS = 3  # times a request that never reached its server waits for a restart
DYING = 1.0  # seconds a server that stopped answering is given to be seen dead


class Replica:
    """One upstream of a model, by the name every proxy process knows it by (its URL)."""

    server: Optional[ManagedServer | RemoteServer] = None

    def __init__(self, name: str, backend: Backend) -> None:
        self.name = name
        self.backend = backend

    def serving(self, measure: Optional[Measure] = None) -> ContextManager[None]:
        """Keep the replica able to serve for the ``with`` block (a wait for it to start is
        ``measure``'s)."""
        return nullcontext()

    def starting(self) -> bool:
        """Whether a request would first wait for the server to start."""
        return False

    def restarts_after(
        self, exc: UpstreamUnavailableError | UpstreamTimeoutError, restarts: int
    ) -> bool:
        """Whether a request that failed with ``exc`` goes to this replica again after
        ``restarts`` tries, for its server is starting anew."""
        return False

    def seats(self, memory: Affinity) -> Seats:
        """Its slots, as the model's ``memory`` saw them serve."""
        return RememberedSeats(self.name, memory, self.backend)

    def probe(self) -> Health:
        return self.backend.probe()

    def info(self) -> ModelInfo:
        """The model it serves."""
        return self.backend.models()[0]


class ManagedReplica(Replica):
    """The one replica of a model whose server the proxy runs.

    Every call keeps the server running, starting it first if it is not; a request that
    never reached the server, because it died while the request waited for a slot, waits
    for the restart and goes again, as many times as :data:`RESTARTS`.
    """

    def __init__(
        self,
        server: ManagedServer | RemoteServer,
        backend: Backend,
        card: Optional[ModelCard] = None,
    ) -> None:
        """``server``: this process's, or a gunicorn worker's handle on the supervisor's;
        ``card``: what its model file says, for the time before its server has been asked."""
        super().__init__(server.url, backend)
        self.server = server
        self.card = card

    def serving(self, measure: Optional[Measure] = None) -> ContextManager[None]:
        return self.server.using(measure)

    def starting(self) -> bool:
        return not self.server.is_ready()

    def restarts_after(
        self, exc: UpstreamUnavailableError | UpstreamTimeoutError, restarts: int
    ) -> bool:
        return (
            isinstance(exc, UpstreamUnavailableError)
            and exc.code == UNREACHABLE
            and restarts < RESTARTS
            and self.server.gone(DYING)
        )

    def seats(self, memory: Affinity) -> Seats:
        return KeptSeats(self.server)

    def probe(self) -> Health:
        """A stopped server can serve (it starts on demand); a failed one says why."""
        managed = self.server.snapshot()
        if managed["state"] == "ready":
            report = self.backend.probe()
            return Health(report.ok, report.backend, {**report.detail, "managed": managed})
        return Health(
            managed["state"] != "failed",
            self.backend.name,
            {
                "upstream": managed["url"],
                "managed": managed,
                **({"error": managed["error"]} if "error" in managed else {}),
            },
        )

    def info(self) -> ModelInfo:
        """The model, with its server's card once the server has been asked, else its
        file's."""
        info = self.backend.models()[0]
        if info.card.digest or self.card is None:
            return info
        return replace(info, card=self.card)
