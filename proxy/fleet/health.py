"""Which replicas of a model are in rotation, and probing the others back in.

A replica that cannot be reached (or is still loading) is taken out at once: requests go to
the others instead of failing. A background thread then probes it, at growing intervals,
until its own health check passes; the check detects the server afresh, so a replica that
comes back on another build of server.cpp is spoken to in its new dialect. The thread runs
only while some replica is out, and starts in the process that needs it (after any fork).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

logger = logging.getLogger(__name__)

FIRST_PROBE = 0.5  # seconds after ejection; doubling up to LAST_PROBE
LAST_PROBE = 10.0


class Rotation:
    """The replicas out of rotation and when each is probed next."""

    def __init__(
        self,
        probe: Callable[[str], bool],
        *,
        first: float = FIRST_PROBE,
        last: float = LAST_PROBE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``probe(name)`` says whether a replica serves again; it may take seconds."""
        self.probe = probe
        self.first = first
        self.last = last
        self.clock = clock
        self._out: dict = {}  # name -> (next probe time, interval)
        self._unreachable: set = set()  # of those out, the ones no connection reached
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._prober = None
        self._closed = False

    def healthy(self, name: str) -> bool:
        return name not in self._out

    def unreachable(self, name: str) -> bool:
        """Whether ``name`` is out because no connection reached it (not for its load, nor
        for what it answered), and no probe has reached it since."""
        return name in self._unreachable

    def eject(self, name: str, why: str, unreachable: bool = False) -> None:
        """Take ``name`` out of rotation until a probe finds it serving (``unreachable``:
        because no connection reached it)."""
        with self._lock:
            if unreachable and not self._closed:
                self._unreachable.add(name)
            if name in self._out or self._closed:
                return
            self._out[name] = (self.clock() + self.first, self.first)
            logger.warning("replica %s out of rotation: %s", name, why)
            if self._prober is None:
                self._prober = threading.Thread(
                    target=self._probe_loop, daemon=True, name="replica-probe"
                )
                self._prober.start()
            self._wake.notify()

    def restore(self, name: str) -> None:
        with self._lock:
            self._unreachable.discard(name)
            if self._out.pop(name, None) is not None:
                logger.info("replica %s back in rotation", name)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()

    def _probe_loop(self) -> None:
        while True:
            with self._lock:
                due = self._next_due()
                if due is None:
                    self._prober = None
                    return
                name, when = due
                pause = when - self.clock()
                if pause > 0:
                    self._wake.wait(pause)
                    continue
            serving = self._safe_probe(name)
            with self._lock:
                if name not in self._out:
                    continue
                if serving:
                    del self._out[name]
                    logger.info("replica %s back in rotation", name)
                else:
                    interval = min(self._out[name][1] * 2, self.last)
                    self._out[name] = (self.clock() + interval, interval)

    def _next_due(self):
        if self._closed or not self._out:
            return None
        name = min(self._out, key=lambda n: self._out[n][0])
        return name, self._out[name][0]

    def _safe_probe(self, name: str) -> bool:
        try:
            return self.probe(name)
        except Exception as exc:  # a probe must never end the thread
            logger.debug("probe of %s failed: %s", name, exc)
            return False
