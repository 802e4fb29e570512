"""Stored responses: per key, for their retention, continued through a chain, in SQLite (shared
by the processes of a machine) and in Redis (shared by every proxy)."""

from __future__ import annotations

import pytest
import redis

from proxy.access.stored import RedisRecords, SqliteRecords, StoredResponse, StoredResponses
from proxy.core.errors import NotFoundError, StoreUnavailableError
from proxy.core.outages import Outages

DAY = 86400.0


def response(id: str, text: str) -> dict:
    return {
        "id": id,
        "object": "response",
        "output": [
            {
                "id": f"msg_{id}",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            }
        ],
    }


def said(text: str) -> list:
    return [
        {
            "id": f"in_{text}",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
    ]


@pytest.fixture(params=["sqlite", "redis"])
def records(request, tmp_path):
    if request.param == "sqlite":
        return SqliteRecords(str(tmp_path / "responses.sqlite3"))
    return RedisRecords(request.getfixturevalue("redis_client"))


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_chain_of_turns_reads_back_oldest_first(records):
    store = StoredResponses(records, 30 * DAY, Outages("a store"))
    store.save("alice", StoredResponse(response("r1", "one"), said("a"), None, "thread-1"))
    store.save("alice", StoredResponse(response("r2", "two"), said("b"), "r1", "thread-1"))
    items, last = store.history("alice", "r2")
    assert [item["id"] for item in items] == ["in_a", "msg_r1", "in_b", "msg_r2"]
    assert last.conversation == "thread-1" and last.previous == "r1"
    assert store.get("alice", "r1").input_items == said("a")


def test_one_key_never_reads_anothers(records):
    store = StoredResponses(records, 30 * DAY, Outages("a store"))
    store.save("alice", StoredResponse(response("r1", "one"), said("a")))
    with pytest.raises(NotFoundError) as error:
        store.get("bob", "r1")
    assert "r1" in error.value.message and error.value.status == 404
    with pytest.raises(NotFoundError):
        store.delete("bob", "r1")
    assert store.get("alice", "r1").response["id"] == "r1"


def test_deleted_and_expired_are_gone(records):
    clock = Clock()
    store = StoredResponses(records, 30 * DAY, Outages("a store"), clock)
    store.save("alice", StoredResponse(response("r1", "one"), said("a")))
    store.save("alice", StoredResponse(response("r2", "two"), said("b"), "r1"))
    store.delete("alice", "r1")
    with pytest.raises(NotFoundError):
        store.history("alice", "r2")  # a link of the chain is gone: not half a conversation
    clock.now += 31 * DAY
    with pytest.raises(NotFoundError):
        store.get("alice", "r2")


def test_sqlite_is_shared_by_every_connection(tmp_path):
    path = str(tmp_path / "responses.sqlite3")
    StoredResponses(SqliteRecords(path), DAY, Outages("a SQLite file")).save(
        "alice", StoredResponse(response("r1", "one"), said("a"))
    )
    assert (
        StoredResponses(SqliteRecords(path), DAY, Outages("a SQLite file"))
        .get("alice", "r1")
        .response["id"]
        == "r1"
    )


def test_redis_gone_is_a_503():
    outages = Outages("Redis", remote=True)
    gone = RedisRecords(redis.Redis(port=1, socket_connect_timeout=0.5))
    store = StoredResponses(gone, DAY, outages)
    for use in (lambda: store.get("alice", "r1"), lambda: store.reserve("alice", "r2", kept())):
        with pytest.raises(StoreUnavailableError, match="response store [(]Redis[)]") as error:
            use()
        assert (error.value.status, error.value.code, error.value.retry_after) == (
            503,
            "store_unavailable",
            5,
        )
    assert not outages.is_up("responses")


def kept() -> StoredResponse:
    return StoredResponse({}, said("a"))


def test_a_reserved_response_is_absent_until_its_answer_replaces_it(records):
    store = StoredResponses(records, 30 * DAY, Outages("a store"))
    store.reserve("alice", "r1", kept())
    with pytest.raises(NotFoundError):
        store.get("alice", "r1")
    store.save("alice", StoredResponse(response("r1", "one"), said("a")))
    assert store.get("alice", "r1").response["output"][0]["id"] == "msg_r1"
