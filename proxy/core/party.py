"""Whose turn a request waits as: its key's name, share of the slots, priority and cap.

The key is known at the door, the queue far below it: a request's :class:`Party` goes down
on its :class:`~proxy.core.caller.Caller`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Callable

HIGHEST, DEFAULT_PRIORITY, LOWEST = 0, 128, 255  # LiteLLM's scale: the lower goes first


class Leases:
    """How many slots a key with a cap has leased now, across every upstream, and the queues
    to tell when it has one fewer (a request of it may be waiting there for its cap)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._watchers: dict = {}  # callbacks of queues a capped request waits in

    def take(self) -> None:
        with self._lock:
            self.count += 1

    def give(self) -> None:
        """One slot handed back; wake the queues that wait for it (call holding no
        queue's lock: each takes its own)."""
        with self._lock:
            self.count -= 1
            watchers = list(self._watchers.values())
        for wake in watchers:
            wake()

    def watch(self, queue: object, wake: Callable[[], None]) -> None:
        with self._lock:
            self._watchers[id(queue)] = wake


@dataclass(frozen=True)
class Party:
    """One key as the queue sees it. ``weight``: its share of the slots against other keys
    waiting (2 gets twice the turns of 1); ``priority``: 0 to 255, the lower first (a
    request may ask for its own); ``cap``: slots it may lease at once, 0 for no cap."""

    name: str = ""
    weight: float = 1.0
    priority: int = DEFAULT_PRIORITY
    cap: int = 0
    leases: Leases = field(default_factory=Leases, compare=False, repr=False)

    def at(self, priority: int) -> "Party":
        """This party asking for ``priority`` for one request."""
        return self if priority == self.priority else replace(self, priority=priority)

    def capped(self) -> bool:
        """Whether it has leased all the slots its cap allows."""
        return bool(self.cap) and self.leases.count >= self.cap


ANYONE = Party()  # every request when the proxy has no keys: one party, first come first served
