"""A Responses conversation's items as the model reads them: the instructions and the items
(this request's input after those of the responses it continues) replayed as chat messages,
and the approvals they hold; and the items as a store keeps them, an image's bytes left out.
The items are checked already (``request.py``), stored or just read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from proxy.core.errors import InvalidRequestError
from proxy.core.tooluse import Approval
from proxy.core.types import Message, ToolCall
from proxy.dialects.dialect import Ask, Content, Limits

IMAGE_NOT_KEPT = "(an image, not kept)"  # an earlier response's image, whose bytes are gone
MOST_APPROVALS = 64  # approval responses one request may carry: each may run a tool


def continuing(ask: Ask, history: Sequence[dict]) -> Ask:
    """``ask`` after the items of the conversation it continues (its instructions first:
    those of earlier responses are not carried over)."""
    notes = ask.notes
    items = [*history, *notes.input_items]
    messages = messages_with(notes.instructions, items)
    approvals = approvals_of(items, notes.input_items)
    return ask.amended(
        lambda request: replace(request, messages=tuple(messages), approvals=approvals)
    )


def messages_with(instructions: Optional[str], items: Sequence[dict]) -> list:
    """The instructions as a system message, when there are any, then the items."""
    return ([Message("system", instructions)] if instructions else []) + messages_of(items)


def approvals_of(items: Sequence[dict], answers: Sequence[dict]) -> tuple:
    """The client's word on each call it was asked to approve and that has not run yet: an
    approval response of ``answers`` (this request's input), with the request it answers
    (an item of the conversation, ``items``)."""
    asked = {item["id"]: item for item in items if item["type"] == "mcp_approval_request"}
    ran = {item.get("approval_request_id") for item in items if item["type"] == "mcp_call"}
    approvals = []
    for item in answers:
        if item["type"] != "mcp_approval_response" or item["approval_request_id"] in ran:
            continue
        if len(approvals) == MOST_APPROVALS:
            raise InvalidRequestError(
                f"the input answers more than {MOST_APPROVALS} approval requests; a request "
                f"may answer {MOST_APPROVALS} at most (and runs no more of them than its "
                "model's max_tool_turns)",
                param="input",
            )
        request = asked.get(item["approval_request_id"])
        if request is None:
            raise InvalidRequestError(
                f"the approval response {item['id']!r} answers {item['approval_request_id']!r}, "
                f"which is no mcp_approval_request of this conversation",
                param="input",
            )
        approvals.append(
            Approval(
                request["id"],
                request["server_label"],
                request["name"],
                request["arguments"],
                item["approve"],
                item["reason"] or "",
            )
        )
    return tuple(approvals)


def kept(items: Sequence[dict]) -> list:
    """``items`` as a store keeps them: each image a placeholder, never its bytes or URL."""
    return [
        {
            **item,
            **{
                name: [_kept_part(part) for part in item[name]]
                for name in ("content", "output")
                if isinstance(item.get(name), list)
            },
        }
        for item in items
    ]


def _kept_part(part: dict) -> dict:
    if part.get("type") != "input_image":
        return part
    return {
        "type": "input_image",
        "detail": part.get("detail", "auto"),
        "image_url": None,
        "file_id": None,
    }


def _content(parts: Sequence[dict]) -> Content:
    """Parts as one message's text and images; a kept image, whose bytes are gone, as a
    word that says so."""
    content = Content(Limits())
    for part in parts:
        if "image" in part:
            content.add_image(part["image"])
        elif part.get("type") == "input_image":
            content.add_text(IMAGE_NOT_KEPT)
        else:
            content.add_text(part.get("text", part.get("refusal", "")))
    return content


def messages_of(items: Sequence[dict]) -> list:
    """Checked items as chat messages: an assistant's reasoning, text and the calls after it
    become one assistant message, as chat templates expect; foreign items stay out."""
    messages: list = []
    thoughts = ""  # a reasoning item's text, for the assistant turn it begins
    for item in items:
        kind = item["type"]
        last = messages[-1] if messages else None
        if kind == "reasoning":
            thoughts = reasoning_text(item)
        elif kind == "message":
            content = _content(item["content"])
            messages.append(
                Message(
                    item["role"],
                    content.text,
                    reasoning=thoughts if item["role"] == "assistant" else "",
                    images=tuple(content.images),
                )
            )
            thoughts = ""
        elif kind == "function_call":
            call = ToolCall(item["call_id"], item["name"], item["arguments"])
            if last is not None and last.role == "assistant" and not thoughts:
                messages[-1] = replace(last, tool_calls=(*last.tool_calls, call))
            else:
                messages.append(Message("assistant", "", tool_calls=(call,), reasoning=thoughts))
            thoughts = ""
        elif kind == "mcp_call":
            call = ToolCall(item["id"], item["name"], item["arguments"])
            messages.append(Message("assistant", "", tool_calls=(call,), reasoning=thoughts))
            result = f"Error: {item['error']}" if item.get("error") else item.get("output") or ""
            messages.append(Message("tool", result, tool_call_id=item["id"]))
            thoughts = ""
        elif kind == "function_call_output":
            output = item["output"]
            content = _content(
                output if isinstance(output, list) else [{"type": "input_text", "text": output}]
            )
            messages.append(
                Message(
                    "tool", content.text, tool_call_id=item["call_id"], images=tuple(content.images)
                )
            )
    return messages


def reasoning_text(item: dict) -> str:
    """A reasoning item's thoughts: its text, else its summary."""
    for name, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        texts = [
            part.get("text", "")
            for part in item.get(name) or ()
            if isinstance(part, dict) and part.get("type") == kind
        ]
        if any(texts):
            return "\n".join(texts)
    return ""
