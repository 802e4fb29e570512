"""Turn a :class:`GenerationRequest` into the body of server.cpp's ``POST /completion``.

Old servers abort on a mistyped field, so every value sent here has already been validated
and typed by :mod:`proxy.schemas`; fields the client left unset are not sent at all, except
those whose defaults differ between server kinds (``n_keep``, ``cache_prompt``, the slot).

The prompt cache is on by default only on current servers: old ones reusing a cached prompt
keep the previous answer's sampling history, so the same greedy request answers differently
from one time to the next. A client can still ask for it with ``cache_prompt: true``.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from proxy.backends.servercpp import fimprompt
from proxy.backends.servercpp.kinds import IDS, INFILL, TEXT, ServerKind
from proxy.core import images
from proxy.core.types import GenerationRequest, Sampling

SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "seed",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
)


def completion_payload(
    request: GenerationRequest,
    prompt: str,
    stop: Sequence[str],
    kind: ServerKind,
    *,
    stream: bool,
    constraints: dict,
) -> dict:
    """Build the ``/completion`` body for a server of ``kind``; ``constraints`` bound the output
    (see :mod:`proxy.backends.structured.constraints`)."""
    shown = images.media(request.messages) if request.is_chat else ()
    payload = {
        # images and sounds go beside the prompt, each where the server's marker stands in it
        "prompt": {"prompt_string": prompt, "multimodal_data": [each.data for each in shown]}
        if shown
        else prompt,
        "stream": stream,
        "stop": list(stop),
        "n_keep": -1 if request.n_keep is None else request.n_keep,
        "cache_prompt": (not kind.legacy if request.cache_prompt is None else request.cache_prompt),
        kind.slot_field: -1 if request.slot is None else request.slot,
    }
    if request.max_tokens is not None:
        payload["n_predict"] = request.max_tokens
    payload.update(sampling_fields(request.sampling))
    if request.logprobs is not None:
        # ask for at least one so the chosen token's own probability comes back
        payload["n_probs"] = max(request.logprobs, 1)
    payload.update(constraints)
    # what the server's generation takes (see .unread), never in place of the proxy's own
    return {**request.unread, **payload}


def fill_payload(
    payload: dict,
    request: GenerationRequest,
    kind: ServerKind,
    tokens: Optional[fimprompt.FimTokens],
    token_ids: Callable[[str], list],
) -> dict:
    """``payload`` to fill ``request``'s gap, between its prompt and suffix: for ``POST /infill``,
    which puts them in the model's own fill-in-the-middle prompt, or for ``/completion`` with
    that prompt laid out by the proxy (:mod:`.fimprompt`) as the server reads it (``token_ids``:
    the server's tokens of a text)."""
    prefix, suffix = payload["prompt"], request.suffix
    if kind.fills == INFILL:
        nearby = [{"text": chunk.text, "filename": chunk.filename} for chunk in request.nearby]
        return {
            **payload,
            "input_prefix": prefix,
            "input_suffix": suffix,
            "input_extra": nearby,
            "prompt": request.cursor,
        }
    sides = _fitted(prefix, suffix, request.cursor, kind, token_ids)
    parts = fimprompt.layout(tokens, *sides[:2], request.nearby, sides[2])
    if kind.fills == TEXT:
        return {**payload, "prompt": fimprompt.as_text(tokens, parts)}
    if isinstance(parts[0], str):  # the server would put BOS before a text piece sent first
        parts = [*token_ids(parts[0]), *parts[1:]]
    return {**payload, "prompt": parts}


def _fitted(
    prefix: str, suffix: str, cursor: str, kind: ServerKind, token_ids: Callable[[str], list]
) -> tuple:
    """The gap's sides and the cursor's line as an old server is sent them, cut to a batch as
    llama.cpp cuts them: token ids for a server that takes them, else the texts whose tokens
    fit."""
    ids = [token_ids(text) if text else [] for text in (prefix, suffix, cursor)]
    kept_prefix, kept_suffix = fimprompt.fitted(ids[0], ids[1], len(ids[2]))
    if kind.fills == IDS:
        return kept_prefix, kept_suffix, ids[2]

    def count(text: str) -> int:
        return len(token_ids(text)) if text else 0

    if len(kept_prefix) < len(ids[0]):
        prefix = fimprompt.last_fitting(prefix, len(kept_prefix), count)
    if len(kept_suffix) < len(ids[1]):
        suffix = fimprompt.first_fitting(suffix, len(kept_suffix), count)
    return prefix, suffix, cursor


def sampling_fields(sampling: Sampling) -> dict:
    """The sampling options a client set, under server.cpp's names (every route reads
    them)."""
    fields = {
        name: getattr(sampling, name)
        for name in SAMPLING_FIELDS
        if getattr(sampling, name) is not None
    }
    if sampling.logit_bias:
        fields["logit_bias"] = [[token, bias] for token, bias in sampling.logit_bias]
    return fields


def unique(words: Sequence[str]) -> list:
    """Stop words in order, without repeats or empties."""
    return list(dict.fromkeys(word for word in words if word))
