"""Where a request runs among a model's replicas: pure functions of the request and the replicas.

A conversation's KV cache lives in the replica (and the slot) that served its previous turn;
sending the next turn there lets the server re-evaluate only the new tokens. Which replica
that is must be computable by every proxy process alike, with no shared state, so the first
choice is rendezvous hashing of the conversation's key over the healthy replicas: each
replica scores ``hash(key, replica)`` and the highest score wins. Removing a replica moves
only the conversations it held; adding one takes an even share from the others.

A replica already past its load threshold is passed over for the least busy one (a
conversation that goes on is given a higher threshold than a new one: elsewhere its whole
history would be evaluated again), and a process that remembers where it last sent a
conversation sends it there again while that replica has room.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional, Sequence

from proxy.types import GenerationRequest

RAW_PROMPT_PREFIX = 256  # characters of a raw prompt that name its conversation
# How loaded a replica may be before a request goes elsewhere: a new conversation moves as
# soon as its replica has no free slot (its prompt is new everywhere), one that goes on waits
# a little longer, for elsewhere its whole history would be evaluated again.
NEW_THRESHOLD = 1.0
CONTINUING_THRESHOLD = 1.5


@dataclass(frozen=True)
class ReplicaLoad:
    """What placement knows of one replica at the moment of choosing."""

    name: str  # its URL: the same in every proxy process
    healthy: bool = True
    busy: int = 0  # generations of this process in flight or waiting for it
    slots: Optional[int] = None  # how many it runs at once; None while unknown

    @property
    def load(self) -> float:
        """Busy share of its slots; an unknown count is taken as one slot."""
        return self.busy / (self.slots or 1)


def conversation_key(request: GenerationRequest) -> str:
    """What stays the same from one turn of a conversation to the next.

    The name a client gives its conversation (an agent's thread id) when it gives one. Else
    a chat is named by its messages up to and including the first user message: the system
    prompt alone is shared by many conversations, while the first question (a document, in
    retrieval setups) is what sets one apart. A raw prompt is named by its first characters.
    """
    if request.conversation:
        text = "\x1d" + request.conversation
    elif request.is_chat:
        opening = []
        for message in request.messages:
            opening.append(f"{message.role}\x1f{message.content}")
            if message.role == "user":
                break
        text = "\x1e".join(opening)
    else:
        text = request.prompt[:RAW_PROMPT_PREFIX]
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def continues(request: GenerationRequest) -> bool:
    """Whether ``request`` goes on a conversation (its earlier turns may be cached)."""
    return request.is_chat and sum(m.role == "user" for m in request.messages) > 1


def rank(key: str, names: Sequence[str]) -> list:
    """``names`` from the most to the least preferred for ``key`` (rendezvous hashing)."""
    def score(name: str) -> bytes:
        return hashlib.blake2b(f"{key}\x1f{name}".encode(), digest_size=8).digest()

    return sorted(names, key=score, reverse=True)


def choose(key: Optional[str], replicas: Sequence[ReplicaLoad], *, continuing: bool = False,
           remembered: Optional[str] = None) -> ReplicaLoad:
    """The replica to send a request to.

    ``key`` is the conversation's (``None``: no affinity, least busy wins). A replica whose
    load has reached the threshold (higher for a ``continuing`` conversation) is passed over
    while another is below it. Replicas out of rotation are chosen only when none is healthy:
    then the request itself probes them.
    """
    threshold = CONTINUING_THRESHOLD if continuing else NEW_THRESHOLD
    candidates = [r for r in replicas if r.healthy] or list(replicas)
    if key is None:
        return min(candidates, key=lambda r: r.load)
    by_name = {r.name: r for r in candidates}
    ranked = [by_name[name] for name in rank(key, list(by_name))]
    if remembered in by_name and by_name[remembered].load < threshold:
        return by_name[remembered]
    if ranked[0].load < threshold:
        return ranked[0]
    return min(ranked, key=lambda r: r.load)  # ties keep the rendezvous order
