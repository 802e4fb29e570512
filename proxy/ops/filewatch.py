"""Files watched for changes (``--watch``): their size and modification time, looked at
once a second by a thread of their own."""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Optional, Sequence

logger = logging.getLogger(__name__)
EVERY = 1.0  # seconds between looks


def signature(path: str) -> Optional[tuple]:
    """What tells a file's versions apart cheaply (``None``: it is not there)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size, found.st_ino


class FileWatch:
    """Calls ``changed()`` once whenever any of ``paths`` changes (or goes, or comes back)."""

    def __init__(self, paths: Sequence[str], changed: Callable[[], None], every: float = EVERY):
        self.paths = tuple(paths)
        self.changed = changed
        self.every = every
        self._seen = self._signatures()
        self._stopped = threading.Event()

    def start(self) -> "FileWatch":
        threading.Thread(target=self._run, name="file-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def look(self) -> bool:
        """Look once; whether anything changed since the last look."""
        now = self._signatures()
        if now == self._seen:
            return False
        self._seen = now
        return True

    def _signatures(self) -> tuple:
        return tuple(signature(path) for path in self.paths)

    def _run(self) -> None:
        while not self._stopped.wait(self.every):
            if self.look():
                try:
                    self.changed()
                except Exception:  # a watcher that dies watches nothing
                    logger.exception("acting on a changed file failed")
