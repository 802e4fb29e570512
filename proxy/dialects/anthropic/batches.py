"""Anthropic's Message Batches, over the batches the gateway runs for OpenAI's Batch API: the
requests a create names, checked before the batch is made; a batch, and each of its results,
in Anthropic's words. Pure."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Optional

from proxy.core.errors import InvalidRequestError

ENDPOINT = "/v1/messages"  # where each request of a message batch goes
PREFIX = "msgbatch_"  # Anthropic's ids; the store's are "batch_"
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def requests_of(body: object, most: int) -> list:
    """``(custom_id, params)`` of each request a create's ``body`` names, at most ``most``;
    a 400 naming the first field that is wrong."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise InvalidRequestError("requests: a list of requests is required", param="requests")
    asked = body["requests"]
    if not asked or len(asked) > most:
        raise InvalidRequestError(
            f"requests: between 1 and {most} requests (--max-batch-lines)", param="requests"
        )
    found, seen = [], set()
    for n, each in enumerate(asked):
        where = f"requests.{n}"
        if not isinstance(each, dict) or not isinstance(each.get("params"), dict):
            raise InvalidRequestError(f"{where}.params: an object is required", param=where)
        custom_id = each.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise InvalidRequestError(
                f"{where}.custom_id: 1 to 64 letters, digits, '-' or '_'",
                param=f"{where}.custom_id",
            )
        if custom_id in seen:
            raise InvalidRequestError(
                f"{where}.custom_id: {custom_id!r} is used by an earlier request",
                param=f"{where}.custom_id",
            )
        params = each["params"]
        if params.get("stream"):
            raise InvalidRequestError(
                f"{where}.params.stream: a batch's answers are not streamed",
                param=f"{where}.params.stream",
            )
        seen.add(custom_id)
        found.append((custom_id, params))
    return found


def shown(batch: dict, results_url: str) -> dict:
    """A batch (its OpenAI form, :meth:`BatchRecord.shown`) as a ``message_batch``."""
    counts = batch["request_counts"]
    total, succeeded, errored = counts["total"], counts["completed"], counts["failed"]
    status = batch["status"]
    left = max(total - succeeded - errored, 0)
    ended = status in ("completed", "failed", "cancelled", "expired")
    return {
        "id": PREFIX + batch["id"].removeprefix("batch_"),
        "type": "message_batch",
        "processing_status": "ended"
        if ended
        else "canceling"
        if status == "cancelling"
        else "in_progress",
        "request_counts": {
            "processing": 0 if ended else left,
            "succeeded": succeeded,
            "errored": errored + (left if status == "failed" else 0),
            "canceled": left if status == "cancelled" else 0,
            "expired": left if status == "expired" else 0,
        },
        "created_at": stamp(batch["created_at"]),
        "expires_at": stamp(batch["expires_at"]),
        "ended_at": stamp(
            next(
                (
                    batch[f"{s}_at"]
                    for s in ("completed", "failed", "cancelled", "expired")
                    if batch[f"{s}_at"]
                ),
                None,
            )
        ),  # fmt: skip
        "cancel_initiated_at": stamp(batch["cancelling_at"]),
        "archived_at": None,
        "results_url": results_url if ended else None,
    }


LEFT = {
    "batch_cancelled": "canceled",
    "batch_expired": "expired",
}  # a request its batch ended without


def result(line: dict, ok: bool) -> dict:
    """One request's line of the batch's answers (``ok``) or errors as Anthropic's result:
    succeeded, errored with its answer's error, or canceled or expired as its batch ended
    before it ran."""
    custom_id, response, error = line["custom_id"], line.get("response"), line.get("error")
    if ok:
        return {
            "custom_id": custom_id,
            "result": {"type": "succeeded", "message": response["body"]},
        }
    if response is None and isinstance(error, dict) and error.get("code") in LEFT:
        return {"custom_id": custom_id, "result": {"type": LEFT[error["code"]]}}
    if response is not None:
        body = response.get("body")
    else:  # never asked of the model: why, in Anthropic's error shape
        message = error.get("message", "") if isinstance(error, dict) else ""
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return {"custom_id": custom_id, "result": {"type": "errored", "error": body}}


def store_id(id: str) -> str:
    """The store's id of a message batch's ``id``."""
    return "batch_" + id.removeprefix(PREFIX) if id.startswith(PREFIX) else id


def stamp(seconds: Optional[int]) -> Optional[str]:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")
