"""The anthropic backend: a model on a server that speaks Anthropic's Messages API
(Anthropic's own, an Anthropic-compatible endpoint, llama-server's ``/v1/messages``). A
request goes one of two ways (:mod:`.ways`), chosen once, as it comes: a chat of another
API translated both ways (:mod:`.payload`, :mod:`.reply`), what the API has no field for
refused by name, and raw prompts too; or, from a client that speaks the Messages API
itself, its own body, neither translated nor refused, sent on as it wrote it, and the
server's answer passed back as it wrote it. Embeddings and reranking are refused: the API
has no route for them."""

from __future__ import annotations

from typing import Optional, Sequence

from proxy.backends.anthropic.payload import API
from proxy.backends.anthropic.ways import TranslatedWay, VerbatimWay
from proxy.backends.wire.relay import Relay
from proxy.backends.wire.way import Way
from proxy.core.answers import Embeddings, Ranking
from proxy.core.caller import NOBODY, Caller
from proxy.core.errors import InvalidRequestError, NotImplementedByBackendError
from proxy.core.types import GenerationRequest


class AnthropicBackend(Relay):
    """One Messages API server (a replica) of one model."""

    name = "anthropic"
    models_path = "/v1/models"  # the base URL is the host, without /v1
    owned_by = "anthropic-compatible"

    def way(self, request: GenerationRequest) -> Way:
        """The client's own body when it spoke the Messages API; else a translation."""
        own = request.clients_own(API)
        if own is not None:
            return VerbatimWay(own, self.client.label, self.upstream_model)
        return TranslatedWay(request, self.client.label, self.upstream_model, self.filters.strip)

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
