"""KV caches kept on disk across a server's stops: llama-server's slot files, one per
conversation, in a folder of the model's own.

The server writes and reads the files itself (``POST /slots/N?action=save|restore``, with
``--slot-save-path`` naming the folder); this keeps beside each file what it was saved from
(the model file, the context, the slots and the cache types) so that nothing is restored
into a server it does not fit, and keeps the folder within its budget, least recently used
files going first.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Optional, Sequence

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


class SlotFiles:
    """One model's slot files and what each was saved from."""

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


def target(held: dict, slots: Sequence[dict], pinned: Optional[int]) -> Optional[int]:
    """The slot to restore a conversation into: the one it is pinned to, else an idle one
    that holds no conversation this proxy knows, else the idle one used longest ago.

    ``held``: slot → the time it last served a known conversation; ``slots``: the server's
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
    free = [slot for slot in idle if slot not in held]
    if free:
        return free[0]
    return min(idle, key=lambda slot: held[slot]) if idle else None
