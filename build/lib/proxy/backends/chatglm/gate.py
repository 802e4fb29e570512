"""One generation at a time, and a bounded line of requests waiting for it."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from proxy.errors import UpstreamTimeoutError, UpstreamUnavailableError

RETRY_AFTER = 2  # seconds; a client told to come back sooner would only meet a full line


class Gate:
    """Let one holder in at a time; refuse newcomers once ``max_queue`` are already waiting.

    The model runs one generation at a time, so a long line only turns into timeouts:
    refusing early with 503 and ``Retry-After`` lets clients back off or go elsewhere. The
    lock is a plain :class:`threading.Lock`, so a stream closed from another thread than the
    one that opened it still releases it.
    """

    def __init__(self, max_queue: int, wait_timeout: float) -> None:
        self.max_queue = max_queue
        self.wait_timeout = wait_timeout
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._inside = 0  # the holder and those waiting

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold the model for the ``with`` block, after waiting in line for it."""
        with self._count_lock:
            if self._inside > self.max_queue:
                raise UpstreamUnavailableError(
                    f"the model is busy and {self._inside - 1} requests already wait for it "
                    f"(--max-queue {self.max_queue}); retry shortly", retry_after=RETRY_AFTER)
            self._inside += 1
        try:
            if not self._lock.acquire(timeout=self.wait_timeout):
                raise UpstreamTimeoutError(f"waited {self.wait_timeout:g}s for the model to "
                                           f"finish other generations")
            try:
                yield
            finally:
                self._lock.release()
        finally:
            with self._count_lock:
                self._inside -= 1

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def waiting(self) -> int:
        return max(self._inside - 1, 0)
