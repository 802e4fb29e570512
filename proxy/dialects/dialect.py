"""What every client API is to the proxy: a :class:`Dialect`, and the one :class:`Ask` its
bodies become.

Each dialect (``openai.chat``, ``openai.completions``, ``anthropic``, ``responses``,
``ollama.chat``, ``ollama.generate``, ``glm``) is a module whose functions are the
protocol's. The API serves every one the same way
(:func:`proxy.api.serve.serve`): parse the body, run its requests on the core, render the
answer whole or as a stream.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol, Sequence

from proxy.core.errors import ProxyError
from proxy.core.images import Bounds
from proxy.core.types import GenerationRequest
from proxy.dialects.streaming import EventRenderer


@dataclass(frozen=True)
class Limits:
    """What the operator lets one request ask for."""

    max_choices: int = 8  # ``n`` times the prompts
    max_batch: int = 256  # inputs of one embeddings request
    max_image_size: int = 20 * 1024 * 1024  # bytes of one image
    max_image_pixels: int = 4096 * 4096  # pixels one image may declare
    image_urls: bool = False  # images given by http(s) URL are fetched (else refused)
    max_tools: int = 128  # tools one request offers
    max_schema_size: int = 32 * 1024  # bytes of one schema's JSON (a tool's, a format's)

    @property
    def image(self) -> Bounds:
        """What one image may be, as :mod:`proxy.core.images` checks it."""
        return Bounds(self.max_image_size, self.max_image_pixels)


@dataclass(frozen=True)
class Ask:
    """A client's request as the core runs it: its generations, each asked ``n`` times,
    whether the answer streams, and what the dialect must remember to render it (``notes``,
    of the dialect's own type)."""

    requests: tuple
    n: int = 1
    stream: bool = False
    notes: Any = None

    @property
    def request(self) -> GenerationRequest:
        """The first (for most dialects, the only) generation."""
        return self.requests[0]

    @property
    def model(self):
        return self.requests[0].model

    def amended(self, amend: Callable[[GenerationRequest], GenerationRequest]) -> "Ask":
        """This ask with ``amend(request)`` in place of each of its requests."""
        return replace(self, requests=tuple(amend(request) for request in self.requests))


class Dialect(Protocol):
    """One client API, both ways, free of I/O."""

    patient: bool  # its streams keep a client company while a slot is awaited, too

    def parse(self, body: Any, limits: Limits) -> Ask:
        """The body as an :class:`Ask`; a bad field is a 400 naming it."""

    def new_id(self) -> str:
        """A new answer's id, as the API writes them."""

    def render(self, ask: Ask, id: str, model: str, completions: Sequence) -> dict:
        """The whole answer, one completion per choice."""

    def stream(self, ask: Ask, id: str, model: str) -> EventRenderer:
        """The renderer of the answer's stream."""

    def error_body(self, error: ProxyError) -> dict:
        """An error, in the API's own shape."""

    def headers(self, ask: Ask) -> dict:
        """Response headers the answer carries (what was left out of the request)."""
