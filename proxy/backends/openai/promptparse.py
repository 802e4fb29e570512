"""Raw prompts' answers read back: OpenAI's legacy completions (``text_completion``) as
every OpenAI-compatible server sends them, whole or streamed, as a :class:`Completion` or
chunks. Pure.

A choice's ``logprobs`` come in either shape: OpenAI's own for this route (``tokens``,
``token_logprobs``, ``top_logprobs`` as maps of token to log probability; vLLM's, LiteLLM's)
or the chat route's ``content`` list, which llama-server sends on both. A stream's usage
comes with its finish (llama-server) or in an event of its own after it (OpenAI's
``include_usage``); either ends the reading.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

import orjson

from proxy.backends.wire import chatparse, events
from proxy.core.answers import Chunk, Completion, TokenLogprob
from proxy.core.errors import UpstreamError

DONE = b"[DONE]"
CUT = chatparse.CUT  # what a server writes for the bytes of a character the token limit cut


def completion(body: object, upstream: str, top: Optional[int]) -> Completion:
    """Read a whole answer to a raw prompt."""
    choice = chatparse.first_choice(body, upstream, "prompt")
    finish = _finish(choice.get("finish_reason"))
    text = _text(choice.get("text"))
    if finish == "length":  # a character the limit cut is left out, as its stream leaves it
        text = text.rstrip(CUT)
    return Completion(
        text=text,
        finish_reason=finish,
        usage=chatparse.usage(body.get("usage"), body.get("timings")),
        logprobs=logprobs(choice.get("logprobs"), top),
    )


def stream_chunks(batches: Iterable[list], upstream: str, top: Optional[int]) -> Iterator[Chunk]:
    """Turn the stream's events into chunks, ending with exactly one final chunk (its finish
    reason and usage). ``data: {"error": …}`` becomes an exception, and so does a stream
    that ends before its finish."""
    finish: Optional[str] = None
    for body, followed in _events(batches, upstream):
        if "error" in body:
            raise events.stream_error(body, upstream)
        if finish is not None:  # the usage, in an event of its own
            yield _final(finish, body)
            return
        choices = body.get("choices")
        if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
            continue  # a usage before any finish, or nothing
        choice = choices[0]
        text = _text(choice.get("text"))
        probabilities = logprobs(choice.get("logprobs"), top)
        reason = choice.get("finish_reason")
        if text or probabilities:
            yield Chunk.partial(text, probabilities, followed)
        if reason is not None:
            finish = _finish(reason)
            if isinstance(body.get("usage"), dict):
                yield _final(finish, body)
                return
    if finish is None:
        raise UpstreamError(
            f"{upstream} ended the completion stream before finishing; check its log"
        )
    yield _final(finish, {})  # the server sent no usage: end all the same


def logprobs(value: object, top: Optional[int]) -> tuple:
    """A choice's token probabilities, in either shape, with ``top`` alternatives each."""
    if top is None or not isinstance(value, dict):
        return ()
    if "content" in value:  # the chat route's shape
        return events.logprobs(value.get("content"), top)
    tokens, chosen = value.get("tokens"), value.get("token_logprobs")
    if not (isinstance(tokens, list) and isinstance(chosen, list)):
        return ()
    alternatives = value.get("top_logprobs")
    if not isinstance(alternatives, list):
        alternatives = []
    read = []
    for index, token in enumerate(tokens):
        others = alternatives[index] if index < len(alternatives) else None
        read.append(
            TokenLogprob(
                _text(token),
                _logprob(chosen[index] if index < len(chosen) else None),
                None,
                tuple(
                    (_text(name), _logprob(logprob), None)
                    for name, logprob in (others.items() if isinstance(others, dict) else ())
                )[:top],
            )
        )
    return tuple(read)


def _events(batches: Iterable[list], upstream: str) -> Iterator[tuple]:
    """Each event's JSON object, and whether another came with it, until ``[DONE]``."""
    for lines in batches:
        last = events.last_event(lines)
        for index, raw in enumerate(lines):
            if raw[:5] != b"data:":
                continue  # blank separators and keep-alive comments
            value = raw[5:].strip()
            if value == DONE:
                return
            try:  # orjson inline: this runs once per token
                body = orjson.loads(value)
            except orjson.JSONDecodeError:
                body = events.event_json(value, upstream)
            if type(body) is not dict:
                raise UpstreamError(f"{upstream} sent a stream event that is not a JSON object")
            yield body, index < last


def _final(finish: str, body: dict) -> Chunk:
    return Chunk(
        finish_reason=finish, usage=chatparse.usage(body.get("usage"), body.get("timings"))
    )


def _finish(reason: object) -> str:
    return reason if reason in ("stop", "length") else "stop"


def _logprob(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return events.LOWEST_LOGPROB
    return max(float(value), events.LOWEST_LOGPROB)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
