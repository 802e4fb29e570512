"""The requests of an OpenAI batch's input file, one a line, read before the batch starts:
each a JSON object ``{"custom_id", "method": "POST", "url", "body"}`` whose ``url`` is the
batch's endpoint, each ``custom_id`` once, each read within the bounds a live request's body
keeps (its size, its arrays and objects counted before it is read, their nesting). Every fault
is told with its line's number, in the shape of OpenAI's ``errors.data``. What is kept of a
request is where it is in the file: its body is read again as it runs, so a batch costs
memory by its count of requests, not their size. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from proxy.core.bodyshape import check_nesting, parsed_body
from proxy.core.errors import InvalidJsonError, InvalidRequestError
from proxy.dialects.dialect import Limits

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
WINDOWS = ("24h",)
MAX_ERRORS = 100  # faults told of one file; the first ones


@dataclass(frozen=True)
class BatchRequest:
    number: int  # 1-based, as the errors name it
    custom_id: str
    model: str
    offset: int = 0  # of its line in the file
    body: Optional[dict] = None  # while its line is read, and as it runs


@dataclass(frozen=True)
class RequestFault:
    line: int
    code: str
    message: str
    param: Optional[str] = None

    def shown(self) -> dict:
        return {"code": self.code, "message": self.message, "param": self.param,
                "line": self.line}  # fmt: skip


def read_requests(raw: Iterable[bytes], endpoint: str, limits: Limits = Limits()) -> tuple:
    """``(requests, faults)`` of an input file's ``raw`` lines for ``endpoint``, each at most
    ``limits.max_body_size`` bytes (a request's body could be no longer); blank lines are
    skipped."""
    found, faults, seen, offset = [], [], set(), 0
    longest = limits.max_body_size
    for number, text in enumerate(raw, 1):
        at, offset = offset, offset + len(text)  # a line cut for its length fails the file
        if len(text) > longest:  # before anything copies it
            asked = RequestFault(number, "line_too_long",
                                 f"line {number} is longer than {longest} bytes, the largest "
                                 f"request body accepted (--max-body-size)")  # fmt: skip
        elif not text.strip():
            continue
        else:
            asked = read_request(text, number, endpoint, seen, limits)
        if isinstance(asked, RequestFault):
            if len(faults) < MAX_ERRORS:
                faults.append(asked)
            continue
        seen.add(asked.custom_id)
        found.append(BatchRequest(number, asked.custom_id, asked.model, at))
    if not found and not faults:
        faults.append(RequestFault(0, "empty_file", "the input file holds no request"))
    return found, faults


def read_request(text: bytes, number: int, endpoint: str, seen: set, limits: Limits = Limits()):
    """One line's :class:`BatchRequest`, or the :class:`RequestFault` that keeps it out."""
    try:  # its body's nesting checked below, to name its field
        item = parsed_body(text, limits.max_containers, None)
    except InvalidJsonError:
        return RequestFault(number, "invalid_json_line", f"line {number} is not valid JSON")
    except InvalidRequestError as exc:
        return RequestFault(number, "invalid_request", f"line {number}: {exc.message}", exc.param)
    if not isinstance(item, dict):
        return RequestFault(number, "invalid_request", f"line {number} is not a JSON object")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
        return RequestFault(number, "invalid_request",
                         f"line {number}: custom_id must be a string of 1 to 512 characters",
                         "custom_id")  # fmt: skip
    if custom_id in seen:
        return RequestFault(number, "duplicate_custom_id",
                         f"line {number}: custom_id {custom_id!r} is used by an earlier line",
                         "custom_id")  # fmt: skip
    if item.get("method") != "POST":
        return RequestFault(number, "invalid_method",
                         f"line {number}: method must be 'POST'", "method")  # fmt: skip
    if item.get("url") != endpoint:
        return RequestFault(number, "mismatched_endpoint",
                         f"line {number}: url {str(item.get('url'))[:100]!r} is not the batch's "
                         f"endpoint {endpoint!r}", "url")  # fmt: skip
    body = item.get("body")
    if not isinstance(body, dict):
        return RequestFault(number, "invalid_request",
                         f"line {number}: body must be a JSON object", "body")  # fmt: skip
    if not isinstance(body.get("model"), str) or not body["model"]:
        return RequestFault(number, "missing_model",
                         f"line {number}: body.model must name a model", "body.model")  # fmt: skip
    if body.get("stream"):
        why = f"line {number}: a batch's answers are not streamed"
        return RequestFault(number, "invalid_request", why, "body.stream")
    try:
        check_nesting(body, limits.max_nesting, "body")
    except InvalidRequestError as exc:
        return RequestFault(number, "invalid_request", f"line {number}: {exc.message}", exc.param)
    unknown = set(item) - {"custom_id", "method", "url", "body"}
    if unknown:
        return RequestFault(number, "invalid_request",
                         f"line {number}: unknown field {sorted(unknown)[0]!r}",
                         sorted(unknown)[0])  # fmt: skip
    return BatchRequest(number, custom_id, body["model"], body=body)
