"""The proxy's own stores as they fail and come back: Redis, or SQLite files on a disk that may
fill; and Redis as the fleet shares placement through it.

Every use of a store goes through :meth:`Outages.reaching`, which turns the store's own
errors into a 503 ``store_unavailable`` naming the store (the model may be serving well:
never ``upstream_unavailable``), and keeps each store's state: one WARNING line when an
outage begins and one when it ends, not one per request, and a gauge on ``/metrics``. While a
remote store (Redis) is down, it is tried once every :data:`PROBE_EVERY` seconds (or as its
user says) and the uses in between fail at once, rather than each waiting for its timeout. A
file's disk may be full and still read: there, reads are always tried, and only a write that
works ends an outage. A use that can go on without its store (placement, by hashing alone)
takes the refusal as its cue.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

from proxy.core.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

OUTAGE_RETRY_AFTER = 5  # seconds a client refused while a store is down is told to wait
PROBE_EVERY = 1.0  # seconds between two tries of a store that is down: the others refused at once
# each store as its errors name it
STORES = {
    "usage": "the usage and budget store",
    "limits": "the rate limit store",
    "responses": "the response store",
    "exchanges": "the inspector's store",
    "batches": "the batch queue",
}
MEANWHILE = "see docs/operating.md for what is served and what is refused"


def store_errors() -> tuple:
    """What a store raises when it cannot be used: SQLite's errors and the disk's, and
    Redis's where the package is installed."""
    errors: tuple = (sqlite3.Error, OSError)
    try:
        import redis
    except ImportError:  # pragma: no cover - only with --redis-url is it needed
        return errors
    return (*errors, redis.RedisError)


class Outages:
    """Which stores are down, since when, and who is told when that changes."""

    def __init__(
        self,
        backing: str,
        remote: bool = False,
        clock: Callable[[], float] = time.monotonic,
        *,
        stores: Mapping[str, str] = STORES,
        probe_every: float = PROBE_EVERY,
        meanwhile: str = MEANWHILE,
    ) -> None:
        """``backing``: what the stores are kept in, as a refusal names it ("Redis", or
        "a SQLite file"); ``remote``: reads and writes fail together (a server that is
        gone), else a read says nothing of whether a write would work (a full disk);
        ``stores``: each store as the log and a refusal name it; ``probe_every``: seconds
        between two tries of a store that is down; ``meanwhile``: what the proxy does
        until it is back, as the log says."""
        self.backing = backing
        self.remote = remote
        self.clock = clock
        self.names = dict(stores)
        self.stores = tuple(stores)
        self.probe_every = probe_every
        self.meanwhile = meanwhile
        self.errors = store_errors()
        self.down: dict = {}  # store: when its outage began
        self._tried: dict = {}  # store: when it was last tried while down
        self.on_change: Callable[[str, bool], None] = lambda store, up: None  # metrics
        self._lock = threading.Lock()

    def is_up(self, store: str) -> bool:
        return store not in self.down

    @contextmanager
    def reaching(self, store: str, reading: bool = False) -> Iterator[None]:
        """Run the ``with`` block on ``store`` (``reading``: it only reads); its failure is a
        :class:`StoreUnavailableError` naming the store."""
        telling = self.remote or not reading  # whether its fate says the store's state
        if self.down and telling and store in self.down:
            now = self.clock()
            if now - self._tried.get(store, 0.0) < self.probe_every:
                raise self.refusal(store)
            self._tried[store] = now
        try:
            yield
        except self.errors as exc:
            self.failed(store, exc)
            raise self.refusal(store) from None
        if self.down and telling:
            self.answered(store)

    def refusal(self, store: str) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"{self.names[store]} ({self.backing}) cannot be used now; retry shortly",
            retry_after=OUTAGE_RETRY_AFTER,
        )

    def failed(self, store: str, exc: BaseException) -> None:
        """``store`` failed: the outage's first failure is logged, the others are not."""
        with self._lock:
            began = store not in self.down
            if began:
                self.down[store] = self._tried[store] = self.clock()
        if began:
            logger.warning(
                "%s (%s) cannot be used: %s: %s; until it can, %s",
                self.names[store],
                self.backing,
                type(exc).__name__,
                exc,
                self.meanwhile,
            )
            self.on_change(store, False)

    def answered(self, store: str) -> None:
        """``store`` worked: an outage under way has ended."""
        with self._lock:
            began = self.down.pop(store, None)
        if began is not None:
            logger.warning(
                "%s (%s) is back after %.1fs", self.names[store], self.backing, self.clock() - began
            )
            self.on_change(store, True)
