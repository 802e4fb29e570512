"""SQLite files the proxy keeps (usage, stored responses): a connection per thread, made with
its file and tables on first use, in write-ahead mode so other processes' writers do not
block reads. A commit is on the disk once it returns as far as a crash of the proxy goes
(``synchronous=NORMAL``: only a power cut may take the last ones back)."""

from __future__ import annotations

import os
import sqlite3
import threading


class SqliteFile:
    """One file whose tables ``schema`` creates, and each thread's connection to it."""

    def __init__(self, path: str, *schema: str, added: tuple = (), renamed: tuple = ()) -> None:
        """``added``: ``(table, column, definition)`` of each column added to a table after
        files were made with it, added to such a file's table as it is opened; ``renamed``:
        ``(table, old, new)`` of each column renamed since, renamed in such a file so."""
        self.path = path
        self.schema = schema
        self.added = added
        self.renamed = renamed
        self._local = threading.local()
        self._opening = threading.Lock()  # one thread at a time makes the file WAL

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, made on its first use (the file and its tables too)."""
        db = getattr(self._local, "db", None)
        if db is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5.0)
            with self._opening:  # a file is WAL for good once made so: asked, not set again
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                for statement in self.schema:
                    db.execute(statement)
            for table, old, new in self.renamed:
                _rename_column(db, table, old, new)
            for table, column, definition in self.added:
                _add_column(db, table, column, definition)
            self._local.db = db
        return db


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
