"""A request in chatglm.cpp's terms: its messages as the turns its chat template takes, its options
as its generation settings.

OpenAI chat messages as the ``(role, content)`` turns chatglm.cpp's chat template takes.

chatglm.cpp knows four roles and reads only a role and a text: ``name``, ``tool_call_id`` and
the rest stay out. Tools are announced in a system message, and earlier tool calls are written
out as text, the way ChatGLM3 was trained (its tool-call objects cannot be built from Python).

OpenAI sampling options as chatglm.cpp's generation settings.

chatglm.cpp samples with temperature, top-k, top-p and a repetition penalty (``repeat_penalty``
here, as llama.cpp names it). Options a client leaves out keep chatglm.cpp's defaults, tuned for
ChatGLM. OpenAI's presence and frequency penalties are additive, per occurrence, and have no
faithful counterpart in a multiplicative penalty, so they are ignored, as are ``min_p``,
``mirostat`` and ``seed`` (chatglm.cpp cannot be seeded). Options that would change the shape of
the answer are refused rather than dropped.
"""

from __future__ import annotations

import json
from typing import Sequence

from proxy.backends.structured import chatglm3
from proxy.core.errors import InvalidRequestError, NotImplementedByBackendError
from proxy.core.types import GenerationRequest, Message

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "observation",
    "function": "observation",
}
TOOLS_PREAMBLE = (
    "Answer the following questions as best as you can. You have access to the following tools:"
)


def turns(messages: Sequence[Message], tools: Sequence[dict] = ()) -> list:
    """The chat as ``(role, content)`` pairs, led by the tools' system message if any."""
    result = [("system", tools_message(tools))] if tools else []
    for message in messages:
        if message.role == "assistant" and message.tool_calls:
            if message.content:
                result.append(("assistant", message.content))
            result += [("assistant", chatglm3.render(call)) for call in message.tool_calls]
        else:
            result.append((ROLES[message.role], message.content))
    return result


def tools_message(tools: Sequence[dict]) -> str:
    functions = [tool["function"] for tool in tools]
    return TOOLS_PREAMBLE + "\n" + json.dumps(functions, indent=4, ensure_ascii=False)


def tool_names(tools: Sequence[dict]) -> frozenset:
    return frozenset(tool["function"]["name"] for tool in tools)


DEFAULT_TEMPERATURE = 0.95
DEFAULT_TOP_P = 0.7


def sampling(request: GenerationRequest) -> dict:
    """Keyword arguments for ``chatglm_cpp.GenerationConfig``; 400/501 for what it cannot do."""
    for param, wanted in (
        ("logprobs", request.logprobs is not None),
        ("logit_bias", bool(request.sampling.logit_bias)),
        ("response_format", request.response_format is not None),
        ("grammar", request.grammar is not None),
        ("tool_choice", bool(request.tools) and request.tool_choice.forced),
    ):
        if wanted:
            raise NotImplementedByBackendError(
                f"the chatglm backend cannot honour '{param}'", param=param
            )
    options = request.sampling
    temperature = DEFAULT_TEMPERATURE if options.temperature is None else options.temperature
    top_p = DEFAULT_TOP_P if options.top_p is None else options.top_p
    penalty = 1.0 if options.repeat_penalty is None else options.repeat_penalty
    if penalty <= 0:
        raise InvalidRequestError(
            "'repeat_penalty' must be greater than 0 (1 = off)", param="repeat_penalty"
        )
    # chatglm.cpp reads top_p 0 as "no top-p"; OpenAI's top_p 0 keeps only the best token
    return {
        "do_sample": temperature > 0 and top_p > 0,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": options.top_k or 0,
        "repetition_penalty": penalty,
    }
