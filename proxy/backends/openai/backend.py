"""The openai backend: a model on a server that speaks OpenAI's API (vLLM, SGLang, LM
Studio, Ollama's ``/v1``, llama-swap, LiteLLM, another oai-proxy, a cloud API). Chats go to
its ``/chat/completions`` and raw prompts to its ``/completions`` (:mod:`.payload`), their
answers read as llama-server's chat layer's are (:mod:`proxy.backends.wire.chatparse`) and as
the legacy completions write them (:mod:`.promptparse`); embeddings go to its
``/embeddings`` (:mod:`.vectors`) and reranking to its ``/rerank``
(:mod:`proxy.backends.wire.ranking`), each under the name the upstream knows the model by.
Which of these the upstream serves is declared or learned (:mod:`.endpoints`); what it
cannot honour is refused by name."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence

from proxy.backends.admission import Admission
from proxy.backends.openai import promptparse, vectors
from proxy.backends.openai.endpoints import OF_PATH, PATHS, Endpoints
from proxy.backends.openai.payload import PATH, chat_body, prompt_body, refusal, unsent
from proxy.backends.wire import chatparse, ranking
from proxy.backends.wire.client import MissingRoute, UpstreamClient
from proxy.backends.wire.relay import Relay
from proxy.config.catalog import Filters
from proxy.core.caller import NOBODY, Caller
from proxy.core.errors import ProxyError
from proxy.core.types import Chunk, Completion, Embeddings, GenerationRequest, Ranking


class OpenAIBackend(Relay):
    """One OpenAI-compatible server (a replica) of one model."""

    name = "openai"
    path = PATH
    models_path = "/models"  # under the base URL, which ends in /v1
    owned_by = "openai-compatible"

    def __init__(
        self,
        client: UpstreamClient,
        admission: Admission,
        served_name: str,
        upstream_model: str,
        *,
        filters: Filters = Filters(),
        endpoints: Sequence[str] = (),
    ) -> None:
        """``endpoints``: the routes the models file says the server has (empty: it does
        not say, and they are learned)."""
        super().__init__(client, admission, served_name, upstream_model, filters)
        self.endpoints = Endpoints(served_name, endpoints)

    def refusal(self, request: GenerationRequest) -> Optional[ProxyError]:
        return self.endpoints.refusal(_endpoint(request)) or refusal(
            request, self.client.label, self.filters.strip
        )

    def unsent(self, request: GenerationRequest) -> Iterable[str]:
        return (name for name, _ in unsent(request))

    def route(self, request: GenerationRequest) -> str:
        return PATHS[_endpoint(request)]

    def missing(self, exc: MissingRoute) -> ProxyError:
        endpoint = OF_PATH.get(exc.path)
        return exc if endpoint is None else self.endpoints.lacks(endpoint, exc.message)

    def capabilities(self) -> tuple:
        return self.endpoints.capabilities()

    def body(self, request: GenerationRequest, *, stream: bool) -> dict:
        if request.is_chat:
            return chat_body(request, self.upstream_model, stream=stream)
        return prompt_body(request, self.upstream_model, stream=stream)

    def whole(self, answer: object, request: GenerationRequest) -> Completion:
        if request.is_chat:
            return chatparse.completion(answer, self.client.label, request.logprobs)
        return promptparse.completion(answer, self.client.label, request.logprobs)

    def chunks(self, lines: Iterable[list], request: GenerationRequest) -> Iterator[Chunk]:
        if request.is_chat:
            return chatparse.stream_chunks(lines, self.client.label, request.logprobs)
        return promptparse.stream_chunks(lines, self.client.label, request.logprobs)

    def embed(
        self, inputs: Sequence[str], model: Optional[str] = None, caller: Caller = NOBODY
    ) -> Embeddings:
        with self.client.blamed():
            path = self._path_of("embeddings")
            answer = self.answer(path, vectors.body(inputs, self.upstream_model), caller)
            self.endpoints.served("embeddings")
            return vectors.embeddings(answer, len(inputs), self.client.label, path)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        model: Optional[str] = None,
        caller: Caller = NOBODY,
    ) -> Ranking:
        body = {"model": self.upstream_model, **ranking.payload(query, documents)}
        with self.client.blamed():
            path = self._path_of("rerank")
            answer = self.answer(path, body, caller)
            self.endpoints.served("rerank")
            return ranking.ranking(answer, len(documents), self.client.label, path)

    def _path_of(self, endpoint: str) -> str:
        """The path of ``endpoint``, a route other than a generation's, unless the server
        is known to lack it."""
        problem = self.endpoints.refusal(endpoint)
        if problem is not None:
            raise problem
        return PATHS[endpoint]


def _endpoint(request: GenerationRequest) -> str:
    return "chat" if request.is_chat else "completions"
