"""The openai backend: chats sent on to a server that speaks OpenAI's chat completions
(vLLM, SGLang, LM Studio, Ollama's ``/v1``, llama-swap, LiteLLM, another oai-proxy, a cloud
API), whole or streamed, their answers read as llama-server's chat layer's are
(:mod:`proxy.backends.wire.chatparse`).

The upstream renders the prompt, runs its own parser for tool calls and thoughts, and places
each request itself: the proxy names no slot and counts no token (it has no tokenizer of the
upstream's model). What it cannot honour is refused by name (:mod:`.payload`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from proxy.backends.admission import Admission
from proxy.backends.base import Backend
from proxy.backends.openai.payload import PATH, chat_body, refusal
from proxy.backends.wire import chatparse
from proxy.backends.wire.client import UpstreamClient
from proxy.core.errors import ProxyError
from proxy.core.types import Chunk, Completion, GenerationRequest, Health, ModelCard, ModelInfo

HEALTH_TIMEOUT = 5.0  # seconds the model list may take to say the upstream is there


class OpenAIBackend(Backend):
    """One OpenAI-compatible upstream (a replica) of one model."""

    name = "openai"

    def __init__(
        self, client: UpstreamClient, admission: Admission, served_name: str, upstream_model: str
    ) -> None:
        """``upstream_model``: the name the upstream knows the model by, which
        ``served_name`` stands for here."""
        self.client = client
        self.admission = admission
        self.served_name = served_name
        self.upstream_model = upstream_model

    def complete(self, request: GenerationRequest) -> Completion:
        with self.client.blamed():
            self._check(request)
            body = chat_body(request, self.upstream_model, stream=False)
            self._tell(request, body)
            answer = self.admission.run(
                lambda: self.client.post_json(PATH, body, caller=request.caller), request.caller
            )
            return chatparse.completion(answer, self.client.label, request.logprobs)

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        with self.client.blamed():
            self._check(request)
            yield from self.admission.stream(lambda: self._chunks(request), request.caller)

    def _chunks(self, request: GenerationRequest) -> Iterator[Chunk]:
        body = chat_body(request, self.upstream_model, stream=True)
        self._tell(request, body)
        with contextlib.ExitStack() as stack:
            lines = stack.enter_context(self.client.stream(PATH, body, caller=request.caller))
            yield from chatparse.stream_chunks(lines, self.client.label, request.logprobs)

    def _check(self, request: GenerationRequest) -> None:
        problem = refusal(request, self.client.label)
        if problem is not None:
            raise problem

    def _tell(self, request: GenerationRequest, body: dict) -> None:
        """Tell the inspector what went upstream (the upstream renders the prompt and does
        not show it)."""
        if request.caller.side is not None:
            request.caller.side.sent(PATH, body)

    def models(self) -> list:
        return [
            ModelInfo(
                self.served_name,
                owned_by="openai-compatible",
                card=ModelCard(capabilities=("completion", "tools")),
            )
        ]

    def health(self) -> Health:
        """Whether the upstream lists its models (which every OpenAI-compatible server
        does, behind the same key as its chats)."""
        detail = {"upstream": self.client.label, "model": self.served_name}
        try:
            with self.client.blamed():
                self.client.raise_for_status(self.client.get("/models", timeout=HEALTH_TIMEOUT))
        except ProxyError as exc:  # unreachable, or there and refusing
            return Health(False, self.name, {**detail, "error": exc.message})
        return Health(True, self.name, {**detail, **self.admission.snapshot()})

    def load(self) -> tuple:
        return self.admission.busy()

    def describe(self) -> dict:
        return {"upstream_model": self.upstream_model, **self.admission.snapshot()}

    def finds_slots(self) -> bool:
        """The upstream places its requests itself; the proxy names no slot."""
        return True

    def close(self) -> None:
        self.client.close()
