"""The model's side of one request, for the inspector: what went upstream, the prompt the model
saw, the text it wrote before the proxy read calls and thoughts out of it, and where it ran.

Kept only when capture is on (:mod:`proxy.access.exchanges`): the request's
:class:`~proxy.ops.measure.Measure` then carries a :class:`ModelSide`, and the routes, the queue
and the fleet mark it as they go. With capture off each mark is one lookup and a test.
"""

from __future__ import annotations

from time import perf_counter
from typing import Callable, Optional

from proxy.ops.measure import CURRENT

PROXY = "proxy"  # the proxy rendered the prompt from the model's template
SERVER = "server"  # the server's chat layer rendered it (as its /apply-template tells)


class ModelSide:
    """What one request's generation was made of; a choice repeated ``n`` times keeps its
    first attempt's prompt and every attempt's text."""

    __slots__ = (
        "conversation",
        "replica",
        "slot",
        "route",
        "body",
        "prompt",
        "prompt_by",
        "render",
        "raw",
        "queued",
    )

    def __init__(self) -> None:
        self.conversation: Optional[str] = None  # the proxy's key of its conversation
        self.replica: Optional[str] = None
        self.slot: Optional[int] = None
        self.route: Optional[str] = None  # the upstream path
        self.body: Optional[dict] = None  # what went there
        self.prompt: Optional[str] = None
        self.prompt_by: Optional[str] = None  # PROXY or SERVER
        self.render: Optional[Callable[[], str]] = None  # the server's rendering, asked later
        self.raw: Optional[list] = None  # the generated text's pieces, before parsing
        self.queued = 0.0  # seconds spent in the proxy's queue for a slot

    def facts(self) -> dict:
        """What the exchange keeps of it (the server's rendering asked for now, if due)."""
        prompt = self.prompt
        if prompt is None and self.render is not None:
            try:
                prompt = self.render()
            except Exception as exc:  # the inspector's loss, never the request's
                prompt = None
                self.prompt_by = f"{SERVER} (unreadable: {type(exc).__name__})"
        return {
            "conversation": self.conversation,
            "replica": self.replica,
            "slot": self.slot,
            "upstream_route": self.route,
            "upstream_body": self.body,
            "prompt": prompt,
            "prompt_by": self.prompt_by,
            "raw": None if self.raw is None else "".join(self.raw),
            "queued_ms": round(self.queued * 1000, 3),
        }


def _current() -> Optional[ModelSide]:
    measure = CURRENT.get()
    return None if measure is None else measure.side


def active() -> bool:
    """Whether the request being served keeps its model's side."""
    return _current() is not None


def sent(route: str, body: dict) -> None:
    """``body`` went to ``route`` upstream (the last attempt's is kept)."""
    side = _current()
    if side is not None:
        side.route, side.body = route, body


def prompted(text: str) -> None:
    """The proxy rendered ``text`` for the model."""
    side = _current()
    if side is not None and side.prompt is None:
        side.prompt, side.prompt_by = text, PROXY


def rendered_by_server(render: Callable[[], str]) -> None:
    """The server renders the prompt; ``render`` asks it how, once the answer is out."""
    side = _current()
    if side is not None and side.render is None:
        side.render, side.prompt_by = render, SERVER


def wrote(text: str) -> None:
    """The model wrote ``text``, as the server sent it."""
    side = _current()
    if side is not None and text:
        if side.raw is None:
            side.raw = []
        side.raw.append(text)


def placed(conversation: Optional[str], replica: str, slot: Optional[int]) -> None:
    side = _current()
    if side is not None:
        side.conversation, side.replica, side.slot = conversation, replica, slot


class queueing:
    """Count the ``with`` block as time in the queue for a slot."""

    __slots__ = ("side", "began")

    def __enter__(self) -> None:
        self.side = _current()
        self.began = perf_counter()

    def __exit__(self, *exc_info) -> None:
        if self.side is not None:
            self.side.queued += perf_counter() - self.began
