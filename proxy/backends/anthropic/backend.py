"""The anthropic backend: chats sent on to a server that speaks Anthropic's Messages API
(Anthropic's own, an Anthropic-compatible endpoint, llama-server's ``/v1/messages``),
translated both ways (:mod:`.payload`, :mod:`.reply`); what the API has no field for is
refused by name, and so are raw prompts, embeddings and reranking, which it has no route
for. A client that speaks the Messages API itself is neither translated nor refused: its
body goes on as it wrote it, and the server's answer comes back as it wrote it."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Iterator, Optional, Sequence

from proxy.backends.anthropic import reply
from proxy.backends.anthropic.payload import (
    COUNT_PATH,
    PATH,
    clients_own,
    filled,
    messages_body,
    refusal,
    unsent,
    verbatim_body,
)
from proxy.backends.wire.relay import Relay
from proxy.core.caller import NOBODY, Caller
from proxy.core.errors import InvalidRequestError, NotImplementedByBackendError
from proxy.core.types import Chunk, Completion, Embeddings, GenerationRequest, Ranking


class AnthropicBackend(Relay):
    """One Messages API server (a replica) of one model."""

    name = "anthropic"
    path = PATH
    models_path = "/v1/models"  # the base URL is the host, without /v1
    owned_by = "anthropic-compatible"

    def refusal(self, request: GenerationRequest) -> Optional[InvalidRequestError]:
        if _verbatim(request):
            return None  # the server judges the client's own body
        return refusal(request, self.client.label, self.filters.strip)

    def unsent(self, request: GenerationRequest) -> Iterable[str]:
        return () if _verbatim(request) else unsent(request)

    def filled(self, request: GenerationRequest) -> tuple:
        return () if _verbatim(request) else filled(request)

    def body(self, request: GenerationRequest, *, stream: bool) -> dict:
        verbatim = verbatim_body(request, self.upstream_model, stream=stream)
        if verbatim is not None:
            return verbatim
        return messages_body(request, self.upstream_model, stream=stream)

    def count_tokens(self, request: GenerationRequest) -> int:
        """A Messages client's prompt, counted by the server (the proxy has no tokenizer
        of its model)."""
        body = verbatim_body(request, self.upstream_model)
        if body is None:
            return super().count_tokens(request)
        with self.client.blamed():
            answer = self.client.post_json(COUNT_PATH, body, caller=request.caller)
        return reply.counted(answer, self.client.label)

    def whole(self, answer: object, request: GenerationRequest) -> Completion:
        completion = reply.completion(answer, self.client.label)
        if _verbatim(request):
            return replace(completion, verbatim=answer)
        return completion

    def chunks(self, lines: Iterable[list], request: GenerationRequest) -> Iterator[Chunk]:
        if _verbatim(request):
            return reply.verbatim_chunks(lines, self.client.label)
        return reply.stream_chunks(lines, self.client.label)

    def embed(
        self, inputs: Sequence[str], model: Optional[str] = None, caller: Caller = NOBODY
    ) -> Embeddings:
        raise NotImplementedByBackendError(
            f"the model {self.served_name!r} has no embeddings: {self.client.label} speaks "
            f"Anthropic's Messages API, which has none"
        )

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        model: Optional[str] = None,
        caller: Caller = NOBODY,
    ) -> Ranking:
        raise InvalidRequestError(
            f"the model {self.served_name!r} does not rerank: {self.client.label} speaks "
            f"Anthropic's Messages API, which has no reranking",
            param="model",
        )


def _verbatim(request: GenerationRequest) -> bool:
    """Whether the client spoke the Messages API, so its body goes on as it wrote it."""
    return clients_own(request) is not None
