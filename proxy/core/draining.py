"""Stopping without cutting anyone off: streams in flight finish, or end with an error event.

When the proxy is told to stop (SIGTERM), the server stops accepting connections and calls
:meth:`Drain.begin`. Streams already open carry on; once they have all ended, or the grace
period (``--graceful-timeout``) is over, :attr:`Drain.ending` turns true and every stream still
open sends one error event and ``[DONE]`` at its next event instead of more text.
"""

from __future__ import annotations

import threading
from typing import Callable


class Drain:
    """Counts the open streams and says when the stragglers must end."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._open = 0
        self.ending = False  # the grace is over: streams still open end now (read per write)
        self._began = False
        self.refusing = False  # new requests are refused while streams drain

    def open(self) -> Callable[[], None]:
        """Count a response stream as open from now, while it waits for its slot too; the
        call returned counts it closed (once, however often it is made)."""
        with self._lock:
            self._open += 1
        closed = []

        def close() -> None:
            with self._lock:
                if not closed:
                    closed.append(True)
                    self._open -= 1
                    self._lock.notify_all()

        return close

    @property
    def began(self) -> bool:
        return self._began

    def begin(self, grace: float, *, refusing: bool = False) -> None:
        """Give open streams ``grace`` seconds, then make the rest end (in the background);
        ``refusing``: new requests are told to come again meanwhile (a server that cannot
        stop taking connections first)."""
        with self._lock:
            if self._began:
                return
            self._began = True
            self.refusing = refusing
        threading.Thread(target=self._end_after, args=(grace,), name="drain", daemon=True).start()

    def _end_after(self, grace: float) -> None:
        with self._lock:
            self._lock.wait_for(lambda: self._open == 0, timeout=grace)
        self.ending = True

    def wait_closed(self, timeout: float) -> bool:
        """Wait until no stream is open; ``False`` if some still are after ``timeout``."""
        with self._lock:
            return self._lock.wait_for(lambda: self._open == 0, timeout=timeout)
