"""What OpenAI's image routes ask of a model: pictures drawn from a prompt (a generation) or
from pictures the client uploads (an edit), and the engine's answer. The values the
pictures dialect reads and the backends send."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from proxy.core.answers import Usage
from proxy.core.errors import InvalidRequestError

TASKS = ("generations", "edits")
ANSWER_FORMATS = ("url", "b64_json")  # how a picture comes back: a link, or its bytes
MOST_PICTURES = 10  # pictures one request may ask for (``n``, OpenAI's bound)
MOST_UPLOADS = 16  # pictures one edit may upload (OpenAI's bound)
LONGEST_PROMPT = 32000  # characters of one prompt (OpenAI's bound, gpt-image-1's)


@dataclass(frozen=True)
class Drawing:
    """A generation or an edit as the proxy sends it on: its model, the body (a
    generation's JSON) or the form's fields (an edit's) as they came, the pictures an edit
    uploads (``(field, upload)``, in order), and how many it asks for."""

    model: Optional[str]
    task: str  # generations, or edits
    fields: Mapping[str, Any]
    uploads: tuple = field(default=(), repr=False)
    n: int = 1


@dataclass(frozen=True)
class Pictures:
    """An engine's answer to a drawing, as the client is answered it, and the tokens the
    engine counted (``None``: it told none)."""

    content: bytes
    usage: Optional[Usage] = None


def told_usage(answer: bytes) -> Optional[Usage]:
    """The tokens a pictures answer tells (gpt-image's ``usage``: ``input_tokens`` and
    ``output_tokens``)."""
    try:
        usage = json.loads(answer).get("usage")
    except (ValueError, AttributeError):
        return None
    if not isinstance(usage, dict):
        return None
    prompt, output = usage.get("input_tokens"), usage.get("output_tokens")
    if not all(type(n) is int and n >= 0 for n in (prompt, output)):
        return None
    return Usage(prompt, output)


def not_drawn(model: str, why: str) -> InvalidRequestError:
    """The 400 of a model whose engine draws no pictures, and why."""
    return InvalidRequestError(f"the model {model!r} does not draw pictures: {why}", param="model")
