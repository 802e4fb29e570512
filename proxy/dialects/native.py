"""llama.cpp's own ``POST /completion``, the API of every server.cpp (PowerInfer's server,
llama.cpp's of 2023, llama-server): a client's body goes verbatim to the model's server, which
judges every field of it, and the server's answer comes back as it wrote it, whole or streamed.

The proxy reads only what it serves by: the model (``model``; the default where none is
named), whether it streams, the answer's length (``n_predict``, or ``max_tokens``) and the
prompt's size, for the key's budgets before the work, and the counts of the server's answer,
for its usage. No other engine takes these bodies: a model on one is refused by name.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import orjson

from proxy.core.answers import Completion, Served
from proxy.core.errors import ProxyError, UntranslatableError
from proxy.core.events import Passed, Waiting
from proxy.core.fields import Fields
from proxy.core.sse import COMMENT, EVENT_STREAM, encode_event
from proxy.core.types import GenerationRequest, Verbatim
from proxy.dialects.dialect import Ask, Limits
from proxy.dialects.openai.answer import headers  # noqa: F401 (the dialect's)
from proxy.dialects.streaming import EventRenderer

MODEL = b'"model"'  # in a line that names the model
API = "servercpp"  # the backend whose servers take these bodies as they came
patient = False  # a stream keeps its client company only while a server starts
UNTRANSLATED = UntranslatableError(
    "POST /completion is llama.cpp's own API, served only for models on a llama.cpp or "
    "PowerInfer server; ask this model on /v1/completions",
    param="model",
)


def new_id() -> str:
    return ""  # llama.cpp's answers carry no id


def parse(body: Any, limits: Limits) -> Ask:
    """A ``/completion`` body as one request the proxy can place and hold a budget for; the
    body itself goes on as it came. ``prompt`` is what the budget and the placement read: a
    text as it is, token ids and multimodal prompts as their JSON (no fewer bytes than
    tokens); ``max_tokens``, the most the whole answer holds (each of several prompts'
    answers as long as the body asks)."""
    fields = Fields(body)
    model = fields.string("model") or None
    stream = bool(fields.boolean("stream"))
    prompt = body.get("prompt")
    if stream and several(prompt):
        raise fields.fail(
            "prompt", "holds several prompts, which the gateway answers whole only (stream: false)"
        )
    length = _length(body)
    if length is not None and several(prompt):
        length *= len(prompt)  # the server writes an answer of that length for each
    request = GenerationRequest(
        model=model,
        prompt=prompt if isinstance(prompt, str) else "" if prompt is None else json.dumps(prompt),
        max_tokens=length,
        verbatim=Verbatim(API, body, untranslated=UNTRANSLATED),
    )
    return Ask((request,), stream=stream)


def several(prompt: Any) -> bool:
    """Whether ``prompt`` is several prompts as llama-server reads it: a list of more than
    one whose items are lists or objects, or texts alone (token ids, and ids mixed with
    texts, are one)."""
    if not isinstance(prompt, list) or len(prompt) < 2:
        return False
    kinds = {type(item) for item in prompt}
    return bool(kinds & {list, dict}) or kinds == {str}


def _length(body: dict):
    """The answer's length the server reads (``n_predict``, else ``max_tokens``); ``None``
    where it is unbounded or not a count (the server then takes its own default)."""
    value = body.get("n_predict", body.get("max_tokens"))
    if type(value) is int and value >= 0:
        return value
    return None


def error_body(error: ProxyError) -> dict:
    """llama-server's error shape: the HTTP status as ``code``, and the field named."""
    told = {"param": error.param} if error.param else {}
    return {
        "error": {
            "code": error.status,
            "message": error.message,
            "type": error.type,
            **told,
            **error.extras,
        }
    }


def render(ask: Ask, id: str, model: str, completions: Sequence[Completion]) -> Any:
    """The server's own answer (one object, or one per prompt), naming the model as the
    client knows it, never the server's file."""
    (completion,) = completions
    answer = completion.verbatim
    if isinstance(answer, list):
        return [_named(each, model) for each in answer]
    return _named(answer, model)


def _named(answer: Any, model: str) -> Any:
    if isinstance(answer, dict) and "model" in answer:
        return {**answer, "model": model}
    return answer


def stream(ask: Ask, id: str, model: str) -> "NativeStream":
    return NativeStream(model)


class NativeStream(EventRenderer):
    """The server's own ``data:`` lines, passed on as they came, but for the model's name
    (a current server names its file on the last)."""

    encode = staticmethod(encode_event)
    mimetype = EVENT_STREAM
    end = b""

    def __init__(self, model: str) -> None:
        self.model = model

    def write(self, events: list) -> list:
        out = []
        for event in events:
            if type(event) is Passed:
                self.passed = True
                out.append(b"".join(self._line(line) + b"\n" for line in event.lines))
            elif type(event) is Waiting:
                out.append(COMMENT)
            elif type(event) is Served:
                self.told_served(event, out)
        return out

    def _line(self, line: bytes) -> bytes:
        if line[:5] != b"data:" or MODEL not in line:
            return line
        event = orjson.loads(line[5:])
        return b"data: " + orjson.dumps(_named(event, self.model))

    @staticmethod
    def failure(error) -> list:
        return [error_body(error)]
