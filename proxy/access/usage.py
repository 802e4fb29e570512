"""Usage per key and model (requests, tokens, errors, what else prices read), a service tier
priced apart counted apart, and what each key's budgets have spent (tokens, and money in
micro-dollars): what every answer charges, in one store.

Each answer is one :class:`Charge`: its usage and what it costs its budgets, with an id of
its own, applied in one transaction (:mod:`proxy.access.journal` keeps it from the answer's
end until then, so that a proxy killed meanwhile loses nothing it answered). The store is
SQLite by default (the file survives restarts; several processes may share it) or Redis
(shared by every proxy). A charge counts once whatever happens: the store keeps the ids it
applied (for :data:`KEEP_IDS`), so a charge written again (replayed by the journal after an
outage or a crash) is not counted twice. An id begins with the time it was made, so that
SQLite's index of them grows at its end (a random one touched a page anywhere in it on each
charge), and the ids are pruned oldest first, reading only those it deletes.

A request holds what it may spend while it runs (a :class:`Hold`, made by
:mod:`proxy.access.holds`): the store adds it in the same atomic step that checks it
fits beside what is spent and what other requests hold, and the answer's charge lets it go.
A hold its charge never lets go (its proxy killed) lapses at its ``until``.

Money is counted in whole micro-dollars (a millionth of a US dollar), so that Redis's
``INCRBY`` and SQLite's integers add it exactly, whichever proxy adds it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Sequence

import orjson

from proxy.access.sqlite import SqliteDatabase

COUNTS = (
    "requests", "prompt_tokens", "completion_tokens", "errors", "cached_tokens", "web_searches",
    "audio_prompt_tokens", "stored", "pictures", "audio_seconds", "speech_characters",
)  # fmt: skip
LATER = COUNTS[4:]  # counted since files were made: a column each, 0 in the rows before it
TIER = "\x1f"  # between a model and the service tier its answers were counted at, as kept
SIZE = "\x1e"  # then the size of the pictures it drew, where its price names sizes
KEEP_IDS = 7 * 86400  # seconds an applied charge's id is kept: a replay comes sooner
KEPT_FOR = 40 * 86400  # seconds Redis keeps a budget period's count: a month and a margin
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (key TEXT NOT NULL, model TEXT NOT NULL, "
    "requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, "
    "completion_tokens INTEGER NOT NULL, errors INTEGER NOT NULL, "
    + "".join(f"{name} INTEGER NOT NULL DEFAULT 0, " for name in LATER)
    + "PRIMARY KEY (key, model))",
    # a period's count: tokens, or micro-dollars for a money budget's ("usd_day:2026-11-26")
    "CREATE TABLE IF NOT EXISTS budgets (key TEXT NOT NULL, period TEXT NOT NULL, "
    "tokens INTEGER NOT NULL, PRIMARY KEY (key, period))",
    "CREATE TABLE IF NOT EXISTS charged (id TEXT PRIMARY KEY, at REAL NOT NULL)",
    # what requests in flight hold of their key's budgets, until their charges let it go
    "CREATE TABLE IF NOT EXISTS holds (id TEXT PRIMARY KEY, key TEXT NOT NULL, "
    "tokens INTEGER NOT NULL, micro_usd INTEGER NOT NULL, until REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS holds_by_key ON holds (key, until)",
)
# columns a file made before them lacks: added to it as it is opened
ADDED_COLUMNS = tuple(("usage", name, "INTEGER NOT NULL DEFAULT 0") for name in LATER)
ADD_USAGE = (
    f"INSERT INTO usage (key, model, {', '.join(COUNTS)}) VALUES (?, ?{', ?' * len(COUNTS)}) "
    "ON CONFLICT (key, model) DO UPDATE SET "
    + ", ".join(f"{count} = {count} + excluded.{count}" for count in COUNTS)
)
PRUNE_EVERY = 1000  # charges between two prunings of old ids
# the ids applied before the first one kept, in the order they were applied (their rowids):
# a scan for old times would read the whole table at every pruning, under the write lock
PRUNE = (
    "DELETE FROM charged WHERE rowid < COALESCE("
    "(SELECT rowid FROM charged WHERE at >= ? ORDER BY rowid LIMIT 1), "
    "(SELECT COALESCE(MAX(rowid), 0) + 1 FROM charged))"
)


def new_id() -> str:
    """A charge's or a hold's id: the nanosecond it was made, then 64 random bits."""
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Charge:
    """One answer's usage, and what it costs each budget period of its key."""

    key: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    error: bool
    periods: tuple = ()  # the token budgets' periods charged ("day:2026-11-26", "month:2026-11")
    tokens: int = 0  # what it costs each of them
    cached_tokens: int = 0  # of its prompt's, those the server took from its cache
    usd_periods: tuple = ()  # the money budgets' periods charged ("usd_day:2026-11-26")
    micro_usd: int = 0  # what it costs each of them, in micro-dollars
    id: str = field(default_factory=new_id)
    hold: str = ""  # the id of the hold the charge lets go ("": none)
    web_searches: int = 0  # searches its upstream ran itself
    audio_prompt_tokens: int = 0  # of its prompt's tokens, those of audio
    stored: int = 0  # completions its upstream stored
    pictures: int = 0  # pictures drawn
    audio_seconds: int = 0  # seconds of audio transcribed (begun seconds counted whole)
    speech_characters: int = 0  # characters read aloud
    tier: str = ""  # the service tier it was served at, priced apart ("": its model's own)
    size: str = ""  # the size of its pictures, priced apart ("": none, or priced as one)

    def counts(self) -> tuple:
        """Its :data:`COUNTS`, in their order (the :data:`LATER` ones its fields' names)."""
        return (1, self.prompt_tokens, self.completion_tokens, int(self.error),
                *(getattr(self, name) for name in LATER))  # fmt: skip

    @property
    def counted_as(self) -> str:
        """The model its usage is kept under: with the service tier it was served at and
        the size of its pictures, where priced apart."""
        tiered = self.model + TIER + self.tier if self.tier else self.model
        return tiered + SIZE + self.size if self.size else tiered

    def budgets(self) -> list:
        """``(period, amount)`` of each budget period it is charged to."""
        return [(name, self.tokens) for name in self.periods] + [
            (name, self.micro_usd) for name in self.usd_periods
        ]

    def line(self) -> bytes:
        """The charge as a journal's line: a JSON object, and its newline."""
        return orjson.dumps(self, option=orjson.OPT_APPEND_NEWLINE)

    @classmethod
    def from_line(cls, line: bytes) -> "Charge":
        """A charge as :meth:`line` wrote it (an earlier version's lacks the later fields:
        they are nothing); ``ValueError`` for a line that is not one (a crash cut it short)."""
        data = orjson.loads(line)
        if type(data) is not dict:
            raise ValueError("a journal's line is a JSON object")
        try:
            return cls(
                **{
                    **data,
                    "periods": tuple(data["periods"]),
                    "usd_periods": tuple(data.get("usd_periods", ())),
                }
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a charge: {exc}") from None


@dataclass(frozen=True)
class Hold:
    """What a request in flight holds of its key's budgets: ``tokens`` of each token budget,
    ``micro_usd`` of each money budget; it fits while, for each of ``limits`` (``(period,
    unit, size)``), what the period has spent and every hold of its unit add up to no more
    than its size. It lapses at ``until`` (seconds since the epoch)."""

    key: str
    tokens: int
    micro_usd: int
    limits: tuple
    until: float
    id: str = field(default_factory=new_id)

    def amount(self, unit: str) -> int:
        return self.tokens if unit == "tokens" else self.micro_usd


def _row(key: str, model: str, counts: dict) -> dict:
    """A usage row as listed: key, model, service tier and size of pictures
    (:attr:`Charge.counted_as`), counts."""
    model, _, size = model.partition(SIZE)
    model, _, tier = model.partition(TIER)
    return {"key": key, "model": model, **({"service_tier": tier} if tier else {}),
            **({"size": size} if size else {}), **counts}  # fmt: skip


class SqliteUsage:
    """Usage and budgets in a SQLite file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = SqliteDatabase(path, *SCHEMA, added=ADDED_COLUMNS)
        self._applied = 0

    def apply(self, charges: Sequence[Charge]) -> None:
        """Add each of ``charges`` not applied before, in one transaction."""
        now = time.time()
        with self.file.transaction() as db:
            for charge in charges:
                fresh = db.execute(
                    "INSERT OR IGNORE INTO charged VALUES (?, ?)", (charge.id, now)
                ).rowcount
                if charge.hold:
                    db.execute("DELETE FROM holds WHERE id = ?", (charge.hold,))
                if not fresh:
                    continue
                db.execute(ADD_USAGE, (charge.key, charge.counted_as, *charge.counts()))
                if charge.periods or charge.usd_periods:  # a key with budgets
                    db.executemany(
                        "INSERT INTO budgets VALUES (?, ?, ?) ON CONFLICT (key, period) "
                        "DO UPDATE SET tokens = tokens + excluded.tokens",
                        [(charge.key, name, amount) for name, amount in charge.budgets()],
                    )
            self._applied += len(charges)
            if self._applied >= PRUNE_EVERY:
                self._applied = 0
                db.execute(PRUNE, (now - KEEP_IDS,))

    def totals(self) -> list:
        rows = self.file.rows(
            f"SELECT key, model, {', '.join(COUNTS)} FROM usage ORDER BY key, model"
        )
        return [
            _row(key, model, dict(zip(COUNTS, counts, strict=True))) for key, model, *counts in rows
        ]

    def spent(self, key: str, periods: list) -> list:
        """What ``key`` has spent in each of ``periods`` (tokens, or micro-dollars)."""
        found = dict(
            self.file.rows(
                "SELECT period, tokens FROM budgets WHERE key = ? AND period IN "
                f"({', '.join('?' * len(periods))})",
                (key, *periods),
            )
        )
        return [found.get(name, 0) for name in periods]

    def held(self, key: str, now: float) -> tuple:
        """``(tokens, micro_usd)`` the requests of ``key`` in flight hold."""
        ((tokens, micro_usd),) = self.file.rows(
            "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(micro_usd), 0) FROM holds "
            "WHERE key = ? AND until > ?",
            (key, now),
        )
        return tokens, micro_usd

    def hold(self, hold: Hold, now: float) -> bool:
        """Add ``hold`` if it fits, checked and added in one transaction that no other
        process's can interleave; whether it did."""
        with self.file.transaction() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM holds WHERE key = ? AND until <= ?", (hold.key, now))
            held = dict(
                zip(
                    ("tokens", "usd"),
                    db.execute(
                        "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(micro_usd), 0) "
                        "FROM holds WHERE key = ?",
                        (hold.key,),
                    ).fetchone(),
                    strict=True,
                )
            )
            for name, unit, size in hold.limits:
                row = db.execute(
                    "SELECT tokens FROM budgets WHERE key = ? AND period = ?", (hold.key, name)
                ).fetchone()
                if (row[0] if row else 0) + held[unit] + hold.amount(unit) > size:
                    return False
            db.execute(
                "INSERT INTO holds VALUES (?, ?, ?, ?, ?)",
                (hold.id, hold.key, hold.tokens, hold.micro_usd, hold.until),
            )
            return True


# KEYS: the charge's id, its usage hash, the set of pairs, its key's holds (their ends and
# their amounts), then its budget periods' counts; ARGV: seconds the id is kept, the pair,
# the budget counts' lifetime, the COUNTS, the hold it lets go ("": none), then what each
# budget period is charged (tokens or micro-dollars), in the order of their KEYS
APPLY = f"""
local hold = ARGV[{4 + len(COUNTS)}]
if hold ~= '' then
  redis.call('ZREM', KEYS[4], hold)
  redis.call('HDEL', KEYS[5], hold)
end
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then
  return 0
end
local counts = {{{", ".join(f"'{name}'" for name in COUNTS)}}}
for i, name in ipairs(counts) do
  redis.call('HINCRBY', KEYS[2], name, ARGV[3 + i])
end
redis.call('SADD', KEYS[3], ARGV[2])
for i = 6, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[i + {len(COUNTS) - 1}])
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
return 1
"""
# KEYS: the key's holds (their ends, their amounts), then the counts of the periods its
# limits name; ARGV: now, the hold's id, its end, tokens, micro-dollars, then each limit's
# unit and size, in the order of their KEYS
HOLD = """
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #lapsed > 0 then
  redis.call('HDEL', KEYS[2], unpack(lapsed))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
end
local held = {tokens = 0, usd = 0}
for _, amounts in ipairs(redis.call('HVALS', KEYS[2])) do
  local tokens, micro_usd = string.match(amounts, '(%d+) (%d+)')
  held.tokens = held.tokens + tonumber(tokens)
  held.usd = held.usd + tonumber(micro_usd)
end
local wants = {tokens = tonumber(ARGV[4]), usd = tonumber(ARGV[5])}
for i = 3, #KEYS do
  local unit, size = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
  if tonumber(redis.call('GET', KEYS[i]) or '0') + held[unit] + wants[unit] > size then
    return 0
  end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4] .. ' ' .. ARGV[5])
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[3])))
redis.call('EXPIREAT', KEYS[2], math.ceil(tonumber(ARGV[3])))
return 1
"""


class RedisUsage:
    """Usage in Redis hashes, one per key and model, and budgets in counters per period:
    one count for every proxy sharing it."""

    PREFIX = "oai-proxy:usage:"
    BUDGET = "oai-proxy:budget:"
    CHARGED = "oai-proxy:charged:"
    HOLDS = "oai-proxy:holds:"  # a sorted set of each hold's end, and a hash of its amounts
    SEPARATOR = "\x1f"

    def __init__(self, client) -> None:
        self.client = client
        self._apply = client.register_script(APPLY)
        self._hold = client.register_script(HOLD)

    def apply(self, charges: Sequence[Charge]) -> None:
        """Add each of ``charges`` not applied before: each atomically, all in one round."""
        with self.client.pipeline(transaction=False) as pipe:
            for charge in charges:
                pair = charge.key + self.SEPARATOR + charge.counted_as
                budgets = charge.budgets()
                self._apply(
                    keys=[
                        self.CHARGED + charge.id,
                        self.PREFIX + pair,
                        self.PREFIX + "pairs",
                        *self._holds(charge.key),
                        *(self._budget(charge.key, name) for name, _ in budgets),
                    ],
                    args=[
                        KEEP_IDS,
                        pair,
                        KEPT_FOR,
                        *charge.counts(),
                        charge.hold,
                        *(n for _, n in budgets),
                    ],  # fmt: skip
                    client=pipe,
                )
            pipe.execute()

    def totals(self) -> list:
        pairs = sorted(
            member.decode() if isinstance(member, bytes) else member
            for member in self.client.smembers(self.PREFIX + "pairs")
        )
        listed = []
        for pair in pairs:
            key, _, model = pair.partition(self.SEPARATOR)
            counts = self.client.hgetall(self.PREFIX + pair)
            kept = {name: int(counts.get(name.encode(), counts.get(name, 0))) for name in COUNTS}
            listed.append(_row(key, model, kept))
        return listed

    def spent(self, key: str, periods: list) -> list:
        values = self.client.mget([self._budget(key, name) for name in periods])
        return [int(value or 0) for value in values]

    def held(self, key: str, now: float) -> tuple:
        """``(tokens, micro_usd)`` the requests of ``key`` in flight hold."""
        ends, amounts = self._holds(key)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(ends, f"({now}", "+inf")
            pipe.hgetall(amounts)
            alive, every = pipe.execute()
        held = [every[name].split() for name in alive if name in every]
        return sum(int(t) for t, _ in held), sum(int(u) for _, u in held)

    def hold(self, hold: Hold, now: float) -> bool:
        """Add ``hold`` if it fits, checked and added in one step of Redis's; whether it
        did."""
        limits = [(self._budget(hold.key, name), unit, size) for name, unit, size in hold.limits]
        return bool(
            self._hold(
                keys=[*self._holds(hold.key), *(name for name, _, _ in limits)],
                args=[
                    now,
                    hold.id,
                    hold.until,
                    hold.tokens,
                    hold.micro_usd,
                    *(part for _, unit, size in limits for part in (unit, size)),
                ],  # fmt: skip
            )
        )

    def _holds(self, key: str) -> tuple:
        return f"{self.HOLDS}{key}:ends", f"{self.HOLDS}{key}:amounts"

    def _budget(self, key: str, period_name: str) -> str:
        return f"{self.BUDGET}{key}:{period_name}"
