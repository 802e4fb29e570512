"""SQLite files the proxy keeps (usage, stored responses, exchanges): a small pool of
connections to each, made with its file and tables on first use, in write-ahead mode so that
other processes' writers do not block reads. A thread borrows a connection for one read or
one transaction and gives it back: the files' connections (and their page caches and open
files) are bounded by the pool, not by the threads that ever served. A commit is on the disk
once it returns as far as a crash of the proxy goes (``synchronous=NORMAL``: only a power
cut may take the last ones back)."""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
import time
from typing import Iterator

# connections to one file at most: SQLite writes one transaction at a time and reads beside
# it (WAL), each in a few milliseconds, so a few serve any number of threads
POOL = 8
WAIT = 30.0  # seconds a thread waits for a connection of a full pool before it gives up


class SqliteDatabase:
    """One SQLite database, its file's tables made by ``schema``, and the pool of
    connections to it."""

    def __init__(
        self, path: str, *schema: str, added: tuple = (), renamed: tuple = (), size: int = POOL
    ) -> None:
        """``added``: ``(table, column, definition)`` of each column added to a table after
        files were made with it, added to such a file's table as it is opened; ``renamed``:
        ``(table, old, new)`` of each column renamed since, renamed in such a file so;
        ``size``: the connections of the pool at most."""
        self.path = path
        self.schema = schema
        self.added = added
        self.renamed = renamed
        self.size = size
        self.opened = 0  # the connections made so far (at most ``size``)
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._opening = threading.Lock()  # one at a time is made (and makes the file WAL)

    def rows(self, query: str, parameters: tuple = ()) -> list:
        """The rows ``query`` reads."""
        db = self._borrowed()
        try:
            return db.execute(query, parameters).fetchall()
        finally:
            self._idle.put(db)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection for one transaction, committed as the block ends (rolled back if it
        raises)."""
        db = self._borrowed()
        try:
            with db:
                yield db
        finally:
            self._idle.put(db)

    def _borrowed(self) -> sqlite3.Connection:
        """A connection of the pool, for the caller to give back (to ``_idle``): an idle
        one, a new one while the pool has room, else the first one given back."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._opened()

    def _opened(self) -> sqlite3.Connection:
        with self._opening:
            if self.opened < self.size:
                db = self._open()
                self.opened += 1
                return db
        try:
            return self._idle.get(timeout=WAIT)
        except queue.Empty:
            raise sqlite3.OperationalError(
                f"every connection to {self.path} stayed busy for {WAIT:g}s"
            ) from None

    def _open(self) -> sqlite3.Connection:
        """A new connection, the file and its tables made first where they are not."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        # borrowed by one thread at a time, whichever: the pool is what keeps them apart
        db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
        try:
            _write_ahead(db)
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                for statement in self.schema:
                    db.execute(statement)
            for table, old, new in self.renamed:
                _rename_column(db, table, old, new)
            for table, column, definition in self.added:
                _add_column(db, table, column, definition)
        except BaseException:
            db.close()
            raise
        return db


def _write_ahead(db: sqlite3.Connection) -> None:
    """The file in write-ahead mode, for good once made so (asked first). Another process
    making the file at the same moment can have SQLite refuse the change at once, its busy
    timeout not waited: it is asked again until the file is so, for :data:`WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _rename_column(db: sqlite3.Connection, table: str, old: str, new: str) -> None:
    """``table``'s column ``old`` renamed ``new`` where it still has it."""
    _alter(db, table, old, True, f"RENAME COLUMN {old} TO {new}", "no such column")


def _add_column(db: sqlite3.Connection, table: str, column: str, definition: str) -> None:
    """The column added to ``table`` unless it has it."""
    _alter(db, table, column, False, f"ADD COLUMN {column} {definition}", "duplicate column")


def _alter(
    db: sqlite3.Connection, table: str, column: str, present: bool, change: str, raced: str
) -> None:
    """``table`` altered by ``change`` where it has ``column`` (``present``) or has it not;
    another process making the same change at the same time (SQLite says ``raced``) is as
    good."""
    if any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})")) != present:
        return
    try:
        with db:
            db.execute(f"ALTER TABLE {table} {change}")
    except sqlite3.OperationalError as exc:
        if raced not in str(exc):
            raise
