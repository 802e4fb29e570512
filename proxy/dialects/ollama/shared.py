"""What Ollama's chat and generate requests share: ``options``, ``format``, ``think``,
``keep_alive`` and ``stream``, the answer's times and reasons, and the error shape."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Optional, Sequence

from proxy.core.errors import ProxyError
from proxy.core.fields import Fields, check_schema, sampling, stop_words
from proxy.core.headers import named
from proxy.core.types import GenerationRequest, ResponseFormat, Sampling, ToolCall, Usage
from proxy.dialects.content import Content
from proxy.dialects.dialect import Ask, Limits

patient = False  # a line that is not JSON would break Ollama's clients: no keep-alives

# options the proxy hands on; any other is ignored (as Ollama ignores unknown ones) and named
# in the answer's IGNORED_HEADER
SAMPLING_OPTIONS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
)
READ_OPTIONS = frozenset((*SAMPLING_OPTIONS, "num_predict", "stop"))
IGNORED_HEADER = "x-oai-proxy-ignored-options"
# fields of the request the proxy did not act on: a keep_alive from a key that may not
# manage the servers every key shares
IGNORED_FIELDS_HEADER = "x-oai-proxy-ignored-fields"
EFFORTS = ("low", "medium", "high")
DURATION = re.compile(r"(-?)((?:[0-9]+(?:\.[0-9]*)?(?:ns|us|µs|ms|s|m|h))+)")
DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class OllamaNotes:
    """What an Ollama answer needs beyond the generation: the model's name as the client
    wrote it, when the request began, what it leaves out, and what it asks of the model's
    server after it (``keep_alive``: seconds to stay loaded, 0 to unload, -1 for ever)."""

    name: str
    started: int  # time.monotonic_ns() when the request was read
    keep_alive: Optional[float] = None
    ignored: tuple = ()  # options the proxy does not hand on
    think: Optional[bool] = None
    load: bool = False  # no prompt: the request only loads (or unloads) the model
    ignored_fields: tuple = ()  # fields the proxy did not act on (see unmanaged)


def ask(
    fields: Fields,
    started: int,
    limits: Limits,
    *,
    messages: tuple = (),
    prompt: Optional[str] = None,
    tools: tuple = (),
    load: bool = False,
) -> Ask:
    """The :class:`~proxy.dialects.dialect.Ask` of a chat (``messages``) or a raw
    ``prompt``, with what chat and generate read alike: ``model``, ``options``, ``format``,
    ``think``, ``stream`` and ``keep_alive``."""
    name = model(fields)
    sampled, max_tokens, stop, ignored = options(fields)
    think, effort = thinking(fields)
    request = GenerationRequest(
        model=name,
        messages=messages,
        prompt=prompt,
        max_tokens=max_tokens,
        stop=stop,
        sampling=sampled,
        response_format=response_format(fields, limits),
        tools=tools,
        template_kwargs={} if prompt is not None else template_variables(think, effort),
    )
    notes = OllamaNotes(name, started, keep_alive(fields), ignored, think, load)
    return Ask((request,), 1, streams(fields), notes)


def shown(fields: Fields, text: str, limits: Limits) -> Content:
    """A turn's ``images`` (base64 each; before its text, where Ollama puts them) and text."""
    content = Content(limits)
    raw = fields.raw("images")
    if raw is not None and not (
        isinstance(raw, list) and all(isinstance(image, str) for image in raw)
    ):
        raise fields.fail("images", "must be a list of base64-encoded images")
    for k, image in enumerate(raw or ()):
        field = f"{fields.prefix}images[{k}]"
        if image.startswith("data:"):
            content.add_url(image, field)
        else:
            content.add_base64(image, field)
    content.add_text(text)
    return content


def model(fields: Fields) -> str:
    return fields.required("model")


def streams(fields: Fields) -> bool:
    """``stream`` is true unless the client says false (Ollama's default)."""
    return fields.boolean("stream") is not False


def options(fields: Fields) -> tuple:
    """``(sampling, max_tokens, stop words, the names of options left out)`` of ``options``."""
    raw = fields.raw("options")
    if raw is None:
        return Sampling(), None, (), ()
    given = Fields(raw, "options.")
    max_tokens = given.integer("num_predict", -2)
    if max_tokens is not None and max_tokens < 0:  # -1: no limit, -2: fill the context
        max_tokens = None
    elif max_tokens == 0:
        raise given.fail("num_predict", "must be at least 1, or -1 for no limit")
    ignored = tuple(sorted(name for name in raw if name not in READ_OPTIONS))
    return sampling(given), max_tokens, stop_words(given), ignored


def response_format(fields: Fields, limits: Limits) -> Optional[ResponseFormat]:
    """``format``: ``"json"``, a JSON Schema, or nothing."""
    raw = fields.raw("format")
    if raw in (None, ""):
        return None
    if raw == "json":
        return ResponseFormat("json_object")
    if isinstance(raw, dict):
        check_schema(fields, "format", raw, limits.max_schema_size)
        return ResponseFormat("json_schema", raw)
    raise fields.fail("format", 'must be "json" or a JSON Schema object')


def thinking(fields: Fields) -> tuple:
    """``(think on or off or None, the effort asked or None)`` of ``think``: true, false,
    or how hard (``low``, ``medium``, ``high``; ``max`` is taken as ``high``)."""
    raw = fields.raw("think")
    if raw is None or isinstance(raw, bool):
        return raw, None
    if raw == "max":
        return True, "high"
    if raw in EFFORTS:
        return True, raw
    raise fields.fail("think", f"must be true, false or one of {', '.join(EFFORTS)}")


def template_variables(think: Optional[bool], effort: Optional[str]) -> dict:
    """``think`` as the variables chat templates read (``enable_thinking``,
    ``reasoning_effort``)."""
    variables = {} if think is None else {"enable_thinking": think}
    if effort is not None:
        variables["reasoning_effort"] = effort
    return variables


def keep_alive(fields: Fields) -> Optional[float]:
    """``keep_alive`` in seconds: a number, or a Go duration (``"5m"``, ``"1h30m"``, ``"0"``);
    a negative one keeps the model loaded for ever (-1)."""
    raw = fields.raw("keep_alive")
    if raw is None:
        return None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return -1.0 if raw < 0 else float(raw)
    if isinstance(raw, str):
        if raw.strip() in ("0", "-0"):
            return 0.0
        match = DURATION.fullmatch(raw.strip())
        if match:
            seconds = sum(
                float(number) * UNITS[unit]
                for number, unit in DURATION_PART.findall(match.group(2))
            )
            return -1.0 if match.group(1) else seconds
    raise fields.fail("keep_alive", 'must be a number of seconds or a duration like "5m"')


def unmanaged(notes: OllamaNotes) -> OllamaNotes:
    """``notes`` of a client that may not manage the model's server: its ``keep_alive``
    (stop the server, keep it for a while or for ever) left out, and named as left out. The
    server is every client's: one key's ``keep_alive: 0`` in a loop would make every other
    key's requests wait for reloads."""
    if notes.keep_alive is None:
        return notes
    return replace(notes, keep_alive=None, ignored_fields=(*notes.ignored_fields, "keep_alive"))


def headers(asked: Ask) -> dict:
    """The response headers naming the options and the fields left out, when any were."""
    notes = asked.notes
    found = {}
    if notes.ignored:
        found[IGNORED_HEADER] = named(notes.ignored)
    if notes.ignored_fields:
        found[IGNORED_FIELDS_HEADER] = named(notes.ignored_fields)
    return found


def new_id() -> str:
    return ""  # Ollama's answers carry no id


def created_at() -> str:
    """Now, as Ollama writes times: RFC 3339 in UTC, to the nanosecond."""
    nanoseconds = time.time_ns()
    return f"{_second(nanoseconds // 1_000_000_000)}.{nanoseconds % 1_000_000_000:09d}Z"


def _second(seconds: int) -> str:
    return f"{datetime.fromtimestamp(seconds, timezone.utc):%Y-%m-%dT%H:%M:%S}"


class Clock:
    """:func:`created_at` as bytes, for a stream's lines: the date and time are written once
    a second, the nanoseconds every line."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = b""

    def now(self) -> bytes:
        nanoseconds = time.time_ns()
        second, fraction = divmod(nanoseconds, 1_000_000_000)
        if second != self.second:
            self.second, self.prefix = second, _second(second).encode()
        return self.prefix + b".%09dZ" % fraction


def done_reason(reason: str) -> str:
    """``length`` when the answer ran out of tokens, else ``stop`` (a turn that calls tools
    ends with ``stop`` too, as Ollama's do)."""
    return "length" if reason == "length" else "stop"


def durations(
    notes: OllamaNotes, usage: Usage, first: Optional[int] = None, loaded: Optional[int] = None
) -> dict:
    """The durations and counts Ollama reports, durations in nanoseconds: the total as the
    proxy measured it; the prompt's and the answer's as the server timed them, else as
    measured around ``first`` (when the first token came); the load (the wait for the model's
    server to start) from ``loaded``."""
    now = time.monotonic_ns()
    loaded = loaded or notes.started
    first = first or now
    prompt = usage.prompt_ms * 1e6 if usage.prompt_ms is not None else max(first - loaded, 0)
    answer = usage.eval_ms * 1e6 if usage.eval_ms is not None else now - first
    return {
        "total_duration": now - notes.started,
        "load_duration": loaded - notes.started,
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": int(prompt),
        "eval_count": usage.completion_tokens,
        "eval_duration": int(answer),
    }


def tool_call(call: ToolCall, index: int) -> dict:
    """A call as Ollama's clients read it: its arguments an object (text that is not one is
    kept whole under ``arguments``)."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        arguments = {"arguments": call.arguments}
    return {"id": call.id, "function": {"index": index, "name": call.name, "arguments": arguments}}


def line(
    model: str,
    kind: str,
    text: str,
    *,
    thinking: str = "",
    calls: Sequence = (),
    done: bool = False,
) -> dict:
    """One object of an answer: a chat's ``message`` or generate's ``response``."""
    body = {"model": model, "created_at": created_at()}
    if kind == "chat":
        message = {"role": "assistant", "content": text}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = list(calls)
        body["message"] = message
    else:
        body["response"] = text
        if thinking:
            body["thinking"] = thinking
    body["done"] = done
    return body


def whole(ask, model: str, kind: str, completions: Sequence) -> dict:
    """The one object of an answer that does not stream."""
    (completion,) = completions
    notes = ask.notes
    thinking = completion.reasoning if notes.think is not False else ""
    body = line(
        model,
        kind,
        completion.text,
        thinking=thinking,
        done=True,
        calls=[tool_call(call, i) for i, call in enumerate(completion.tool_calls)],
    )
    body.update(
        done_reason=done_reason(completion.finish_reason), **durations(notes, completion.usage)
    )
    return body


def error_body(error: ProxyError) -> dict:
    """Ollama's error shape."""
    return {"error": error.message}
