"""Anthropic's Message Batches (``/v1/messages/batches``), run by the same runner as OpenAI's
Batch API (:mod:`proxy.batches.runner`): the requests a create names become the batch's
input file, each sent to ``/v1/messages`` as the key's own; its results come back as
Anthropic's JSONL. A key sees and cancels only its own batches; the admin key, everyone's."""

from __future__ import annotations

import io
import json
from typing import Iterator

from flask import Blueprint, Response, jsonify, request

from proxy.api.body import read_json
from proxy.api.serve import event_response
from proxy.api.state import Routes
from proxy.batches.build import get_batches
from proxy.batches.files import FileStore
from proxy.batches.store import LIVE, BatchRecord
from proxy.batches.views import check_room, maker, maker_name, maker_trace, owner
from proxy.core.errors import InvalidRequestError, NotFoundError
from proxy.dialects import anthropic
from proxy.dialects.anthropic import batches
from proxy.dialects.streaming import LinesOf

bp = Blueprint("messagebatches", __name__)
routes = Routes(bp, "Anthropic's Message Batches, run by the gateway", anthropic.error_body)


@bp.post("/v1/messages/batches")
def create_message_batch() -> Response:
    state = get_batches()
    asked = batches.requests_of(read_json(), state.files.max_lines)
    lines = b"".join(
        json.dumps(
            {"custom_id": custom_id, "method": "POST", "url": batches.ENDPOINT, "body": params}
        ).encode()
        + b"\n"  # fmt: skip
        for custom_id, params in asked
    )
    with state.batches.creating(maker()):
        stored = state.files.upload(maker(), io.BytesIO(lines), "message_batch.jsonl", "batch")
        try:
            check_room(stored)
        except Exception:
            state.files.delete(maker(), stored.id)
            raise
        record = state.batches.create(maker(), batches.ENDPOINT, stored.id, "24h", None,
                                      "anthropic", maker_name(), maker_trace())  # fmt: skip
    state.runner.start()
    return jsonify(shown(record))


@bp.get("/v1/messages/batches")
def list_message_batches() -> Response:
    try:
        limit = min(max(int(request.args.get("limit", 20)), 1), 1000)
    except ValueError:
        raise InvalidRequestError("limit must be a number", param="limit") from None
    after = request.args.get("after_id")
    found, more = get_batches().batches.page(
        owner(), "anthropic", batches.store_id(after) if after else None, limit
    )
    listed = [shown(each) for each in found]
    return jsonify({"data": listed, "has_more": more,
                    "first_id": listed[0]["id"] if listed else None,
                    "last_id": listed[-1]["id"] if listed else None})  # fmt: skip


@bp.get("/v1/messages/batches/<id>")
def get_message_batch(id: str) -> Response:
    record = found(id)
    if record.status in LIVE:
        get_batches().runner.start(look=False)  # its runner runs, whatever stopped it
    return jsonify(shown(record))


@bp.post("/v1/messages/batches/<id>/cancel")
def cancel_message_batch(id: str) -> Response:
    state = get_batches()
    record = found(id)
    if record.status in LIVE:
        state.batches.cancel(record.id)
        state.runner.start()
    return jsonify(shown(found(id)))


@bp.get("/v1/messages/batches/<id>/results")
def message_batch_results(id: str) -> Response:
    record = found(id)
    if record.status in LIVE:
        raise NotFoundError(f"the message batch {id!r} has not ended: it has no results yet")
    return event_response(results(record, get_batches().files), LinesOf)


def results(record: BatchRecord, files: FileStore) -> Iterator[dict]:
    """Each request's result: answered, errored, or left unanswered as the batch ended (its
    error file says which, as OpenAI's does); a 404 before the first byte where a client
    deleted one of the batch's files."""
    kept = [(ok, files.content(None, file_id))
            for ok, file_id in ((True, record.output_file_id), (False, record.error_file_id))
            if file_id is not None]  # fmt: skip
    for ok, path in kept:
        with open(path, "rb") as source:
            for text in source:
                yield batches.result(json.loads(text), ok)


def found(id: str) -> BatchRecord:
    record = get_batches().batches.get(owner(), batches.store_id(id))
    if record.api != "anthropic":
        raise NotFoundError(f"No message batch found with id '{id[:64]}'.")
    return record


def shown(record: BatchRecord) -> dict:
    id = batches.PREFIX + record.id.removeprefix("batch_")
    return batches.shown(record.shown(), f"{request.host_url}v1/messages/batches/{id}/results")
