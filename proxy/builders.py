"""Build OpenAI response bodies and stream chunks from the backends' plain results."""
from __future__ import annotations

import base64
import os
import struct
import time
from typing import Optional, Sequence

from proxy.types import Completion, TokenLogprob, ToolCall, Usage


def new_id(prefix: str) -> str:
    """A unique response id; one per response, shared by all its chunks (128 random bits,
    as a UUID has, without building one)."""
    return f"{prefix}-{os.urandom(16).hex()}"


def now() -> int:
    return int(time.time())


def usage_total(completions: Sequence[Completion], prompts: int) -> Usage:
    """Sum completion tokens; count each prompt once, as OpenAI does with ``n`` > 1."""
    per_prompt = max(len(completions) // max(prompts, 1), 1)
    total = Usage()
    for index, completion in enumerate(completions):
        counted = completion.usage if index % per_prompt == 0 else Usage(
            completion_tokens=completion.usage.completion_tokens)
        total += counted
    return total


def chat_completion(id: str, model: str, completions: Sequence[Completion], prompts: int = 1) -> dict:
    """A ``chat.completion`` body with one choice per completion."""
    body = {
        "id": id, "object": "chat.completion", "created": now(), "model": model,
        "choices": [{
            "index": i,
            "message": _message(c.text, c.tool_calls),
            "logprobs": chat_logprobs(c.logprobs) if c.logprobs else None,
            "finish_reason": c.finish_reason,
        } for i, c in enumerate(completions)],
        "usage": usage_total(completions, prompts).to_dict(),
    }
    return _historic_extras(body, completions)


def text_completion(id: str, model: str, completions: Sequence[Completion],
                    prompts: Sequence[str], echo: bool = False) -> dict:
    """A ``text_completion`` body; choices are grouped prompt by prompt."""
    per_prompt = len(completions) // len(prompts)
    body = {
        "id": id, "object": "text_completion", "created": now(), "model": model,
        "choices": [{
            "index": i,
            "text": (prompts[i // per_prompt] if echo else "") + c.text,
            "logprobs": text_logprobs(c.logprobs) if c.logprobs else None,
            "finish_reason": c.finish_reason,
        } for i, c in enumerate(completions)],
        "usage": usage_total(completions, len(prompts)).to_dict(),
    }
    return _historic_extras(body, completions)


def chat_chunk(id: str, model: str, created: int, index: int, delta: dict,
               logprobs: Sequence[TokenLogprob] = (), finish_reason: Optional[str] = None) -> dict:
    return {"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": index, "delta": delta,
                         "logprobs": chat_logprobs(logprobs) if logprobs else None,
                         "finish_reason": finish_reason}]}


def text_chunk(id: str, model: str, created: int, index: int, text: str,
               logprobs: Sequence[TokenLogprob] = (), finish_reason: Optional[str] = None) -> dict:
    return {"id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": index, "text": text,
                         "logprobs": text_logprobs(logprobs) if logprobs else None,
                         "finish_reason": finish_reason}]}


def usage_chunk(id: str, model: str, created: int, object: str, usage: Usage) -> dict:
    """The extra last chunk ``stream_options.include_usage`` asks for."""
    return {"id": id, "object": object, "created": created, "model": model,
            "choices": [], "usage": usage.to_dict()}


def tool_call_deltas(index: int, call: ToolCall) -> list:
    """A streamed call, as OpenAI streams it: id and name first, then the arguments."""
    return [{"index": index, "id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": ""}},
            {"index": index, "function": {"arguments": call.arguments}}]


def chat_logprobs(logprobs: Sequence[TokenLogprob]) -> dict:
    return {"content": [{
        "token": item.token, "logprob": item.logprob, "bytes": _bytes(item.token, item.bytes),
        "top_logprobs": [{"token": token, "logprob": lp, "bytes": _bytes(token, raw)}
                         for token, lp, raw in item.top],
    } for item in logprobs]}


def text_logprobs(logprobs: Sequence[TokenLogprob]) -> dict:
    offsets, offset = [], 0
    for item in logprobs:
        offsets.append(offset)
        offset += len(item.token)
    return {"tokens": [item.token for item in logprobs],
            "token_logprobs": [item.logprob for item in logprobs],
            "top_logprobs": [{token: lp for token, lp, _ in item.top} for item in logprobs],
            "text_offset": offsets}


def model_list(models) -> dict:
    return {"object": "list", "data": [
        {"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by, **m.meta}
        for m in models]}


def _message(text: str, tool_calls: Sequence[ToolCall]) -> dict:
    message = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}}
            for call in tool_calls]
    return message


def _bytes(token: str, raw) -> list:
    return list(raw) if raw is not None else list(token.encode("utf-8"))


def _historic_extras(body: dict, completions: Sequence[Completion]) -> dict:
    """Fields the historic shim sent, which its users' scripts still read."""
    body["truncated"] = any(c.truncated for c in completions)
    if completions and completions[0].prompt_tokens is not None:
        body["promptToken"] = list(completions[0].prompt_tokens)
    return body



def embedding_list(vectors: Sequence[Sequence[float]], model: str, prompt_tokens: int,
                   encoding_format: str = "float") -> dict:
    """The OpenAI embeddings body; base64 is little-endian float32, as the SDK decodes it."""
    def encode(vector):
        if encoding_format == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        return list(vector)
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": encode(v)}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
