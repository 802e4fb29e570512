"""Naming a model file without reading all of it."""

from __future__ import annotations

import hashlib
import os


def digest(path: str) -> str:
    """A stable name for the file at ``path``: its real path, size and modification time
    hashed (a model file of tens of gigabytes is not read for it)."""
    status = os.stat(path)
    text = f"{os.path.realpath(path)}\x1f{status.st_size}\x1f{status.st_mtime_ns}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
