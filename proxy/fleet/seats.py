"""Which slot of its replica a conversation's turn runs in: one protocol the fleet asks before
each turn and tells after it.

A server the proxy only reaches is answered from this process's memory of where each
conversation was served (:class:`RememberedSeats`, over the model's
:class:`~proxy.fleet.affinity.Affinity`); a server the proxy runs, by its slot keeper
(:class:`KeptSeats`), which restores a conversation's cache from disk into the slot first.
"""

from __future__ import annotations

from typing import Optional, Protocol

from proxy.backends.base import Backend
from proxy.core.types import GenerationRequest
from proxy.fleet.affinity import Affinity


class Seats(Protocol):
    """Who holds each slot of one replica."""

    def prepare(self, conversation: Optional[str], request: GenerationRequest) -> Optional[int]:
        """The slot to name for ``conversation``'s turn (``None``: the server picks),
        reserved until :meth:`release`."""

    def release(self, slot: Optional[int]) -> None:
        """The turn named to ``slot`` has ended."""

    def served(self, conversation: Optional[str], slot: Optional[int]) -> None:
        """``conversation``'s turn was answered from ``slot``: the slot holds it now."""


class RememberedSeats:
    """The slot this process last saw serve a conversation, named unless the client chose one
    or the server finds it better itself: a slot named from memory may since have been given
    to a new conversation, and the turn would then wait for it and evict that one's cache."""

    def __init__(self, replica: str, memory: Affinity, backend: Backend) -> None:
        self.replica = replica
        self.memory = memory
        self.backend = backend

    def prepare(self, conversation: Optional[str], request: GenerationRequest) -> Optional[int]:
        if conversation is None or request.slot is not None or self.backend.finds_slots():
            return None
        return self.memory.pin(conversation, self.replica)

    def release(self, slot: Optional[int]) -> None:
        self.memory.release(self.replica, slot)

    def served(self, conversation: Optional[str], slot: Optional[int]) -> None:
        if conversation is not None:
            self.memory.served(conversation, self.replica, slot)


class KeptSeats:
    """The slots of a server the proxy runs, as its slot keeper knows them. A chat is named a
    slot even when new: it goes to the server's chat layer, whose answers do not say which
    slot served them, and its cache is saved from there; a raw prompt's answer says."""

    def __init__(self, server) -> None:
        """``server``: a :class:`~proxy.servers.processes.ManagedServer`, or a gunicorn
        worker's :class:`~proxy.servers.remote.RemoteServer` handle on one."""
        self.server = server

    def prepare(self, conversation: Optional[str], request: GenerationRequest) -> Optional[int]:
        return self.server.prepare(conversation, request.slot, new=request.is_chat)

    def release(self, slot: Optional[int]) -> None:
        """Nothing to release: the keeper knows only who a slot holds."""

    def served(self, conversation: Optional[str], slot: Optional[int]) -> None:
        self.server.served(conversation, slot)


def answered_from(answered: Optional[int], named: Optional[int]) -> Optional[int]:
    """The slot that served a turn: as the answer says (``/completion``), else as the turn
    named it (a chat answer says nothing of slots)."""
    return answered if answered is not None else named
