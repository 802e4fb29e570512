"""Where a request runs among a model's replicas: pure functions of the request and the replicas.

A conversation's KV cache lives in the replica (and the slot) that served its previous turn;
sending the next turn there lets the server re-evaluate only the new tokens. Which replica
that is must be computable by every proxy process alike, with no shared state, so the first
choice is rendezvous hashing of the conversation over the healthy replicas: each
replica scores ``hash(conversation, replica)`` and the highest score wins. Removing a replica moves
only the conversations it held; adding one takes an even share from the others.

A replica already past its load threshold is passed over for the least busy one (a
conversation that goes on is given a higher threshold than a new one: elsewhere its whole
history would be evaluated again), and a process that remembers where it last sent a
conversation sends it there again while that replica has room.

Hashing alone leaves to luck how many live conversations share a replica: a replica given
more of them than it has slots evicts their caches in turn. When every proxy shares the
count of live conversations on each replica (``ReplicaLoad.live``), a new conversation skips
a replica already past ``1 + BALANCE`` times the mean count per slot, in hashing order
(consistent hashing with bounded loads): the split no longer depends on luck, and a replica
leaving still moves only its own conversations.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from proxy.core.types import GenerationRequest

# How loaded a replica may be before a request goes elsewhere: a new conversation moves as
# soon as its replica has no free slot (its prompt is new everywhere), one that goes on waits
# a little longer, for elsewhere its whole history would be evaluated again.
NEW_THRESHOLD = 1.0
CONTINUING_THRESHOLD = 1.5
# How far past the mean count of live conversations per slot a replica may be before new
# conversations skip it.
BALANCE = 0.1


@dataclass(frozen=True)
class ReplicaLoad:
    """What placement knows of one replica at the moment of choosing."""

    name: str  # its URL: the same in every proxy process
    healthy: bool = True
    busy: int = 0  # generations of this process in flight or waiting for it
    slots: Optional[int] = None  # how many it runs at once; None while unknown
    live: Optional[int] = None  # live conversations every proxy placed on it; None: unknown

    @property
    def load(self) -> float:
        """Busy share of its slots; an unknown count is taken as one slot."""
        return self.busy / (self.slots or 1)


def continues(request: GenerationRequest) -> bool:
    """Whether ``request`` goes on a conversation (its earlier turns may be cached)."""
    return request.is_chat and sum(m.role == "user" for m in request.messages) > 1


def rank(conversation: str, names: Sequence[str]) -> list:
    """``names`` from the most to the least preferred for ``conversation`` (rendezvous hashing)."""
    keyed = hashlib.blake2b(
        f"{conversation}\x1f".encode(), digest_size=8
    )  # hashed once, then copied

    def score(name: str) -> bytes:
        scored = keyed.copy()
        scored.update(name.encode())
        return scored.digest()

    return sorted(names, key=score, reverse=True)


def choose(
    conversation: Optional[str],
    replicas: Sequence[ReplicaLoad],
    *,
    continuing: bool = False,
    remembered: Optional[str] = None,
    ranking: Callable[[str, Sequence[str]], list] = rank,
) -> ReplicaLoad:
    """The replica to send a request to.

    ``conversation`` is the request's (``None``: no affinity, least busy wins). A conversation
    placed before (``remembered``) stays; a new one takes the first replica in hashing order
    within the bounds of the shared counts. A replica whose load has reached the threshold
    (higher for a ``continuing`` conversation) is passed over while another is below it.
    Replicas out of rotation are chosen only when none is healthy: then the request itself
    probes them. ``ranking`` is :func:`rank`, or one that remembers its answers (the
    placement simulation's).
    """
    threshold = CONTINUING_THRESHOLD if continuing else NEW_THRESHOLD
    candidates = [r for r in replicas if r.healthy] or list(replicas)
    if conversation is None:
        return min(candidates, key=lambda r: r.load)
    by_name = {r.name: r for r in candidates}
    if remembered in by_name and by_name[remembered].load < threshold:
        return by_name[remembered]  # no ranking needed: most turns end here
    ranked = [by_name[name] for name in ranking(conversation, list(by_name))]
    for replica in within_bounds(ranked) if remembered is None else ranked[:1]:
        if replica.load < threshold:
            return replica
    return min(ranked, key=lambda r: r.load)  # ties keep the rendezvous order


def within_bounds(ranked: Sequence[ReplicaLoad]) -> list:
    """``ranked`` without the replicas past ``1 + BALANCE`` times the mean count of live
    conversations per slot, the new one counted; while a count is unknown, hashing alone
    decides: the first."""
    if any(replica.live is None for replica in ranked):
        return list(ranked[:1])
    live = sum(replica.live for replica in ranked) + 1
    slots = sum(replica.slots or 1 for replica in ranked)
    bound = (1 + BALANCE) * live / slots
    return [replica for replica in ranked if replica.live < bound * (replica.slots or 1)]


def overflowing(loads: Sequence[ReplicaLoad], after: int) -> bool:
    """Whether a model's every replica in rotation has all its slots busy and ``after``
    requests or more waiting for one: a request then goes to the model it overflows to. A
    replica whose slots are unknown never counts as full."""
    serving = [load for load in loads if load.healthy]
    return bool(serving) and all(
        load.slots is not None and load.busy >= load.slots + after for load in serving
    )
