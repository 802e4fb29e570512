"""The Lua scripts that keep one upstream's queue in Redis
(:mod:`proxy.queue.redisshared`): the same decisions as :mod:`proxy.queue.fair`
and the slots of :mod:`proxy.queue.admission`, made atomically on Redis's clock."""

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

-- a waiter that looks in: alive for a lease more (false: the queue had dropped it)
local function heard(id)
  local t = P .. 't:' .. id
  if redis.call('EXISTS', t) == 0 then return false end
  redis.call('HSET', t, 'alive', tostring(now + lease))
  redis.call('EXPIRE', t, math.ceil(lease))
  return true
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
local virtual = tonumber(redis.call('GET', P .. 'virtual')) or 0
local stamp = math.max(virtual, tonumber(redis.call('HGET', P .. 'ends', name)) or 0)
if queued == 0 and free(name) and not capped(id) then
  -- served at once, it counts in its key's turns as one that waited would
  redis.call('HSET', P .. 'ends', name, tostring(stamp + 1 / weight))
  redis.call('SET', P .. 'virtual', tostring(stamp))
  admit(id, name)
  return counts(1)
end
if queued >= tonumber(ARGV[10]) and not free(name) then
  redis.call('DEL', t)
  return counts(-1)
end
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
if not heard(id) then return counts(-2) end
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
if not heard(id) then return counts(-2) end
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
