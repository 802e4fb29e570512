"""The folder the files and batches share on disk (``--files-dir``), as both stores write it:
ids and owners named so that no client's text is ever a path, the disk's reserve kept for the
proxy's other stores, records written whole, and a file's lines read within a bound."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import BinaryIO

from proxy.core.errors import NotFoundError, StoreUnavailableError

CHUNK = 1 << 20  # bytes copied at a time
PLAIN_OWNER = re.compile(r"[A-Za-z0-9_-]{1,64}")  # an owner named as it is in the folder


def owner_folder(owner: str) -> str:
    """The folder's name for ``owner``'s marks: the owner itself when it is plain (every
    key's owner is), else a digest of it (a key's name, before owners were)."""
    if PLAIN_OWNER.fullmatch(owner):
        return owner
    return "name-" + hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def check_room(folder: Path, needed: int, reserve: int) -> None:
    """Refuse to write ``needed`` bytes in ``folder`` where its disk would keep fewer than
    ``reserve`` free: a 503 ``store_unavailable``, before any byte is written."""
    if not has_room(folder, needed, reserve):
        raise StoreUnavailableError(
            f"the files' disk keeps its last {reserve} bytes for the proxy's other stores "
            f"(--files-reserve); nothing was kept. Retry once there is room",
            retry_after=60,
        )


def has_room(folder: Path, needed: int, reserve: int) -> bool:
    """Whether ``folder``'s disk keeps ``reserve`` bytes free once ``needed`` more are
    written there."""
    if not reserve:
        return True
    try:
        status = os.statvfs(folder if folder.is_dir() else folder.parent)
    except OSError:
        return True  # a folder not made yet: its first write says whether the disk takes it
    return status.f_bavail * status.f_frsize - needed >= reserve


def checked_id(id: str, prefix: str) -> str:
    """``id`` if it is one this store makes (never a path of the client's)."""
    rest = id[len(prefix) :] if id.startswith(prefix) else ""
    if len(rest) != 24 or not all(c in "0123456789abcdef" for c in rest):
        raise NotFoundError(f"No object found with id '{id[:64]}'.", param="id")
    return id


def read_line(source: BinaryIO, longest: int) -> bytes:
    """The next line of ``source``, held once however long: a line longer than ``longest``
    comes cut to ``longest + 1`` bytes, the rest of it read past."""
    piece = source.readline(CHUNK)
    if (len(piece) < CHUNK or piece.endswith(b"\n")) and len(piece) <= longest:
        return piece
    line = bytearray(piece)  # grown in place, never joined from pieces
    while not line.endswith(b"\n") and len(line) <= longest and (piece := source.readline(CHUNK)):
        line += piece
    if len(line) > longest:
        if not line.endswith(b"\n"):
            while (rest := source.readline(CHUNK)) and not rest.endswith(b"\n"):
                pass
        del line[longest + 1 :]
    return line


def write_whole(path: Path, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` so that a reader sees the old content or the new,
    whole; a write that fails (a full disk) leaves nothing of its own behind."""
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        with open(part, "wb") as out:
            out.write(text.encode() if isinstance(text, str) else text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
