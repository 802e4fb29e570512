"""The model's side of one request, for the inspector: what went upstream, the prompt the model
saw, the text it wrote before the proxy read calls and thoughts out of it, and where it ran.

Kept only when capture is on (:mod:`proxy.inspector.capture`): the request's caller then
carries a :class:`ModelSide` (its ``side``), and the routes, the queue and the fleet mark it as
they go. With capture off there is none to mark.
"""

from __future__ import annotations

from typing import Callable, Optional

PROXY = "proxy"  # the proxy rendered the prompt from the model's template
SERVER = "server"  # the server's chat layer rendered it (as its /apply-template tells)
SHOWN = 16 * 1024  # characters of a tool run's arguments and result the inspector keeps


class ModelSide:
    """What one request's generation was made of: the last attempt's body and prompt (a
    tool loop's last turn: the whole conversation the model saw), and every attempt's
    text."""

    __slots__ = (
        "thread",
        "replica",
        "slot",
        "route",
        "body",
        "prompt",
        "prompt_by",
        "render",
        "raw",
        "runs",
    )

    def __init__(self) -> None:
        self.thread: Optional[str] = None  # what links its turns (core/conversation.py)
        self.replica: Optional[str] = None
        self.slot: Optional[int] = None
        self.route: Optional[str] = None  # the upstream path
        self.body: Optional[dict] = None  # what went there
        self.prompt: Optional[str] = None
        self.prompt_by: Optional[str] = None  # PROXY or SERVER
        self.render: Optional[Callable[[], str]] = None  # the server's rendering, asked later
        self.raw: Optional[list] = None  # the generated text's pieces, before parsing
        self.runs: list = []  # the hosted tools the gateway ran for the model, in order

    def sent(self, route: str, body: dict) -> None:
        """``body`` went to ``route`` upstream (the last attempt's is kept)."""
        self.route, self.body = route, body

    def prompted(self, text: str) -> None:
        """The proxy rendered ``text`` for the model."""
        self.prompt, self.prompt_by, self.render = text, PROXY, None

    def rendered_by_server(self, render: Callable[[], str]) -> None:
        """The server renders the prompt; ``render`` asks it how, once the answer is out."""
        self.prompt, self.prompt_by, self.render = None, SERVER, render

    def wrote(self, text: str) -> None:
        """The model wrote ``text``, as the server sent it."""
        if text:
            if self.raw is None:
                self.raw = []
            self.raw.append(text)

    def ran(self, server: str, tool: str, arguments: str, result: str, error: str, seconds: float):
        """The gateway ran ``tool`` of ``server`` for the model: what it was given, and its
        ``result`` or ``error``, each cut to :data:`SHOWN` characters."""
        self.runs.append(
            {
                "server": server,
                "tool": tool,
                "arguments": arguments[:SHOWN],
                "output": result[:SHOWN],
                "error": error[:SHOWN],
                "cut": max(len(arguments), len(result), len(error)) > SHOWN,
                "ms": round(seconds * 1000, 3),
            }
        )

    def placed(self, thread: Optional[str], replica: str, slot: Optional[int]) -> None:
        self.thread, self.replica, self.slot = thread, replica, slot

    def gather_facts(self) -> dict:
        """What the exchange keeps of it, the server asked now for its rendering where it
        rendered the prompt (a failure to tell it is said in ``prompt_by``)."""
        prompt = self.prompt
        if prompt is None and self.render is not None:
            try:
                prompt = self.render()
            except Exception as exc:  # the inspector's loss, never the request's
                prompt = None
                self.prompt_by = f"{SERVER} (unreadable: {type(exc).__name__})"
        return {
            "thread": self.thread,
            "replica": self.replica,
            "slot": self.slot,
            "upstream_route": self.route,
            "upstream_body": self.body,
            "prompt": prompt,
            "prompt_by": self.prompt_by,
            "raw": None if self.raw is None else "".join(self.raw),
            "tool_runs": self.runs,
        }
