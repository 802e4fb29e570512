"""Responses the proxy keeps (the Responses API's ``store``), for ``previous_response_id``,
``GET`` and ``DELETE``: each with its input items, its owner (the key's owner) and, when it
has one, the conversation it belongs to, for a retention period.

One key never sees another's responses: a response of another owner is as good as absent.
SQLite by default (a file next to the usage file; every process on the machine shares it), or
Redis (``--redis-url``: every proxy shares it).

A response to keep is written before it is generated (:meth:`StoredResponses.reserve`, its
input items and all), so that a store that cannot take it (Redis gone, the disk full) refuses
the request before any work, in the API's own error, rather than after the answer was sent;
until the answer replaces it, the reservation is as good as absent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Optional

from proxy.access.sqlite import SqliteDatabase
from proxy.core.errors import NotFoundError
from proxy.core.outages import Outages

MAX_CHAIN = 10_000  # responses a conversation may be continued through
PURGE_EVERY = 100  # saves between two sweeps of the expired rows (SQLite)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, created REAL NOT NULL, "
    "record TEXT NOT NULL)"
)


@dataclass(frozen=True)
class StoredResponse:
    response: dict
    input_items: list
    previous: Optional[str] = None  # the response it continued
    conversation: Optional[str] = None  # the key its turns are placed by, if one was given


class StoredResponses:
    """The store's rules over a backend that keeps records by id (see :class:`SqliteRecords`
    and :class:`RedisRecords`)."""

    def __init__(
        self, records, retention: float, outages: Outages, clock: Callable[[], float] = time.time
    ) -> None:
        """``retention``: seconds a response is kept; ``outages``: told when the store fails
        and comes back."""
        self.records = records
        self.retention = retention
        self.outages = outages
        self.clock = clock

    def reserve(self, owner: str, id: str, stored: StoredResponse) -> None:
        """Write ``stored`` (its response still to come) under ``id`` before the answer is
        generated: a 503 ``store_unavailable`` now if the store cannot take it."""
        self._put(owner, {"id": id, "status": "in_progress", "output": []}, stored, True)

    def save(self, owner: str, stored: StoredResponse) -> None:
        self._put(owner, stored.response, stored, False)

    def _put(self, owner: str, response: dict, stored: StoredResponse, reserved: bool) -> None:
        record = {
            "owner": owner,
            "created": self.clock(),
            "response": response,
            "input": stored.input_items,
            "previous": stored.previous,
            "conversation": stored.conversation,
            **({"reserved": True} if reserved else {}),
        }
        with self.outages.reaching("responses"):
            self.records.put(response["id"], record, self.retention)

    def get(self, owner: str, id: str) -> StoredResponse:
        """The response ``id`` of ``owner``; a 404 naming it when absent, expired, another's
        or not answered yet."""
        with self.outages.reaching("responses", reading=True):
            record = self.records.get(id)
        if (
            record is None
            or record.get("reserved")
            or record["owner"] != owner
            or record["created"] < self.clock() - self.retention
        ):
            raise NotFoundError(
                f"No response with id {id!r} is stored here (for this key); "
                f"responses are kept {self.retention / 86400:g} days",
                param="previous_response_id",
            )
        return StoredResponse(
            record["response"], record["input"], record["previous"], record["conversation"]
        )

    def delete(self, owner: str, id: str) -> None:
        self.get(owner, id)
        with self.outages.reaching("responses"):
            self.records.remove(id)

    def history(self, owner: str, id: str) -> tuple:
        """``(items, stored)``: every item of the conversation through response ``id`` (the
        inputs and outputs of it and of the responses it continued, oldest first), and the
        response itself."""
        chain, next_id = [], id
        while next_id is not None and len(chain) < MAX_CHAIN:
            stored = self.get(owner, next_id)
            chain.append(stored)
            next_id = stored.previous
        items = [
            item
            for stored in reversed(chain)
            for item in (*stored.input_items, *stored.response["output"])
        ]
        return items, chain[0]


class SqliteRecords:
    """Records as JSON in a SQLite file."""

    def __init__(self, path: str) -> None:
        self.file = SqliteDatabase(path, SCHEMA)
        self._saves = 0

    def put(self, id: str, record: dict, retention: float) -> None:
        with self.file.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                (id, record["created"], json.dumps(record, ensure_ascii=False)),
            )
            self._saves += 1
            if self._saves % PURGE_EVERY == 1:
                db.execute(
                    "DELETE FROM responses WHERE created < ?", (record["created"] - retention,)
                )

    def get(self, id: str) -> Optional[dict]:
        rows = self.file.rows("SELECT record FROM responses WHERE id = ?", (id,))
        return json.loads(rows[0][0]) if rows else None

    def remove(self, id: str) -> None:
        with self.file.transaction() as db:
            db.execute("DELETE FROM responses WHERE id = ?", (id,))


class RedisRecords:
    """Records as JSON in Redis, each expiring with its retention."""

    PREFIX = "oai-proxy:response:"

    def __init__(self, client) -> None:
        """``client``: a ``redis.Redis``."""
        self.client = client

    def put(self, id: str, record: dict, retention: float) -> None:
        self.client.set(
            self.PREFIX + id, json.dumps(record, ensure_ascii=False), ex=max(int(retention), 1)
        )

    def get(self, id: str) -> Optional[dict]:
        raw = self.client.get(self.PREFIX + id)
        return None if raw is None else json.loads(raw)

    def remove(self, id: str) -> None:
        self.client.delete(self.PREFIX + id)
