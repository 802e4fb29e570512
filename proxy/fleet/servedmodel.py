"""A model as the fleet serves it: its replicas, the conversations it has placed on them
(with Redis, those every proxy placed), the slots of each replica, and the spec it came from;
and where a request goes among its replicas."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

from proxy.config.catalog import ModelSpec, with_defaults
from proxy.core.answers import Served
from proxy.core.conversation import conversation_id
from proxy.core.types import GenerationRequest
from proxy.fleet.health import Rotation
from proxy.fleet.liveness import LiveConversations
from proxy.fleet.placement import ReplicaLoad, choose
from proxy.fleet.replica import Replica
from proxy.fleet.seats import Affinity


@dataclass
class ServedModel:
    """A model's replicas, the conversations it has placed (and, with ``shared``, those
    every proxy placed), the slots of each replica, and the spec it came from."""

    spec: ModelSpec
    replicas: tuple
    rotation: Rotation
    affinity: Affinity = field(default_factory=Affinity)
    shared: Optional[LiveConversations] = None
    seats: dict = field(init=False, repr=False)  # replica name -> its Seats
    _placing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.seats = {replica.name: replica.seats(self.affinity) for replica in self.replicas}
        # a server the proxy runs keeps its conversations' caches whatever the affinity
        self._follows_conversations = self.spec.affinity or any(
            r.server is not None for r in self.replicas
        )

    def conversation(self, request: GenerationRequest) -> Optional[str]:
        """The id of the conversation ``request`` is a turn of, computed in this one place;
        ``None`` where the model places no conversation."""
        return conversation_id(request) if self._follows_conversations else None

    def taking(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` as this model takes it: with its defaults; a body the proxy could not
        translate goes only to a server of its client's API."""
        verbatim = request.verbatim
        if verbatim is not None and verbatim.untranslated and self.spec.backend != verbatim.api:
            raise verbatim.untranslated
        return with_defaults(request, self.spec.defaults)

    def served(self, asked: "ServedModel", told: Optional[Served]) -> Served:
        """Who answered: this model, another than the one ``asked`` for or not, with what its
        backend ``told`` of its request (the fields its filters changed, the service tier
        it was priced at)."""
        return Served(
            counted_id(self.spec),
            self is not asked,
            *((told.stripped, told.replaced, told.tier) if told is not None else ()),
        )

    def unreachable(self) -> bool:
        """Whether no connection reached any of its replicas when last tried, and no probe
        has reached one since."""
        names = [replica.name for replica in self.replicas]
        return bool(names) and all(self.rotation.unreachable(name) for name in names)

    def cold(self) -> bool:
        """Whether a request would wait for a server to start (or swap in) whichever replica
        it went to."""
        return all(replica.starting() for replica in self.replicas)

    def loads(self, exclude: Sequence[Replica] = ()) -> list:
        return [
            ReplicaLoad(r.name, self.rotation.healthy(r.name), *r.backend.load())
            for r in self.replicas
            if r not in exclude
        ]

    def place(
        self, conversation: Optional[str], exclude: Sequence[Replica] = (), continuing: bool = False
    ) -> Replica:
        if len(self.replicas) == 1:  # nothing to choose: placement would pick it anyway
            return self.replicas[0]
        if conversation is None or self.shared is None:
            remembered = self.affinity.replica(conversation) if conversation else None
            name = choose(
                conversation, self.loads(exclude), continuing=continuing, remembered=remembered
            ).name
        else:
            with self._placing:  # one at a time here: each sees the counts the last one left
                name = self._place_shared(conversation, self.loads(exclude), continuing)
        return next(r for r in self.replicas if r.name == name)

    def _place_shared(self, conversation: str, loads: list, continuing: bool) -> str:
        """Placement with the live conversations every proxy placed (hashing alone while
        Redis cannot say)."""
        looked = self.shared.look(conversation, [load.name for load in loads])
        if looked is None:
            return choose(
                conversation,
                loads,
                continuing=continuing,
                remembered=self.affinity.replica(conversation),
            ).name
        loads = [replace(load, live=looked.live[load.name]) for load in loads]
        remembered = looked.placed or self.affinity.replica(conversation)
        name = choose(conversation, loads, continuing=continuing, remembered=remembered).name
        self.shared.place(conversation, name, looked.placed)
        return name


def counted_id(spec: ModelSpec) -> str:
    """The id metrics, usage and prices count a model under."""
    return spec.id or "default"
