"""Where a conversation sits: on which replica and in which slot.

One protocol the fleet asks before each turn and tells after it.

A server the proxy only reaches is answered from this process's memory of where each
conversation was served (:class:`RememberedSeats`, over the model's
:class:`~proxy.fleet.seats.Affinity`); a server the proxy runs, by its slot keeper
(:class:`KeptSeats`), which restores a conversation's cache from disk into the slot first.

Which replica and slot last served each conversation, as this process saw it.

Rendezvous hashing (:mod:`proxy.fleet.placement`) names a conversation's replica with no memory
at all; this memory adds what only the serving process can know: the slot inside the replica
that holds the conversation's cache (sent as ``id_slot``/``slot_id`` on the next turn), and
where a conversation went when its own replica was too busy. A slot holds one conversation at a
time: serving another there forgets the first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional, Protocol

from proxy.backends.base import Backend
from proxy.core.types import GenerationRequest


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


MAX_CONVERSATIONS = 65536


class Affinity:
    """A bounded, thread-safe map from conversations to (replica, slot)."""

    def __init__(self, capacity: int = MAX_CONVERSATIONS) -> None:
        self.capacity = capacity
        self._where: OrderedDict = OrderedDict()  # conversation -> (replica, slot or None)
        self._occupant: dict = {}  # (replica, slot) -> conversation
        self._pinned: set = set()  # (replica, slot) pinned by a generation in flight
        self._lock = threading.Lock()

    def replica(self, conversation: str) -> Optional[str]:
        """The replica that last served ``conversation``, if this process remembers one."""
        with self._lock:
            place = self._where.get(conversation)
        return place[0] if place else None

    def pin(self, conversation: str, replica: str) -> Optional[int]:
        """The slot of ``replica`` holding ``conversation``'s cache, reserved until :meth:`release`.

        ``None`` when no slot is known for it there, or when one of this process's
        generations already runs in it (the server then picks, and the answer says where).
        """
        with self._lock:
            place = self._where.get(conversation)
            if place is None or place[0] != replica or place[1] is None:
                return None
            if place in self._pinned:
                return None
            self._pinned.add(place)
            return place[1]

    def release(self, replica: str, slot: Optional[int]) -> None:
        """A generation pinned to ``slot`` of ``replica`` has ended."""
        if slot is not None:
            with self._lock:
                self._pinned.discard((replica, slot))

    def served(self, conversation: str, replica: str, slot: Optional[int]) -> None:
        """``conversation``'s turn ran on ``replica`` (in ``slot``, when the server said)."""
        place = (replica, slot)
        with self._lock:
            if slot is not None:
                previous = self._occupant.get(place)
                if previous is not None and previous != conversation:
                    self._where.pop(previous, None)
                self._occupant[place] = conversation
            old = self._where.pop(conversation, None)
            if old is not None and old != place and self._occupant.get(old) == conversation:
                del self._occupant[old]
            self._where[conversation] = place
            while len(self._where) > self.capacity:
                forgotten, where = self._where.popitem(last=False)
                if self._occupant.get(where) == forgotten:
                    del self._occupant[where]

    def forget_replica(self, replica: str) -> None:
        """``replica`` restarted or left: the caches it held are gone."""
        with self._lock:
            for conversation in [k for k, (name, _) in self._where.items() if name == replica]:
                del self._where[conversation]
            for place in [p for p in self._occupant if p[0] == replica]:
                del self._occupant[place]
