"""The openai backend: chats sent on to a server that speaks OpenAI's chat completions
(vLLM, SGLang, LM Studio, Ollama's ``/v1``, llama-swap, LiteLLM, another oai-proxy, a cloud
API), their answers read as llama-server's chat layer's are
(:mod:`proxy.backends.wire.chatparse`); what it cannot honour is refused by name
(:mod:`.payload`)."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

from proxy.backends.openai.payload import PATH, chat_body, refusal, unsent
from proxy.backends.wire import chatparse
from proxy.backends.wire.relay import Relay
from proxy.core.errors import InvalidRequestError
from proxy.core.types import Chunk, Completion, GenerationRequest


class OpenAIBackend(Relay):
    """One OpenAI-compatible server (a replica) of one model."""

    name = "openai"
    path = PATH
    models_path = "/models"  # under the base URL, which ends in /v1
    owned_by = "openai-compatible"

    def refusal(self, request: GenerationRequest) -> Optional[InvalidRequestError]:
        return refusal(request, self.client.label, self.filters.strip)

    def unsent(self, request: GenerationRequest) -> Iterable[str]:
        return (name for name, _ in unsent(request))

    def body(self, request: GenerationRequest, *, stream: bool) -> dict:
        return chat_body(request, self.upstream_model, stream=stream)

    def whole(self, answer: object, request: GenerationRequest) -> Completion:
        return chatparse.completion(answer, self.client.label, request.logprobs)

    def chunks(self, lines: Iterable[list], request: GenerationRequest) -> Iterator[Chunk]:
        return chatparse.stream_chunks(lines, self.client.label, request.logprobs)
