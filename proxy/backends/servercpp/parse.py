"""Read server.cpp answers of every kind into :class:`Completion` and :class:`Chunk`."""

from __future__ import annotations

import json
import math
from typing import Iterable, Iterator, Optional

import orjson

from proxy.core.errors import (
    ContextLengthError,
    InvalidRequestError,
    NotImplementedByBackendError,
    SlotUnavailableError,
    UpstreamError,
    UpstreamUnavailableError,
)
from proxy.core.types import Chunk, Completion, TokenLogprob, Usage

LOWEST_LOGPROB = -9999.0  # JSON has no -inf; a zero probability becomes this
COLON = ord(":")  # a stream line that starts with it is a comment


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


def durations(timings: object) -> dict:
    """The server's own times on the prompt and on the answer (``prompt_ms``, ``eval_ms``),
    from the ``timings`` every server.cpp kind reports."""
    if not isinstance(timings, dict):
        return {}
    return {
        name: float(timings[key])
        for name, key in (("prompt_ms", "prompt_ms"), ("eval_ms", "predicted_ms"))
        if isinstance(timings.get(key), (int, float)) and not isinstance(timings.get(key), bool)
    }


def _cached(body: dict, prompt: int) -> Optional[int]:
    """Prompt tokens served from the slot's cache: current servers count them (``cache_n``);
    older ones say how many they evaluated (``prompt_n``), the rest came from the cache."""
    timings = body.get("timings")
    if not isinstance(timings, dict):
        return None
    if _is_count(timings.get("cache_n")):
        return min(timings["cache_n"], prompt)
    if _is_count(timings.get("prompt_n")):
        return max(prompt - timings["prompt_n"], 0)
    return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
    )


def logprobs(entries: object, top: Optional[int]) -> tuple:
    """Map either probability shape to OpenAI logprobs.

    Current servers send ``{token, logprob, bytes, top_logprobs}`` (or ``prob``/``top_probs``);
    older ones ``{content, probs: [{tok_str, prob}]}`` with plain probabilities.
    """
    if top is None or not isinstance(entries, list):
        return ()
    return tuple(_token_logprob(entry, top) for entry in entries if isinstance(entry, dict))


def _token_logprob(entry: dict, top: int) -> TokenLogprob:
    if "probs" in entry:  # powerinfer / llama.cpp 2023
        token = entry.get("content", "")
        alternatives = [
            (p.get("tok_str", ""), _ln(p.get("prob", 0.0)), None) for p in entry["probs"]
        ]
        chosen = next((lp for tok, lp, _ in alternatives if tok == token), LOWEST_LOGPROB)
        return TokenLogprob(token, chosen, None, tuple(alternatives[:top]))
    token = entry.get("token", "")
    if "logprob" in entry:
        chosen = _clamp(entry["logprob"])
        alternatives = [
            (a.get("token", ""), _clamp(a.get("logprob")), _bytes(a))
            for a in entry.get("top_logprobs") or ()
        ]
    else:
        chosen = _ln(entry.get("prob", 0.0))
        alternatives = [
            (a.get("token", ""), _ln(a.get("prob", 0.0)), _bytes(a))
            for a in entry.get("top_probs") or ()
        ]
    return TokenLogprob(token, chosen, _bytes(entry), tuple(alternatives[:top]))


def _bytes(entry: dict) -> Optional[tuple]:
    raw = entry.get("bytes")
    return tuple(raw) if isinstance(raw, list) else None


def _ln(probability) -> float:
    try:
        return math.log(probability) if probability > 0 else LOWEST_LOGPROB
    except TypeError:
        return LOWEST_LOGPROB


def _clamp(logprob) -> float:
    if not isinstance(logprob, (int, float)):
        return LOWEST_LOGPROB
    return max(float(logprob), LOWEST_LOGPROB)


def stream_chunks(batches: Iterable[list], upstream: str, top: Optional[int]) -> Iterator[Chunk]:
    """Turn server.cpp stream lines into chunks, ending with exactly one final chunk.

    ``error:`` lines (llama.cpp 2023-2025) and ``data: {"error": …}`` (current) become
    exceptions; so does a stream that ends before a ``stop: true`` chunk. A chunk is
    ``followed`` when more arrived in the same read.
    """
    seen_any = seen_other = False
    for lines in batches:
        last = _last_event(lines)
        for index, raw in enumerate(lines):
            line = raw.rstrip(b"\r")
            if not line or line[0] == COLON:
                continue  # blank separators and keep-alive comments
            field, _, value = line.partition(b":")
            if field == b"error":
                raise stream_error(_json(value, upstream), upstream)
            if field != b"data":
                seen_other = True
                continue
            try:  # orjson inline: this runs once per token
                body = orjson.loads(value)
            except orjson.JSONDecodeError:
                body = _json(value, upstream)
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
    return value if _is_count(value) and value > 0 else None


def _last_event(lines: list) -> int:
    """The index of the last line in ``lines`` that is not blank or a comment; -1 if none."""
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if line.strip() and not line.startswith(b":"):
            return index
    return -1


def stream_error(body: object, upstream: str) -> Exception:
    """Map an error the upstream reported inside a stream, or in a JSON error body."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("content") or error)
        kind, code = error.get("type"), error.get("code")
    else:
        message, kind, code = str(error), None, None
    if "slot unavailable" in message:
        return SlotUnavailableError(
            f"{upstream} has no free slot ({message}); retry shortly", retry_after=1
        )
    if kind == "unavailable_error" or code == 503:
        return UpstreamUnavailableError(
            f"{upstream} is busy or loading ({message}); retry shortly", retry_after=1
        )
    if kind == "not_supported_error" or code == 501:
        return NotImplementedByBackendError(
            f"{upstream} does not offer this ({message}); for embeddings start "
            f"llama-server with --embedding or set --embedding-api"
        )
    if (
        kind == "exceed_context_size_error"
        and isinstance(error, dict)
        and _is_count(error.get("n_prompt_tokens"))
        and _is_count(error.get("n_ctx"))
    ):
        return ContextLengthError(error["n_prompt_tokens"], error["n_ctx"])
    if kind in ("invalid_request_error", "exceed_context_size_error") or code == 400:
        return InvalidRequestError(
            f"{upstream} refused the request: {message}",
            code="context_length_exceeded" if kind == "exceed_context_size_error" else None,
        )
    return UpstreamError(f"{upstream} reported an error: {message}")


def _json(value: bytes, upstream: str):
    """Decode one event; orjson because this runs once per token, ``json`` for what it refuses.

    ``json`` also reads NaN, Infinity and integers wider than 64 bits.
    """
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(value)
    except ValueError:
        raise UpstreamError(
            f"{upstream} sent something that is not JSON; is it a llama.cpp or PowerInfer server?"
        ) from None
