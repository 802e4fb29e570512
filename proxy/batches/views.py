"""OpenAI's Files API (``purpose = "batch"``) and Batch API: a key uploads a JSONL file of
requests, makes a batch of it, and comes back for a file of answers. The gateway runs the
lines itself (:mod:`proxy.batches.runner`) on any model the key may use. A key sees and
cancels only its own files and batches (those of its owner: another key under the same name
owns none of them); the admin key, every key's. A key has at most ``--batches-per-key``
batches under way, of ``--batch-lines-per-key`` requests in all; a file a batch under way
reads cannot be deleted until the batch ends."""

from __future__ import annotations

import mimetypes
import re
from typing import Optional

from flask import Blueprint, Response, jsonify, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge

from proxy.access.keyring import ADMIN, ANONYMOUS
from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.state import Routes, get_state
from proxy.batches.build import get_batches
from proxy.batches.files import PURPOSES, StoredFile
from proxy.batches.store import LIVE, BatchRecord
from proxy.config.settings import largest_upload
from proxy.core.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
)
from proxy.dialects.openai.batchinput import ENDPOINTS, WINDOWS

bp = Blueprint("batches", __name__)
routes = Routes(bp, "Files and batches: a night's work queued behind the team's day (OpenAI)")

MAX_METADATA = 16  # pairs, as OpenAI's
SHORTEST_KEEP, LONGEST_KEEP = 3600, 30 * 86400  # seconds a client may ask a file be kept
SECONDS = re.compile(r"[0-9]{1,9}")
BUSY_AGAIN = 60  # seconds a key at its batches' bound is told to wait


def owner() -> Optional[str]:
    """The owner whose files and batches a request sees; ``None``: the admin, every key's."""
    key = this_call().key
    if key is None:
        return ANONYMOUS
    return None if key.owner == ADMIN else key.owner


def maker() -> str:
    """The owner of a new file or batch: the key's (never its name)."""
    return this_call().maker


def maker_name() -> str:
    """The name of the key that makes a batch, as the pages show it."""
    key = this_call().key
    return key.name if key is not None else ANONYMOUS


def maker_trace() -> dict:
    """The W3C trace context of the request that makes a batch, where traced: its lines'
    spans go under its span ({}: it is not traced)."""
    trace = this_call().trace
    return {} if trace is None else trace.headers()


# -- files ------------------------------------------------------------------------------------


@bp.post("/v1/files")
def upload_file() -> Response:
    state = get_batches()
    files = state.files
    request.max_content_length = largest_upload(get_state().settings.stores)
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        raise PayloadTooLargeError(
            f"the file is larger than {files.max_bytes} bytes, the most accepted (--max-file-size)"
        ) from None
    if upload is None:
        raise InvalidRequestError("the form has no 'file'", param="file")
    purpose = request.form.get("purpose", "")
    stored = files.upload(maker(), upload.stream, upload.filename or "upload.jsonl", purpose,
                          expires_after(request.form), request.content_length or 0)  # fmt: skip
    return jsonify(stored.shown())


def expires_after(form) -> Optional[int]:
    """The seconds after its making a client asks its file be kept (OpenAI's
    ``expires_after``, anchored at ``created_at``), ``None`` unless it asks."""
    anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequestError("expires_after.anchor must be 'created_at'",
                                  param="expires_after.anchor")  # fmt: skip
    if not SECONDS.fullmatch(seconds or "") or not SHORTEST_KEEP <= int(seconds) <= LONGEST_KEEP:
        raise InvalidRequestError(
            f"expires_after.seconds must be a whole number from {SHORTEST_KEEP} to "
            f"{LONGEST_KEEP}", param="expires_after.seconds")  # fmt: skip
    return int(seconds)


@bp.get("/v1/files")
def list_files() -> Response:
    listed = get_batches().files.listed(owner())
    purpose = request.args.get("purpose")
    shown = [each.shown() for each in listed if purpose in (None, each.purpose)]
    return jsonify(page(shown))


@bp.get("/v1/files/<id>")
def get_file(id: str) -> Response:
    return jsonify(get_batches().files.get(owner(), id).shown())


@bp.get("/v1/files/<id>/content")
def file_content(id: str) -> Response:
    files = get_batches().files
    stored = files.get(owner(), id)
    picture = stored.purpose == PURPOSES[2]  # a picture kept for its link: png, jpeg…
    kind = mimetypes.guess_type(stored.filename)[0] if picture else None
    return send_file(files.content(owner(), id), mimetype=kind or "application/jsonl",
                     download_name=stored.filename, conditional=False)  # fmt: skip


@bp.delete("/v1/files/<id>")
def delete_file(id: str) -> Response:
    state = get_batches()
    state.files.get(owner(), id)
    reading = state.batches.reading(id)
    if reading is not None:
        raise ConflictError(
            f"the file {id!r} is the input of batch {shown_id(reading)!r}, which is under "
            f"way: cancel it, or delete the file once it has ended",
            param="file_id",
        )
    state.files.delete(owner(), id)
    return jsonify({"id": id, "object": "file", "deleted": True})


def shown_id(record: BatchRecord) -> str:
    """A batch's id as its API shows it (a message batch's in Anthropic's form)."""
    if record.api == "anthropic":
        return "msgbatch_" + record.id.removeprefix("batch_")
    return record.id


def lines_of(file_id: str) -> int:
    """The lines of a batch's input not read yet (none, once it is gone: the batch fails)."""
    try:
        return get_batches().files.get(None, file_id).lines
    except NotFoundError:
        return 0


def check_room(stored: StoredFile) -> None:
    """Refuse a batch of ``stored`` where its key has ``--batches-per-key`` batches under
    way, or they would hold more than ``--batch-lines-per-key`` requests in all (a 429: it
    has room again as they end)."""
    state = get_batches()
    stores = get_state().settings.stores
    live = state.batches.live(maker())
    if len(live) >= stores.batches_per_key:
        raise RateLimitError(
            f"this key has {len(live)} batches under way, the most it may "
            f"(--batches-per-key); retry once one ends",
            retry_after=BUSY_AGAIN,
        )
    waiting = sum(each.total or lines_of(each.input_file_id) for each in live) + stored.lines
    if waiting > stores.batch_lines_per_key:
        raise RateLimitError(
            f"this key's batches under way would hold {waiting} requests, more than "
            f"{stores.batch_lines_per_key} (--batch-lines-per-key); retry once one ends",
            retry_after=BUSY_AGAIN,
        )


# -- batches ----------------------------------------------------------------------------------


@bp.post("/v1/batches")
def create_batch() -> Response:
    state = get_batches()
    body = read_json()
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    endpoint = body.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise InvalidRequestError(
            f"endpoint must be one of {', '.join(ENDPOINTS)}", param="endpoint"
        )
    window = body.get("completion_window")
    if window not in WINDOWS:
        raise InvalidRequestError("completion_window must be '24h'", param="completion_window")
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= MAX_METADATA
        and all(isinstance(k, str) and len(k) <= 64 for k in metadata)
        and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
    ):
        raise InvalidRequestError(
            "metadata must be at most 16 pairs of strings (keys of 64 characters at most, "
            "values of 512)",
            param="metadata",
        )
    input_file_id = body.get("input_file_id")
    if not isinstance(input_file_id, str):
        raise InvalidRequestError("input_file_id must name a file", param="input_file_id")
    stored = state.files.get(maker(), input_file_id)
    if stored.purpose != "batch":
        raise InvalidRequestError(
            f"file {input_file_id!r} was not uploaded for 'batch'", param="input_file_id"
        )
    with state.batches.creating(maker()):
        check_room(stored)
        record = state.batches.create(maker(), endpoint, input_file_id, window, metadata,
                                      made_by=maker_name(),
                                      trace_context=maker_trace())  # fmt: skip
    state.runner.start()
    return jsonify(record.shown())


@bp.get("/v1/batches")
def list_batches() -> Response:
    try:
        limit = min(max(int(request.args.get("limit", 20)), 1), 100)
    except ValueError:
        raise InvalidRequestError("limit must be a number", param="limit") from None
    found, more = get_batches().batches.page(owner(), "openai", request.args.get("after"), limit)
    return jsonify(page([each.shown() for each in found], more=more))


@bp.get("/v1/batches/<id>")
def get_batch(id: str) -> Response:
    state = get_batches()
    record = state.batches.get(owner(), id)
    if record.status in LIVE:
        state.runner.start(look=False)  # its runner runs, whatever stopped it
    return jsonify(record.shown())


@bp.post("/v1/batches/<id>/cancel")
def cancel_batch(id: str) -> Response:
    state = get_batches()
    record = state.batches.get(owner(), id)
    if record.status in LIVE:
        state.batches.cancel(id)
        state.runner.start()
    return jsonify(state.batches.get(owner(), id).shown())


def page(data: list, more: bool = False) -> dict:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }
