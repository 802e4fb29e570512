"""Exchanges of 100 KB, ten thousand of them, into the inspector: what it holds in memory and
on disk stays within its bounds however fast they come, and what it gives up is counted."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

from proxy.inspector.capture import QUEUED_BYTES, Capture
from proxy.inspector.sqlite_exchanges import MAX_BYTES, SqliteExchanges

from .cost import MiB

pytestmark = pytest.mark.hostile

EXCHANGES = 10_000
SIZE = 100 * 1024  # bytes of answer each
BATCH = 100  # exchanges the writer finds waiting, in the steady case


def exchange(n: int) -> dict:
    answer = f"{n:08d}" + "x" * (SIZE - 8)
    return {"at": time.time(), "key": "k", "model": "m", "api": "openai", "status": 200,
            "answer": answer}  # fmt: skip


class Peak:
    """The highest resident memory of this process while the ``with`` block runs."""

    def __enter__(self) -> "Peak":
        self.process = psutil.Process(os.getpid())
        self.before = self.highest = self.process.memory_info().rss
        self.done = threading.Event()
        self.watcher = threading.Thread(target=self._watch)
        self.watcher.start()
        return self

    def _watch(self) -> None:
        while not self.done.is_set():
            self.highest = max(self.highest, self.process.memory_info().rss)
            self.done.wait(0.005)

    def __exit__(self, *exc_info) -> None:
        self.done.set()
        self.watcher.join()

    @property
    def growth(self) -> int:
        return self.highest - self.before


def test_a_flood_faster_than_the_writer_is_dropped_not_held(tmp_path):
    capture = Capture(SqliteExchanges(str(tmp_path / "exchanges.sqlite3")), everyone=True)
    with Peak() as memory:
        for n in range(EXCHANGES):
            capture.submit(exchange(n), size=2 * SIZE)
        capture.flush()
    count, _ = capture.store.totals()
    print(f"kept {count}, dropped {capture.dropped}, memory +{memory.growth / MiB:.0f} MiB")
    assert count + capture.dropped == EXCHANGES and count > 0
    assert memory.growth < QUEUED_BYTES + 64 * MiB  # the queue's bound, and room


def test_a_steady_stream_keeps_the_newest_within_the_stores_bounds(tmp_path):
    capture = Capture(SqliteExchanges(str(tmp_path / "exchanges.sqlite3")), everyone=True)
    with Peak() as memory:
        for n in range(EXCHANGES):
            capture.submit(exchange(n), size=2 * SIZE)
            if n % BATCH == BATCH - 1:
                capture.flush()
    count, size = capture.store.totals()
    disk = sum(path.stat().st_size for path in tmp_path.glob("exchanges.sqlite3*"))
    newest = capture.store.get(capture.store.listed(limit=1)[0]["id"])
    print(f"kept {count} ({size / MiB:.0f} MiB), dropped {capture.dropped}, "
          f"memory +{memory.growth / MiB:.0f} MiB, disk {disk / MiB:.0f} MiB")  # fmt: skip
    assert count + capture.dropped == EXCHANGES
    assert size <= MAX_BYTES and count == MAX_BYTES // (size // count)  # as many as fit
    assert newest["answer"].startswith(f"{EXCHANGES - 1:08d}")
    assert disk < 2 * MAX_BYTES  # the file reuses the room the oldest leave
    assert memory.growth < 64 * MiB
