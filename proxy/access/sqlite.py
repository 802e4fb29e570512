"""SQLite files the proxy keeps (usage, stored responses): a connection per thread, made with
its file and tables on first use, in write-ahead mode so other processes' writers do not
block reads. A commit is on the disk once it returns as far as a crash of the proxy goes
(``synchronous=NORMAL``: only a power cut may take the last ones back)."""

from __future__ import annotations

import os
import sqlite3
import threading


class Connections:
    """Each thread's connection to one file whose tables ``schema`` creates."""

    def __init__(self, path: str, *schema: str) -> None:
        self.path = path
        self.schema = schema
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                for statement in self.schema:
                    db.execute(statement)
            self._local.db = db
        return db
