"""The inspector's exchanges in a SQLite file: where they are kept unless proxies share a
Redis (``redis_exchanges.py``, within the same bounds), listed newest first, each turn
linked to the one before it by their thread.

Kept where usage is (a SQLite file every process on the machine shares), within three bounds,
the oldest dropped first past any: a count (10,000 exchanges: a busy team's day), bytes
(256 MiB: the count at an agent's typical 25 KB an exchange, with room for long ones) and an
age (7 days: last week's trouble, not last month's).
"""

from __future__ import annotations

import json
import time
from typing import Callable, Iterable, Optional

from proxy.access.sqlite import SqliteDatabase

MAX_EXCHANGES = 10_000
MAX_BYTES = 256 * 1024 * 1024
RETENTION_DAYS = 7.0
MAX_LISTED = 1000
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS exchanges (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "at REAL NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL, api TEXT NOT NULL, "
    "status INTEGER NOT NULL, thread TEXT NOT NULL, bytes INTEGER NOT NULL, "
    "record TEXT NOT NULL)"
)
RENAMED = (("exchanges", "conversation", "thread"),)  # in files the proxy wrote before
ADDED = (("exchanges", "owner", "TEXT NOT NULL DEFAULT ''"),)  # whose: its key's owner
COLUMNS = ("id", "at", "key", "owner", "model", "api", "status", "thread")
FACTS = ("path", "seconds", "prompt_tokens", "cached_tokens", "completion_tokens")  # in the list
SUMMARY = COLUMNS + FACTS
FILTERS = ("key", "owner", "model", "api", "status", "thread")


def current(record: dict) -> dict:
    """A record or a summary with its fields as they are named now: one kept before a
    thread was called so keeps it under ``conversation``, one kept before exchanges had
    owners has none."""
    if "owner" not in record:
        record = {**record, "owner": ""}
    if "conversation" not in record or "thread" in record:
        return record
    return {("thread" if name == "conversation" else name): value for name, value in record.items()}


def brief(id: int, record: dict) -> dict:
    """What the list shows of an exchange."""
    return {"id": id, **{name: record.get(name) for name in SUMMARY if name != "id"}}


def matches(summary: dict, since=None, until=None, before=None, **only) -> bool:
    """Whether an exchange's ``summary`` passes the filters :meth:`SqliteExchanges.listed`
    takes."""
    if any(only.get(name) is not None and summary[name] != only[name] for name in FILTERS):
        return False
    at = summary["at"]
    return (
        (since is None or at >= since)
        and (until is None or at < until)
        and (before is None or summary["id"] < before)
    )


class SqliteExchanges:
    """Exchanges in a SQLite file, within the bounds, newest first."""

    def __init__(
        self,
        path: str,
        *,
        max_count: int = MAX_EXCHANGES,
        max_bytes: int = MAX_BYTES,
        retention: float = RETENTION_DAYS * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.file = SqliteDatabase(path, SCHEMA, added=ADDED, renamed=RENAMED)
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.retention = retention
        self.clock = clock

    def add(self, records: Iterable[dict]) -> int:
        """Keep ``records``; return how many older ones made room for them."""
        rows = []
        for record in records:
            text = json.dumps(record, ensure_ascii=False)
            rows.append(
                (
                    record["at"],
                    record["key"],
                    record.get("owner", ""),
                    record["model"],
                    record["api"],
                    record["status"],
                    record.get("thread") or "",
                    len(text.encode("utf-8")),
                    text,
                )  # fmt: skip
            )
        with self.file.transaction() as db:
            db.executemany(
                "INSERT INTO exchanges (at, key, owner, model, api, status, thread, bytes, "
                "record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return self._trim(db)

    def _trim(self, db) -> int:
        dropped = db.execute(
            "DELETE FROM exchanges WHERE at < ?", (self.clock() - self.retention,)
        ).rowcount
        count, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM exchanges"
        ).fetchone()
        if count <= self.max_count and size <= self.max_bytes:
            return dropped
        # the newest that fit both bounds stay
        kept_from = db.execute(
            "SELECT MIN(id) FROM (SELECT id, SUM(bytes) OVER (ORDER BY id DESC) AS total, "
            "ROW_NUMBER() OVER (ORDER BY id DESC) AS number FROM exchanges) "
            "WHERE total <= ? AND number <= ?",
            (self.max_bytes, self.max_count),
        ).fetchone()[0]
        return (
            dropped
            + db.execute(
                "DELETE FROM exchanges WHERE id < ?",
                (kept_from if kept_from is not None else 2**62,),
            ).rowcount
        )

    def listed(
        self,
        limit: int = 100,
        *,
        since: Optional[float] = None,
        until: Optional[float] = None,
        before: Optional[int] = None,
        **only,
    ) -> list:
        """The newest exchanges' summaries (``only``: a key, model, api, status or
        thread to match; ``since``/``until``: unix seconds; ``before``: ids below)."""
        where = [f"{name} = ?" for name in FILTERS if only.get(name) is not None]
        values = [only[name] for name in FILTERS if only.get(name) is not None]
        for clause, value in (("at >= ?", since), ("at < ?", until), ("id < ?", before)):
            if value is not None:
                where.append(clause)
                values.append(value)
        facts = ", ".join(f"json_extract(record, '$.{name}')" for name in FACTS)
        rows = self.file.rows(
            f"SELECT {', '.join(COLUMNS)}, {facts} FROM exchanges"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY id DESC LIMIT ?",
            (*values, min(limit, MAX_LISTED)),
        )
        return [dict(zip(SUMMARY, row, strict=True)) for row in rows]

    def previous(self, record: dict) -> Optional[dict]:
        """The turn of ``record``'s thread (of its key's owner) kept just before it, if any."""
        if not record.get("thread"):
            return None
        rows = self.file.rows(
            "SELECT id FROM exchanges WHERE thread = ? AND owner = ? AND id < ? "
            "ORDER BY id DESC LIMIT 1",
            (record["thread"], record.get("owner", ""), record["id"]),
        )
        return self.get(rows[0][0]) if rows else None

    def get(self, id: int) -> Optional[dict]:
        rows = self.file.rows("SELECT id, record FROM exchanges WHERE id = ?", (id,))
        return {"id": rows[0][0], **current(json.loads(rows[0][1]))} if rows else None

    def totals(self) -> tuple:
        """``(exchanges kept, their bytes)``."""
        (totals,) = self.file.rows("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM exchanges")
        return tuple(totals)
