"""Files the clients upload (OpenAI's Files API, ``purpose = "batch"``) and those a batch
writes (its answers, its errors): each file's bytes and a record beside them, in one folder
(``--files-dir``) that every proxy sharing the batches reaches (a local disk, or NFS).

A file belongs to the key that made it (its owner, :attr:`KeySpec.owner
<proxy.access.keyring.KeySpec.owner>`): another key's file is as good as absent. A record is
written whole and renamed into place, so that a reader never sees half of one. An upload is
copied to the folder as it arrives, its size and lines bounded while it is read (never held
in memory). A key keeps at most ``--files-per-key`` files of ``--files-bytes-per-key`` bytes
in all, its batches' answers counted: each owner's files are named in a folder of their own
(a mark a file, its size and expiry in its name), read without opening a record, and a
file is counted in under the owner's lock, so that uploads at once never keep more. The disk
keeps ``--files-reserve`` bytes free for the proxy's other stores (usage and budgets, the
journal): an upload or a batch's answer that would take them is refused, a 503 in the API's
shape, before it does. A file expires ``--files-retention`` days after it is made, sooner
where its client asked (OpenAI's ``expires_after``): from then on it is as good as absent,
and it is deleted as its owner's files are next counted or listed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

from proxy.batches.folder import CHUNK, check_room, checked_id, owner_folder, read_line, write_whole
from proxy.core.errors import InvalidRequestError, NotFoundError, StoreUnavailableError

PURPOSES = ("batch", "batch_output", "image_output")  # uploads, a batch's answers, pictures
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FULL = "the files' disk is full; the file was not kept. Retry once there is room"


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

    @property
    def mark(self) -> str:
        """Its name among its owner's marks: its id, size and expiry (0: none)."""
        return f"{self.id}.{self.bytes}.{self.expires_at or 0}"

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
    them and ``bytes_per_key`` bytes in all for each key, ``reserve`` bytes of the disk left
    free, each kept ``retention`` seconds (0: until it is deleted)."""

    def __init__(
        self,
        folder: str,
        *,
        max_bytes: int,
        max_lines: int,
        per_key: int,
        bytes_per_key: int = 1 << 62,
        reserve: int = 0,
        retention: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes, self.max_lines, self.per_key = max_bytes, max_lines, per_key
        self.bytes_per_key, self.reserve = bytes_per_key, reserve
        self.retention = retention
        self.clock = clock
        self.owners = self.folder / "owners"
        if self.folder.is_dir() and not self.owners.is_dir():
            self._mark_all()

    def _expiry(self, now: int, asked: Optional[int] = None) -> Optional[int]:
        """When a file made ``now`` expires: at the end of the retention, or ``asked``
        seconds after, whichever comes first."""
        kept = [seconds for seconds in (self.retention, asked) if seconds]
        return now + min(kept) if kept else None

    # -- uploads ----------------------------------------------------------------------------

    def upload(self, owner: str, stream: BinaryIO, filename: str, purpose: str,
               expires_after: Optional[int] = None, expected: int = 0) -> StoredFile:  # fmt: skip
        """Copy ``stream`` in as a new file of ``owner``'s, bounded as it is read, to expire
        ``expires_after`` seconds after (at the latest: the retention's end); ``expected``:
        the bytes its client said it sends (0: not said), for the disk's reserve."""
        if purpose not in PURPOSES[:1]:
            raise InvalidRequestError(
                f"purpose {purpose!r} is not served here; files are uploaded for 'batch'",
                param="purpose",
            )
        if CONTROL.search(filename):
            raise InvalidRequestError("the file's name holds control characters", param="file")
        count, held = self.holding(owner)
        self._check_quota(count + 1, held)
        check_room(self.folder, expected, self.reserve)
        id = "file-" + secrets.token_hex(12)
        size, lines = self._copy(stream, self._content(id), self.bytes_per_key - held)
        now = int(self.clock())
        stored = StoredFile(id, owner, filename[:255], purpose, size, now, lines,
                            self._expiry(now, expires_after))  # fmt: skip
        with self._owner_lock(owner):  # counted again: uploads at once never keep more
            count, held = self.holding(owner)
            try:
                self._check_quota(count + 1, held + size)
            except InvalidRequestError:
                self._content(id).unlink(missing_ok=True)
                raise
            return self._record(stored)

    def _check_quota(self, count: int, size: int) -> None:
        """Refuse a key that would keep more than ``count`` files or ``size`` bytes."""
        if count > self.per_key:
            raise InvalidRequestError(
                f"this key already keeps {self.per_key} files, the most it may; delete some "
                f"first (--files-per-key)",
                param="file",
            )
        if size > self.bytes_per_key:
            raise self._over_bytes()

    def _over_bytes(self) -> InvalidRequestError:
        return InvalidRequestError(
            f"this key's files would take more than {self.bytes_per_key} bytes, the most one "
            f"key may keep; delete some first (--files-bytes-per-key)",
            param="file",
        )

    def _copy(self, stream: BinaryIO, path: Path, left: int) -> tuple:
        """Write ``stream`` to ``path``; its bytes and lines, or a refusal once too many
        (``left``: the bytes its key may still keep), or once the disk's reserve is
        reached."""
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
                    if size > left:
                        raise self._over_bytes()
                    if lines > self.max_lines:
                        raise InvalidRequestError(
                            f"the file has more than {self.max_lines} lines, the most a batch "
                            f"may have (--max-batch-lines)",
                            param="file",
                        )
                    check_room(self.folder, len(chunk), self.reserve)
                    out.write(chunk)
            lines += last != b"\n"  # a last line without its line break
        except BaseException as exc:
            path.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreUnavailableError(FULL, retry_after=60) from None
            raise
        if not size:
            path.unlink(missing_ok=True)
            raise InvalidRequestError("the file is empty", param="file")
        return size, lines

    def written(self, owner: str, filename: str, purpose: str, source: Path) -> StoredFile:
        """``source`` (a batch's answers, complete) kept as a new file of ``owner``'s,
        counted against its bytes (never refused: the answers are on the disk already)."""
        id = "file-" + secrets.token_hex(12)
        self.folder.mkdir(parents=True, exist_ok=True)
        size = source.stat().st_size
        now = int(self.clock())
        stored = StoredFile(id, owner, filename, purpose, size, now, expires_at=self._expiry(now))
        with self._owner_lock(owner):
            self._record(stored)
            os.replace(source, self._content(id))
        return stored

    def picture_room(self, owner: str, count: int) -> None:
        """Refuse, before they are drawn, ``count`` pictures that ``owner`` could not keep:
        more files than its key may keep."""
        self._check_quota(self.holding(owner)[0] + count, 0)

    def keep_pictures(self, owner: str, pictures: list, seconds: int) -> list:
        """``pictures`` (``(filename, bytes)``) kept as new files of ``owner``'s for
        ``seconds`` (at most the retention), all or none: their ids. Refused as an upload
        is when they would take its key past its files or bytes, or the disk past its
        reserve."""
        size = sum(len(data) for _, data in pictures)
        check_room(self.folder, size, self.reserve)
        self.folder.mkdir(parents=True, exist_ok=True)
        now = int(self.clock())
        stored = [
            StoredFile(
                "file-" + secrets.token_hex(12),
                owner,
                filename,
                PURPOSES[2],
                len(data),
                now,
                expires_at=self._expiry(now, seconds),
            )  # fmt: skip
            for filename, data in pictures
        ]
        with self._owner_lock(owner):
            count, held = self.holding(owner)
            self._check_quota(count + len(stored), held + size)
            for file, (_, data) in zip(stored, pictures, strict=True):
                write_whole(self._content(file.id), data)
                self._record(file)
        return [file.id for file in stored]

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
        """``owner``'s files (``None``: every owner's), newest first: only their records are
        read."""
        found = []
        for folder in self._owner_folders(owner):
            for mark in _marks(folder):
                try:
                    stored = StoredFile(**json.loads(self._meta(mark.id).read_text("utf-8")))
                except (OSError, ValueError, TypeError):
                    continue
                if self._is_expired(stored):
                    self._forget(stored)
                else:
                    found.append(stored)
        return sorted(found, key=lambda each: (each.created_at, each.id), reverse=True)

    def holding(self, owner: str) -> tuple:
        """``(files, bytes)`` ``owner`` keeps, from its marks alone (the expired forgotten
        first)."""
        count = size = 0
        for mark in _marks(self._owner_folder(owner)):
            if mark.expires and self.clock() >= mark.expires:
                self._forget(StoredFile(mark.id, owner, "", "", mark.bytes, 0, 0, mark.expires))
                continue
            count, size = count + 1, size + mark.bytes
        return count, size

    def _is_expired(self, stored: StoredFile) -> bool:
        return stored.expires_at is not None and self.clock() >= stored.expires_at

    def delete(self, owner: Optional[str], id: str) -> None:
        self._forget(self.get(owner, id))

    def _forget(self, stored: StoredFile) -> None:
        self._meta(stored.id).unlink(missing_ok=True)
        self._content(stored.id).unlink(missing_ok=True)
        (self._owner_folder(stored.owner) / stored.mark).unlink(missing_ok=True)

    # -- the folder -------------------------------------------------------------------------

    def _record(self, stored: StoredFile) -> StoredFile:
        """Write ``stored``'s record, then its mark (a mark without its record is passed
        over; a record without its mark would be counted against no quota)."""
        write_whole(self._meta(stored.id), json.dumps(asdict(stored)))
        folder = self._owner_folder(stored.owner)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / stored.mark).touch()
        return stored

    def _owner_folder(self, owner: str) -> Path:
        return self.owners / owner_folder(owner)

    def _owner_folders(self, owner: Optional[str]) -> list:
        if owner is not None:
            return [self._owner_folder(owner)]
        return [path for path in self.owners.iterdir()] if self.owners.is_dir() else []

    @contextmanager
    def _owner_lock(self, owner: str) -> Iterator[None]:
        """``owner``'s files counted and changed by one process at a time (``flock``, which
        NFS 4 keeps across machines)."""
        self.owners.mkdir(parents=True, exist_ok=True)
        with open(self.owners / f"{owner_folder(owner)}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _mark_all(self) -> None:
        """Mark every file a folder kept before files had marks, under its owner."""
        for meta in self.folder.glob("file-*.json"):
            try:
                stored = StoredFile(**json.loads(meta.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                continue
            folder = self._owner_folder(stored.owner)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / stored.mark).touch()
        self.owners.mkdir(exist_ok=True)

    def _meta(self, id: str) -> Path:
        return self.folder / f"{checked_id(id, 'file-')}.json"

    def _content(self, id: str) -> Path:
        return self.folder / f"{checked_id(id, 'file-')}.data"


@dataclass(frozen=True)
class _Mark:
    id: str
    bytes: int
    expires: int


def _marks(folder: Path) -> Iterator[_Mark]:
    """The marks in ``folder``: each file's id, size and expiry, from its name alone."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        id, _, rest = name.partition(".")
        size, _, expires = rest.partition(".")
        if size.isdigit() and expires.isdigit() and id.startswith("file-"):
            yield _Mark(id, int(size), int(expires))
