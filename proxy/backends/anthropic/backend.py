"""The anthropic backend: chats sent on to a server that speaks Anthropic's Messages API
(Anthropic's own, an Anthropic-compatible endpoint, llama-server's ``/v1/messages``),
translated both ways (:mod:`.payload`, :mod:`.reply`); what the API has no field for is
refused by name."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

from proxy.backends.anthropic import reply
from proxy.backends.anthropic.payload import PATH, filled, messages_body, refusal, unsent
from proxy.backends.wire.relay import Relay
from proxy.core.errors import InvalidRequestError
from proxy.core.types import Chunk, Completion, GenerationRequest


class AnthropicBackend(Relay):
    """One Messages API server (a replica) of one model."""

    name = "anthropic"
    path = PATH
    models_path = "/v1/models"  # the base URL is the host, without /v1
    owned_by = "anthropic-compatible"

    def refusal(self, request: GenerationRequest) -> Optional[InvalidRequestError]:
        return refusal(request, self.client.label, self.filters.strip)

    def unsent(self, request: GenerationRequest) -> Iterable[str]:
        return unsent(request)

    def filled(self, request: GenerationRequest) -> tuple:
        return filled(request)

    def body(self, request: GenerationRequest, *, stream: bool) -> dict:
        return messages_body(request, self.upstream_model, stream=stream)

    def whole(self, answer: object, request: GenerationRequest) -> Completion:
        return reply.completion(answer, self.client.label)

    def chunks(self, lines: Iterable[list], request: GenerationRequest) -> Iterator[Chunk]:
        return reply.stream_chunks(lines, self.client.label)
