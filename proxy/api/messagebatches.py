"""Anthropic's Message Batches (``/v1/messages/batches``), run by the same runner as OpenAI's
Batch API (:mod:`proxy.api.batchrunner`): the requests a create names become the batch's
input file, each sent to ``/v1/messages`` as the key's own; its results come back as
Anthropic's JSONL. A key sees and cancels only its own batches; the admin key, everyone's."""

from __future__ import annotations

import io
import json
from typing import Iterator

from flask import Blueprint, Response, jsonify, request

from proxy.access.batches import LIVE, BatchRecord
from proxy.access.files import FileStore
from proxy.api.batches import maker, owner
from proxy.api.body import read_json
from proxy.api.serve import event_response
from proxy.api.state import Routes, get_state
from proxy.core.errors import NotFoundError
from proxy.dialects import anthropic
from proxy.dialects.anthropic import batches
from proxy.dialects.streaming import LinesOf

bp = Blueprint("messagebatches", __name__)
routes = Routes(bp, "Anthropic's Message Batches, run by the gateway", anthropic.error_body)


@bp.post("/v1/messages/batches")
def create_message_batch() -> Response:
    state = get_state()
    asked = batches.requests_of(read_json(), state.files.max_lines)
    lines = b"".join(
        json.dumps(
            {"custom_id": custom_id, "method": "POST", "url": batches.ENDPOINT, "body": params}
        ).encode()
        + b"\n"  # fmt: skip
        for custom_id, params in asked
    )
    stored = state.files.upload(maker(), io.BytesIO(lines), "message_batch.jsonl", "batch")
    record = state.batches.create(maker(), batches.ENDPOINT, stored.id, "24h", None, "anthropic")
    state.runner.start()
    return jsonify(shown(record))


@bp.get("/v1/messages/batches")
def list_message_batches() -> Response:
    listed = [
        shown(each) for each in get_state().batches.listed(owner()) if each.api == "anthropic"
    ]
    return jsonify({"data": listed[:100], "has_more": len(listed) > 100,
                    "first_id": listed[0]["id"] if listed else None,
                    "last_id": listed[:100][-1]["id"] if listed else None})  # fmt: skip


@bp.get("/v1/messages/batches/<id>")
def get_message_batch(id: str) -> Response:
    return jsonify(shown(found(id)))


@bp.post("/v1/messages/batches/<id>/cancel")
def cancel_message_batch(id: str) -> Response:
    state = get_state()
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
    return event_response(results(record, get_state().files), LinesOf)


def results(record: BatchRecord, files: FileStore) -> Iterator[dict]:
    """Each request's result: answered, errored, or left unanswered as the batch ended."""
    done = set()
    for ok, file_id in ((True, record.output_file_id), (False, record.error_file_id)):
        if file_id is None:
            continue
        for text in files.lines(None, file_id):
            line = json.loads(text)
            done.add(line["custom_id"])
            yield batches.result(line, ok)
    for text in files.lines(None, record.input_file_id):
        custom_id = json.loads(text)["custom_id"]
        if custom_id not in done:
            yield batches.unanswered(custom_id, record.status)


def found(id: str) -> BatchRecord:
    record = get_state().batches.get(owner(), batches.store_id(id))
    if record.api != "anthropic":
        raise NotFoundError(f"No message batch found with id '{id[:64]}'.")
    return record


def shown(record: BatchRecord) -> dict:
    id = batches.PREFIX + record.id.removeprefix("batch_")
    return batches.shown(record.shown(), f"{request.host_url}v1/messages/batches/{id}/results")
