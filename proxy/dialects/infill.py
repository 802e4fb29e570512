"""llama.cpp's own ``POST /infill``, both ways, as the editor plugins made for it send it
(llama.vim, llama.vscode): the text before and after the gap, other files' chunks
(``input_extra``), what is typed of the gap's line (``prompt``), and llama.cpp's own limits
(``n_indent``, ``t_max_prompt_ms``, ``t_max_predict_ms``, ``repeat_last_n``) and
``samplers``, which go to a current server as they are (each with the least value llama.cpp
takes).

The answer is llama.cpp's: ``content``, ``stop_type``, the token counts and ``timings``,
cut to ``response_fields`` (paths such as ``timings/prompt_n``, each a key of its own) when
the client names them. A stream is ``data:`` events of ``content``, the last with
``stop: true`` and the counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from proxy.core.answers import Completion, Usage
from proxy.core.errors import ProxyError
from proxy.core.events import Finish, TextDelta, UsageReport, Waiting
from proxy.core.fields import Fields, sampling, stop_words
from proxy.core.sse import COMMENT, EVENT_STREAM, encode_event
from proxy.core.types import GenerationRequest, SourceChunk
from proxy.dialects.dialect import Ask, Limits
from proxy.dialects.openai import answer
from proxy.dialects.openai.answer import headers  # noqa: F401 (the dialect's)
from proxy.dialects.streaming import EventRenderer

patient = False  # a stream keeps its client company only while a server starts
NATIVE = {"n_indent": 0, "t_max_prompt_ms": -1, "t_max_predict_ms": -1, "repeat_last_n": -1}
MAX_FIELD_PATHS = 64
CORE_NAMES = {"suffix": "input_suffix"}  # the core's name of a field, and this API's


@dataclass(frozen=True)
class Notes:
    """What rendering the answer needs: the fields the client wants back (``()``: all)."""

    fields: tuple = ()


def new_id() -> str:
    return ""  # llama.cpp's answers carry no id


def parse(body: Any, limits: Limits) -> Ask:
    """Read an ``/infill`` body into one fill-in-the-middle generation."""
    fields = Fields(body)
    unread = {
        name: fields.integer(name, low)
        for name, low in NATIVE.items()
        if fields.raw(name) is not None
    }
    samplers = _strings(fields, "samplers")
    if samplers is not None:
        unread["samplers"] = samplers
    n_predict = fields.integer("n_predict", -1)
    request = GenerationRequest(
        model=fields.string("model") or None,
        prompt=fields.string("input_prefix") or "",
        suffix=fields.string("input_suffix") or "",
        nearby=_nearby(fields, limits),
        cursor=fields.string("prompt") or "",
        max_tokens=None if n_predict in (None, -1) else n_predict,
        stop=stop_words(fields),
        sampling=sampling(fields),
        n_keep=fields.integer("n_keep", -1),
        cache_prompt=fields.boolean("cache_prompt"),
        slot=fields.integer("id_slot", -1),
        unread=unread,
    )
    wanted = _strings(fields, "response_fields") or []
    if len(wanted) > MAX_FIELD_PATHS:
        raise fields.fail("response_fields", f"may name at most {MAX_FIELD_PATHS} fields")
    return Ask((request,), stream=bool(fields.boolean("stream")), notes=Notes(tuple(wanted)))


def _nearby(fields: Fields, limits: Limits) -> tuple:
    chunks = fields.objects("input_extra")
    if len(chunks) > limits.max_batch:
        raise fields.fail("input_extra", f"may hold at most {limits.max_batch} chunks")
    return tuple(
        SourceChunk(chunk.text("text"), chunk.string("filename") or "tmp") for chunk in chunks
    )


def _strings(fields: Fields, name: str) -> Optional[list]:
    value = fields.raw(name)
    if value is not None and not (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    ):
        raise fields.fail(name, "must be a list of strings")
    return value


def error_body(error: ProxyError) -> dict:
    """llama.cpp's error shape (OpenAI's), naming a field as this API does."""
    body = answer.error_body(error)
    named = CORE_NAMES.get(error.param or "")
    if named:
        body["error"]["param"] = named
        if error.message.startswith(error.param + " "):
            body["error"]["message"] = named + error.message[len(error.param) :]
    return body


def render(ask: Ask, id: str, model: str, completions: Sequence[Completion]) -> dict:
    (completion,) = completions
    answer = _answer(
        completion.text,
        completion.finish_reason,
        completion.stop_sequence,
        completion.usage,
        model,
        completion.slot,
        completion.truncated,
    )
    return _only(answer, ask.notes.fields)


def stream(ask: Ask, id: str, model: str) -> "InfillStream":
    return InfillStream(model, ask.notes.fields)


class InfillStream(EventRenderer):
    """An event of ``content`` for each piece, then llama.cpp's last one."""

    encode = staticmethod(encode_event)
    mimetype = EVENT_STREAM
    end = b""

    def __init__(self, model: str, wanted: tuple) -> None:
        self.model = model
        self.wanted = wanted
        self.usage = Usage()
        self.new_line = False

    @staticmethod
    def failure(error) -> list:
        return [error_body(error)]

    def text(self, event: TextDelta, out: list) -> None:
        if event.text:
            self.new_line = self.new_line or "\n" in event.text
            out.append(_only({"index": 0, "content": event.text, "stop": False}, self.wanted))

    def usage_reported(self, event: UsageReport, out: list) -> None:
        self.usage = event.usage

    def finished(self, event: Finish, out: list) -> None:
        last = _answer(
            "", event.reason, event.stop_sequence, self.usage, self.model, None, event.truncated
        )
        out.append(_only({**last, "has_new_line": self.new_line}, self.wanted))

    def waiting(self, event: Waiting, out: list) -> None:
        out.append(COMMENT)


def _answer(
    text: str,
    reason: str,
    stop_sequence: Optional[str],
    usage: Usage,
    model: str,
    slot: Optional[int],
    truncated: bool,
) -> dict:
    cached = usage.cached_tokens or 0
    return {
        "index": 0,
        "content": text,
        "id_slot": -1 if slot is None else slot,
        "stop": True,
        "model": model,
        "tokens_predicted": usage.completion_tokens,
        "tokens_evaluated": usage.prompt_tokens,
        "has_new_line": "\n" in text,
        "truncated": truncated,
        "stop_type": "limit" if reason == "length" else "word" if stop_sequence else "eos",
        "stopping_word": stop_sequence or "",
        "tokens_cached": usage.total_tokens,
        "timings": _timings(usage, cached),
    }


def _timings(usage: Usage, cached: int) -> dict:
    evaluated, predicted = usage.prompt_tokens - cached, usage.completion_tokens
    timings: dict = {"cache_n": cached, "prompt_n": evaluated, "predicted_n": predicted}
    if usage.prompt_ms is not None:
        timings["prompt_ms"] = usage.prompt_ms
    if usage.eval_ms is not None:
        timings["predicted_ms"] = usage.eval_ms
    return timings


def _only(answer: dict, wanted: tuple) -> dict:
    """``answer`` cut to the ``wanted`` paths, each a key of its own, as llama.cpp's
    ``response_fields`` cuts it (all of it when none are named)."""
    if not wanted:
        return answer
    kept = {}
    for path in wanted:
        value: Any = answer
        for name in path.split("/"):
            value = value.get(name) if isinstance(value, dict) else None
        if value is not None:
            kept[path] = value
    return kept
