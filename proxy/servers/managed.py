"""A model whose server the proxy runs: the server.cpp backend, started when first needed,
each conversation sent to the slot that holds its KV cache (restored from disk first when the
server saved it before it last stopped)."""
from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from typing import Callable, Iterator, Optional, Sequence, TypeVar

from proxy.backends.base import Backend
from proxy.core.errors import UNREACHABLE, UpstreamUnavailableError
from proxy.core.conversation import conversation_key
from proxy.core.types import (Chunk, Completion, Embeddings, GenerationRequest, Health,
                              ModelCard, Ranking)

T = TypeVar("T")
RESTARTS = 3  # times a request that never reached its server waits for a restart
DYING = 1.0  # seconds a server that stopped answering is given to be seen dead


class ManagedBackend(Backend):
    """Every call holds the server running, starting it first if it is not.

    A request that never reached the server, because it died while the request waited for
    a slot, waits for the restart and goes again, as many times as :data:`RESTARTS`.
    """

    name = "servercpp"

    def __init__(self, server, backend: Backend, card: Optional[ModelCard] = None) -> None:
        """``server``: a :class:`~proxy.servers.processes.ManagedServer`, or a gunicorn
        worker's :class:`~proxy.servers.remote.RemoteServer` handle on one; ``card``: what
        its model file says, for the time before its server has been asked."""
        self.server = server
        self.backend = backend
        self.card = card

    def complete(self, request: GenerationRequest) -> Completion:
        key = conversation_key(request)

        def answer() -> Completion:
            placed = self._placed(request, key)
            completion = self.backend.complete(placed)
            self.server.served(key, _slot(completion.slot, placed))
            return completion

        return self._serving(answer)

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        key = conversation_key(request)
        for attempt in range(RESTARTS + 1):
            with self.server.using():
                placed = self._placed(request, key)
                chunks = self.backend.stream(placed)
                try:
                    first = next(chunks)
                except UpstreamUnavailableError as exc:
                    chunks.close()
                    if not self._died_under(exc, attempt):
                        raise
                    continue
                with closing(chunks):
                    yield first
                    for chunk in chunks:
                        if chunk.finish_reason is not None:
                            self.server.served(key, _slot(chunk.slot, placed))
                        yield chunk
                return

    def _placed(self, request: GenerationRequest, key: str) -> GenerationRequest:
        """The request in the slot that holds its conversation's cache, restored there
        first from disk when the server saved it before it last stopped. A chat is named a
        slot even when new (it goes to the server's chat layer, whose answers do not say
        which slot served them, and its cache is saved from there); a raw prompt's answer
        says."""
        slot = self.server.prepare(key, request.slot, new=request.is_chat)
        return request if slot is None else request.in_slot(slot)

    def count_tokens(self, request: GenerationRequest) -> int:
        return self._serving(lambda: self.backend.count_tokens(request))

    def tokenize(self, text: str, model: Optional[str] = None) -> list:
        return self._serving(lambda: self.backend.tokenize(text))

    def detokenize(self, tokens: Sequence[int], model: Optional[str] = None) -> str:
        return self._serving(lambda: self.backend.detokenize(tokens))

    def embed(self, inputs: Sequence[str], model: Optional[str] = None) -> Embeddings:
        return self._serving(lambda: self.backend.embed(inputs))

    def rerank(self, query: str, documents: Sequence[str],
               model: Optional[str] = None) -> Ranking:
        return self._serving(lambda: self.backend.rerank(query, documents, model))

    def load(self) -> tuple:
        return self.backend.load()

    def finds_slots(self) -> bool:
        return self.backend.finds_slots()

    def describe(self) -> dict:
        return self.backend.describe()

    def models(self) -> list:
        """The model, with its server's card once the server has been asked, else its
        file's."""
        info = self.backend.models()[0]
        if info.card.digest or self.card is None:
            return [info]
        return [replace(info, card=self.card)]

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

    # -- holding the server ----------------------------------------------------------------

    def _serving(self, call: Callable[[], T]) -> T:
        """``call()`` with the server held, started first if need be."""
        for attempt in range(RESTARTS + 1):
            with self.server.using():
                try:
                    return call()
                except UpstreamUnavailableError as exc:
                    if not self._died_under(exc, attempt):
                        raise
        raise AssertionError("the last attempt returns or raises")

    def _died_under(self, exc: UpstreamUnavailableError, attempt: int) -> bool:
        """Whether ``exc`` is a request that never reached the server because it died (while
        the request waited for a slot): worth another turn, which starts it again."""
        return exc.code == UNREACHABLE and attempt < RESTARTS and self.server.gone(DYING)


def _slot(answered: Optional[int], placed: GenerationRequest) -> Optional[int]:
    """The slot that served a turn: as the answer says (``/completion``), else as the
    request named it (a chat answer says nothing of slots)."""
    return answered if answered is not None else placed.slot
