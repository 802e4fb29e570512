"""What a probe costs the proxy: the most memory its processes took above what they held
before it (sampled while the probe runs), and the processor time they spent on it.

The work a probe makes the proxy do is its processor time: the wall-clock time of the same
work stretches with whatever else the machine runs (the suite's other workers), so it proves
nothing and is not kept. A deadline is proven by what the other side saw (when the proxy
hung up), not by a stopwatch."""

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
    cpu: float  # processor seconds the proxy's processes spent meanwhile

    def __str__(self) -> str:
        return f"{self.growth / MiB:.1f} MiB, {self.cpu:.2f} s of CPU"


def _proxy_processes(pid: int) -> list:
    """The process ``pid`` and its children (gunicorn's workers, the supervisor), model
    servers aside."""
    process = psutil.Process(pid)
    found = [process]
    for child in process.children(recursive=True):
        try:
            command = child.cmdline()
            if command[:1] == [sys.executable] and "proxy.servers.engine" not in command:
                found.append(child)
        except psutil.Error:
            pass
    return found


def resident(pid: int) -> int:
    """The resident memory of the proxy's processes."""
    return sum(_each(lambda p: p.memory_info().rss, _proxy_processes(pid)))


def processor_time(pid: int) -> float:
    """The processor seconds the proxy's processes have spent, in user and kernel mode."""
    return sum(_each(lambda p: sum(p.cpu_times()[:2]), _proxy_processes(pid)))


def _each(read: Callable, processes: list) -> list:
    """``read`` of each process still there."""
    values = []
    for process in processes:
        try:
            values.append(read(process))
        except psutil.Error:
            pass
    return values


def measured(pid: int, probe: Callable[[], T]) -> Tuple[T, Cost]:
    """Run ``probe`` while watching the process ``pid``: its result and what it cost."""
    before = resident(pid)
    spent = processor_time(pid)
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
    watcher.start()
    try:
        result = probe()
    finally:
        done.set()
        watcher.join()
    peak[0] = max(peak[0], resident(pid))
    return result, Cost(peak[0] - before, processor_time(pid) - spent)
