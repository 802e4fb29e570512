"""A replica: one backend of a model, as the fleet places requests on it and reports on it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from proxy.backends.base import Backend
from proxy.servers.processes import ManagedServer
from proxy.servers.remote import RemoteServer


class Placeable(Protocol):
    """What the fleet asks of a replica's backend beyond :class:`Backend`'s generating: how
    loaded it is."""

    def load(self) -> tuple:
        """``(generations running or waiting, how many can run at once or None)``."""

    def describe(self) -> dict:
        """Its line and server as known now, without asking anything (for status pages)."""

    def finds_slots(self) -> bool:
        """Whether the server itself sends a conversation to the slot holding its cache, so a
        slot the proxy names (from what it last saw) could only be out of date."""


@dataclass(frozen=True)
class Replica:
    """One upstream of a model, by the name every proxy process knows it by (its URL), and
    the server behind it when the proxy runs that server."""

    name: str
    backend: Backend  # one that is Placeable too
    server: Optional[ManagedServer | RemoteServer] = None

    def starting(self) -> bool:
        """Whether a request would first wait for the server to start."""
        return self.server is not None and not self.server.is_ready()
