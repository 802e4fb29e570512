"""Usage per key and model: requests, prompt and completion tokens, errors.

Requests add to counts in memory; a thread writes them out every second (and at exit), so a
request never waits on a disk or a network. The store is SQLite by default (the table
survives restarts; several processes may share the file) or Redis (shared by every proxy).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Optional

from proxy.access.sqlite import Connections

logger = logging.getLogger(__name__)

COUNTS = ("requests", "prompt_tokens", "completion_tokens", "errors")
FLUSH_EVERY = 1.0  # seconds
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (key TEXT NOT NULL, model TEXT NOT NULL, "
    "requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, "
    "completion_tokens INTEGER NOT NULL, errors INTEGER NOT NULL, "
    "PRIMARY KEY (key, model))"
)


class SqliteUsage:
    """Totals in a SQLite file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection = Connections(path, SCHEMA).get

    def add(self, rows: dict) -> None:
        """``{(key, model): [requests, prompt, completion, errors]}`` added to the totals."""
        with self._connection() as db:
            db.executemany(
                "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, model) DO UPDATE "
                "SET requests = requests + excluded.requests, "
                "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = completion_tokens + excluded.completion_tokens, "
                "errors = errors + excluded.errors",
                [(key, model, *counts) for (key, model), counts in rows.items()],
            )

    def totals(self) -> list:
        rows = (
            self._connection()
            .execute(
                "SELECT key, model, requests, prompt_tokens, completion_tokens, errors FROM usage "
                "ORDER BY key, model"
            )
            .fetchall()
        )
        return [
            {"key": key, "model": model, **dict(zip(COUNTS, counts))}
            for key, model, *counts in rows
        ]


class RedisUsage:
    """Totals in Redis hashes, one per key and model."""

    PREFIX = "oai-proxy:usage:"
    SEPARATOR = "\x1f"

    def __init__(self, client) -> None:
        self.client = client

    def add(self, rows: dict) -> None:
        with self.client.pipeline() as pipe:
            for (key, model), counts in rows.items():
                name = self.PREFIX + key + self.SEPARATOR + model
                for field, count in zip(COUNTS, counts):
                    pipe.hincrby(name, field, count)
                pipe.sadd(self.PREFIX + "pairs", key + self.SEPARATOR + model)
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


class UsageRecorder:
    """Counts in memory, written to ``store`` in the background."""

    def __init__(self, store) -> None:
        self.store = store
        self._pending: dict = defaultdict(lambda: [0, 0, 0, 0])
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._writer: Optional[threading.Thread] = None

    def record(
        self, key: str, model: str, prompt_tokens: int, completion_tokens: int, error: bool
    ) -> None:
        with self._lock:
            counts = self._pending[(key, model)]
            counts[0] += 1
            counts[1] += prompt_tokens
            counts[2] += completion_tokens
            counts[3] += int(error)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_every_second, name="usage-writer", daemon=True
                )
                self._writer.start()

    def totals(self) -> list:
        """Everything recorded so far, this process's unwritten counts included."""
        self.flush()
        return self.store.totals()

    def flush(self) -> None:
        with self._lock:
            rows, self._pending = dict(self._pending), defaultdict(lambda: [0, 0, 0, 0])
        if not rows:
            return
        try:
            self.store.add(rows)
        except Exception as exc:  # keep them for the next try rather than lose them
            logger.warning("usage not written yet: %s: %s", type(exc).__name__, exc)
            with self._lock:
                for pair, counts in rows.items():
                    pending = self._pending[pair]
                    for index, count in enumerate(counts):
                        pending[index] += count

    def close(self) -> None:
        self._stopped.set()
        self.flush()

    def _write_every_second(self) -> None:
        while not self._stopped.wait(FLUSH_EVERY):
            self.flush()
