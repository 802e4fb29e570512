"""The inspector's exchanges in Redis, for proxies that share one (``--redis-url``): every
proxy's exchanges in one list, within the same bounds as the SQLite store's.

Each exchange is a JSON record in one hash and its summary in another (what the list filters
on, a few hundred bytes, so that a filtered list never reads whole records), its id in a
sorted set in the order it came; the oldest go first past any bound.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Iterable, Optional

from proxy.inspector.sqlite_exchanges import (
    MAX_BYTES,
    MAX_EXCHANGES,
    MAX_LISTED,
    RETENTION_DAYS,
    brief,
    current,
    matches,
)

PREFIX = "oai-proxy:exchanges:"
IDS, RECORDS, BRIEFS, SIZES, BYTES, NEXT = (
    PREFIX + name for name in ("ids", "records", "briefs", "sizes", "bytes", "next")
)
SCAN = 500  # summaries read at a time while a filtered list is filled


class RedisExchanges:
    """Exchanges in Redis, within the bounds, newest first."""

    def __init__(
        self,
        client,
        *,
        max_count: int = MAX_EXCHANGES,
        max_bytes: int = MAX_BYTES,
        retention: float = RETENTION_DAYS * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.retention = retention
        self.clock = clock

    def add(self, records: Iterable[dict]) -> int:
        """Keep ``records``; return how many older ones made room for them."""
        records = list(records)
        if not records:
            return 0
        last = self.client.incrby(NEXT, len(records))
        with self.client.pipeline() as pipe:
            for id, record in enumerate(records, last - len(records) + 1):
                text = json.dumps(record, ensure_ascii=False)
                size = len(text.encode("utf-8"))
                pipe.hset(RECORDS, id, text)
                pipe.hset(BRIEFS, id, json.dumps(brief(id, record), ensure_ascii=False))
                pipe.hset(SIZES, id, size)
                pipe.incrby(BYTES, size)
                pipe.zadd(IDS, {str(id): id})
            pipe.execute()
        return self._trim()

    def _trim(self) -> int:
        """Drop the oldest while any bound is passed."""
        dropped = 0
        while True:
            oldest = self.client.zrange(IDS, 0, 0)
            if not oldest:
                return dropped
            id = int(oldest[0])
            summary = self._brief(id)
            count = self.client.zcard(IDS)
            size = int(self.client.get(BYTES) or 0)
            too_old = summary is None or summary["at"] < self.clock() - self.retention
            if not too_old and count <= self.max_count and size <= self.max_bytes:
                return dropped
            if self._drop(id):
                dropped += 1

    def _drop(self, id: int) -> bool:
        """Forget exchange ``id``; whether this call was the one that did (proxies sharing
        the store may trim at once)."""
        size = self.client.hget(SIZES, id)
        with self.client.pipeline() as pipe:
            pipe.zrem(IDS, str(id))
            pipe.hdel(RECORDS, id)
            pipe.hdel(BRIEFS, id)
            pipe.hdel(SIZES, id)
            removed = pipe.execute()[0]
        if removed and size is not None:
            self.client.decrby(BYTES, int(size))
        return bool(removed)

    def listed(self, limit: int = 100, **filters) -> list:
        """The newest exchanges' summaries that pass ``filters`` (as the SQLite store's)."""
        limit = min(limit, MAX_LISTED)
        found: list = []
        start = 0
        while len(found) < limit:
            ids = self.client.zrevrange(IDS, start, start + SCAN - 1)
            if not ids:
                break
            start += SCAN
            for text in self.client.hmget(BRIEFS, ids):
                if text is None:
                    continue
                summary = current(json.loads(text))
                if matches(summary, **filters):
                    found.append(summary)
                    if len(found) == limit:
                        break
        return found

    def previous(self, record: dict) -> Optional[dict]:
        """The turn of ``record``'s thread (of its key's owner) kept just before it, if any."""
        if not record.get("thread"):
            return None
        before = self.listed(1, thread=record["thread"], owner=record.get("owner", ""),
                             before=record["id"])  # fmt: skip
        return self.get(before[0]["id"]) if before else None

    def get(self, id: int) -> Optional[dict]:
        text = self.client.hget(RECORDS, id)
        return None if text is None else {"id": id, **current(json.loads(text))}

    def totals(self) -> tuple:
        """``(exchanges kept, their bytes)``."""
        return self.client.zcard(IDS), int(self.client.get(BYTES) or 0)

    def _brief(self, id: int) -> Optional[dict]:
        text = self.client.hget(BRIEFS, id)
        return None if text is None else json.loads(text)
