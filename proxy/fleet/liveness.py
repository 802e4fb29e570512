"""The live conversations of one model, as every proxy placed them: shared through Redis.

Each proxy records, at every turn, which replica took the conversation: the conversation
counts as live there for ``window`` seconds after its last turn, and its replica is
remembered for :data:`REMEMBERED` seconds (a conversation back from a long pause goes back
to it). Before placing a turn, a proxy reads where the conversation is (another proxy may
have placed it) and how many live conversations each replica holds, for
:func:`proxy.fleet.placement.choose` to balance new ones by. Times are Redis's own clock, so
proxies on machines whose clocks differ agree.

Placement never waits on a Redis that is gone: while it cannot be reached, the choice is
left to hashing alone, and Redis is tried again once every :data:`PROBE_EVERY` seconds; the
outage is logged as it begins and as it ends (:class:`~proxy.core.outages.Outages`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from proxy.core.errors import StoreUnavailableError
from proxy.core.outages import Outages

PROBE_EVERY = 5.0  # seconds between two tries of a Redis that is gone: hashing alone meanwhile
TIMEOUT = 0.5  # seconds a placement waits for Redis before it goes on without it
WINDOW = 60.0  # seconds a conversation counts as live after its last turn (--live-window)
REMEMBERED = 3600  # seconds a conversation's replica is remembered after its last turn
PLACEMENT = "placement"  # the one store an outage of the shared placement is tracked as

# KEYS: the conversation's location, then each replica's live set.
# ARGV: how many seconds back a turn still counts.
LOOK = """
local time = redis.call('TIME')
local since = tonumber(time[1]) + tonumber(time[2]) / 1000000 - tonumber(ARGV[1])
local found = {redis.call('GET', KEYS[1]) or ''}
for i = 2, #KEYS do
  found[i] = redis.call('ZCOUNT', KEYS[i], since, '+inf')
end
return found
"""

# KEYS: the conversation's location, its new replica's live set, its old one's (or the same).
# ARGV: the replica, the conversation, the window, how long the location is remembered.
PLACE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local window = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
if KEYS[3] ~= KEYS[2] then
  redis.call('ZREM', KEYS[3], ARGV[2])
end
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('EXPIRE', KEYS[2], math.ceil(window))
return 1
"""


@dataclass(frozen=True)
class Lookup:
    """What every proxy knows of a conversation about to be placed."""

    placed: Optional[str]  # the replica it lives on, if it is live
    live: dict  # replica -> live conversations on it


@dataclass
class LiveConversations:
    """Where the live conversations of ``model`` are, in Redis (``client``)."""

    client: object  # a redis.Redis
    model: str
    window: float = WINDOW
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._look = self.client.register_script(LOOK)
        self._place = self.client.register_script(PLACE)
        self._prefix = f"oai-proxy:live:{{{self.model}}}:"  # one hash slot for a model's keys
        self._outages = Outages(
            "Redis",
            remote=True,
            clock=self.clock,
            stores={PLACEMENT: f"the shared placement of {self.model}"},
            probe_every=PROBE_EVERY,
            meanwhile="conversations are placed by hashing alone",
        )

    def look(self, conversation: str, replicas: Sequence[str]) -> Optional[Lookup]:
        """Where ``conversation`` lives and how many live on each of ``replicas``; ``None`` while
        Redis cannot say."""
        found = self._call(
            self._look, [self._where(conversation), *map(self._live, replicas)], [self.window]
        )
        if found is None:
            return None
        placed = found[0].decode() if found[0] else None
        return Lookup(placed, dict(zip(replicas, map(int, found[1:]), strict=False)))

    def place(self, conversation: str, replica: str, before: Optional[str]) -> None:
        """``conversation``'s turn goes to ``replica`` (it lived on ``before``, if anywhere)."""
        self._call(
            self._place,
            [self._where(conversation), self._live(replica), self._live(before or replica)],
            [replica, conversation, self.window, REMEMBERED],
        )

    def _where(self, conversation: str) -> str:
        return f"{self._prefix}conversation:{conversation}"

    def _live(self, replica: str) -> str:
        return f"{self._prefix}replica:{replica}"

    def _call(self, script, keys: list, args: list):
        """What ``script`` answered; ``None`` while Redis cannot be reached."""
        try:
            with self._outages.reaching(PLACEMENT):
                return script(keys=keys, args=args)
        except StoreUnavailableError:
            return None
