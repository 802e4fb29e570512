"""A batch's record kept from its making to its end by the process that holds its lock
(:meth:`~proxy.batches.store.BatchStore.lock`): its input read before it starts, its requests
queued (again, after a restart), its tally saved as it goes, and its files made as it ends,
what it ended without among its errors."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Callable, Optional

from proxy.batches.files import FileStore
from proxy.batches.store import LIVE, BatchRecord, BatchStore
from proxy.core.errors import NotFoundError, ProxyError
from proxy.dialects.dialect import Limits
from proxy.dialects.openai.batchinput import RequestFault, read_requests

UNSERVED = "unknown"  # the model of a request no model serves (as metrics count it)
GONE_KEY = {
    "code": "key_revoked",
    "message": "the key that made this batch is no longer accepted by the proxy",
}
LEFT = {  # what a batch ended without answering is, as it ended
    "expired": {"code": "batch_expired", "message": "the batch expired before this request ran"},
    "cancelled": {
        "code": "batch_cancelled",
        "message": "the batch was cancelled before this request ran",
    },  # fmt: skip
}


class BatchKeeper:
    """The records of ``batches`` (their input in ``files``), their requests put in
    ``queue``: ``key(owner)`` is the key that is a batch's owner now (``None``: it is no
    longer a key, or the proxy has none, as ``keyed`` says), ``served(key, model,
    endpoint)`` the id of the model that serves the name ``model`` for ``key`` (a
    :class:`ProxyError` where none does, or the key may not use it, or not ask it for what
    ``endpoint`` makes); ``limits``: what a request may be."""

    def __init__(
        self,
        files: FileStore,
        batches: BatchStore,
        queue,
        *,
        key: Callable[[str], object],
        keyed: bool,
        served: Callable[[object, str, str], str],
        limits: Limits,
        clock: Callable[[], float],
    ) -> None:
        self.files, self.batches, self.queue = files, batches, queue
        self.key, self.keyed, self.served = key, keyed, served
        self.limits = limits
        self.clock = clock

    def is_ending(self, record: BatchRecord) -> bool:
        """Whether ``record`` ends before its requests are all answered: cancelled, or past
        its window."""
        return record.status == "cancelling" or self.clock() >= record.expires_at

    def keep(self, record: BatchRecord) -> Optional[BatchRecord]:
        """Move ``record`` on: read before it starts, its requests queued (again, after a
        restart), its tally saved, its end made once nothing of it is left. The record as it
        now is, ``None`` once it has ended (here, or in another process since this one last
        listed the batches under way: an ended batch is never taken up again)."""
        if record.status not in LIVE:
            return None
        ending = self.is_ending(record)
        if record.status == "validating":
            record = self._start(record, ending)
            if record is None:
                return None
        tally = self.queue.tally(record.id, record.models)
        if tally is None and ending:  # what was not queued is not run
            self._end(record)
            return None
        if tally is None:  # queued by no process yet, or by one that stopped
            answered = self.batches.answered(record.id)
            failed = sum(not ok for ok in answered.values())
            pending = [each for each in self.requests(record, checked=False)[0]
                       if each.custom_id not in answered]  # fmt: skip
            self.queue.put(record.id, pending, len(answered) - failed, failed)
            tally = self.queue.tally(record.id, record.models)
        if tally.left <= 0:
            self._end(record)
            return None
        counted = {"completed": tally.completed, "failed": tally.failed, "paused": tally.paused,
                   "running": tally.running}  # fmt: skip
        if any(getattr(record, name) != value for name, value in counted.items()):
            record = replace(record, **counted)
            self.batches.save(record)
        return record

    def requests(self, record: BatchRecord, checked: bool = True) -> tuple:
        """``(requests, faults)`` of ``record``'s input, each request of the model that
        serves it: a name no model serves for the batch's key is a fault where ``checked``
        (as it starts), else its request is answered as a live one would be (a 404, a 403)."""
        key = self.key(record.owner)
        raw = self.files.lines(None, record.input_file_id, self.limits.max_body_size)
        asked, faults = read_requests(raw, record.endpoint, self.limits)
        served = []
        for each in asked:
            try:
                served.append(replace(each, model=self.served(key, each.model, record.endpoint)))
            except ProxyError as exc:
                if not checked:
                    served.append(replace(each, model=UNSERVED))
                    continue
                faults.append(RequestFault(each.number, exc.code or "model_not_found",
                                           f"line {each.number}: {exc.message}",
                                           "body.model"))  # fmt: skip
        return served, faults

    def _start(self, record: BatchRecord, ending: bool) -> Optional[BatchRecord]:
        """The batch's input read before it starts: ``in_progress`` (its requests queued
        unless it is ``ending``), or ``failed`` naming each faulty request (``None``)."""
        if self.keyed and self.key(record.owner) is None:
            faults = [RequestFault(0, GONE_KEY["code"], GONE_KEY["message"])]
        else:
            asked, faults = self.requests(record)
        if faults:
            shown = [fault.shown() for fault in sorted(faults, key=lambda f: f.line)[:100]]
            self.batches.save(record.now("failed", self.clock(), errors=shown))
            return None
        models = sorted({each.model for each in asked})
        started = record.now("in_progress", self.clock(), total=len(asked), models=models)
        if not ending:
            self.queue.put(record.id, asked, 0, 0)
        self.batches.save(started)
        return started

    def _end(self, record: BatchRecord) -> None:
        """The batch's answers and errors made files (what it ended without among the
        errors), and its last status."""
        if record.status == "cancelling":
            final = "cancelled"
        elif self.clock() >= record.expires_at:
            final = "expired"
        else:
            final = "completed"
            self.batches.save(record.now("finalizing", self.clock()))
        answered = self.batches.answered(record.id)
        failed = sum(not ok for ok in answered.values())
        record = replace(record, completed=len(answered) - failed, failed=failed, paused="",
                         running=0)  # fmt: skip
        if final in LEFT:
            self._leave(record, answered, LEFT[final])
        made = {}
        for ok, name in ((True, "output_file_id"), (False, "error_file_id")):
            source = self.batches.gathered(record.id, ok)
            if source is not None:
                kept = self.files.written(record.owner,
                                          f"{record.id}_{'output' if ok else 'error'}.jsonl",
                                          "batch_output", source)  # fmt: skip
                made[name] = kept.id
        self.batches.save(record.now(final, self.clock(), **made))
        self.batches.clear(record.id)
        self.queue.forget(record.id, record.models)

    def _leave(self, record: BatchRecord, answered: dict, error: dict) -> None:
        """Each request of ``record`` not ``answered``, kept as an error saying why: OpenAI's
        ``batch_expired`` (and ``batch_cancelled``), Anthropic's ``expired`` and ``canceled``
        results. Not counted among the batch's failed requests."""
        try:
            asked = self.requests(record, checked=False)[0]
        except (NotFoundError, FileNotFoundError):
            return  # the input is gone: what was answered is all that is known
        for each in asked:
            if each.custom_id not in answered:
                result = {"id": "batch_req_" + secrets.token_hex(12), "custom_id": each.custom_id,
                          "response": None, "error": error}  # fmt: skip
                self.batches.answer(record.id, result, False)
