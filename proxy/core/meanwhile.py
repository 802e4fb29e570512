"""What a stream does meanwhile, while something its client waits for runs (a server
starting, a slot, a hosted tool): the work in a thread of the app's :class:`Helpers`, and
the stream saying it waits (:data:`~proxy.core.events.WAITING`, which each API sends as
something harmless), so that neither the client nor a proxy between times it out."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import copy_context
from typing import Any, Callable, Iterator, Optional

PATIENCE = 2.0  # seconds a stream's first event may take before it says it waits
WAITING_EVERY = 5.0  # seconds between two waits told: well inside proxies' idle timeouts
IDLE = 60.0  # seconds a helper thread waits for work before it ends


class Helpers:
    """The threads that run what streams wait for, each kept a while once its work is done:
    a patient stream (every Messages stream) hands its first event's work to an idle one
    rather than start a thread, which costs its first byte a tenth of a millisecond. One
    idle for :data:`IDLE` seconds ends, so that their number follows the streams that wait
    now, not the most that ever did."""

    def __init__(self, idle: float = IDLE) -> None:
        self.idle = idle
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the count of idle threads and their queue
        self._idle = 0  # threads waiting for work, each owed at most one item of the queue

    def run(self, work: Callable[[], Any]) -> Future:
        """``work``'s result (or error) to come, in the caller's context."""
        done: Future = Future()
        task = (copy_context(), work, done)
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._work.put(task)
                return done
        # handed over in a list it empties: the thread's own arguments would keep the first
        # task (and the request's context in it) for as long as the thread lives
        threading.Thread(target=self._serve, args=([task],), daemon=True, name="meanwhile").start()
        return done

    def _serve(self, first: list) -> None:
        task: Optional[tuple] = first.pop()
        while task is not None:
            context, work, done = task
            task = None
            context.run(_run, work, done)
            del context, work, done  # nothing of a task outlives it while the thread idles
            with self._lock:
                self._idle += 1
            try:
                task = self._work.get(timeout=self.idle)
            except queue.Empty:
                with self._lock:  # work handed over as the wait ended is this thread's
                    task = None if self._work.empty() else self._work.get_nowait()
                    if task is None:
                        self._idle -= 1


def meanwhile(
    work: Callable[[], Any],
    waiting: object,
    helpers: Helpers,
    *,
    patience: float = 0.0,
    every: Optional[float] = None,
    abandoned: Optional[Callable[[], None]] = None,
) -> Iterator:
    """Run ``work`` in a thread of ``helpers``; once it has taken ``patience`` seconds, yield
    ``waiting`` every ``every`` seconds (:data:`WAITING_EVERY` by default) until it is done.
    Returns its result, or raises its error.

    A client that leaves meanwhile leaves the work to end within its own bounds;
    ``abandoned`` is called once it has (to close what it opened).
    """
    every = WAITING_EVERY if every is None else every
    done = helpers.run(work)
    try:
        return done.result(patience)
    except FutureTimeout:
        pass
    try:
        while True:
            yield waiting
            try:
                return done.result(every)
            except FutureTimeout:
                pass
    except GeneratorExit:
        if abandoned is not None:
            done.add_done_callback(lambda _: abandoned())
        raise


def _run(work: Callable[[], Any], done: Future) -> None:
    try:
        done.set_result(work())
    except BaseException as exc:  # raised where the stream reads it
        done.set_exception(exc)
