"""Files the clients upload (OpenAI's Files API, ``purpose = "batch"``) and those a batch
writes (its answers, its errors): each file's bytes and a record beside them, in one folder
(``--files-dir``) that every proxy sharing the batches reaches (a local disk, or NFS).

A file belongs to the key that made it: another key's file is as good as absent. A record is
written whole and renamed into place, so that a reader never sees half of one. An upload is
copied to the folder as it arrives, its size and lines bounded while it is read (never held
in memory), and a disk that fills refuses it in the API's shape. A file expires
``--files-retention`` days after it is made, sooner where its client asked (OpenAI's
``expires_after``): from then on it is as good as absent, and it is deleted as the files are
next listed.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

from proxy.core.errors import InvalidRequestError, NotFoundError, StoreUnavailableError

CHUNK = 1 << 20  # bytes copied at a time
PURPOSES = ("batch", "batch_output")


@dataclass(frozen=True)
class StoredFile:
    """One file as the Files API shows it, and its owner."""

    id: str
    owner: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    lines: int = 0
    expires_at: Optional[int] = None  # None: kept until it is deleted

    def shown(self) -> dict:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": self.expires_at,
        }


class FileStore:
    """The files in ``folder``: at most ``max_bytes`` and ``max_lines`` each, ``per_key`` of
    them for each key, each kept ``retention`` seconds (0: until it is deleted)."""

    def __init__(
        self,
        folder: str,
        *,
        max_bytes: int,
        max_lines: int,
        per_key: int,
        retention: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes, self.max_lines, self.per_key = max_bytes, max_lines, per_key
        self.retention = retention
        self.clock = clock

    def _expiry(self, now: int, asked: Optional[int] = None) -> Optional[int]:
        """When a file made ``now`` expires: at the end of the retention, or ``asked``
        seconds after, whichever comes first."""
        kept = [seconds for seconds in (self.retention, asked) if seconds]
        return now + min(kept) if kept else None

    # -- uploads ----------------------------------------------------------------------------

    def upload(self, owner: str, stream: BinaryIO, filename: str, purpose: str,
               expires_after: Optional[int] = None) -> StoredFile:  # fmt: skip
        """Copy ``stream`` in as a new file of ``owner``'s, bounded as it is read, to expire
        ``expires_after`` seconds after (at the latest: the retention's end)."""
        if purpose not in PURPOSES[:1]:
            raise InvalidRequestError(
                f"purpose {purpose!r} is not served here; files are uploaded for 'batch'",
                param="purpose",
            )
        if len(self.listed(owner)) >= self.per_key:
            raise InvalidRequestError(
                f"this key already keeps {self.per_key} files, the most it may; delete some "
                f"first (--files-per-key)",
                param="file",
            )
        id = "file-" + secrets.token_hex(12)
        size, lines = self._copy(stream, self._content(id))
        now = int(self.clock())
        return self._record(StoredFile(id, owner, filename[:255], purpose, size, now, lines,
                                       self._expiry(now, expires_after)))  # fmt: skip

    def _copy(self, stream: BinaryIO, path: Path) -> tuple:
        """Write ``stream`` to ``path``; its bytes and lines, or a refusal once too many."""
        self.folder.mkdir(parents=True, exist_ok=True)
        size = lines = 0
        last = b"\n"
        try:
            with open(path, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    last = chunk[-1:]
                    lines += chunk.count(b"\n")
                    if size > self.max_bytes:
                        raise InvalidRequestError(
                            f"the file is larger than {self.max_bytes} bytes, the most "
                            f"accepted (--max-file-size)",
                            param="file",
                        )
                    if lines > self.max_lines:
                        raise InvalidRequestError(
                            f"the file has more than {self.max_lines} lines, the most a batch "
                            f"may have (--max-batch-lines)",
                            param="file",
                        )
                    out.write(chunk)
            lines += last != b"\n"  # a last line without its line break
        except BaseException as exc:
            path.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreUnavailableError(
                    "the files' disk is full; the file was not kept. Retry once there is room",
                    retry_after=60,
                ) from None
            raise
        if not size:
            path.unlink(missing_ok=True)
            raise InvalidRequestError("the file is empty", param="file")
        return size, lines

    def written(self, owner: str, filename: str, purpose: str, source: Path) -> StoredFile:
        """``source`` (a batch's answers, complete) kept as a new file of ``owner``'s."""
        id = "file-" + secrets.token_hex(12)
        self.folder.mkdir(parents=True, exist_ok=True)
        size = source.stat().st_size
        os.replace(source, self._content(id))
        now = int(self.clock())
        return self._record(StoredFile(id, owner, filename, purpose, size, now,
                                       expires_at=self._expiry(now)))  # fmt: skip

    # -- reading ----------------------------------------------------------------------------

    def get(self, owner: Optional[str], id: str) -> StoredFile:
        """``id``'s record, if ``owner`` made it (``None``: the admin, any owner)."""
        try:
            record = json.loads(self._meta(id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise NotFoundError(f"No file found with id '{id}'.", param="file_id") from None
        stored = StoredFile(**record)
        if owner is not None and stored.owner != owner or self._is_expired(stored):
            raise NotFoundError(f"No file found with id '{id}'.", param="file_id")
        return stored

    def content(self, owner: Optional[str], id: str) -> Path:
        self.get(owner, id)
        return self._content(id)

    def lines(self, owner: Optional[str], id: str, longest: int = CHUNK) -> Iterator[bytes]:
        """The file's lines; one longer than ``longest`` bytes comes cut to ``longest + 1``
        (its reader sees it is too long), the rest of it read past and never held."""
        with open(self.content(owner, id), "rb") as source:
            while line := read_line(source, longest):
                yield line

    def line_at(self, id: str, offset: int, longest: int) -> bytes:
        """The line at ``offset`` of the file, at most ``longest + 1`` bytes of it."""
        with open(self.content(None, id), "rb") as source:
            source.seek(offset)
            return read_line(source, longest)

    def listed(self, owner: Optional[str]) -> list:
        """``owner``'s files, newest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for meta in self.folder.glob("file-*.json"):
            try:
                stored = StoredFile(**json.loads(meta.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                continue
            if self._is_expired(stored):
                self._forget(stored.id)
            elif owner is None or stored.owner == owner:
                found.append(stored)
        return sorted(found, key=lambda each: (each.created_at, each.id), reverse=True)

    def _is_expired(self, stored: StoredFile) -> bool:
        return stored.expires_at is not None and self.clock() >= stored.expires_at

    def delete(self, owner: Optional[str], id: str) -> None:
        self.get(owner, id)
        self._forget(id)

    def _forget(self, id: str) -> None:
        self._meta(id).unlink(missing_ok=True)
        self._content(id).unlink(missing_ok=True)

    # -- the folder -------------------------------------------------------------------------

    def _record(self, stored: StoredFile) -> StoredFile:
        write_whole(self._meta(stored.id), json.dumps(asdict(stored)))
        return stored

    def _meta(self, id: str) -> Path:
        return self.folder / f"{checked_id(id, 'file-')}.json"

    def _content(self, id: str) -> Path:
        return self.folder / f"{checked_id(id, 'file-')}.data"


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


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old content or the new, whole."""
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    with open(part, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, path)
