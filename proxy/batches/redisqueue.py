"""The batch requests waiting to run, in Redis, for every proxy that shares it: each batch's
requests of each model a Redis stream read by one consumer group, ``runners``, whose
consumers are the proxies' processes.

A process reads a request from its stream (``XREADGROUP``), which then stays pending to it
until it concludes it (``XACK``); while the request runs, the process renews its claim every
:data:`RENEW_EVERY` seconds. A process that dies stops renewing: after :data:`LEASE` seconds
another takes its requests over (``XAUTOCLAIM``), as ``again``. Each batch's tally is a hash,
changed only in the same script as the acknowledgement, so a request concluded twice (taken
over from a process that was slow, not dead) counts once.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from proxy.batches.queue import Claim, Tally

PREFIX = "oai-proxy:batch:"
GROUP = "runners"
LEASE = 20.0  # seconds a request taken and not renewed stays its process's
RENEW_EVERY = LEASE / 4
KEEP_FOR = 3 * 24 * 3600  # seconds a batch's keys outlive their last change: past its window

# the request's acknowledgement and the batch's tally in one: 1 when it was this concluding
CONCLUDE = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'left', -1)
if ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  redis.call('HSET', KEYS[2], 'paused', '')
end
return 1
"""

# the request to the end of its stream, to wait again; the batch saying why
BACK = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[1], '*', 'n', ARGV[4], 'c', ARGV[5], 'o', ARGV[6])
redis.call('HSET', KEYS[2], 'paused', ARGV[3])
return 1
"""


class RedisBatchQueue:
    """The batch requests of every proxy sharing ``client``'s Redis; ``consumer``: this
    process's name in the streams' group."""

    def __init__(self, client, consumer: str, clock=time.monotonic) -> None:
        self.client = client
        self.consumer = consumer
        self.clock = clock
        self._conclude = client.register_script(CONCLUDE)
        self._back = client.register_script(BACK)
        self._claimed: set = set()  # (stream, entry id) of the requests this process runs
        self._looked: dict = {}  # stream: when its stopped processes' requests were looked for
        self._renewed = 0.0
        self._lock = threading.Lock()

    def put(self, batch: str, requests: list, completed: int, failed: int) -> None:
        """Queue ``requests`` of ``batch`` (each with its ``model``, ``number``,
        ``custom_id`` and ``offset``) unless a process queued them already: in one
        transaction with the batch's tally."""
        if self.is_queued(batch):
            return
        streams = sorted({_stream(batch, each.model) for each in requests})
        with self.client.pipeline(transaction=True) as pipe:
            if streams:
                pipe.delete(*streams)  # what a process that stopped half-way put
            for stream in streams:
                pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)
            for each in requests:
                fields = {"n": each.number, "c": each.custom_id, "o": each.offset}
                pipe.xadd(_stream(batch, each.model), fields)
            tally = {"left": len(requests), "completed": completed, "failed": failed}
            pipe.hset(_tally(batch), mapping={**tally, "paused": "", "queued": 1})
            for key in (*streams, _tally(batch)):
                pipe.expire(key, KEEP_FOR)
            pipe.execute()

    def is_queued(self, batch: str) -> bool:
        return bool(self.client.hexists(_tally(batch), "queued"))

    def take(self, batch: str, model: str) -> Optional[Claim]:
        """The next request of ``batch``'s ``model``: first one a stopped process claimed
        past its lease (looked for every :data:`RENEW_EVERY` seconds), else one not read."""
        stream = _stream(batch, model)
        now = self.clock()
        try:
            if now - self._looked.get(stream, 0.0) >= RENEW_EVERY:
                self._looked[stream] = now
                _, claimed, *_ = self.client.xautoclaim(
                    stream, GROUP, self.consumer, int(LEASE * 1000), "0-0", count=1
                )
                if claimed and claimed[0][1]:
                    return self._claim(batch, model, stream, *claimed[0], again=True)
            read = self.client.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=1)
        except Exception as exc:  # the batch ended and its streams went with it
            if "NOGROUP" in str(exc):
                return None
            raise
        if not read or not read[0][1]:
            return None
        return self._claim(batch, model, stream, *read[0][1][0], again=False)

    def _claim(self, batch, model, stream, entry, fields, again: bool) -> Claim:
        entry = _text(entry)
        fields = {_text(name): _text(value) for name, value in fields.items()}
        with self._lock:
            self._claimed.add((stream, entry))
        return Claim(batch, model, int(fields["n"]), fields["c"], int(fields["o"]),
                      entry, again)  # fmt: skip

    def back(self, claim: Claim, why: str) -> None:
        stream = _stream(claim.batch, claim.model)
        self._let_go(stream, claim.handle)
        self._back(keys=[stream, _tally(claim.batch)],
                   args=[GROUP, claim.handle, why, claim.number, claim.custom_id,
                         claim.offset])  # fmt: skip

    def abandon(self, claim: Claim) -> None:
        """``claim`` no longer renewed, while Redis cannot be reached: once its lease has
        lapsed, a process takes it over as ``again``."""
        self._let_go(_stream(claim.batch, claim.model), claim.handle)

    def conclude(self, claim: Claim, ok: Optional[bool]) -> None:
        stream = _stream(claim.batch, claim.model)
        self._let_go(stream, claim.handle)
        field = "" if ok is None else "completed" if ok else "failed"
        self._conclude(keys=[stream, _tally(claim.batch)], args=[GROUP, claim.handle, field])

    def renew(self) -> None:
        """Renew this process's claims on the requests it runs, when they are due."""
        now = self.clock()
        if now - self._renewed < RENEW_EVERY:
            return
        self._renewed = now
        with self._lock:
            claimed = sorted(self._claimed)
        if not claimed:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for stream, entry in claimed:  # claimed again by its consumer: its idle time reset
                pipe.xclaim(stream, GROUP, self.consumer, 0, [entry], justid=True)
            pipe.execute(raise_on_error=False)

    def tally(self, batch: str, models: list) -> Optional[Tally]:
        """``batch``'s tally (``models``: those it names), ``None`` until it is queued."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(_tally(batch), "left", "completed", "failed", "paused", "queued")
            for model in models:
                pipe.xpending(_stream(batch, model), GROUP)
            (left, completed, failed, paused, queued), *pending = pipe.execute(raise_on_error=False)
        if not queued:
            return None
        running = sum(each["pending"] for each in pending if isinstance(each, dict))
        return Tally(int(left), int(completed), int(failed), _text(paused or b""), running)

    def forget(self, batch: str, models: list) -> None:
        self.client.delete(_tally(batch), *(_stream(batch, model) for model in models))

    def _let_go(self, stream: str, entry: str) -> None:
        with self._lock:
            self._claimed.discard((stream, entry))


def _stream(batch: str, model: str) -> str:
    return f"{PREFIX}{batch}:{model}"


def _tally(batch: str) -> str:
    return PREFIX + batch


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
