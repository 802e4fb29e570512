"""One asyncio event loop in a daemon thread, on which the MCP SDK (asyncio
through anyio) runs every session of this process, and the way the synchronous proxy hands
it work and waits for the result. Started on first use, so a process forked before that
(a gunicorn worker) starts its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from typing import Any, Awaitable, Optional

log = logging.getLogger(__name__)


class EventLoopThread:
    """A loop in a thread of its own, started by the first :meth:`run`."""

    def __init__(self, name: str = "mcp-tools") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._pid = 0  # the process that started it: a forked child starts its own

    @property
    def started(self) -> bool:
        return self._loop is not None and self._pid == os.getpid()

    def run(self, work: Awaitable, timeout: float) -> Any:
        """Run ``work`` on the loop and wait ``timeout`` seconds for its result (a
        ``TimeoutError`` then; ``work`` is cancelled)."""
        future = self.submit(work)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    def submit(self, work: Awaitable) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(work, self._started())

    def close(self, last: Optional[Awaitable], timeout: float) -> None:
        """Run ``last`` (the sessions' ends) and stop the loop and its thread."""
        with self._lock:
            loop, thread, self._loop = self._loop, self._thread, None
        if loop is None or self._pid != os.getpid():
            if last is not None and hasattr(last, "close"):
                last.close()  # never awaited: no loop runs it
            return
        try:
            if last is not None:
                asyncio.run_coroutine_threadsafe(last, loop).result(timeout)
        except Exception as exc:  # the loop stops all the same
            log.warning("the tool loop's last work did not finish: %s", type(exc).__name__)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if not self.started:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_serve, args=(loop,), name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()
