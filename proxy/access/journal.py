"""Charges on their way to the usage store: kept as each answer ends, written once it is sent.

An answer's charge is kept (:meth:`Journal.keep`) before its client sees its end: a line in a
journal file of this process, which the next process replays if this one dies, and in
memory. Once the answer is sent, its request writes what is kept to the store
(:meth:`Journal.flush`), oldest first: the client waits for neither the store's transaction
nor its disk. While the store cannot take them (Redis gone, the disk full) the charges stay
kept, up to :data:`MAX_KEPT`, the file on the disk, and a thread writes them as soon as it
takes them again. The store applies each charge once by its id
(:mod:`proxy.access.usage`), so a charge written twice (its write answered, but the answer
lost; or replayed from a journal file after a crash) still counts once. A charge past the
bound is dropped, counted and logged: never silently.

The file is mapped into memory: a line is copied into it, with no system call, and the
kernel writes it to the disk as it does the store's own writes (``synchronous=NORMAL``): a
crash of the proxy loses none, a power cut what the system had not written yet; those of an
outage, which may stay long, are made durable as it begins. It holds only what the store may
not have: zeroed each time the kept charges are written.
"""

from __future__ import annotations

import errno
import logging
import mmap
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
MAPPED = 1 << 16  # bytes of a journal file: about 200 charges, more while the store is down


class Journal:
    """The charges of this process on their way to ``store``."""

    def __init__(
        self, store, outages: Outages, folder: Optional[str] = None, retrying: bool = True
    ) -> None:
        """``folder``: where this process's journal file goes, and where the files of
        processes that died with charges kept are found (``None``: memory only);
        ``retrying``: a thread writes what an outage kept (else only :meth:`flush` does)."""
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
        self._behind = False  # a flush found the store down: the next that works says so
        self._file: Optional[_Mapped] = None  # this process's file, once a charge is kept
        self._adopt()

    @property
    def kept(self) -> int:
        return len(self._kept)

    @property
    def path(self) -> Optional[Path]:
        """This process's journal file (named when asked: a fork is another process)."""
        return self.folder / f"charges-{os.getpid()}.jsonl" if self.folder else None

    def keep(self, charge: Charge) -> None:
        """Keep ``charge`` until :meth:`flush` writes it (once the journal is closed, it is
        written at once); never raises."""
        self._keep([charge])
        if self._stopped.is_set():
            self.flush()

    def flush(self) -> bool:
        """Write the kept charges, oldest first, while the store takes them; whether none is
        left."""
        if not self._kept:
            return True
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
                self._fell_behind()
                return False
            with self._lock:
                for _ in batch:
                    self._kept.popleft()
                if not self._kept:
                    self._empty_file()
            if not self._kept and self._behind:
                self._behind = False
                logger.info("the charges kept meanwhile are written")

    def close(self) -> None:
        """Write what is kept if the store takes it; what it does not stays in the file,
        and an empty file goes."""
        self._stopped.set()
        self.flush()
        with self._lock:
            if self._file is not None and self._file.pid == os.getpid():
                self._file.close()
                self._file = None
                if not self._kept:
                    self._forget_file()

    def _keep(self, charges: list) -> None:
        """Keep ``charges``, in memory and in this process's file."""
        with self._lock:
            room = MAX_KEPT - len(self._kept)
            taken, dropped = charges[: max(room, 0)], len(charges) - max(room, 0)
            self._kept.extend(taken)
            self._append(taken)
        if dropped > 0:
            if not self.lost:
                logger.error(
                    "the usage and budget store has been down for %d charges: from now on, "
                    "charges are dropped (counted in oai_proxy_store_unwritten_total)",
                    MAX_KEPT,
                )
            self.lost += dropped
            self.on_lost(dropped)

    def _fell_behind(self) -> None:
        """The store is down: what is kept is made durable, and a thread tries it again."""
        self._behind = True
        with self._lock:
            if self._file is not None and self._file.pid == os.getpid():
                self._file.sync()
            if self._retrier is None and self._retrying:
                self._retrier = threading.Thread(
                    target=self._retry, name="charges-journal", daemon=True
                )
                self._retrier.start()

    def _retry(self) -> None:
        while not self._stopped.wait(RETRY_EVERY):
            if self._kept:
                self.flush()

    def _append(self, charges: list) -> None:
        """The charges into this process's journal file; a disk that cannot take them
        leaves them in memory only. Called with the lock held."""
        if not charges or self.folder is None or self._stopped.is_set():
            return  # a closed journal's file is what the next process replays
        try:
            self._mapped().add(b"".join([charge.line() for charge in charges]))
        except OSError:
            pass  # a full disk: memory holds them, up to the bound

    def _mapped(self) -> "_Mapped":
        """This process's journal file, mapped once per process."""
        if self._file is None or self._file.pid != os.getpid():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = _Mapped(self.path)
        return self._file

    def _empty_file(self) -> None:
        """Nothing is kept: the file holds nothing to replay. Called with the lock held."""
        if self._file is not None and self._file.pid == os.getpid():
            self._file.empty()

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
            if charges:
                logger.info("%d charges of an earlier process to write", len(charges))
                self._keep(charges)  # in this process's file before the other's goes
            if not own:
                path.unlink(missing_ok=True)
        if self._kept:
            self._fell_behind()


class _Mapped:
    """A journal file of this process, mapped: its lines from the start, zeros after them.

    Every byte of the map is on the disk before it is written to: a page of a map written
    where a full disk has no block for it would kill the process; a file that cannot be
    made or grown refuses here, and its charges stay in memory only."""

    def __init__(self, path: Path) -> None:
        self.pid = os.getpid()
        # an earlier process of this pid left it: its charges were read, and are kept again
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        self.fd = os.open(path, flags, 0o600)
        try:
            self._allocate(0, MAPPED)
            self.map = mmap.mmap(self.fd, MAPPED)
        except BaseException:
            os.close(self.fd)
            raise
        self.end = 0  # where the next line goes

    def add(self, lines: bytes) -> None:
        needed = self.end + len(lines)
        if needed > len(self.map):  # the store is down: the file grows
            size = max(2 * len(self.map), needed)
            self._allocate(len(self.map), size - len(self.map))
            self.map.resize(size)
        self.map[self.end : needed] = lines
        self.end = needed

    def empty(self) -> None:
        self.map[: self.end] = bytes(self.end)
        self.end = 0
        if len(self.map) > MAPPED:  # an outage's charges are written
            self.map.resize(MAPPED)

    def sync(self) -> None:
        try:
            self.map.flush()
        except OSError:
            pass  # the lines stay in memory, as they do when the disk is full

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)

    def _allocate(self, start: int, size: int) -> None:
        """Zeros written from ``start``: blocks of the disk's own, or ``OSError``."""
        if os.pwrite(self.fd, bytes(size), start) < size:
            raise OSError(errno.ENOSPC, "no space left for the journal")


def _read(path: Path) -> list:
    """The charges of a journal file; a line a crash cut short, or zeroed in part, is left
    out."""
    charges = []
    for line in path.read_bytes().split(b"\n"):
        line = line.strip(b"\0")
        if line:
            try:
                charges.append(Charge.from_line(line))
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
