"""A model whose server the proxy runs: the server.cpp backend, started when first needed."""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

from proxy.backends.base import Backend
from proxy.types import Chunk, Completion, Embeddings, GenerationRequest, Health


class ManagedBackend(Backend):
    """Every call holds the server running, starting it first if it is not."""

    name = "servercpp"

    def __init__(self, server, backend: Backend) -> None:
        """``server``: a :class:`~proxy.fleet.processes.ManagedServer`, or a gunicorn
        worker's :class:`~proxy.fleet.remote.RemoteServer` handle on one."""
        self.server = server
        self.backend = backend

    def complete(self, request: GenerationRequest) -> Completion:
        with self.server.using():
            return self.backend.complete(request)

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        with self.server.using():
            yield from self.backend.stream(request)

    def tokenize(self, text: str, model: Optional[str] = None) -> list:
        with self.server.using():
            return self.backend.tokenize(text)

    def detokenize(self, tokens: Sequence[int], model: Optional[str] = None) -> str:
        with self.server.using():
            return self.backend.detokenize(tokens)

    def embed(self, inputs: Sequence[str], model: Optional[str] = None) -> Embeddings:
        with self.server.using():
            return self.backend.embed(inputs)

    def load(self) -> tuple:
        return self.backend.load()

    def describe(self) -> dict:
        return self.backend.describe()

    def starting(self, model: Optional[str] = None) -> bool:
        return not self.server.is_ready()

    def models(self) -> list:
        return self.backend.models()

    def health(self) -> Health:
        """A stopped server can serve (it starts on demand); a failed one says why."""
        managed = self.server.snapshot()
        if managed["state"] == "ready":
            report = self.backend.health()
            return Health(report.ok, report.backend, {**report.detail, "managed": managed})
        return Health(managed["state"] != "failed", self.name,
                      {"upstream": managed["url"], "managed": managed,
                       **({"error": managed["error"]} if "error" in managed else {})})

    def close(self) -> None:
        self.backend.close()
