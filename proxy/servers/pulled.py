"""The models clients pulled (Ollama's ``/api/pull``), kept in a file of the proxy's cache so
that they are served again after a restart, and by every process of the proxy. The models'
files are in the hub's cache; this file only names them."""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from proxy.config.hubref import HubReference


class PulledModels:
    """The references of the models pulled so far, in the order they were pulled."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def references(self) -> tuple:
        """Every model pulled and not deleted; an entry that no longer parses is passed over."""
        try:
            names = json.loads(self.path.read_text(encoding="utf-8")).get("pulled", [])
        except (OSError, ValueError, AttributeError):
            return ()
        found = []
        for name in names if isinstance(names, list) else []:
            try:
                reference = HubReference.parse(name) if isinstance(name, str) else None
            except ValueError:
                reference = None
            if reference is not None and reference not in found:
                found.append(reference)
        return tuple(found)

    def add(self, reference: HubReference) -> None:
        with self._changing():
            kept = self.references()
            if reference not in kept:
                self._write(kept + (reference,))

    def remove(self, reference: HubReference) -> None:
        with self._changing():
            self._write(tuple(r for r in self.references() if r != reference))

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """One change at a time, across the proxy's processes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, references: tuple) -> None:
        """Replace the file whole: a reader never sees half of it."""
        text = json.dumps({"pulled": [r.name for r in references]}, indent=1)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(text + "\n", encoding="utf-8")
        os.replace(temporary, self.path)
