"""The anthropic backend: chats sent on to a server that speaks Anthropic's Messages API
(Anthropic's own, an Anthropic-compatible endpoint, llama-server's ``/v1/messages``),
translated both ways (:mod:`.payload`, :mod:`.reply`); what the API has no field for is
refused by name, and so are raw prompts, embeddings and reranking, which it has no route
for."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence

from proxy.backends.anthropic import reply
from proxy.backends.anthropic.payload import PATH, messages_body, refusal
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
        return refusal(request, self.client.label)

    def body(self, request: GenerationRequest, *, stream: bool) -> dict:
        return messages_body(request, self.upstream_model, stream=stream)

    def whole(self, answer: object, request: GenerationRequest) -> Completion:
        return reply.completion(answer, self.client.label)

    def chunks(self, lines: Iterable[list], request: GenerationRequest) -> Iterator[Chunk]:
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
