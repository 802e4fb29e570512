"""Usage per key and model: SQLite that survives restarts and several writers, and Redis."""

from __future__ import annotations

import subprocess
import sys

from proxy.access.usage import RedisUsage, SqliteUsage, UsageRecorder

ROW = {"key": "alice", "model": "qwen"}


def test_counts_add_up_and_survive_a_restart(tmp_path):
    path = str(tmp_path / "usage.sqlite3")
    recorder = UsageRecorder(SqliteUsage(path))
    recorder.record("alice", "qwen", 10, 5, error=False)
    recorder.record("alice", "qwen", 3, 0, error=True)
    recorder.record("bob", "qwen", 1, 1, error=False)
    recorder.close()
    again = UsageRecorder(SqliteUsage(path)).totals()
    assert again == [
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


WRITER = """
import sys
from proxy.access.usage import SqliteUsage, UsageRecorder
recorder = UsageRecorder(SqliteUsage(sys.argv[1]))
for _ in range(200):
    recorder.record("alice", "qwen", 2, 1, error=False)
    recorder.flush()
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


class Failing:
    def __init__(self) -> None:
        self.fail = True
        self.rows: list = []

    def add(self, rows) -> None:
        if self.fail:
            raise OSError("disk full")
        self.rows.append(rows)


def test_counts_that_could_not_be_written_are_kept_for_the_next_try():
    store = Failing()
    recorder = UsageRecorder(store)
    recorder.record("alice", "qwen", 1, 1, error=False)
    recorder.flush()
    recorder.record("alice", "qwen", 1, 1, error=False)
    store.fail = False
    recorder.flush()
    assert store.rows == [{("alice", "qwen"): [2, 2, 2, 0]}]


def test_redis_totals_from_two_processes(redis_client, redis_url):
    import redis

    with redis.Redis.from_url(redis_url) as second_process:
        for client in (redis_client, second_process):
            recorder = UsageRecorder(RedisUsage(client))
            recorder.record("alice", "qwen", 4, 2, error=False)
            recorder.record("alice", "qwen", 1, 0, error=True)
            recorder.close()
    assert RedisUsage(redis_client).totals() == [
        {**ROW, "requests": 4, "prompt_tokens": 10, "completion_tokens": 4, "errors": 2}
    ]
