"""OpenAI's answers as chat completions and completions write them: ids and times, usage,
logprobs in each endpoint's shape, the fields the historic shim sent; the model list, and
errors in OpenAI's shape."""

from __future__ import annotations

import os
import time
from typing import Sequence

from proxy.core.answers import COUNTED, ESTIMATED, Completion, TokenLogprob, Usage
from proxy.core.errors import ProxyError
from proxy.dialects.dialect import Ask

# a usage's word on how it was had where its engine told none, as the header of whole
# answers says it (x-oai-proxy-usage): in a stream's usage chunk, after the headers
USAGE_WORD = "x-oai-proxy-usage"


def new_id(prefix: str) -> str:
    """A unique response id; one per response, shared by all its chunks (128 random bits,
    as a UUID has, without building one)."""
    return f"{prefix}-{os.urandom(16).hex()}"


def now() -> int:
    return int(time.time())


def usage_body(usage: Usage) -> dict:
    body = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.how in (COUNTED, ESTIMATED):  # its engine told none (as a whole answer's header)
        body[USAGE_WORD] = usage.how
    return body


def total_usage(completions: Sequence[Completion]) -> Usage:
    return sum((completion.usage for completion in completions), Usage())


def chat_logprobs(logprobs: Sequence[TokenLogprob]) -> dict:
    return {
        "content": [
            {
                "token": item.token,
                "logprob": item.logprob,
                "bytes": _bytes(item.token, item.bytes),
                "top_logprobs": [
                    {"token": token, "logprob": lp, "bytes": _bytes(token, raw)}
                    for token, lp, raw in item.top
                ],
            }
            for item in logprobs
        ]
    }


def text_logprobs(logprobs: Sequence[TokenLogprob]) -> dict:
    offsets, offset = [], 0
    for item in logprobs:
        offsets.append(offset)
        offset += len(item.token)
    return {
        "tokens": [item.token for item in logprobs],
        "token_logprobs": [item.logprob for item in logprobs],
        "top_logprobs": [{token: lp for token, lp, _ in item.top} for item in logprobs],
        "text_offset": offsets,
    }


def _bytes(token: str, raw) -> list:
    return list(raw) if raw is not None else list(token.encode("utf-8"))


def extras(body: dict, completions: Sequence[Completion]) -> dict:
    """Fields beyond OpenAI's: the engine's own (llama-server's ``timings``, a fingerprint),
    under those the proxy writes; and those the historic shim sent, which its users' scripts
    still read."""
    for completion in completions:
        for name, value in completion.extras.items():
            body.setdefault(name, value)
    body["truncated"] = any(c.truncated for c in completions)
    if completions and completions[0].prompt_token_ids is not None:
        body["promptToken"] = list(completions[0].prompt_token_ids)
    return body


LLAMA_SERVER_WORDS = {"vision": "multimodal"}  # a capability, as llama-server's list says it


def model_list(models) -> dict:
    """The models, each with what it can do (``capabilities``: completion, tools, thinking,
    vision, rerank), as Ollama's ``/api/show`` says it too; and beside OpenAI's list,
    llama-server's own (``models``), which its clients read, in its words (``multimodal``
    for vision)."""
    return {
        "object": "list",
        "data": [
            {
                "id": m.id,
                "object": "model",
                "created": 0,
                "owned_by": m.owned_by,
                "capabilities": list(m.card.capabilities),
                **m.meta,
            }
            for m in models
        ],
        "models": [
            {
                "name": m.id,
                "model": m.id,
                "capabilities": [LLAMA_SERVER_WORDS.get(c, c) for c in m.card.capabilities],
            }
            for m in models
        ],
    }


def error_body(error: ProxyError) -> dict:
    """OpenAI's error shape, with the engine's own fields where it told any."""
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
            **error.extras,
        }
    }


def headers(ask: Ask) -> dict:
    return {}
