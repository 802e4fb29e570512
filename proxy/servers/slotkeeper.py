"""What each slot of a server the proxy runs holds, and moving those KV caches to and from
disk through the server's slot API: saved before the server stops (and after every turn
when asked), restored into a slot when a conversation comes back."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from proxy.backends.servercpp.client import UpstreamClient
from proxy.core.errors import UpstreamError
from proxy.servers.slotcache import SlotFiles, target

logger = logging.getLogger(__name__)

SLOT_TIMEOUT = 120.0  # seconds a slot's save or restore may take (a long context is large)
LOOK_TIMEOUT = 5.0  # seconds the server may take to list its slots


class SlotKeeper:
    """The conversations in one server's slots, as this process knows them."""

    def __init__(
        self, name: str, url: str, files: SlotFiles, save_every_turn: bool = False
    ) -> None:
        """``files``: where the caches are kept while the server is stopped;
        ``save_every_turn`` saves them after every answer too, so they outlive a crash."""
        self.name = name
        # kept connections: a new conversation's first turn waits for a look at the slots
        self.client = UpstreamClient(
            url, pool_size=2, connect_timeout=LOOK_TIMEOUT, read_timeout=SLOT_TIMEOUT, label=name
        )
        self.files = files
        self._held: dict = {}  # slot → the conversation it holds
        self._held_at: dict = {}  # slot → when it last served one
        self._lock = threading.Lock()
        self._saver = (
            ThreadPoolExecutor(1, thread_name_prefix=f"save-{name}") if save_every_turn else None
        )

    def forget_all(self) -> None:
        """A new process: its slots hold nothing yet (and the old one's connections are gone)."""
        with self._lock:
            self._held.clear()
            self._held_at.clear()
        self.client.pool.close()

    def served(self, conversation: Optional[str], slot: Optional[int]) -> None:
        """``conversation`` was just answered from ``slot``: the slot now holds it."""
        if conversation is None or slot is None or slot < 0:
            return
        with self._lock:
            self._held[slot] = conversation
            self._held_at[slot] = time.monotonic()
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
            held = next((slot for slot, known in self._held.items() if known == conversation), None)
            if held is not None:
                return held if new else None  # the server finds it by its prefix anyway
            restorable = self.files.restorable(conversation)
            if not (restorable or new):
                return None
            slot = target(
                self._held_at, self._slot_call("/slots", timeout=LOOK_TIMEOUT) or [], pinned
            )
            if slot is None:
                return None
            restored = self._restore(conversation, slot) if restorable else 0
            self._held[slot] = conversation
            self._held_at[slot] = time.monotonic()
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
            f"/slots/{slot}?action=restore", {"filename": SlotFiles.name(conversation)}
        )
        if not isinstance(answer, dict) or not answer.get("n_restored"):
            self.files.forget(conversation)  # it does not fit after all: not again
            return 0
        return answer["n_restored"]

    def save_all(self) -> None:
        """Save every conversation a slot holds (the server is about to stop)."""
        with self._lock:
            held = dict(self._held)
        for slot, conversation in held.items():
            self._save(slot, conversation)

    def _save(self, slot: int, conversation: str) -> None:
        answer = self._slot_call(
            f"/slots/{slot}?action=save", {"filename": SlotFiles.name(conversation)}
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
