"""OpenAI chat messages as the ``(role, content)`` turns chatglm.cpp's chat template takes.

chatglm.cpp knows four roles and reads only a role and a text: ``name``, ``tool_call_id``
and the rest stay out. Tools are announced in a system message, and earlier tool calls are
written out as text, the way ChatGLM3 was trained (its tool-call objects cannot be built
from Python).
"""

from __future__ import annotations

import json
from typing import Sequence

from proxy.backends.structured import chatglm3
from proxy.core.types import Message

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
