"""SQLite files the proxy keeps (usage, stored responses): a connection per thread, made with
its file and table on first use, in write-ahead mode so other processes' writers do not
block reads."""

from __future__ import annotations

import os
import sqlite3
import threading


class Connections:
    """Each thread's connection to one file whose table ``schema`` creates."""

    def __init__(self, path: str, schema: str) -> None:
        self.path = path
        self.schema = schema
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            with db:
                db.execute(self.schema)
            self._local.db = db
        return db
