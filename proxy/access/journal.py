"""Charges on their way to the usage store: written as each answer ends, and kept, in order,
while the store cannot take them.

A charge the store refuses (Redis gone, the disk full) is kept in memory, up to
:data:`MAX_KEPT`, and in a journal file of this process where the disk allows, so that a
proxy killed during the outage hands it to the next one. Once a charge is kept, the ones
after it queue behind it; a thread writes them all, oldest first, as soon as the store
takes them again. The store applies each charge once by its id
(:mod:`proxy.access.usage`), so a charge written twice (its write answered, but the answer
lost; or replayed from a journal file after a crash) still counts once. A charge past the
bound is dropped, counted and logged: never silently.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import Callable, Optional

from proxy.access.outages import Outages
from proxy.access.usage import Charge
from proxy.core.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

MAX_KEPT = 100_000  # charges kept while the store is down: about 30 MB
RETRY_EVERY = 1.0  # seconds between two tries of a store that is down
BATCH = 500  # charges written in one round
STORE = "usage"


class Journal:
    """The charges of this process on their way to ``store``."""

    def __init__(
        self, store, outages: Outages, folder: Optional[str] = None, retrying: bool = True
    ) -> None:
        """``folder``: where this process's journal file goes, and where the files of
        processes that died with charges kept are found (``None``: memory only);
        ``retrying``: a thread writes what is kept (else only :meth:`flush` does)."""
        self.store = store
        self.outages = outages
        self.folder = Path(folder) if folder else None
        self.lost = 0  # charges dropped past the bound
        self.on_lost: Callable[[int], None] = lambda count: None  # metrics count them
        self._kept: deque = deque()
        self._lock = threading.Lock()  # guards the kept charges and the file
        self._flushing = threading.Lock()  # one flush at a time, oldest first
        self._stopped = threading.Event()
        self._retrier: Optional[threading.Thread] = None
        self._retrying = retrying
        self._adopt()

    @property
    def kept(self) -> int:
        return len(self._kept)

    @property
    def path(self) -> Optional[Path]:
        """This process's journal file (named when asked: a fork is another process)."""
        return self.folder / f"charges-{os.getpid()}.jsonl" if self.folder else None

    def write(self, charge: Charge) -> None:
        """Write ``charge`` now, or keep it for when the store takes it; never raises."""
        if not self._kept:
            try:
                with self.outages.reaching(STORE):
                    self.store.apply([charge])
                return
            except StoreUnavailableError:
                pass
        self._keep([charge])

    def flush(self) -> bool:
        """Write the kept charges, oldest first, while the store takes them; whether none is
        left."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> bool:
        while True:
            with self._lock:
                batch = [self._kept[index] for index in range(min(BATCH, len(self._kept)))]
            if not batch:
                return True
            try:
                with self.outages.reaching(STORE):
                    self.store.apply(batch)
            except StoreUnavailableError:
                return False
            with self._lock:
                for _ in batch:
                    self._kept.popleft()
                if not self._kept:
                    self._forget_file()
                    logger.info("the charges kept during the outage are written")

    def close(self) -> None:
        """Write what is kept if the store takes it; what it does not stays in the file."""
        self._stopped.set()
        self.flush()

    def _keep(self, charges: list, journaled: bool = False) -> None:
        """Keep ``charges`` for the retrier (``journaled``: they are in this process's file
        already)."""
        with self._lock:
            room = MAX_KEPT - len(self._kept)
            taken, dropped = charges[: max(room, 0)], len(charges) - max(room, 0)
            self._kept.extend(taken)
            if not journaled:
                self._append(taken)
            if self._retrier is None and self._retrying:
                self._retrier = threading.Thread(
                    target=self._retry, name="charges-journal", daemon=True
                )
                self._retrier.start()
        if dropped > 0:
            if not self.lost:
                logger.error(
                    "the usage and budget store has been down for %d charges: from now on, "
                    "charges are dropped (counted in oai_proxy_store_unwritten_total)",
                    MAX_KEPT,
                )
            self.lost += dropped
            self.on_lost(dropped)

    def _retry(self) -> None:
        while not self._stopped.wait(RETRY_EVERY):
            if self._kept:
                self.flush()

    def _append(self, charges: list) -> None:
        """The charges into this process's journal file, on the disk before they count as
        kept there; a disk that cannot take them leaves them in memory only."""
        path = self.path
        if path is None or not charges:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as file:
                file.writelines(json.dumps(charge.as_dict()) + "\n" for charge in charges)
                file.flush()
                os.fsync(file.fileno())
        except OSError:
            pass  # a full disk: memory holds them, up to the bound

    def _forget_file(self) -> None:
        if self.path is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass

    def _adopt(self) -> None:
        """Take over the journal files of processes that died with charges kept: they are
        written first, before any charge of this one. Two processes adopting one file both
        write its charges, which the store counts once."""
        if self.folder is None or not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("charges-*.jsonl")):
            pid = path.stem.partition("-")[2]
            own = path == self.path  # an earlier process of the same pid (a container's 1)
            if not pid.isdigit() or (not own and _alive(int(pid))):
                continue
            try:
                charges = _read(path)
            except OSError:
                continue
            logger.info("%d charges of an earlier process to write", len(charges))
            self._keep(charges, journaled=own)  # in this process's file before the other's goes
            if not own:
                path.unlink(missing_ok=True)


def _read(path: Path) -> list:
    """The charges of a journal file; a line a crash cut short is left out."""
    charges = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            charges.append(Charge.from_dict(json.loads(line)))
        except ValueError:
            pass
    return charges


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
