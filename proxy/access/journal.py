"""Charges on their way to the usage store: kept as each answer ends, written once it is sent.

An answer's charge is kept (:meth:`Journal.keep`) before its client sees its end: a line in a
journal file of this process, and in memory. Once the answer is sent, the journal's thread is
told (:meth:`Journal.settle`) and writes what is kept to the store, oldest first, in one
transaction for all that came meanwhile: neither the client nor the thread that served it waits
for the store's transaction or its disk, and the next request on that thread starts at once.
What must read the store exactly (a key's budgets, the usage listing) writes what is kept first
(:meth:`Journal.flush`). While the store cannot take them (Redis gone, the disk full) the
charges stay kept, the file on the disk, and the thread writes them as soon as it takes them
again; none is ever dropped: once :data:`MAX_KEPT` wait, the journal is full and the keys with
budgets are refused (:meth:`Access.check_budget <proxy.access.gate.Access.check_budget>`) until
the store has taken them. A process that dies with charges kept leaves its file: the processes
that share the folder write them within :data:`ADOPT_EVERY` seconds, and the next one started
there at once. A file is its process's while the process holds its lock (``flock``), which the
kernel lets go as the process dies, however it dies. The store applies each charge once by its
id (:mod:`proxy.access.usage`), so a charge written twice (its write answered, but the answer
lost; or replayed from a journal file after a crash) still counts once.

The file is mapped into memory: a line is copied into it, with no system call, and the
kernel writes it to the disk as it does the store's own writes (``synchronous=NORMAL``): a
crash of the proxy loses none, a power cut what the system had not written yet; those of an
outage, which may stay long, are made durable as it begins. It holds only what the store may
not have: zeroed each time the kept charges are written.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import secrets
import threading
import time
from collections import deque
from pathlib import Path
from typing import Optional

from proxy.access.usage import Charge
from proxy.core.errors import StoreUnavailableError
from proxy.core.outages import Outages

logger = logging.getLogger(__name__)

MAX_KEPT = 100_000  # charges kept while the store is down before budgets wait: about 30 MB
RETRY_EVERY = 1.0  # seconds between two tries of a store that is down
ADOPT_EVERY = 5.0  # seconds between two looks for the files of processes that died
# seconds at least between two of the thread's writes: the charges of the answers that end
# meanwhile go in the next, one transaction (its commit costs more than the charges it adds)
SETTLE_EVERY = 0.1
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
        ``retrying``: a thread writes what is kept and looks for those files (else
        :meth:`settle` writes at once, and only this start looks)."""
        self.store = store
        self.outages = outages
        self.folder = Path(folder) if folder else None
        self._kept: deque = deque()
        self._lock = threading.Lock()  # guards the kept charges and the file
        self._flushing = threading.Lock()  # one flush at a time, oldest first
        self._stopped = threading.Event()
        self._due = threading.Event()  # answers were sent: their charges are to be written
        self._retrying = retrying
        self._behind = False  # a flush found the store down: the next that works says so
        self._file: Optional[_Mapped] = None  # this process's file, once a charge is kept
        self._adopt()
        if retrying:
            threading.Thread(target=self._watch, name="charges-journal", daemon=True).start()

    @property
    def kept(self) -> int:
        return len(self._kept)

    @property
    def is_full(self) -> bool:
        """Whether :data:`MAX_KEPT` charges wait for the store: work that counts against a
        budget waits until it takes them."""
        return len(self._kept) >= MAX_KEPT

    def keep(self, charge: Charge) -> None:
        """Keep ``charge`` until :meth:`flush` writes it (once the journal is closed, it is
        written at once); never raises."""
        self._keep([charge])
        if self._stopped.is_set():
            self.flush()

    def settle(self) -> None:
        """The answers of the charges kept so far are sent: the journal's thread writes them
        (without one, this call does)."""
        if not self._retrying:
            self.flush()
        elif self._kept:
            self._due.set()

    def flush(self) -> bool:
        """Write the kept charges now, oldest first, while the store takes them; whether none
        is left."""
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
        self._due.set()  # the thread ends
        self.flush()
        with self._lock:
            if self._file is not None and self._file.pid == os.getpid():
                if not self._kept:
                    self._file.path.unlink(missing_ok=True)
                self._file.close()
                self._file = None

    def _keep(self, charges: list) -> None:
        """Keep ``charges``, in memory and in this process's file."""
        with self._lock:
            full = self.is_full
            self._kept.extend(charges)
            self._append(charges)
        if self.is_full and not full:
            logger.error(
                "the usage and budget store has been down for %d charges: keys with budgets "
                "are refused until it takes them",
                MAX_KEPT,
            )

    def _fell_behind(self) -> None:
        """The store is down: what is kept is made durable, and tried again every
        :data:`RETRY_EVERY` seconds."""
        self._behind = True
        with self._lock:
            if self._file is not None and self._file.pid == os.getpid():
                self._file.sync()

    def _watch(self) -> None:
        """Write what is settled at once, but not sooner than :data:`SETTLE_EVERY` seconds
        after the last write, so that what is settled meanwhile goes together (every
        :data:`RETRY_EVERY` seconds while the store cannot take it); look for the files of
        processes that died every :data:`ADOPT_EVERY` seconds."""
        adopt_at = time.monotonic() + ADOPT_EVERY
        wrote_at = 0.0
        while not self._stopped.is_set():
            if self._due.wait(max(adopt_at - time.monotonic(), 0)):
                self._stopped.wait(max(wrote_at + SETTLE_EVERY - time.monotonic(), 0))
            self._due.clear()
            if time.monotonic() >= adopt_at:
                self._adopt()
                adopt_at = time.monotonic() + ADOPT_EVERY
            if self._kept:
                wrote_at = time.monotonic()
                if not self.flush():  # the store is down: tried again, answers or none
                    self._stopped.wait(RETRY_EVERY)
                    self._due.set()

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
        """This process's journal file, made once per process (a fork is another)."""
        if self._file is None or self._file.pid != os.getpid():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = _Mapped(self.folder)
        return self._file

    def _empty_file(self) -> None:
        """Nothing is kept: the file holds nothing to replay. Called with the lock held."""
        if self._file is not None and self._file.pid == os.getpid():
            self._file.empty()

    def _adopt(self) -> None:
        """Take over the journal files of processes that died with charges kept (their locks
        free). Two processes adopting one file both write its charges, which the store
        counts once."""
        if self.folder is None or not self.folder.is_dir():
            return
        own = self._file.path if self._file is not None else None
        for path in sorted(self.folder.glob("charges-*.jsonl")):
            if path == own:
                continue
            try:
                charges = _adopted(path)
            except OSError:
                continue  # its process lives, or it went meanwhile
            if charges:
                logger.info("%d charges of a process that ended, to write", len(charges))
                self._behind = True
                self._keep(charges)  # in this process's file before the other's goes
                self._due.set()  # the thread writes them now, not at its next look
            path.unlink(missing_ok=True)


class _Mapped:
    """A journal file of this process, locked while it lives and mapped: its lines from the
    start, zeros after them.

    Every byte of the map is on the disk before it is written to: a page of a map written
    where a full disk has no block for it would kill the process; a file that cannot be
    made or grown refuses here, and its charges stay in memory only."""

    def __init__(self, folder: Path) -> None:
        self.pid = os.getpid()
        self.path = folder / f"charges-{self.pid}-{secrets.token_hex(4)}.jsonl"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        self.fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._allocate(0, MAPPED)
            self.map = mmap.mmap(self.fd, MAPPED)
        except BaseException:
            os.close(self.fd)
            self.path.unlink(missing_ok=True)
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


def _adopted(path: Path) -> list:
    """The charges of the journal file of a process that died (``OSError`` while its
    process lives: its lock is held); a line a crash cut short, or zeroed in part, is left
    out."""
    with open(path, "rb") as file:
        fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        text = file.read()
    charges = []
    for line in text.split(b"\n"):
        line = line.strip(b"\0")
        if line:
            try:
                charges.append(Charge.from_line(line))
            except ValueError:
                pass
    return charges
