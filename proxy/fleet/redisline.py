"""One upstream's queue in Redis, shared by every proxy with ``--redis-url``: a
:class:`~proxy.fleet.sharedqueue.Line`.

The same turns as the process's own queue (:mod:`proxy.backends.fairqueue`, the slots of
:mod:`proxy.backends.admission`), decided by Lua scripts on Redis's clock, so that proxies on
machines whose clocks differ agree: each key's requests in a list of its own per priority,
stamped with their virtual start; the slots held in a sorted set scored by when their lease
ends; each key's slots over every upstream in a sorted set of its own, for its cap. A freed
slot wakes the waiter whose turn it is by a push on its own list, which it waits on with a
blocking pop; each waiter also looks in once every :data:`HEARTBEAT` seconds, which keeps it
counted as alive.

A proxy that dies leaves leases that end within :data:`LEASE` seconds, and waiters that are
dropped as soon as they are found silent for as long; a lease is renewed while its request
runs (:class:`Renewals`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Callable, Optional

from proxy.backends.admission import FIRST_BACKOFF, MAX_BACKOFF, POLL, SHARED_FOR, SLOT_RETRY_AFTER
from proxy.backends.fairqueue import AGE_EVERY
from proxy.backends.lease import Ticket
from proxy.core.caller import Caller
from proxy.core.errors import ClientGoneError, QueueFullError, QueueTimeoutError

LEASE = 6.0  # seconds a slot or a place in the queue outlives a proxy that stopped renewing it
RENEW_EVERY = LEASE / 3
HEARTBEAT = 1.0  # seconds between a waiter's looks at the queue when nothing woke it
PREFIX = "oai-proxy:{queue}:"  # one hash slot for every queue: a cap counts across them

# Every script: KEYS[1] the upstream's prefix; ARGV[1..4] the slots the operator gave it (0:
# none), the seconds of waiting that raise a priority by one, the seconds another key's last
# request shares the server, the lease; ARGV[5..] the script's own.
COMMON = """
local P = KEYS[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local configured, age_every = tonumber(ARGV[1]), tonumber(ARGV[2])
local shared_for, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local CAP = 'oai-proxy:{queue}:cap:'

local function limit()
  if configured > 0 then return configured end
  local s = redis.call('HMGET', P .. 'slots', 'reported', 'seen', 'ceiling')
  local reported, seen, ceiling = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3])
  if reported and reported > 0 then return reported end
  if not ceiling then return nil end
  return math.max(seen, ceiling, 1)
end

local function field(id, name) return redis.call('HGET', P .. 't:' .. id, name) end

local function drop_held(id)
  local name = field(id, 'name')
  redis.call('ZREM', P .. 'held', id)
  if name then redis.call('ZREM', CAP .. name, id) end
end

local function running_by()
  local counts = {}
  for _, id in ipairs(redis.call('ZRANGE', P .. 'held', 0, -1)) do
    local name = field(id, 'name') or ''
    counts[name] = (counts[name] or 0) + 1
  end
  return counts
end

local function capped(id)
  local cap = tonumber(field(id, 'cap')) or 0
  if cap == 0 then return false end
  local key = CAP .. field(id, 'name')
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key) >= cap
end

-- the heads of the flows, the silent waiters at their head dropped
local function heads()
  local found = {}
  for _, flow in ipairs(redis.call('HKEYS', P .. 'flows')) do
    local list = P .. 'f:' .. flow
    local head = redis.call('LINDEX', list, 0)
    while head and (tonumber(field(head, 'alive')) or 0) < now do
      redis.call('LPOP', list)
      redis.call('DEL', P .. 't:' .. head)
      head = redis.call('LINDEX', list, 0)
    end
    if head then table.insert(found, head) else redis.call('HDEL', P .. 'flows', flow) end
  end
  return found
end

local function purge()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'held', '-inf', now)) do
    drop_held(id)
    redis.call('DEL', P .. 't:' .. id)
  end
end

local function waiting()
  local count = 0
  for _, flow in ipairs(redis.call('HKEYS', P .. 'flows')) do
    count = count + redis.call('LLEN', P .. 'f:' .. flow)
  end
  return count
end

local function shared(name)
  local since, running = now - shared_for, running_by()
  local others = false
  local asked = redis.call('HGETALL', P .. 'asked')
  for i = 1, #asked, 2 do
    if tonumber(asked[i + 1]) < since and not running[asked[i]] then
      redis.call('HDEL', P .. 'asked', asked[i])
    elseif asked[i] ~= name then
      others = true
    end
  end
  return others
end

local function free(name)
  local most, running = limit(), redis.call('ZCARD', P .. 'held')
  if not most or running < most then return true end
  local inside = redis.call('HGET', P .. 'slots', 'queues') == '1'
  return inside and running < 2 * most and not shared(name)
end

-- the waiter the next free slot goes to: the best priority its own has reached with
-- waiting, then the earliest virtual start, then the earliest arrival; none capped
local function first()
  local candidates, priorities = {}, {}
  for _, id in ipairs(heads()) do
    if not capped(id) then
      local t = redis.call('HMGET', P .. 't:' .. id, 'priority', 'joined', 'stamp', 'order')
      local c = {id = id, priority = tonumber(t[1]), joined = tonumber(t[2]),
                 stamp = tonumber(t[3]), order = tonumber(t[4])}
      table.insert(candidates, c)
      priorities[c.priority] = true
    end
  end
  local sorted = {}
  for p in pairs(priorities) do table.insert(sorted, p) end
  table.sort(sorted)
  local best, rank
  for _, c in ipairs(candidates) do
    local aged = c.priority - math.max(now - c.joined, 0) / age_every
    local band
    for _, p in ipairs(sorted) do
      if p >= aged then band = p break end
    end
    local better = not best or band < rank[1] or (band == rank[1] and (c.stamp < rank[2]
      or (c.stamp == rank[2] and c.order < rank[3])))
    if better then best, rank = c.id, {band, c.stamp, c.order} end
  end
  return best
end

local function wake_next()
  local id = first()
  if id and free(field(id, 'name')) then
    redis.call('RPUSH', P .. 'wake:' .. id, 1)
    redis.call('EXPIRE', P .. 'wake:' .. id, math.ceil(lease))
  end
end

local function admit(id, name)
  redis.call('ZADD', P .. 'held', now + lease, id)
  local cap = tonumber(field(id, 'cap')) or 0
  if cap > 0 then redis.call('ZADD', CAP .. name, now + lease, id) end
  redis.call('HSET', P .. 'asked', name, now)
  redis.call('EXPIRE', P .. 't:' .. id, math.ceil(lease))
end

local function counts(status)
  return {status, redis.call('ZCARD', P .. 'held') + waiting(), limit() or -1}
end

local function flow_of(id)
  return field(id, 'priority') .. '|' .. field(id, 'name')
end

purge()
"""

# ARGV[5..]: the ticket, its key's name, weight, priority and cap, the queue's bound, the process.
JOIN = (
    COMMON
    + """
local id, name, weight = ARGV[5], ARGV[6], tonumber(ARGV[7])
local t = P .. 't:' .. id
redis.call('HSET', t, 'name', name, 'priority', ARGV[8], 'cap', ARGV[9], 'process', ARGV[11],
           'joined', tostring(now), 'alive', tostring(now + lease), 'not_before', 0,
           'stamp', 0, 'order', 0)
redis.call('HSET', P .. 'asked', name, tostring(now))
local queued = waiting()
if queued == 0 and free(name) and not capped(id) then
  admit(id, name)
  return counts(1)
end
if queued >= tonumber(ARGV[10]) and not free(name) then
  redis.call('DEL', t)
  return counts(-1)
end
local virtual = tonumber(redis.call('GET', P .. 'virtual')) or 0
local stamp = math.max(virtual, tonumber(redis.call('HGET', P .. 'ends', name)) or 0)
redis.call('HSET', P .. 'ends', name, tostring(stamp + 1 / weight))
redis.call('HSET', t, 'stamp', tostring(stamp), 'order', redis.call('INCR', P .. 'order'))
redis.call('EXPIRE', t, math.ceil(lease))
redis.call('RPUSH', P .. 'f:' .. flow_of(id), id)
redis.call('HSET', P .. 'flows', flow_of(id), 1)
return counts(0)
"""
)

# ARGV[5]: the ticket. 1: its slot is taken; 0: not its turn yet; -2: the queue lost it.
TRY = (
    COMMON
    + """
local id = ARGV[5]
local t = P .. 't:' .. id
if redis.call('EXISTS', t) == 0 then return counts(-2) end
redis.call('HSET', t, 'alive', tostring(now + lease))
redis.call('EXPIRE', t, math.ceil(lease))
local name = field(id, 'name')
if first() == id and free(name) and now >= tonumber(field(id, 'not_before')) then
  redis.call('LPOP', P .. 'f:' .. flow_of(id))
  local virtual = tonumber(redis.call('GET', P .. 'virtual')) or 0
  redis.call('SET', P .. 'virtual', tostring(math.max(virtual, tonumber(field(id, 'stamp')))))
  admit(id, name)
  wake_next()
  return counts(1)
end
wake_next()
return counts(0)
"""
)

# ARGV[5]: the ticket, refused by the server, back at the head of its key's queue.
REJOIN = (
    COMMON
    + """
local id = ARGV[5]
local t = P .. 't:' .. id
if redis.call('EXISTS', t) == 0 then return counts(-2) end
redis.call('HSET', t, 'alive', tostring(now + lease))
redis.call('EXPIRE', t, math.ceil(lease))
redis.call('LPUSH', P .. 'f:' .. flow_of(id), id)
redis.call('HSET', P .. 'flows', flow_of(id), 1)
return counts(0)
"""
)

# ARGV[5]: the ticket, giving up its place in the queue.
LEAVE = (
    COMMON
    + """
local id = ARGV[5]
if redis.call('EXISTS', P .. 't:' .. id) == 1 then
  redis.call('LREM', P .. 'f:' .. flow_of(id), 1, id)
  redis.call('DEL', P .. 't:' .. id)
end
wake_next()
return counts(0)
"""
)

# ARGV[5]: the ticket whose slot is handed on; it is kept a lease longer, should it be refused.
RELEASE = (
    COMMON
    + """
local id = ARGV[5]
drop_held(id)
redis.call('HSET', P .. 't:' .. id, 'accepted', 0)
redis.call('EXPIRE', P .. 't:' .. id, math.ceil(lease))
wake_next()
return counts(0)
"""
)

# ARGV[5..7]: the ticket, whether the server answers it now (1) or has ended (0), its slot.
ACCEPTED = (
    COMMON
    + """
redis.call('HSET', P .. 't:' .. ARGV[5], 'accepted', ARGV[6], 'slot', ARGV[7])
return counts(0)
"""
)

# ARGV[5..6]: the ticket the server refused, the seconds it waits before trying again. The
# tickets the server is answering show how many slots it has at most.
REFUSED = (
    COMMON
    + """
local slots, unnamed, n = {}, 0, 0
for _, id in ipairs(redis.call('ZRANGE', P .. 'held', 0, -1)) do
  local t = redis.call('HMGET', P .. 't:' .. id, 'accepted', 'slot')
  if t[1] == '1' then
    if t[2] and t[2] ~= '' then
      if not slots[t[2]] then slots[t[2]] = true n = n + 1 end
    else
      unnamed = unnamed + 1
    end
  end
end
local shown = math.max(n + unnamed, 1)
local ceiling = tonumber(redis.call('HGET', P .. 'slots', 'ceiling'))
if not ceiling or shown < ceiling then redis.call('HSET', P .. 'slots', 'ceiling', shown) end
redis.call('HSET', P .. 't:' .. ARGV[5], 'not_before', tostring(now + tonumber(ARGV[6])))
return counts(0)
"""
)

# ARGV[5]: a slot id an answer came from.
SAW_SLOT = (
    COMMON
    + """
local seen = tonumber(redis.call('HGET', P .. 'slots', 'seen')) or 0
redis.call('HSET', P .. 'slots', 'seen', math.max(seen, tonumber(ARGV[5]) + 1))
wake_next()
return counts(0)
"""
)

# ARGV[5..6]: the slots the server says it has (0: it did not say), whether it queues (1). The
# same word again (another proxy's first look) keeps what the answers taught.
REPORT = (
    COMMON
    + """
local said = redis.call('HMGET', P .. 'slots', 'reported', 'queues')
if said[1] == ARGV[5] and said[2] == ARGV[6] then return counts(0) end
redis.call('DEL', P .. 'slots')
redis.call('HSET', P .. 'slots', 'reported', ARGV[5], 'queues', ARGV[6])
wake_next()
return counts(0)
"""
)

# ARGV[5..]: tickets whose requests still run: their leases start again.
RENEW = (
    COMMON
    + """
for i = 5, #ARGV do
  redis.call('ZADD', P .. 'held', 'XX', now + lease, ARGV[i])
  local name = field(ARGV[i], 'name')
  if name then redis.call('ZADD', CAP .. name, 'XX', now + lease, ARGV[i]) end
  redis.call('EXPIRE', P .. 't:' .. ARGV[i], math.ceil(lease))
end
return counts(0)
"""
)

# The whole picture: the slot limit and where it comes from, then name, running, waiting by
# key, then process, running.
LOOK = (
    COMMON
    + """
local most = limit()
local source = 'unknown'
local s = redis.call('HMGET', P .. 'slots', 'reported', 'seen', 'ceiling')
if configured > 0 then source = 'configured'
elseif tonumber(s[1]) and tonumber(s[1]) > 0 then source = 'reported'
elseif s[2] or s[3] then source = 'learned' end
local keys, processes = {}, {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'held', 0, -1)) do
  local t = redis.call('HMGET', P .. 't:' .. id, 'name', 'process')
  local name = t[1] or ''
  keys[name] = keys[name] or {0, 0}
  keys[name][1] = keys[name][1] + 1
  processes[t[2] or '?'] = (processes[t[2] or '?'] or 0) + 1
end
for _, flow in ipairs(redis.call('HKEYS', P .. 'flows')) do
  local name = string.sub(flow, string.find(flow, '|', 1, true) + 1)
  keys[name] = keys[name] or {0, 0}
  keys[name][2] = keys[name][2] + redis.call('LLEN', P .. 'f:' .. flow)
end
local by_key, by_process = {}, {}
for name, c in pairs(keys) do
  table.insert(by_key, name) table.insert(by_key, c[1]) table.insert(by_key, c[2])
end
for process, c in pairs(processes) do
  table.insert(by_process, process) table.insert(by_process, c)
end
return {most or -1, source, redis.call('ZCARD', P .. 'held'), waiting(), by_key, by_process}
"""
)

SCRIPTS = {
    "join": JOIN,
    "try": TRY,
    "rejoin": REJOIN,
    "leave": LEAVE,
    "release": RELEASE,
    "accepted": ACCEPTED,
    "refused": REFUSED,
    "saw_slot": SAW_SLOT,
    "report": REPORT,
    "renew": RENEW,
    "look": LOOK,
}


class Renewals:
    """The leases this process holds in Redis, renewed every :data:`RENEW_EVERY` seconds by a
    thread of its own while any is held."""

    def __init__(self, every: float = RENEW_EVERY) -> None:
        self.every = every
        self._held: dict = {}  # line: set of its tickets' ids
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def hold(self, line: "RedisLine", ticket: str) -> None:
        with self._lock:
            self._held.setdefault(line, set()).add(ticket)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="leases")
                self._thread.start()

    def drop(self, line: "RedisLine", ticket: str) -> None:
        with self._lock:
            self._held.get(line, set()).discard(ticket)

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            with self._lock:
                held = {line: list(ids) for line, ids in self._held.items() if ids}
            for line, ids in held.items():
                line.renew(ids)


class RedisLine:
    """Upstream ``upstream``'s queue in Redis (``client``): ``name`` and ``remedy`` for its
    errors, ``configured`` its slots by the operator (0: none), and the queue's bounds."""

    def __init__(
        self,
        client,
        upstream: str,
        renewals: Renewals,
        *,
        name: str,
        configured: int,
        max_queue: int,
        queue_timeout: float,
        remedy: str = "",
        lease: float = LEASE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.renewals = renewals
        self.name, self.remedy = name, remedy
        self.max_queue, self.queue_timeout = max_queue, queue_timeout
        self.clock = clock
        self._prefix = f"{PREFIX}{upstream}:"
        self._common = [configured or 0, AGE_EVERY, SHARED_FOR, lease]
        self._heartbeat = min(HEARTBEAT, lease / 3)  # a waiter looks in well within its lease
        self._scripts = {name: client.register_script(text) for name, text in SCRIPTS.items()}
        self._busy: tuple = (0, None)

    # -- the calls a lease makes ------------------------------------------------------------

    def wait(self, caller: Caller, ticket: Optional[Ticket]) -> Ticket:
        if ticket is None:
            ticket = Ticket(
                self.clock() + self.queue_timeout, caller.party, shared=uuid.uuid4().hex
            )
            status, limit = self._run("join", ticket.shared, *self._party(ticket))
        else:
            status, limit = self._run("rejoin", ticket.shared)
        try:
            status = self._await(caller, ticket, status, limit)
        except BaseException:
            self._run("leave", ticket.shared)
            raise
        self.renewals.hold(self, ticket.shared)
        return ticket

    def _await(self, caller: Caller, ticket: Ticket, status: int, limit: Optional[int]) -> int:
        """Wait for ``ticket``'s turn: woken by a push, or looking in every
        :data:`HEARTBEAT` seconds and once its back-off from a refusal has passed."""
        wake = f"{self._prefix}wake:{ticket.shared}"
        look_at = self.clock() + self._heartbeat
        while status != 1:
            if status == -1:
                raise QueueFullError(
                    f"all {slots_text(limit)} of {self.name} are busy and {self.max_queue} "
                    f"requests already wait for one; retry shortly, or raise --max-queue"
                    f"{self.remedy}",
                    retry_after=SLOT_RETRY_AFTER,
                )
            if status == -2:  # silent for a lease (a stalled process): in line again
                status, limit = self._run("join", ticket.shared, *self._party(ticket))
                continue
            now = self.clock()
            if now >= ticket.deadline:
                raise QueueTimeoutError(
                    f"waited {self.queue_timeout:g}s for one of the {slots_text(limit)} of "
                    f"{self.name}; retry shortly, or raise --queue-timeout{self.remedy}",
                    retry_after=SLOT_RETRY_AFTER,
                )
            if caller.gone():
                raise ClientGoneError("the client went away while waiting for a slot")
            pause = max(min(POLL, ticket.deadline - now, look_at - now), 0.01)
            woken = self.client.blpop([wake], timeout=pause)
            if woken or self.clock() >= look_at:
                status, limit = self._run("try", ticket.shared)
                look_at = self.clock() + self._heartbeat
        return status

    def release(self, ticket: Ticket) -> None:
        self.renewals.drop(self, ticket.shared)
        self._run("release", ticket.shared)

    def accepted(self, ticket: Ticket, slot: Optional[int]) -> None:
        self._run("accepted", ticket.shared, 1, "" if slot is None else slot)

    def finished(self, ticket: Ticket) -> None:
        self._run("accepted", ticket.shared, 0, "" if ticket.slot is None else ticket.slot)

    def refused(self, ticket: Ticket) -> None:
        ticket.refusals += 1
        backoff = min(FIRST_BACKOFF * 2 ** (ticket.refusals - 1), MAX_BACKOFF)
        self._run("refused", ticket.shared, backoff)

    def saw_slot(self, slot_id: object) -> None:
        if isinstance(slot_id, int) and not isinstance(slot_id, bool) and 0 <= slot_id < 4096:
            self._run("saw_slot", slot_id)

    def report(self, total: Optional[int], queues: bool) -> None:
        self._run("report", total or 0, int(queues))

    def renew(self, tickets: list) -> None:
        try:
            self._run("renew", *tickets)
        except Exception:  # Redis gone: the leases end, and the requests run on meanwhile
            pass

    # -- what is shown ----------------------------------------------------------------------

    def snapshot(self) -> dict:
        limit, source, running, waiting, by_key, by_process = self._script("look")
        limit = None if limit < 0 else limit
        self._busy = (running + waiting, limit)
        shown = {
            "slots": limit,
            "slots_source": source.decode(),
            "in_flight": running if limit is None else min(running, limit),
            "queued": waiting + (0 if limit is None else max(running - limit, 0)),
            "processes": {
                by_process[i].decode(): by_process[i + 1] for i in range(0, len(by_process), 2)
            },
        }
        keys = {
            by_key[i].decode(): {"running": by_key[i + 1], "waiting": by_key[i + 2]}
            for i in range(0, len(by_key), 3)
        }
        if set(keys) - {""}:
            shown["keys"] = dict(sorted(keys.items()))
        return shown

    def busy(self) -> tuple:
        return self._busy

    # -- Redis ------------------------------------------------------------------------------

    def _run(self, script: str, *args) -> tuple:
        """``script``'s status, having kept what it says of the queue's size."""
        status, busy, limit = self._script(script, *args)
        limit = None if limit < 0 else limit
        self._busy = (busy, limit)
        return status, limit

    def _script(self, script: str, *args):
        return self._scripts[script](keys=[self._prefix], args=[*self._common, *args])

    def _party(self, ticket: Ticket) -> list:
        party = ticket.party
        return [party.name, party.weight, party.priority, party.cap, self.max_queue,
                self._process()]  # fmt: skip

    @staticmethod
    def _process() -> str:
        """This process, as the picture names it: its host and pid."""
        return f"{socket.gethostname()}:{os.getpid()}"


def slots_text(limit: Optional[int]) -> str:
    return "slots" if not limit else "1 slot" if limit == 1 else f"{limit} slots"
