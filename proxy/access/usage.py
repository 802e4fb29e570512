"""Usage per key and model (requests, prompt, cached prompt and completion tokens, errors), and
what each key's budgets have spent (tokens, and money in micro-dollars): what every answer
charges, in one store.

Each answer is one :class:`Charge`: its usage and what it costs its budgets, with an id of
its own, written in one transaction as the answer ends, before its client sees the end, so
that a proxy killed right after loses nothing it answered. The store is SQLite by default (the file
survives restarts; several processes may share it) or Redis (shared by every proxy). A
charge counts once whatever happens: the store keeps the ids it applied (for
:data:`KEEP_IDS`), so a charge written again (replayed by :mod:`proxy.access.journal` after
an outage or a crash) is not counted twice.

Money is counted in whole micro-dollars (a millionth of a US dollar), so that Redis's
``INCRBY`` and SQLite's integers add it exactly, whichever proxy adds it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Sequence

from proxy.access.sqlite import SqliteFile

COUNTS = ("requests", "prompt_tokens", "completion_tokens", "errors", "cached_tokens")
KEEP_IDS = 7 * 86400  # seconds an applied charge's id is kept: a replay comes sooner
KEPT_FOR = 40 * 86400  # seconds Redis keeps a budget period's count: a month and a margin
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (key TEXT NOT NULL, model TEXT NOT NULL, "
    "requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, "
    "completion_tokens INTEGER NOT NULL, errors INTEGER NOT NULL, "
    "cached_tokens INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key, model))",
    # a period's count: tokens, or micro-dollars for a money budget's ("usd_day:2026-11-26")
    "CREATE TABLE IF NOT EXISTS budgets (key TEXT NOT NULL, period TEXT NOT NULL, "
    "tokens INTEGER NOT NULL, PRIMARY KEY (key, period))",
    "CREATE TABLE IF NOT EXISTS charged (id TEXT PRIMARY KEY, at REAL NOT NULL)",
)
# columns a file made before them lacks: added to it as it is opened
ADDED_COLUMNS = (("usage", "cached_tokens", "INTEGER NOT NULL DEFAULT 0"),)
ADD_USAGE = (
    f"INSERT INTO usage (key, model, {', '.join(COUNTS)}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key, model) DO UPDATE SET "
    + ", ".join(f"{count} = {count} + excluded.{count}" for count in COUNTS)
)
PRUNE_EVERY = 1000  # charges between two prunings of old ids


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
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def counts(self) -> tuple:
        return (1, self.prompt_tokens, self.completion_tokens, int(self.error), self.cached_tokens)

    def budgets(self) -> list:
        """``(period, amount)`` of each budget period it is charged to."""
        return [(name, self.tokens) for name in self.periods] + [
            (name, self.micro_usd) for name in self.usd_periods
        ]

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "periods": list(self.periods),
            "usd_periods": list(self.usd_periods),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Charge":
        """A charge as :meth:`as_dict` wrote it (an earlier version's lacks the later
        fields: they are nothing)."""
        return cls(
            **{
                **data,
                "periods": tuple(data["periods"]),
                "usd_periods": tuple(data.get("usd_periods", ())),
            }
        )


class SqliteUsage:
    """Usage and budgets in a SQLite file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection = SqliteFile(path, *SCHEMA, added=ADDED_COLUMNS).connection
        self._applied = 0

    def apply(self, charges: Sequence[Charge]) -> None:
        """Add each of ``charges`` not applied before, in one transaction."""
        now = time.time()
        with self._connection() as db:
            for charge in charges:
                fresh = db.execute(
                    "INSERT OR IGNORE INTO charged VALUES (?, ?)", (charge.id, now)
                ).rowcount
                if not fresh:
                    continue
                db.execute(ADD_USAGE, (charge.key, charge.model, *charge.counts()))
                db.executemany(
                    "INSERT INTO budgets VALUES (?, ?, ?) ON CONFLICT (key, period) "
                    "DO UPDATE SET tokens = tokens + excluded.tokens",
                    [(charge.key, name, amount) for name, amount in charge.budgets()],
                )
            self._applied += len(charges)
            if self._applied >= PRUNE_EVERY:
                self._applied = 0
                db.execute("DELETE FROM charged WHERE at < ?", (now - KEEP_IDS,))

    def totals(self) -> list:
        rows = (
            self._connection()
            .execute(f"SELECT key, model, {', '.join(COUNTS)} FROM usage ORDER BY key, model")
            .fetchall()
        )
        return [
            {"key": key, "model": model, **dict(zip(COUNTS, counts, strict=True))}
            for key, model, *counts in rows
        ]

    def spent(self, key: str, periods: list) -> list:
        """What ``key`` has spent in each of ``periods`` (tokens, or micro-dollars)."""
        found = dict(
            self._connection()
            .execute(
                "SELECT period, tokens FROM budgets WHERE key = ? AND period IN "
                f"({', '.join('?' * len(periods))})",
                (key, *periods),
            )
            .fetchall()
        )
        return [found.get(name, 0) for name in periods]


# KEYS: the charge's id, its usage hash, the set of pairs, then its budget periods' counts;
# ARGV: seconds the id is kept, the pair, the budget counts' lifetime, the five counts, then
# what each budget period is charged (tokens or micro-dollars), in the order of their KEYS
APPLY = """
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then
  return 0
end
local counts = {'requests', 'prompt_tokens', 'completion_tokens', 'errors', 'cached_tokens'}
for i, name in ipairs(counts) do
  redis.call('HINCRBY', KEYS[2], name, ARGV[3 + i])
end
redis.call('SADD', KEYS[3], ARGV[2])
for i = 4, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[i + 5])
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
return 1
"""


class RedisUsage:
    """Usage in Redis hashes, one per key and model, and budgets in counters per period:
    one count for every proxy sharing it."""

    PREFIX = "oai-proxy:usage:"
    BUDGET = "oai-proxy:budget:"
    CHARGED = "oai-proxy:charged:"
    SEPARATOR = "\x1f"

    def __init__(self, client) -> None:
        self.client = client
        self._apply = client.register_script(APPLY)

    def apply(self, charges: Sequence[Charge]) -> None:
        """Add each of ``charges`` not applied before: each atomically, all in one round."""
        with self.client.pipeline(transaction=False) as pipe:
            for charge in charges:
                pair = charge.key + self.SEPARATOR + charge.model
                budgets = charge.budgets()
                self._apply(
                    keys=[
                        self.CHARGED + charge.id,
                        self.PREFIX + pair,
                        self.PREFIX + "pairs",
                        *(self._budget(charge.key, name) for name, _ in budgets),
                    ],
                    args=[KEEP_IDS, pair, KEPT_FOR, *charge.counts(), *(n for _, n in budgets)],
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
            listed.append(
                {
                    "key": key,
                    "model": model,
                    **{
                        field: int(counts.get(field.encode(), counts.get(field, 0)))
                        for field in COUNTS
                    },
                }
            )
        return listed

    def spent(self, key: str, periods: list) -> list:
        values = self.client.mget([self._budget(key, name) for name in periods])
        return [int(value or 0) for value in values]

    def _budget(self, key: str, period_name: str) -> str:
        return f"{self.BUDGET}{key}:{period_name}"
