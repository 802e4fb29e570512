"""waitress's threads, the most recently idle one woken first.

waitress starts every thread of ``--threads`` at once, and its threads wait for a request on
one condition, which wakes the one that has waited longest: under any load every thread
serves in turn, and each keeps what serving left it (its stack's pages, its share of the
allocator). Woken last-idle-first, the threads that serve are those the load needs at once,
and the others stay untouched: the proxy's memory follows the requests in flight, not the
thread count.
"""

from __future__ import annotations

import threading

from waitress.task import ThreadedTaskDispatcher


class RecentFirst(threading.Condition):
    """A condition whose ``notify`` wakes the thread that began to wait last."""

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = self._waiters
        while waiters and n > 0:
            waiter = waiters.pop()
            try:
                waiter.release()
            except RuntimeError:  # released already by a notify a signal cut short
                continue
            n -= 1


def dispatcher(threads: int) -> ThreadedTaskDispatcher:
    """waitress's dispatcher of ``threads`` threads, the most recently idle woken first."""
    tasks = ThreadedTaskDispatcher()
    tasks.queue_cv = RecentFirst(tasks.lock)
    tasks.set_thread_count(threads)
    return tasks
