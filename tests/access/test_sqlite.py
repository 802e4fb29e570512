"""The SQLite files' pool: any number of threads share a few connections to a file, each
borrowed for one read or one transaction; a full pool makes a thread wait for one back."""

from __future__ import annotations

import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from proxy.access import sqlite
from proxy.access.sqlite import POOL, SqliteDatabase
from proxy.access.usage import Charge, SqliteUsage


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_hundred_threads_share_the_pools_connections(tmp_path):
    usage = SqliteUsage(str(tmp_path / "usage.sqlite3"))
    before = open_files()
    start = threading.Barrier(100)

    def serve(number: int) -> None:
        start.wait()
        usage.apply([Charge(f"key-{number % 7}", "m", 1, 2, False)])
        usage.spent(f"key-{number % 7}", ["day"])

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= usage.file.opened <= POOL
    assert sum(row["requests"] for row in usage.totals()) == 100
    # each connection holds its file, its WAL and its index: three open files at most
    assert open_files() - before <= 3 * POOL


def test_a_full_pool_waits_for_a_connection_given_back(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite, "WAIT", 0.2)
    file = SqliteDatabase(str(tmp_path / "one.sqlite3"), "CREATE TABLE IF NOT EXISTS t (x)", size=1)
    with file.transaction() as db:
        db.execute("INSERT INTO t VALUES (1)")
        with ThreadPoolExecutor(1) as other, pytest.raises(sqlite3.OperationalError) as waited:
            other.submit(file.rows, "SELECT x FROM t").result()
    assert "stayed busy" in str(waited.value)
    assert file.rows("SELECT x FROM t") == [(1,)] and file.opened == 1


def test_a_transaction_that_fails_is_rolled_back_and_its_connection_kept(tmp_path):
    file = SqliteDatabase(str(tmp_path / "t.sqlite3"), "CREATE TABLE IF NOT EXISTS t (x UNIQUE)")
    with pytest.raises(sqlite3.IntegrityError):
        with file.transaction() as db:
            db.execute("INSERT INTO t VALUES (1)")
            db.execute("INSERT INTO t VALUES (1)")
    assert file.rows("SELECT COUNT(*) FROM t") == [(0,)] and file.opened == 1
