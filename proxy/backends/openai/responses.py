"""A Responses client's own body to an upstream that serves OpenAI's Responses API itself
(``endpoints`` names ``responses``), and the upstream's answer read back: the text, calls,
finish and usage of its ``response`` object, whole, or of its event stream, whose lines go
back to the client as the upstream wrote them. Pure.

Only a body the proxy keeps nothing of goes this way (``store: false``, no
``previous_response_id``, no tool the gateway runs): the dialect says so by keeping the
body (:class:`~proxy.core.types.Verbatim`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional

from proxy.backends.wire.events import event_json, stream_error
from proxy.backends.wire.way import Way
from proxy.core.answers import Chunk, Completion, Usage
from proxy.core.errors import UpstreamError
from proxy.core.events import Passed
from proxy.core.types import ToolCall, amended

API = "responses"  # the client API whose bodies this way takes as they came
PATH = "/responses"
OWN = ("priority",)  # the proxy's own field of such a body: the key's turn, never sent
# what the events the proxy reads hold: text, an end, an error
TOLD = (b"output_text.delta", b"response.completed", b"response.incomplete", b"response.failed",
        b'"error"')  # fmt: skip


@dataclass(frozen=True)
class ResponsesWay(Way):
    """A Responses client's own body: sent on as it came, ``model`` and ``stream`` set; the
    answer passed back as the upstream wrote it, and read all the same (for usage, budgets,
    metrics and the inspector)."""

    own: Mapping[str, Any]  # the client's body
    label: str  # the upstream, as errors name it
    model: str  # the name the upstream knows the model by

    path = PATH

    def body(self, *, stream: bool) -> dict:
        kept = {name: value for name, value in self.own.items() if name not in OWN}
        return {**kept, "model": self.model, "stream": stream}

    def whole(self, answer: object) -> Completion:
        return amended(completion(answer, self.label), verbatim=answer)

    def chunks(self, lines: Iterable[list]) -> Iterator:
        return passed_chunks(lines, self.label)


def completion(answer: object, upstream: str) -> Completion:
    """The upstream's ``response`` object, read."""
    if not isinstance(answer, dict) or not isinstance(answer.get("output"), list):
        raise UpstreamError(f"{upstream} answered a response without its output")
    texts, calls = [], []
    for item in answer["output"]:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            texts += [
                part.get("text") or ""
                for part in item.get("content") or ()
                if isinstance(part, dict) and part.get("type") == "output_text"
            ]
        elif item.get("type") == "function_call":
            calls.append(
                ToolCall(
                    str(item.get("call_id", "")),
                    str(item.get("name", "")),
                    str(item.get("arguments", "")),
                )  # fmt: skip
            )
    finish = "tool_calls" if calls else _finish(answer)
    return Completion("".join(texts), finish, usage(answer.get("usage")), tool_calls=tuple(calls))


def usage(told: object) -> Usage:
    """A ``response`` object's usage."""
    if not isinstance(told, dict):
        return Usage()
    details = told.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(_count(told.get("input_tokens")), _count(told.get("output_tokens")),
                 cached if isinstance(cached, int) else None)  # fmt: skip


def passed_chunks(batches: Iterable[list], upstream: str) -> Iterator:
    """Each read's lines as the upstream wrote them (:class:`Passed`), then the chunks they
    hold: the text as it comes, and a last one with the finish and the usage, once the
    response is completed or incomplete (a failed one is an exception)."""
    for lines in batches:
        yield Passed(tuple(lines))
        chunks: list = []
        for raw in lines:
            if raw[:5] != b"data:":
                continue
            if not any(told in raw for told in TOLD):
                continue  # events that tell nothing the proxy counts
            event = event_json(raw[5:].strip(), upstream)
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "response.output_text.delta":
                chunks.append(Chunk(text=str(event.get("delta") or "")))
            elif kind == "response.failed":
                response = event.get("response") or {}
                raise stream_error(response.get("error") or response, upstream)
            elif kind == "error":
                raise stream_error(event, upstream)
            elif kind in ("response.completed", "response.incomplete"):
                done = completion(event.get("response"), upstream)
                yield from chunks
                yield Chunk(finish_reason=done.finish_reason, usage=done.usage)
                return
        yield from chunks or (Chunk(),)
    raise UpstreamError(f"{upstream} ended the response's stream before it completed")


def _finish(answer: dict) -> str:
    details = answer.get("incomplete_details")
    if answer.get("status") == "incomplete" and isinstance(details, dict):
        return "length" if details.get("reason") == "max_output_tokens" else "stop"
    return "stop"


def _count(value: Optional[object]) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
