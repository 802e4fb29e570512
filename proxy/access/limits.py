"""Requests and tokens per minute per key, in fixed one-minute windows.

:class:`LocalLimiter` counts in this process; :class:`RedisLimiter` counts in Redis, so every
proxy process and replica shares one count per key. A request is refused, before it costs
anything upstream, once its key's minute has used up its requests or its tokens; the tokens
of an answer are charged when it ends.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from proxy.access.keyring import KeySpec

WINDOW = 60  # seconds


@dataclass(frozen=True)
class Decision:
    allowed: bool
    key: KeySpec
    requests: int  # used in this window, this request included when allowed
    tokens: int
    reset: float  # seconds until the window turns

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset))

    def headers(self) -> dict:
        """OpenAI's ``x-ratelimit-*`` headers for the limits the key has."""
        headers = {}
        reset = f"{max(self.reset, 0):.0f}s"
        for kind, limit, used in (
            ("requests", self.key.rpm, self.requests),
            ("tokens", self.key.tpm, self.tokens),
        ):
            if limit:
                headers[f"x-ratelimit-limit-{kind}"] = str(limit)
                headers[f"x-ratelimit-remaining-{kind}"] = str(max(limit - used, 0))
                headers[f"x-ratelimit-reset-{kind}"] = reset
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def window_of(now: float) -> int:
    return int(now // WINDOW)


def decide(key: KeySpec, requests: int, tokens: int, now: float) -> Decision:
    """Whether one more request fits the key's minute, given what the minute has used."""
    full = (key.rpm and requests >= key.rpm) or (key.tpm and tokens >= key.tpm)
    reset = (window_of(now) + 1) * WINDOW - now
    return Decision(not full, key, requests if full else requests + 1, tokens, reset)


class LocalLimiter:
    """Counters in this process: with several processes, each holds its own budget."""

    def __init__(self, clock=time.time) -> None:
        self.clock = clock
        self._counts: dict = {}
        self._lock = threading.Lock()

    def admit(self, key: KeySpec) -> Decision:
        with self._lock:  # the clock is read inside, so no thread counts into a minute already gone
            now = self.clock()
            counts = self._current(key.name, window_of(now))
            decision = decide(key, counts[0], counts[1], now)
            if decision.allowed:
                counts[0] += 1
        return decision

    def charge(self, key: KeySpec, tokens: int) -> None:
        with self._lock:
            self._current(key.name, window_of(self.clock()))[1] += tokens

    def _current(self, name: str, window: int) -> list:
        counts = self._counts.get(name)
        if counts is None or counts[2] != window:  # a new minute starts from nothing
            counts = self._counts[name] = [0, 0, window]
        return counts


# Check and count in one step, so that two proxies cannot both take the last request.
ADMIT = """
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
if (rpm > 0 and requests >= rpm) or (tpm > 0 and tokens >= tpm) then
  return {0, requests, tokens}
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, requests, tokens}
"""


class RedisLimiter:
    """Counters in Redis: one budget per key over every proxy process."""

    def __init__(self, client, clock=time.time) -> None:
        """``client``: a ``redis.Redis``."""
        self.client = client
        self.clock = clock
        self._admit = client.register_script(ADMIT)

    def admit(self, key: KeySpec) -> Decision:
        now = self.clock()
        _, requests, tokens = self._admit(
            keys=self._keys(key, now), args=[key.rpm, key.tpm, 2 * WINDOW]
        )
        return decide(key, int(requests), int(tokens), now)

    def charge(self, key: KeySpec, tokens: int) -> None:
        _, tokens_key = self._keys(key, self.clock())
        with self.client.pipeline() as pipe:
            pipe.incrby(tokens_key, tokens).expire(tokens_key, 2 * WINDOW).execute()

    @staticmethod
    def _keys(key: KeySpec, now: float) -> list:
        base = f"oai-proxy:limit:{key.name}:{window_of(now)}"
        return [base + ":requests", base + ":tokens"]
