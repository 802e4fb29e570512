"""What the views share: the app's state, and the router they send every request to."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Protocol, Sequence

from flask import current_app, g

from proxy.access.gate import Access
from proxy.access.stored import StoredResponses
from proxy.config import Settings
from proxy.draining import Drain
from proxy.ops.history import History
from proxy.ops.metrics import Metrics
from proxy.types import Chunk, Completion, Embeddings, GenerationRequest, Health, ModelInfo


class Router(Protocol):
    """What the API asks of the fleet: the one place every request is sent, whatever model
    it names (:class:`proxy.fleet.fleet.Fleet`)."""

    concurrent: bool

    def complete(self, request: GenerationRequest) -> Completion: ...

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]: ...

    def starting(self, model: Optional[str] = None) -> bool: ...

    def count_tokens(self, request: GenerationRequest) -> int: ...

    def tokenize(self, text: str, model: Optional[str] = None) -> list: ...

    def detokenize(self, tokens: Sequence[int], model: Optional[str] = None) -> str: ...

    def embed(self, inputs: Sequence[str], model: Optional[str] = None) -> Embeddings: ...

    def models(self) -> list[ModelInfo]: ...

    def model_id(self, model: Optional[str]) -> str:
        """The id the answer names: the model asked for, else the default model's."""

    def model_label(self, model: Optional[str]) -> str:
        """The id metrics, usage and keys count ``model`` under; never a client's text."""

    def health(self) -> Health: ...

    def status(self, checked: bool = False) -> list: ...

    def server_of(self, name: str): ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ProxyState:
    settings: Settings
    router: Router
    access: Access
    responses: StoredResponses  # the Responses API's store
    metrics: Optional[Metrics]  # None: --metrics off
    history: Optional[History]  # the metrics' last minutes, for the fleet page; None: off
    drain: Drain = field(default_factory=Drain)


def get_state() -> ProxyState:
    return current_app.extensions["proxy"]


def served_model(requested: Optional[str]) -> str:
    """The model the answer names (the one asked for, else the default), noted for the
    request's metrics and usage."""
    g.model = requested
    return requested or get_state().settings.model_name or get_state().router.model_id(None)
