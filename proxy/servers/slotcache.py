"""KV caches a server the proxy runs keeps across its stops: what each slot holds, and the files
that hold them meanwhile.

The files are llama-server's slot files, one per conversation, in a folder of the model's own.
The server writes and reads the files itself (``POST /slots/N?action=save|restore``, with
``--slot-save-path`` naming the folder); this keeps beside each file what it was saved from (the
model file, the context, the slots and the cache types) so that nothing is restored into a
server it does not fit, and keeps the folder within its budget, least recently used files going
first.

What each slot of a server the proxy runs holds, and moving those KV caches to and from disk
through the server's slot API: saved before the server stops (and after every turn when asked),
restored into a slot when a conversation comes back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

from proxy.backends.wire.client import UpstreamClient
from proxy.core.errors import UpstreamError

logger = logging.getLogger(__name__)

CONVERSATION = re.compile(r"[0-9a-f]{32}")  # a conversation's id: the only names used


def fingerprint(model: str, args: Sequence[str], program: str) -> dict:
    """What a slot file must have been saved from to be restored into this server: the
    model file (and its size and time, which change with it), the flags that shape the
    cache, and the program that runs it (the format changes between llama.cpp builds)."""
    try:
        stat = os.stat(model)
        made = {"size": stat.st_size, "mtime": int(stat.st_mtime)}
    except OSError:
        made = {}
    shaping = {}
    for names in (
        ("-c", "--ctx-size"),
        ("-np", "--parallel"),
        ("-ctk", "--cache-type-k"),
        ("-ctv", "--cache-type-v"),
    ):
        for index, arg in enumerate(args[:-1]):
            if arg in names:
                shaping[names[-1]] = args[index + 1]
    return {
        "model": os.path.abspath(model),
        **made,
        "flags": shaping,
        "engine": program,
    }  # the files' word for it


class SavedSlots:
    """One model's saved slots (a KV cache each, in a file of its own) and what each was
    saved from."""

    def __init__(self, folder: Path, fingerprint: dict, budget: int) -> None:
        """``budget``: bytes the folder may hold, over every model's folder beside it."""
        self.folder = folder
        self.fingerprint = fingerprint
        self.budget = budget
        folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def name(conversation: str) -> str:
        """The file name the server saves a conversation's slot under."""
        return f"{conversation}.bin"

    def restorable(self, conversation: str) -> bool:
        """Whether a saved slot of ``conversation`` fits this server."""
        if not CONVERSATION.fullmatch(conversation):
            return False
        try:
            saved = json.loads((self.folder / f"{conversation}.json").read_text())
        except (OSError, ValueError):
            return False
        return (
            saved.get("from") == self.fingerprint
            and (self.folder / self.name(conversation)).exists()
        )

    def saved(self, conversation: str, tokens: int) -> None:
        """The server has just saved ``conversation``'s slot: note what from."""
        path = self.folder / f"{conversation}.json"
        draft = path.with_suffix(f".{os.getpid()}.draft")  # whole or not at all, to a reader
        draft.write_text(
            json.dumps({"from": self.fingerprint, "tokens": tokens, "saved": time.time()})
        )
        os.replace(draft, path)
        self.prune()

    def forget(self, conversation: str) -> None:
        """``conversation``'s file would not restore: remove it."""
        for path in (self.folder / self.name(conversation), self.folder / f"{conversation}.json"):
            try:
                path.unlink()
            except OSError:
                pass

    def used(self, conversation: str) -> None:
        """``conversation``'s file was restored: it is the most recently used."""
        try:
            os.utime(self.folder / self.name(conversation))
        except OSError:
            pass

    def prune(self) -> None:
        """Remove the least recently used files until every model's fit the budget."""
        files = sorted(
            (path for path in self.folder.parent.glob("*/*.bin")), key=lambda path: _mtime(path)
        )
        total = sum(_size(path) for path in files)
        for path in files:
            if total <= self.budget:
                break
            total -= _size(path)
            for stale in (path, path.with_suffix(".json")):
                try:
                    stale.unlink()
                except OSError:
                    pass
            logger.info("slot cache: removed %s (over the %d-byte budget)", path.name, self.budget)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def target(served_at: dict, slots: Sequence[dict], pinned: Optional[int]) -> Optional[int]:
    """The slot to restore a conversation into: the one it is pinned to, else an idle one
    that holds no conversation this proxy knows, else the idle one used longest ago.

    ``served_at``: slot → the time it last served a known conversation; ``slots``: the server's
    ``GET /slots``.
    """
    if pinned is not None and pinned >= 0:
        return pinned
    idle = [
        slot["id"]
        for slot in slots
        if isinstance(slot, dict)
        and isinstance(slot.get("id"), int)
        and not slot.get("is_processing")
    ]
    free = [slot for slot in idle if slot not in served_at]
    if free:
        return free[0]
    return min(idle, key=lambda slot: served_at[slot]) if idle else None


logger = logging.getLogger(__name__)

SLOT_TIMEOUT = 120.0  # seconds a slot's save or restore may take (a long context is large)
LOOK_TIMEOUT = 5.0  # seconds the server may take to list its slots


class SlotKeeper:
    """The conversations in one server's slots, as this process knows them."""

    def __init__(
        self, name: str, url: str, files: SavedSlots, save_every_turn: bool = False
    ) -> None:
        """``files``: where the caches are kept while the server is stopped;
        ``save_every_turn`` saves them after every answer too, so they outlive a crash."""
        self.name = name
        # kept connections: a new conversation's first turn waits for a look at the slots
        self.client = UpstreamClient(
            url, pool_size=2, connect_timeout=LOOK_TIMEOUT, read_timeout=SLOT_TIMEOUT, label=name
        )
        self.files = files
        self._conversations: dict = {}  # slot → the conversation it holds
        self._served_at: dict = {}  # slot → when it last served one
        self._lock = threading.Lock()
        self._saver = (
            ThreadPoolExecutor(1, thread_name_prefix=f"save-{name}") if save_every_turn else None
        )

    def forget_all(self) -> None:
        """A new process: its slots hold nothing yet (and the old one's connections are gone)."""
        with self._lock:
            self._conversations.clear()
            self._served_at.clear()
        self.client.pool.close()

    def served(self, conversation: Optional[str], slot: Optional[int]) -> None:
        """``conversation`` was just answered from ``slot``: the slot now holds it."""
        if conversation is None or slot is None or slot < 0:
            return
        with self._lock:
            self._conversations[slot] = conversation
            self._served_at[slot] = time.monotonic()
        if self._saver is not None:
            self._saver.submit(self._save, slot, conversation)

    def prepare(
        self, conversation: Optional[str], pinned: Optional[int], new: bool = False
    ) -> Optional[int]:
        """The slot ``conversation``'s next turn runs in, named to the server so that
        its cache is restored there first (saved before the server last stopped), or so
        that it can be saved from there afterwards: the slot that holds it, else an idle
        one (for a ``new`` conversation too, when its answer will not say which slot served
        it). ``None`` (the server picks) when it has none to restore for a conversation not
        ``new``, or finds no slot idle."""
        if conversation is None:
            return None
        with self._lock:
            kept = next(
                (slot for slot, known in self._conversations.items() if known == conversation), None
            )
            if kept is not None:
                return kept if new else None  # the server finds it by its prefix anyway
            restorable = self.files.restorable(conversation)
            if not (restorable or new):
                return None
            slot = target(
                self._served_at, self._slot_call("/slots", timeout=LOOK_TIMEOUT) or [], pinned
            )
            if slot is None:
                return None
            restored = self._restore(conversation, slot) if restorable else 0
            self._conversations[slot] = conversation
            self._served_at[slot] = time.monotonic()
        if restored:
            self.files.used(conversation)
            logger.info(
                "%s: restored a conversation's %s cached tokens into slot %d",
                self.name,
                restored,
                slot,
            )
        return slot

    def _restore(self, conversation: str, slot: int) -> int:
        """Load ``conversation``'s saved cache into ``slot``: the tokens restored."""
        answer = self._slot_call(
            f"/slots/{slot}?action=restore", {"filename": SavedSlots.name(conversation)}
        )
        if not isinstance(answer, dict) or not answer.get("n_restored"):
            self.files.forget(conversation)  # it does not fit after all: not again
            return 0
        return answer["n_restored"]

    def save_all(self) -> None:
        """Save every conversation a slot holds (the server is about to stop)."""
        with self._lock:
            kept = dict(self._conversations)
        for slot, conversation in kept.items():
            self._save(slot, conversation)

    def _save(self, slot: int, conversation: str) -> None:
        answer = self._slot_call(
            f"/slots/{slot}?action=save", {"filename": SavedSlots.name(conversation)}
        )
        if isinstance(answer, dict) and answer.get("n_saved"):
            self.files.saved(conversation, answer["n_saved"])

    def _slot_call(self, path: str, body: Optional[dict] = None, timeout: float = SLOT_TIMEOUT):
        """One call to the server's slot API (a GET without ``body``); ``None`` when it fails
        (a cache is a help, never a reason for a request to fail)."""
        method = "GET" if body is None else "POST"
        try:
            if body is None:
                reply = self.client.get(path, timeout=timeout)
            else:
                reply = self.client.post(path, body, timeout=timeout)
            if not reply.ok:
                raise UpstreamError(f"answered {reply.status_code}: {reply.text[:200]}")
            return reply.json()
        except (UpstreamError, ValueError) as exc:
            logger.warning("%s: %s %s failed: %s", self.name, method, path, exc)
            return None
