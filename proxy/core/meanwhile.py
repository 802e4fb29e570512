"""What a stream does meanwhile, while something its client waits for runs (a server
starting, a slot, a hosted tool): the work in a thread of its own, and the stream saying it
waits (:data:`~proxy.core.events.WAITING`, which each API sends as something harmless), so
that neither the client nor a proxy between times it out."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import copy_context
from typing import Any, Callable, Iterator, Optional

PATIENCE = 2.0  # seconds a stream's first event may take before it says it waits
WAITING_EVERY = 5.0  # seconds between two waits told: well inside proxies' idle timeouts


def meanwhile(
    work: Callable[[], Any],
    waiting: object,
    *,
    patience: float = 0.0,
    every: Optional[float] = None,
    abandoned: Optional[Callable[[], None]] = None,
) -> Iterator:
    """Run ``work`` in a thread of its own; once it has taken ``patience`` seconds, yield
    ``waiting`` every ``every`` seconds (:data:`WAITING_EVERY` by default) until it is done.
    Returns its result, or raises its error.

    A client that leaves meanwhile leaves the work to end within its own bounds;
    ``abandoned`` is called once it has (to close what it opened).
    """
    every = WAITING_EVERY if every is None else every
    done: Future = Future()
    threading.Thread(
        target=copy_context().run, args=(_run, work, done), daemon=True, name="meanwhile"
    ).start()
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
