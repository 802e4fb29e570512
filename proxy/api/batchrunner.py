"""Runs the batches' requests through the app itself, each as a live request of the batch's key
would go: its grants, limits, budgets, fair turns, usage and the inspector all apply.

One thread per process looks for batches to run in the files' folder; a batch is run by one
process at a time (:meth:`BatchStore.running`), and taken over by another if that one dies.
A batch's request starts only when one of its model's servers has a free slot and no live
request waits for one, at the lowest priority, so that a batch fills the idle slots and gives
way within one answer when people come back. A request refused for the key's budget or
limits, or for a server that cannot take it now, waits and is tried again (the batch says why
meanwhile): it never fails for it. A batch past its window ends ``expired``, what it answered
kept.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Callable, Optional

from werkzeug.test import Client

from proxy.access.batches import LIVE, BatchRecord, BatchStore
from proxy.access.files import FileStore
from proxy.core.errors import ProxyError
from proxy.dialects.openai.batchinput import BatchRequest, RequestFault, read_requests

logger = logging.getLogger(__name__)

LOOK_EVERY = 1.0  # seconds between two looks for batches to run, and for a free slot
AGAIN = (429, 503)  # answers that say "not now": the request waits and is tried again
LOWEST = "255"
SHOW_EVERY = 0.2  # seconds between two saves of a running batch's counts


class BatchRunner:
    """The batches of ``batches`` (their input in ``files``), run through ``app`` as their
    key: ``secret(name)`` is the key's secret (``None``: the proxy has no keys), ``room(model)``
    whether a request of ``model`` may start now, ``may_use(name, model)`` why the key may not
    use ``model`` (``None``: it may)."""

    def __init__(
        self,
        app,
        files: FileStore,
        batches: BatchStore,
        *,
        secret: Callable[[str], Optional[bytes]],
        room: Callable[[str], bool],
        may_use: Callable[[str, str], Optional[str]],
        at_once: int,
        longest: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``at_once``: requests of a batch run at once; ``longest``: bytes of the longest
        request (``--max-body-size``)."""
        self.app, self.files, self.batches = app, files, batches
        self.longest = longest
        self.secret, self.room, self.may_use = secret, room, may_use
        self.at_once = at_once
        self.clock = clock
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()  # the thread's start, and each save
        self._stopped = threading.Event()
        self._counts: dict = {}  # batch id: [answered, failed, shown at], while it runs here

    def start(self) -> None:
        """Run batches from now on (a batch made, or found waiting when the process started)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="batches")
                self._thread.start()

    def stop(self) -> None:
        """Run no more: what runs ends, and the batches wait for the next process."""
        self._stopped.set()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            for record in self.batches.listed(None):
                if record.status in LIVE:
                    with self.batches.running(record.id) as mine:
                        if mine:
                            try:
                                self.run(record.id)
                            except Exception:  # logged; the batch is tried again later
                                logger.exception("batch %s stopped", record.id)
            self._stopped.wait(LOOK_EVERY)

    # -- one batch --------------------------------------------------------------------------

    def run(self, id: str) -> None:
        """Run batch ``id`` to its end, from its first unanswered request."""
        record = self.batches.get(None, id)
        raw = self.files.lines(None, record.input_file_id, self.longest)
        asked, faults = read_requests(raw, record.endpoint, self.longest)
        faults += self._forbidden(record, asked)
        if record.status == "validating":
            if faults:
                shown = [fault.shown() for fault in faults]
                self._save(record.now("failed", self.clock(), errors=shown))
                return
            record = self._save(record.now("in_progress", self.clock(), total=len(asked)))
        done, failed = self.batches.answered(id)
        pending = [each for each in asked if each.custom_id not in done]
        self._counts[id] = [len(done) - failed, failed, 0.0]  # and when they were last shown
        record = self._save(record, completed=len(done) - failed, failed=failed)
        with ThreadPoolExecutor(self.at_once, thread_name_prefix="batch-request") as pool:
            running: set = set()
            while True:
                running = {each for each in running if not each.done()}
                if not pending and not running:
                    break
                if self._stopped.is_set():
                    return  # what runs ends as it would; the batch waits for a runner
                record = self.batches.get(None, id)
                if record.status == "cancelling" or self.clock() >= record.expires_at:
                    break  # what runs ends as it would
                if not pending or len(running) >= self.at_once:  # until one of them ends
                    wait(running, LOOK_EVERY, FIRST_COMPLETED) if running else self.pause()
                    continue
                if not self.room(pending[0].body["model"]):
                    self.pause()
                    continue
                running.add(pool.submit(self._ask, id, pending.pop(0), pending))
        self._end(id)

    def pause(self) -> None:
        """Wait a little for a slot, or for a request put back to wait."""
        self._stopped.wait(LOOK_EVERY / 20)

    def _forbidden(self, record: BatchRecord, asked: list) -> list:
        found = []
        for each in asked:
            why = self.may_use(record.owner, each.body["model"])
            if why:
                found.append(RequestFault(each.number, "model_not_allowed", why, "body.model"))
        return found

    def _ask(self, id: str, asked: BatchRequest, pending: list) -> None:
        """Ask ``asked`` as the batch's key; keep its answer, or put it back to wait."""
        record = self.batches.get(None, id)
        headers = {"X-Request-Priority": LOWEST}
        secret = self.secret(record.owner)
        if secret is not None:
            headers["Authorization"] = "Bearer " + secret.decode("latin-1")
        answer = Client(self.app).post(record.endpoint, json=asked.body, headers=headers)
        body = answer.get_json(silent=True)
        if answer.status_code in AGAIN:
            why = (body or {}).get("error", {}).get("message", "") if isinstance(body, dict) else ""
            self._pause(id, why or f"HTTP {answer.status_code}")
            pending.insert(0, asked)
            self._stopped.wait(LOOK_EVERY)
            return
        result = {
            "id": "batch_req_" + secrets.token_hex(12),
            "custom_id": asked.custom_id,
            "response": {
                "status_code": answer.status_code,
                "request_id": answer.headers.get("x-request-id") or "req_" + secrets.token_hex(12),
                "body": body,
            },
            "error": None,
        }
        ok = answer.status_code < 400
        self.batches.answer(id, result, ok)
        with self._lock:
            counts = self._counts[id]
            counts[0 if ok else 1] += 1
            now = time.monotonic()
            if now - counts[2] >= SHOW_EVERY:  # the answers on the disk are what counts
                counts[2] = now
                self.batches.save(replace(self.batches.get(None, id), completed=counts[0],
                                          failed=counts[1], paused=""))  # fmt: skip

    def _count(self, id: str) -> BatchRecord:
        """Save the batch's counts as its answers on the disk say, as it ends."""
        with self._lock:
            done, failed = self.batches.answered(id)
            record = replace(self.batches.get(None, id), completed=len(done) - failed,
                             failed=failed, paused="")  # fmt: skip
            self.batches.save(record)
            return record

    def _pause(self, id: str, why: str) -> None:
        """Say why the batch's requests wait."""
        with self._lock:
            self.batches.save(replace(self.batches.get(None, id), paused=why))

    def _end(self, id: str) -> None:
        """The batch's answers and errors made files, and its last status."""
        record = self._count(id)
        if record.status == "cancelling":
            final = "cancelled"
        elif self.clock() >= record.expires_at:
            final = "expired"
        else:
            final = "completed"
            record = self._save(record.now("finalizing", self.clock()))
        made = {}
        for ok, name in ((True, "output_file_id"), (False, "error_file_id")):
            source = self.batches.results(id, ok)
            if source.exists() and source.stat().st_size:
                kept = self.files.written(record.owner, f"{id}_{'output' if ok else 'error'}.jsonl",
                                          "batch_output", source)  # fmt: skip
                made[name] = kept.id
        self._save(record.now(final, self.clock(), paused="", **made))

    def _save(self, record: BatchRecord, **changes) -> BatchRecord:
        """Save ``record`` with ``changes`` (while no request of it runs, or under the lock)."""
        with self._lock:
            record = replace(record, **changes)
            self.batches.save(record)
            return record


def batch_runner(app, files: FileStore, batches: BatchStore, access, router, settings):
    """The runner of ``app``'s batches, with what it asks of the keys and the fleet."""

    def key_named(name: str):
        if access.admin is not None and name == access.admin.name:
            return access.admin
        return next((key for key in access.keyring.keys if key.name == name), None)

    def secret(name: str) -> Optional[bytes]:
        key = key_named(name)
        return key.secret if key is not None else None

    def may_use(name: str, model: str) -> Optional[str]:
        key = key_named(name)
        if key is None:
            return None if not access.required else f"the key {name!r} is no longer known"
        try:
            access.check_model(key, model, router.counted_as(model))
        except ProxyError as exc:
            return exc.message
        return None

    def room(model: str) -> bool:
        for served in router.status():
            if model in (served["id"], served["label"], *served["aliases"]):
                return any(is_free(replica) for replica in served["replicas"])
        return True  # a model not served: its request is answered 404 at once

    return BatchRunner(app, files, batches, secret=secret, room=room, may_use=may_use,
                       at_once=settings.stores.batch_lines_at_once,
                       longest=settings.limits.max_body_size)  # fmt: skip


def is_free(replica: dict) -> bool:
    """Whether a replica has a free slot and nobody waiting for one (slots unknown: nobody
    waiting)."""
    slots, busy = replica.get("slots"), replica.get("busy") or 0
    return not replica.get("queued") and (not slots or busy < slots)
