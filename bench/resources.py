"""CPU time and memory of a process and its children (gunicorn's workers), read with psutil."""
from __future__ import annotations

import threading

import psutil

SAMPLE_INTERVAL = 0.05


class ProcessTree:
    """A server process with every process it forked."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def processes(self) -> list:
        return [self.root, *self.root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the whole tree so far."""
        total = 0.0
        for process in self.processes():
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
