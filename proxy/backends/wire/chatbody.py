"""A chat's messages as OpenAI's chat completions body writes them, which every
OpenAI-compatible server reads. Pure."""

from __future__ import annotations

from typing import Callable

from proxy.core import images
from proxy.core.types import Message, Sound


def message_body(message: Message, call_id: Callable[[str], str] = str) -> dict:
    """A message as OpenAI clients send one (``call_id``: how its calls' ids are written,
    for a template that takes only some)."""
    body: dict = {
        "role": "tool" if message.role == "function" else message.role,
        "content": _content(message) if message.images or message.sounds else message.content,
    }
    if message.name is not None:
        body["name"] = message.name
    if message.tool_calls:
        body["tool_calls"] = [
            {
                "id": call_id(call.id),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        body["tool_call_id"] = call_id(message.tool_call_id)
    if message.reasoning:
        body["reasoning_content"] = message.reasoning
    return body


def _content(message: Message) -> list:
    """A message's text, images and sounds as OpenAI's content parts, each image a data
    URI, each sound its base64 and format."""
    return [_part(piece) for piece in images.pieces(message)]


def _part(piece) -> dict:
    if isinstance(piece, str):
        return {"type": "text", "text": piece}
    if isinstance(piece, Sound):
        return {"type": "input_audio", "input_audio": {"data": piece.data,
                                                       "format": piece.audio_format}}  # fmt: skip
    return {"type": "image_url", "image_url": {"url": piece.data_uri}}
