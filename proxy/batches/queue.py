"""The batch requests waiting to run, for every process that runs batches: each batch's
requests of each model in a queue of their own, taken one at a time by whichever process has
a slot for them, and each batch's tally (requests left, answered, failed, why they wait).

This process's queue is in its memory; with ``--redis-url`` the queue is Redis's
(:mod:`proxy.batches.redisqueue`), so that every proxy runs any batch's requests. Both
keep one rule: a request is *left* from its putting until it is concluded (answered, failed, or
dropped as its batch ends early), whoever has claimed it meanwhile; a batch whose requests are all
concluded is done.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Claim:
    """A batch request taken to run (where its line is in the batch's input file): ``again``
    when it was taken over from a process that stopped, which may have answered it already."""

    batch: str
    model: str
    number: int
    custom_id: str
    offset: int
    handle: str = ""  # the queue's own name for it
    again: bool = False


@dataclass(frozen=True)
class Tally:
    left: int  # requests not yet concluded
    completed: int
    failed: int
    paused: str = ""  # why its requests wait, while they do
    running: int = 0  # of those left, the requests processes have claimed


class LocalBatchQueue:
    """The batch requests of this process."""

    def __init__(self) -> None:
        self._waiting: dict = {}  # (batch, model): deque of requests
        self._tallies: dict = {}  # batch: [left, completed, failed, paused]
        self._claimed: set = set()  # the claims taken and not yet concluded
        self._lock = threading.Lock()

    def put(self, batch: str, requests: list, completed: int, failed: int) -> None:
        """Queue ``requests`` of ``batch`` (each with its ``model``, ``number``,
        ``custom_id`` and ``offset``; ``completed`` and ``failed`` answered before) unless
        they are queued already."""
        with self._lock:
            if batch in self._tallies:
                return
            self._tallies[batch] = [len(requests), completed, failed, ""]
            for each in requests:
                claim = Claim(batch, each.model, each.number, each.custom_id, each.offset)
                self._waiting.setdefault((batch, each.model), deque()).append(claim)

    def is_queued(self, batch: str) -> bool:
        return batch in self._tallies

    def take(self, batch: str, model: str) -> Optional[Claim]:
        with self._lock:
            waiting = self._waiting.get((batch, model))
            if not waiting:
                return None
            claim = waiting.popleft()
            self._claimed.add(claim)
            return claim

    def back(self, claim: Claim, why: str) -> None:
        """``claim`` waits again, first of its queue; its batch says ``why``."""
        with self._lock:
            if claim not in self._claimed:
                return
            self._claimed.discard(claim)
            self._waiting.setdefault((claim.batch, claim.model), deque()).appendleft(claim)
            self._tallies[claim.batch][3] = why

    def abandon(self, claim: Claim) -> None:
        """``claim`` waits again, its batch saying nothing new."""
        with self._lock:
            paused = self._tallies[claim.batch][3] if claim.batch in self._tallies else ""
        self.back(claim, paused)

    def conclude(self, claim: Claim, ok: Optional[bool]) -> None:
        """``claim`` answered (``ok``), failed, or dropped (``None``)."""
        with self._lock:
            if claim not in self._claimed:
                return
            self._claimed.discard(claim)
            tally = self._tallies[claim.batch]
            tally[0] -= 1
            if ok is not None:
                tally[1 if ok else 2] += 1
                tally[3] = ""

    def renew(self) -> None:
        """Nothing to renew: what this process claimed dies with it."""

    def tally(self, batch: str, models: list) -> Optional[Tally]:
        """``batch``'s tally (``models``: those it names), ``None`` until it is queued."""
        with self._lock:
            found = self._tallies.get(batch)
            if found is None:
                return None
            return Tally(*found, sum(claim.batch == batch for claim in self._claimed))

    def forget(self, batch: str, models: list) -> None:
        """``batch`` ended: its tally and queues gone (``models``: those it named)."""
        with self._lock:
            self._tallies.pop(batch, None)
            self._claimed = {claim for claim in self._claimed if claim.batch != batch}
            for pair in [pair for pair in self._waiting if pair[0] == batch]:
                del self._waiting[pair]
