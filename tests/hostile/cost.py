"""What a probe costs the proxy: the most memory its processes took above what they held
before it, and the time it took, sampled while the probe runs."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Tuple, TypeVar

import psutil

T = TypeVar("T")
MiB = 1024 * 1024
SAMPLE_SECONDS = 0.005


@dataclass(frozen=True)
class Cost:
    growth: int  # bytes: the highest resident memory seen during the probe, over the start
    seconds: float

    def __str__(self) -> str:
        return f"{self.growth / MiB:.1f} MiB, {self.seconds:.2f} s"


def resident(pid: int) -> int:
    """The resident memory of the process ``pid`` and its children (gunicorn's workers, the
    supervisor), model servers aside."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            command = child.cmdline()
            if command[:1] == [sys.executable] and "proxy.servers.engine" not in command:
                total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def measured(pid: int, probe: Callable[[], T]) -> Tuple[T, Cost]:
    """Run ``probe`` while watching the process ``pid``: its result and what it cost."""
    before = resident(pid)
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], resident(pid))
            except psutil.Error:
                return
            time.sleep(SAMPLE_SECONDS)

    watcher = threading.Thread(target=watch, daemon=True)
    began = time.monotonic()
    watcher.start()
    try:
        result = probe()
    finally:
        seconds = time.monotonic() - began
        done.set()
        watcher.join()
    peak[0] = max(peak[0], resident(pid))
    return result, Cost(peak[0] - before, seconds)
