"""Read server.cpp answers of every kind into :class:`Completion` and :class:`Chunk`."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

import orjson

from proxy.backends.wire.events import (
    durations,
    event_json,
    is_count,
    last_event,
    logprobs,
    stream_error,
)
from proxy.core.answers import Chunk, Completion, Usage
from proxy.core.errors import SlotUnavailableError, UpstreamError

COLON = ord(":")  # a stream line that starts with it is a comment
# the server's own fields of an answer that a client's API has room for (its extras)
EXTRAS = ("timings",)


def extras(body: dict, names=EXTRAS) -> Optional[dict]:
    """The extras ``names`` that ``body`` holds, if any."""
    told = {name: body[name] for name in names if name in body}
    return told or None


def finish_reason(body: dict) -> str:
    """``length`` when the token limit stopped it, else ``stop`` (eos or a stop word)."""
    if "stop_type" in body:
        return "length" if body["stop_type"] == "limit" else "stop"
    return "length" if body.get("stopped_limit") else "stop"


def stop_word(body: dict) -> Optional[str]:
    """The stop word that ended the answer, when one did (``stop_type`` word, or
    ``stopped_word`` on old servers)."""
    word = body.get("stopping_word")
    stopped = body.get("stop_type") == "word" or body.get("stopped_word") is True
    return word if stopped and isinstance(word, str) and word else None


def usage(body: dict) -> Usage:
    prompt = int(body.get("tokens_evaluated") or 0)
    return Usage(
        prompt,
        int(body.get("tokens_predicted") or 0),
        _cached(body, prompt),
        **durations(body.get("timings")),
    )


def _cached(body: dict, prompt: int) -> Optional[int]:
    """Prompt tokens served from the slot's cache: current servers count them (``cache_n``);
    older ones say how many they evaluated (``prompt_n``), the rest came from the cache."""
    timings = body.get("timings")
    if not isinstance(timings, dict):
        return None
    if is_count(timings.get("cache_n")):
        return min(timings["cache_n"], prompt)
    if is_count(timings.get("prompt_n")):
        return max(prompt - timings["prompt_n"], 0)
    return None


def slot(body: dict) -> Optional[int]:
    """The slot that served the answer, under either generation's name."""
    value = body.get("id_slot", body.get("slot_id"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def completion(body: object, upstream: str, top: Optional[int]) -> Completion:
    """Read a non-streamed ``/completion`` answer."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), str):
        raise UpstreamError(
            f"{upstream} answered /completion without a content "
            f"string; is it a llama.cpp or PowerInfer server?"
        )
    return Completion(
        text=body["content"],
        finish_reason=finish_reason(body),
        usage=usage(body),
        logprobs=logprobs(body.get("completion_probabilities"), top),
        truncated=bool(body.get("truncated")),
        slot=slot(body),
        stop_sequence=stop_word(body),
        extras=extras(body) or {},
    )


def stream_chunks(
    batches: Iterable[list], upstream: str, top: Optional[int], asked: tuple = ()
) -> Iterator[Chunk]:
    """Turn server.cpp stream lines into chunks, ending with exactly one final chunk.

    ``error:`` lines (llama.cpp 2023-2025) and ``data: {"error": …}`` (current) become
    exceptions; so does a stream that ends before a ``stop: true`` chunk. A chunk is
    ``followed`` when more arrived in the same read. ``asked``: the extras the client asked
    to be told as the stream goes (the last chunk tells :data:`EXTRAS` anyway).
    """
    seen_any = seen_other = False
    for lines in batches:
        last = last_event(lines)
        for index, raw in enumerate(lines):
            line = raw.rstrip(b"\r")
            if not line or line[0] == COLON:
                continue  # blank separators and keep-alive comments
            field, _, value = line.partition(b":")
            if field == b"error":
                raise stream_error(event_json(value, upstream), upstream)
            if field != b"data":
                seen_other = True
                continue
            try:  # orjson inline: this runs once per token
                body = orjson.loads(value)
            except orjson.JSONDecodeError:
                body = event_json(value, upstream)
            if type(body) is not dict:
                raise UpstreamError(f"{upstream} sent a stream event that is not a JSON object")
            if "error" in body:
                raise stream_error(body, upstream)
            if body.get("stop"):
                yield Chunk(
                    text=body.get("content") or "",
                    finish_reason=finish_reason(body),
                    usage=usage(body),
                    truncated=bool(body.get("truncated")),
                    slot=slot(body),
                    stop_sequence=stop_word(body),
                    prompt_count=None if seen_any else _count(body),
                    extras=extras(body, (*EXTRAS, *asked)),
                )
                return
            chunk = Chunk.partial(
                body.get("content") or "",
                () if top is None else logprobs(body.get("completion_probabilities"), top),
                index < last,
            )
            if not seen_any:  # current servers count the prompt in every chunk
                seen_any = True
                chunk.__dict__.update(prompt_count=_count(body), slot=slot(body))
            if asked:
                chunk.__dict__["extras"] = extras(body, asked)
            yield chunk
    if seen_other and not seen_any:
        raise UpstreamError(
            f"{upstream} answered a stream request with something that is not an event stream"
        )
    if not seen_any:
        # PowerInfer answers a request it has no free slot for with an empty 200 stream
        raise SlotUnavailableError(
            f"{upstream} closed the stream without answering; it may have no "
            f"free slot (start it with more --parallel slots) — retry shortly",
            retry_after=1,
        )
    raise UpstreamError(f"{upstream} ended the stream before finishing; check its log")


def _count(body: dict) -> Optional[int]:
    value = body.get("tokens_evaluated")
    return value if is_count(value) and value > 0 else None
