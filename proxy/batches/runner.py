"""Runs the batches' requests through the app itself, each as a live request of the batch's key
would go, without HTTP (:mod:`proxy.api.inprocess`): its grants, limits, budgets, fair turns,
usage and the inspector all apply.

One thread per process does two jobs. It keeps the record of each batch it holds the lock of
(:meth:`BatchStore.lock`; another process takes a batch over when this one dies), by its
:class:`~proxy.batches.keeper.BatchKeeper`. And it takes requests of any batch from the queue
(:mod:`proxy.batches.queue`: this process's, or with ``--redis-url`` every proxy's) to
run them: a request of a model starts only when one of the model's servers has a free slot
and no live request waits for one, at the lowest priority, so that batches fill the idle
slots and give way within one answer when people come back. A request refused for the key's
budget or limits, or for a server that cannot take it now, waits and is tried again (the
batch says why meanwhile): it never fails for it. A batch past its window ends ``expired``,
what it answered kept; the requests a batch ended without are in its error file, as
``batch_expired`` or ``batch_cancelled``.

No batch, and no request, stops the others: a batch that cannot be read (its input gone) ends
``failed`` with its reason, a request that cannot be run is its own error, and the thread
goes on whatever fails (started again by the next look at the batches if it ever stops). A
disk that cannot keep an answer, or a queue that cannot be reached, is waited out.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable, Optional

from proxy.api.inprocess import serve_in_process
from proxy.batches.files import FileStore
from proxy.batches.keeper import GONE_KEY, BatchKeeper
from proxy.batches.queue import Claim
from proxy.batches.store import BatchRecord, BatchStore
from proxy.core.errors import NotFoundError, ProxyError, StoreUnavailableError
from proxy.core.outages import Outages
from proxy.dialects.dialect import Limits
from proxy.dialects.openai.batchinput import RequestFault, read_request
from proxy.traces import conventions

logger = logging.getLogger(__name__)

LOOK_EVERY = 1.0  # seconds between two looks at the batches, and saves of their tallies
PRUNE_EVERY = 600.0  # seconds between two prunings of the batches ended past the retention
PAUSE = 0.05  # seconds between two looks for a free slot
AGAIN = (429, 503)  # answers that say "not now": the request waits and is tried again
QUEUE = "batches"  # the batch queue, as the proxy's stores name it
KEPT_NOT = "an answer could not be kept (is the files' disk full?); it is asked again"
UNREAD = "the input file could not be read"
UNRUN = {"code": "internal_error", "message": "the request could not be run (logged)"}


class BatchRunner:
    """The batches of ``batches`` (their input in ``files``), their requests queued in
    ``queue`` (its outages told by ``outages``) and run through ``app`` as their key:
    ``key(owner)`` is the key that is the batch's owner now (``None``: it is no longer a
    key, or the proxy has none, as ``keyed`` says), ``served(key, model, endpoint)`` the id
    of the model that serves the name ``model`` for ``key`` (a :class:`ProxyError` where
    none does, or the key may not use it, or not ask it for what ``endpoint`` makes),
    ``room(model)`` how many requests of the served model may start now."""

    def __init__(
        self,
        app,
        files: FileStore,
        batches: BatchStore,
        queue,
        outages: Outages,
        *,
        key: Callable[[str], object],
        keyed: bool,
        served: Callable[[object, str, str], str],
        room: Callable[[str], int],
        at_once: int,
        limits: Limits,
        retention: float = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``at_once``: batch requests this process runs at once; ``limits``: what a request
        may be (its body's bounds); ``retention``: seconds an ended batch is kept (0: for
        ever)."""
        self.app, self.files, self.batches, self.queue = app, files, batches, queue
        self.outages = outages
        self.limits = limits
        self.key, self.keyed, self.room = key, keyed, room
        self.keeper = BatchKeeper(files, batches, queue, key=key, keyed=keyed, served=served,
                                  limits=limits, clock=clock)  # fmt: skip
        self.at_once = at_once
        self.retention = retention
        self.clock = clock
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()  # the thread's start
        self._stopped = threading.Event()
        self._locks: dict = {}  # batch id: its lock, for the batches whose record is kept here
        self._live: list = []  # the batches under way, oldest first, as last looked at
        self._empty: set = set()  # (batch, model) found with nothing to take, since that look
        self._unkept = False  # whether the last answer could not be kept (logged once)
        self._look_now = threading.Event()  # a batch made, or one's last request ended

    def start(self, look: bool = True) -> None:
        """Run batches from now on (a batch made, or found waiting when the process started),
        looking at them now unless not to ``look``; a thread that stopped is started
        again."""
        if look:
            self._look_now.set()
        with self._lock:
            if self._stopped.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True, name="batches")
                self._thread.start()

    def stop(self) -> None:
        """Run no more: what runs ends, and the batches wait for the next process."""
        self._stopped.set()

    def _loop(self) -> None:
        looked = pruned = 0.0
        running: dict = {}  # each request running: its batch's id
        with ThreadPoolExecutor(self.at_once, thread_name_prefix="batch-request") as pool:
            while not self._stopped.is_set():
                try:
                    with self.outages.reaching(QUEUE):
                        if self._look_now.is_set() or time.monotonic() - looked >= LOOK_EVERY:
                            self._look_now.clear()
                            looked = time.monotonic()
                            self._look()
                        self._ended({running.pop(each) for each in list(running) if each.done()})
                        self._fill(running, pool)
                    if self.retention and time.monotonic() - pruned >= PRUNE_EVERY:
                        pruned = time.monotonic()
                        self.batches.prune(self.retention)
                except StoreUnavailableError:  # logged as the outage begins and ends
                    self._stopped.wait(LOOK_EVERY)
                except Exception as exc:  # noqa: BLE001 - the loop outlives any one fault
                    if self._stopped.is_set():
                        break  # the process stops: what failed was its stopping
                    logger.error("the batch runner's look failed (%s); it looks again",
                                 type(exc).__name__)  # fmt: skip
                    self._stopped.wait(LOOK_EVERY)
                if running:
                    wait(running, PAUSE, FIRST_COMPLETED)
                else:
                    self._stopped.wait(PAUSE)
        for lock in self._locks.values():
            lock.close()

    def _ended(self, batches: set) -> None:
        """Requests of ``batches`` ended: a batch kept here with nothing left to take is
        looked at now, so that it ends as its last answer comes."""
        for record in self._live:
            if record.id in batches and record.id in self._locks and all(
                (record.id, model) in self._empty for model in record.models
            ):  # fmt: skip
                self._look_now.set()

    def _look(self) -> None:
        """The batches under way looked at again, and those whose record is kept here kept:
        one that fails fails alone."""
        self._empty.clear()
        self._live = []
        for record in self.batches.live():
            if record.id not in self._locks:
                lock = self.batches.lock(record.id)
                if lock is None:
                    self._live.append(record)
                    continue
                self._locks[record.id] = lock
            try:
                kept = self.keeper.keep(self.batches.get(None, record.id))
            except (NotFoundError, FileNotFoundError):  # its input is gone
                kept = self._fail(record, UNREAD + ": it was deleted or expired")
            except OSError:  # the disk: waited out, its lock let go
                self._let_go(record.id)
                continue
            except (StoreUnavailableError, *self.outages.errors):  # the queue's: waited out
                self._let_go(record.id)
                raise
            except Exception as exc:  # noqa: BLE001 - a batch's fault is its own
                logger.error("batch %s failed: %s", record.id, type(exc).__name__)
                kept = self._fail(record, UNREAD + " (logged)")
            if kept is not None:
                self._live.append(kept)
            else:  # ended (or failed): its record is kept no more
                self._let_go(record.id)
        self.queue.renew()

    def _fail(self, record: BatchRecord, why: str) -> None:
        """``record`` cannot go on: it ends ``failed``, saying ``why``."""
        fault = RequestFault(0, "input_file_unreadable", why, "input_file_id")
        self.batches.save(record.now("failed", self.clock(), errors=[fault.shown()]))
        self.queue.forget(record.id, record.models)

    def _fill(self, running: dict, pool: ThreadPoolExecutor) -> None:
        """Start as many of the batches' requests of each model as its servers have free
        slots (counted once a look: the next look sees them held); drop those of a batch
        ending early."""
        free: dict = {}  # model: slots left for this look
        for record in self._live:
            ending = self.keeper.is_ending(record)
            for model in record.models:
                while (record.id, model) not in self._empty and (ending or (
                    len(running) < self.at_once and free.setdefault(model, self.room(model)) > 0
                )):  # fmt: skip
                    claim = self.queue.take(record.id, model)
                    if claim is None:
                        self._empty.add((record.id, model))
                    elif ending:
                        self.queue.conclude(claim, None)
                    else:
                        running[pool.submit(self._run, record, claim)] = record.id
                        free[model] -= 1

    def _let_go(self, id: str) -> None:
        lock = self._locks.pop(id, None)
        if lock is not None:
            lock.close()

    # -- a batch's request ------------------------------------------------------------------

    def _run(self, record: BatchRecord, claim: Claim) -> None:
        """Run ``claim``'s request; one whose answer could not be kept, or concluded, waits to
        run again (its answer, if kept, found then); one that cannot be run at all is an
        error of its own."""
        try:
            try:
                self._ask(record, claim)
            except (StoreUnavailableError, *self.outages.errors):  # the disk's, the queue's
                raise
            except Exception as exc:  # noqa: BLE001 - a request's fault is its own
                logger.error("a request of batch %s could not be run: %s", record.id,
                             type(exc).__name__)  # fmt: skip
                self._keep_answer(record, claim, None, UNRUN)
            self._unkept = False
            return
        except OSError:  # the files' disk: logged as it begins
            if not self._unkept:
                logger.warning("batch requests wait: their answers cannot be kept in the "
                               "files' folder (is its disk full?)")  # fmt: skip
            self._unkept = True
            why = KEPT_NOT
        except (StoreUnavailableError, *self.outages.errors):  # the queue: logged as its
            why = ""  # outage begins and ends
        try:
            with self.outages.reaching(QUEUE):
                self.queue.back(claim, why)
        except StoreUnavailableError:  # taken over after its lease, its answer found then
            self.queue.abandon(claim)
        self._stopped.wait(LOOK_EVERY)

    def _ask(self, record: BatchRecord, claim: Claim) -> None:
        """Ask ``claim``'s request as the batch's key; keep its answer, or put it back to
        wait. Its charge has an id of its own: asked again after a kill (its answer not yet
        kept), it counts once."""
        if claim.again:  # its process may have answered it before it stopped
            answered = self.batches.answered(record.id)
            if claim.custom_id in answered:
                with self.outages.reaching(QUEUE):
                    self.queue.conclude(claim, answered[claim.custom_id])
                return
        key = self.key(record.owner)  # as it is now: its grants, limits and budgets
        if self.keyed and key is None:
            self._keep_answer(record, claim, None, GONE_KEY)
            return
        try:
            text = self.files.line_at(record.input_file_id, claim.offset, self.limits.max_body_size)
        except (OSError, ProxyError):
            text = b""
        asked = read_request(text, claim.number, record.endpoint, set(), self.limits)
        if isinstance(asked, RequestFault) or asked.custom_id != claim.custom_id:
            why = f"line {claim.number} of the input file is no longer the request it was"
            self._keep_answer(record, claim, None, {"code": "input_changed", "message": why})
            return
        once = hashlib.sha256(f"{record.id}\x1f{claim.custom_id}".encode()).hexdigest()[:32]
        line = conventions.batch_line(record.id, claim.custom_id)
        answer = serve_in_process(self.app, key, record.endpoint, asked.body, len(text),
                                  "batch_" + once, trace_context=record.trace_context,
                                  attributes=line)  # fmt: skip
        body = answer.body
        if answer.status in AGAIN:
            why = (body or {}).get("error", {}).get("message", "") if isinstance(body, dict) else ""
            with self.outages.reaching(QUEUE):
                self.queue.back(claim, why or f"HTTP {answer.status}")
            self._stopped.wait(LOOK_EVERY)
            return
        response = {
            "status_code": answer.status,
            "request_id": "req_" + secrets.token_hex(12),
            "body": body,
        }
        self._keep_answer(record, claim, response, None)

    def _keep_answer(self, record, claim: Claim, response: Optional[dict], error) -> None:
        """The request's answer on the disk, then concluded: counted once."""
        ok = response is not None and response["status_code"] < 400
        result = {"id": "batch_req_" + secrets.token_hex(12), "custom_id": claim.custom_id,
                  "response": response, "error": error}  # fmt: skip
        self.batches.answer(record.id, result, ok)
        with self.outages.reaching(QUEUE):
            self.queue.conclude(claim, ok)
