"""The batches clients made (OpenAI's Batch API): each one's record, and the answers of its
requests as they come, in the files' folder (:mod:`proxy.batches.files`), so that every proxy
sharing the folder sees them.

A request's answer is appended to the answers (or errors) its process keeps of the batch, a
file of each process's own, and flushed to the disk before the request counts done: a batch
resumed after a restart or a kill runs the requests whose answer is not there, each
``custom_id`` once. Only one process keeps a batch's record at a time (its start, its counts,
its end): it holds the batch's lock (``flock``, which NFS 4 keeps across machines), which the
system gives back when the process dies.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Callable, Iterator, Optional

from proxy.batches.folder import checked_id, has_room, owner_folder, write_whole
from proxy.core.errors import NotFoundError

LIVE = ("validating", "in_progress", "finalizing", "cancelling")  # a runner's to take
WINDOW = 24 * 3600  # seconds of "24h", the one completion window OpenAI offers


@dataclass(frozen=True)
class BatchRecord:
    """One batch, as the Batch API shows it, and its owner."""

    id: str
    owner: str
    endpoint: str
    input_file_id: str
    completion_window: str
    created_at: int
    expires_at: int
    metadata: Optional[dict] = None
    status: str = "validating"
    errors: list = field(default_factory=list)  # the faults of its input, OpenAI's shape
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: Optional[str] = None
    error_file_id: Optional[str] = None
    paused: str = ""  # why its requests wait (a spent budget), while they do
    times: dict = field(default_factory=dict)  # status: when it began
    api: str = "openai"  # whose Batch API made it: "openai", or "anthropic" (Message Batches)
    models: list = field(default_factory=list)  # those its requests name, once it is read
    running: int = 0  # of its requests, those running now (as last counted)
    made_by: str = ""  # the name of the key that made it, as the pages show it
    trace_context: dict = field(default_factory=dict)  # W3C's, of the request that made it

    def shown(self) -> dict:
        shown = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },  # fmt: skip
            "metadata": self.metadata,
        }
        for status in ("in_progress", "finalizing", "completed", "failed", "expired",
                       "cancelling", "cancelled"):  # fmt: skip
            shown[f"{status}_at"] = self.times.get(status)
        if self.paused:
            shown["x-oai-proxy-paused"] = self.paused
        return shown

    def progress(self) -> dict:
        """How far it has come, for the fleet page while it is under way."""
        return {
            "id": self.id,
            "owner": self.made_by or self.owner,
            "models": self.models,
            "status": self.status,
            "total": self.total,
            "answered": self.completed,
            "failed": self.failed,
            "running": self.running,
            "waiting": self.total - self.completed - self.failed - self.running,
            "paused": self.paused,
        }

    def now(self, status: str, when: float, **changes) -> "BatchRecord":
        return replace(self, status=status, times={**self.times, status: int(when)}, **changes)


class BatchStore:
    """The batches in ``folder``/batches; ``runner``: this process's name in its answers'
    files; ``reserve``: bytes of the disk an answer leaves free (``--files-reserve``)."""

    def __init__(
        self,
        folder: str,
        runner: str = "",
        clock: Callable[[], float] = time.time,
        reserve: int = 0,
    ) -> None:
        self.folder = Path(folder) / "batches"
        self.runner = runner or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.clock = clock
        self.reserve = reserve
        self.live_marks, self.owners = self.folder / "live", self.folder / "owners"
        self.ended_marks = self.folder / "ended"
        if self.folder.is_dir() and not self.live_marks.is_dir():
            self._mark_all()

    @contextmanager
    def creating(self, owner: str) -> Iterator[None]:
        """``owner``'s batches counted and made by one process at a time (``flock``), so
        that batches made at once never pass its bounds."""
        self.owners.mkdir(parents=True, exist_ok=True)
        with open(self.owners / f"{owner_folder(owner)}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def create(self, owner: str, endpoint: str, input_file_id: str, window: str,
               metadata: Optional[dict], api: str = "openai",
               made_by: str = "",
               trace_context: Optional[dict] = None) -> BatchRecord:  # fmt: skip
        """A new batch of ``owner``'s (``made_by``: its key's name, for the pages;
        ``trace_context``: W3C's, of the span its lines' spans go under, where traced)."""
        now = int(self.clock())
        record = BatchRecord("batch_" + secrets.token_hex(12), owner, endpoint, input_file_id,
                             window, now, now + WINDOW, metadata, api=api,
                             made_by=made_by, trace_context=trace_context or {})  # fmt: skip
        self.save(record)
        return record

    def save(self, record: BatchRecord) -> None:
        """Write ``record`` whole, and its marks: under way, or ended from now on."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_whole(self._path(record.id, ".json"), json.dumps(asdict(record)))
        self._mark(record)

    def _mark(self, record: BatchRecord) -> None:
        owned = self.owners / owner_folder(record.owner)
        owned.mkdir(parents=True, exist_ok=True)
        (owned / f"{record.created_at:010d}.{record.id}.{record.api}").touch()
        if record.status in LIVE:
            self.live_marks.mkdir(exist_ok=True)
            (self.live_marks / record.id).touch()
        else:
            ended = max([record.created_at, *record.times.values()])
            self.ended_marks.mkdir(exist_ok=True)
            (self.ended_marks / f"{ended:010d}.{record.id}").touch()
            (self.live_marks / record.id).unlink(missing_ok=True)

    def get(self, owner: Optional[str], id: str) -> BatchRecord:
        """``id``'s record, if ``owner`` made it (``None``: any owner); ``cancelling`` once a
        cancel was asked while it runs."""
        try:
            record = BatchRecord(**json.loads(self._path(id, ".json").read_text("utf-8")))
        except (OSError, ValueError, TypeError):
            raise NotFoundError(f"No batch found with id '{id[:64]}'.", param="batch_id") from None
        if owner is not None and record.owner != owner:
            raise NotFoundError(f"No batch found with id '{id[:64]}'.", param="batch_id")
        return self._cancelled(record)

    def cancel(self, id: str) -> None:
        """Ask the batch's runner to stop: a mark of its own, which no save of the runner's
        overwrites."""
        self._path(id, ".cancel").touch()

    def _cancelled(self, record: BatchRecord) -> BatchRecord:
        if record.status in LIVE and record.status != "cancelling":
            try:
                asked = self._path(record.id, ".cancel").stat().st_mtime
            except OSError:
                return record
            return record.now("cancelling", asked)
        return record

    def live(self, owner: Optional[str] = None) -> list:
        """The batches under way (``owner``'s only, where given), oldest first."""
        found = []
        for id in _names(self.live_marks):
            try:
                record = self.get(owner, id)
            except NotFoundError:
                continue  # another owner's, or a mark whose record is not written yet
            if record.status in LIVE:
                found.append(record)
        return sorted(found, key=lambda each: (each.created_at, each.id))

    def reading(self, file_id: str) -> Optional[BatchRecord]:
        """The batch under way that reads the file ``file_id``, if one does."""
        return next((each for each in self.live() if each.input_file_id == file_id), None)

    def page(self, owner: Optional[str], api: str, after: Optional[str], limit: int) -> tuple:
        """``(batches, more)``: ``owner``'s (``None``: every owner's) batches made by ``api``,
        newest first, the first ``limit`` after the batch ``after``; only those records are
        read."""
        folders = (
            [self.owners / owner_folder(owner)] if owner is not None else _folders(self.owners)
        )
        marks = sorted((name for folder in folders for name in _names(folder)), reverse=True)
        found = []
        for name in marks:
            _, _, rest = name.partition(".")
            id, _, made_by = rest.partition(".")
            if made_by != api:
                continue
            if after is not None:
                after = None if id == after else after
                continue
            try:
                found.append(self.get(owner, id))
            except NotFoundError:
                continue  # pruned meanwhile
            if len(found) > limit:
                break
        return found[:limit], len(found) > limit

    def prune(self, retention: float) -> None:
        """Forget the batches that ended more than ``retention`` seconds ago (their
        records and marks; their files expire by the files' own retention)."""
        before = self.clock() - retention
        for name in sorted(_names(self.ended_marks)):
            when, _, id = name.partition(".")
            if not when.isdigit() or int(when) >= before:
                break
            try:
                record = self.get(None, id)
            except NotFoundError:
                record = None
            for suffix in (".json", ".cancel", ".lock"):
                self._path(id, suffix).unlink(missing_ok=True)
            if record is not None:
                owned = self.owners / owner_folder(record.owner)
                (owned / f"{record.created_at:010d}.{record.id}.{record.api}").unlink(
                    missing_ok=True
                )
            (self.ended_marks / name).unlink(missing_ok=True)

    def _mark_all(self) -> None:
        """Mark every batch a folder kept before batches had marks."""
        for path in self.folder.glob("batch_*.json"):
            try:
                self._mark(BatchRecord(**json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError):
                continue
        self.live_marks.mkdir(exist_ok=True)

    # -- answers ----------------------------------------------------------------------------

    def answer(self, id: str, result: dict, ok: bool) -> None:
        """Keep one request's ``result``, on the disk before this returns; an ``OSError``
        where the disk would keep less than its reserve."""
        line = json.dumps(result, separators=(",", ":")).encode() + b"\n"
        if not has_room(self.folder, len(line), self.reserve):
            raise OSError(errno.ENOSPC, "the files' disk keeps its reserve (--files-reserve)")
        with open(self._path(id, f".{self.runner}{_suffix(ok)}"), "ab") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def answered(self, id: str) -> dict:
        """Whether each request answered was answered well, by its ``custom_id``."""
        found = {}
        for ok in (True, False):
            for path in self._parts(id, ok):
                with open(path, "rb") as kept:
                    for text in kept:
                        try:
                            found[json.loads(text)["custom_id"]] = ok
                        except (ValueError, KeyError):  # a line cut by a crash mid-write
                            continue
        return found

    def gathered(self, id: str, ok: bool) -> Optional[Path]:
        """Every process's answers (``ok``) or errors of the batch in one file, or ``None``
        when there are none: each request's first whole answer (one taken over from a
        process that was slow, not dead, may have been answered twice)."""
        parts = self._parts(id, ok)
        whole = self._path(id, _suffix(ok))
        seen = set()
        with open(whole, "wb") as out:
            for path in parts:
                with open(path, "rb") as kept:
                    for text in kept:
                        if not text.endswith(b"\n"):  # cut by a crash mid-write
                            continue
                        try:
                            custom_id = json.loads(text)["custom_id"]
                        except (ValueError, KeyError):
                            continue
                        if custom_id not in seen:
                            seen.add(custom_id)
                            out.write(text)
        if not whole.stat().st_size:
            whole.unlink()
            return None
        return whole

    def clear(self, id: str) -> None:
        """The processes' answers, once gathered into the batch's files."""
        for ok in (True, False):
            for path in self._parts(id, ok):
                path.unlink(missing_ok=True)

    def _parts(self, id: str, ok: bool) -> list:
        return sorted(self.folder.glob(f"{checked_id(id, 'batch_')}.*{_suffix(ok)}"))

    def lock(self, id: str) -> Optional[IO]:
        """Batch ``id``'s lock, if no other process holds it: this process keeps the batch's
        record until it closes the lock (or dies)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = open(self._path(id, ".lock"), "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return None
        return lock

    def _path(self, id: str, suffix: str) -> Path:
        return self.folder / f"{checked_id(id, 'batch_')}{suffix}"


def _suffix(ok: bool) -> str:
    return ".out.jsonl" if ok else ".err.jsonl"


def _names(folder: Path) -> list:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _folders(folder: Path) -> Iterator[Path]:
    return (folder / name for name in _names(folder))
