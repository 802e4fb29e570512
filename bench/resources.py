"""CPU time and memory of a process and its children (gunicorn's workers), read with psutil."""

from __future__ import annotations

import os
import threading

import psutil

SAMPLE_INTERVAL = 0.05


def _scheduled(pid: int) -> float:
    """Seconds the threads of process ``pid`` have run on a CPU (Linux's ``schedstat``)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


class ProcessTree:
    """A server process with every process it forked."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def processes(self) -> list:
        return [self.root, *self.root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """CPU time of the whole tree so far: to the nanosecond where Linux tells it for each
        thread (``schedstat``), else user plus system time in the kernel's ticks."""
        total = 0.0
        for process in self.processes():
            try:
                total += _scheduled(process.pid)
            except OSError:
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        """Resident memory of the whole tree (shared pages are counted once per process)."""
        total = 0
        for process in self.processes():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total


class Usage:
    """CPU time used and the highest RSS seen while the ``with`` block ran."""

    def __init__(self, tree: ProcessTree) -> None:
        self.tree = tree
        self.cpu_seconds = 0.0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "Usage":
        self._cpu_before = self.tree.cpu_seconds()
        self._sampler.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._sampler.join()
        self.cpu_seconds = self.tree.cpu_seconds() - self._cpu_before

    def _sample(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, self.tree.rss_bytes())
            if self._stop.wait(SAMPLE_INTERVAL):
                return
