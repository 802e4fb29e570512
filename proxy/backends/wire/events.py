"""What every upstream's answers share, whatever API they answer: token probabilities
in either shape, the server's times, errors reported in a body or inside a stream, and the
events of a stream. Pure."""

from __future__ import annotations

import json
import math
from typing import Optional

import orjson

from proxy.backends.wire.contextlength import too_long
from proxy.core.answers import TokenLogprob
from proxy.core.errors import (
    ContextLengthError,
    InvalidRequestError,
    NotImplementedByBackendError,
    SlotUnavailableError,
    UpstreamError,
    UpstreamUnavailableError,
)

LOWEST_LOGPROB = -9999.0  # JSON has no -inf; a zero probability becomes this


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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


def last_event(lines: list) -> int:
    """The index of the last line in ``lines`` that is not blank or a comment; -1 if none."""
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if line.strip() and not line.startswith(b":"):
            return index
    return -1


def stream_error(body: object, upstream: str) -> Exception:
    """Map an error the upstream reported inside a stream, or in a JSON error body."""
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error_message(body)
    if isinstance(error, dict):
        kind, code = error.get("type"), error.get("code")
    else:
        kind, code = None, None
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
        and is_count(error.get("n_prompt_tokens"))
        and is_count(error.get("n_ctx"))
    ):
        return ContextLengthError(error["n_prompt_tokens"], error["n_ctx"], engine=True)
    told = too_long(message)  # in the words of the engine that wrote it
    if told is not None:
        return ContextLengthError(told.prompt, told.limit)
    if kind in ("invalid_request_error", "exceed_context_size_error") or code == 400:
        return InvalidRequestError(
            f"{upstream} refused the request: {message}",
            code="context_length_exceeded" if kind == "exceed_context_size_error" else None,
        )
    return UpstreamError(f"{upstream} reported an error: {message}")


def lacks_route(status: int, body: object) -> bool:
    """Whether a server of a public API that answered a route ``status`` with ``body`` (its
    JSON, or ``{"message": text}``) said it has no such route: 404 or 405 (llama-server's
    "File Not Found", vLLM's and LiteLLM's "Not Found"), or 501 (a llama-server started
    without ``--embeddings`` or ``--reranking``). A 404 that names a model (OpenAI's
    ``model_not_found``, vLLM's "The model `x` does not exist", Ollama's "model 'x' not
    found") is about the model the proxy asked for, not the route."""
    if status in (405, 501):
        return True
    if status != 404:
        return False
    error = body.get("error", body) if isinstance(body, dict) else body
    said = (
        " ".join(str(error.get(name) or "") for name in ("message", "code", "type"))
        if isinstance(error, dict)
        else str(error)
    )
    return "model" not in said.lower()


def error_message(body: object) -> str:
    """What an error body says, in the words of whichever shape it has."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error.get("content") or error)
    return str(error)


def event_json(value: bytes, upstream: str):
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
            f"{upstream} sent an event that is not JSON; is it a model server?"
        ) from None
