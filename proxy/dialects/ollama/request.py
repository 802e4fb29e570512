"""Ollama's requests: what chat and generate read alike (``model``, ``options``, ``format``,
``think``, ``stream``, ``keep_alive``, a turn's ``images``) as an :class:`Ask` whose notes
(:class:`OllamaNotes`) keep what the answer needs; a client's ``keep_alive`` left out when it
may not manage the model's server."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

from proxy.core.fields import Fields, check_schema, sampling, stop_words
from proxy.core.types import GenerationRequest, ResponseFormat, Sampling
from proxy.dialects.dialect import Ask, Content, Limits

# options the proxy hands on; any other is ignored (as Ollama ignores unknown ones) and named
# in the answer's header (answer.IGNORED_HEADER)
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
    suffix: Optional[str] = None,
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
        suffix=suffix,
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
