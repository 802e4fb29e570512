"""Usage and budget charges: SQLite that survives restarts and several writers, and Redis; each
charge counted once by its id, however often it is written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from proxy.access.usage import Charge, RedisUsage, SqliteUsage

ROW = {"key": "alice", "model": "qwen"}


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteUsage(str(tmp_path / "usage.sqlite3"))
    return RedisUsage(request.getfixturevalue("redis_client"))


def test_counts_add_up(store):
    store.apply([Charge("alice", "qwen", 10, 5, False), Charge("alice", "qwen", 3, 0, True)])
    store.apply([Charge("bob", "qwen", 1, 1, False)])
    assert store.totals() == [
        {**ROW, "requests": 2, "prompt_tokens": 13, "completion_tokens": 5, "errors": 1},
        {
            "key": "bob",
            "model": "qwen",
            "requests": 1,
            "prompt_tokens": 1,
            "completion_tokens": 1,
            "errors": 0,
        },
    ]


def test_a_charge_written_again_counts_once(store):
    charge = Charge("alice", "qwen", 10, 5, False, ("day:2026-11-26", "month:2026-11"), 15)
    store.apply([charge])
    store.apply([charge, Charge.from_dict(charge.as_dict())])  # replayed, and from a journal
    store.apply([Charge("alice", "qwen", 1, 1, False, ("day:2026-11-26",), 2)])
    assert store.totals() == [
        {**ROW, "requests": 2, "prompt_tokens": 11, "completion_tokens": 6, "errors": 0}
    ]
    assert store.spent("alice", ["day:2026-11-26", "month:2026-11", "day:2026-11-27"]) == [
        17,
        15,
        0,
    ]


def test_counts_survive_a_restart(tmp_path):
    path = str(tmp_path / "usage.sqlite3")
    SqliteUsage(path).apply([Charge("alice", "qwen", 10, 5, False)])
    assert SqliteUsage(path).totals() == [
        {**ROW, "requests": 1, "prompt_tokens": 10, "completion_tokens": 5, "errors": 0}
    ]


WRITER = """
import sys
from proxy.access.usage import Charge, SqliteUsage
store = SqliteUsage(sys.argv[1])
for _ in range(200):
    store.apply([Charge("alice", "qwen", 2, 1, False)])
"""


def test_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "usage.sqlite3")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, path]) for _ in range(3)]
    assert [writer.wait(60) for writer in writers] == [0, 0, 0]
    (row,) = SqliteUsage(path).totals()
    assert row == {
        **ROW,
        "requests": 600,
        "prompt_tokens": 1200,
        "completion_tokens": 600,
        "errors": 0,
    }


def test_redis_totals_from_two_processes(redis_client, redis_url):
    import redis

    with redis.Redis.from_url(redis_url) as second_process:
        for client in (redis_client, second_process):
            RedisUsage(client).apply(
                [Charge("alice", "qwen", 4, 2, False), Charge("alice", "qwen", 1, 0, True)]
            )
    assert RedisUsage(redis_client).totals() == [
        {**ROW, "requests": 4, "prompt_tokens": 10, "completion_tokens": 4, "errors": 2}
    ]
