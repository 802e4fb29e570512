"""What OpenAI's image routes ask of a model: pictures drawn from a prompt (a generation) or
from pictures the client uploads (an edit), and the engine's answer. The values the
pictures dialect reads and the backends send."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Protocol

from proxy.core.answers import Usage
from proxy.core.errors import InvalidRequestError

TASKS = ("generations", "edits")
ANSWER_FORMATS = ("url", "b64_json")  # how a picture comes back: a link, or its bytes
MOST_PICTURES = 10  # pictures one request may ask for (``n``, OpenAI's bound)
MOST_UPLOADS = 16  # pictures one edit may upload (OpenAI's bound)
LONGEST_PROMPT = 32000  # characters of one prompt (OpenAI's bound, gpt-image-1's)
LINKED_FOR = 3600  # seconds a picture the proxy keeps for its link is kept (OpenAI's hour)


@dataclass(frozen=True)
class Drawing:
    """A generation or an edit as the proxy sends it on: its model, the body (a
    generation's JSON) or the form's fields (an edit's) as they came, the pictures an edit
    uploads (``(field, upload)``, in order), how many it asks for, and the pixels of each
    as its ``size`` asks (0: it asks none, or ``auto``)."""

    model: Optional[str]
    task: str  # generations, or edits
    fields: Mapping[str, Any]
    uploads: tuple = field(default=(), repr=False)
    n: int = 1
    pixels: int = 0


@dataclass(frozen=True)
class Pictures:
    """An engine's answer to a drawing, as the client is answered it, and the tokens the
    engine counted (``None``: it told none)."""

    content: bytes
    usage: Optional[Usage] = None


class PictureFiles(Protocol):
    """Where the proxy keeps the pictures it answers with links: files of the key's, which
    the Files API serves to that key alone (the batches' file store)."""

    def picture_room(self, owner: str, count: int) -> None:
        """Refuse, before they are drawn, ``count`` pictures ``owner`` could not keep."""

    def keep_pictures(self, owner: str, pictures: list, seconds: int) -> list:
        """``pictures`` (``(filename, bytes)``) kept for ``seconds``: their file ids."""


def unlinked(answer: bytes) -> Optional[list]:
    """``(filename, bytes)`` of each picture of an answer that gives them as ``b64_json``
    and links none (an engine that answers no links: sd-server); ``None`` for any other
    answer, which goes as it came."""
    try:
        found = json.loads(answer)
        data = found["data"]
        kind = found.get("output_format") or "png"
        if not (isinstance(data, list) and data and isinstance(kind, str) and kind.isalnum()):
            return None
        if any(not isinstance(each, dict) or "url" in each for each in data):
            return None
        drawn = [base64.b64decode(each["b64_json"], validate=True) for each in data]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        return None
    return [(f"picture-{place}.{kind}", picture) for place, picture in enumerate(drawn)]


def count(answer: bytes) -> int:
    """How many pictures an engine's answer holds (what a price by the picture counts)."""
    try:
        data = json.loads(answer).get("data")
    except (ValueError, AttributeError):
        return 0
    return len(data) if isinstance(data, list) else 0


def linked(answer: bytes, urls: list) -> bytes:
    """``answer`` (one :func:`unlinked` read) with each picture's bytes replaced by its
    link, in order."""
    found = json.loads(answer)
    found["data"] = [
        {**{name: value for name, value in each.items() if name != "b64_json"}, "url": url}
        for each, url in zip(found["data"], urls, strict=True)
    ]
    return json.dumps(found).encode()


def not_drawn(model: str, why: str) -> InvalidRequestError:
    """The 400 of a model whose engine draws no pictures, and why."""
    return InvalidRequestError(f"the model {model!r} does not draw pictures: {why}", param="model")
