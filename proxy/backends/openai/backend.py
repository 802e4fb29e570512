"""The openai backend: a model on a server that speaks OpenAI's API (vLLM, SGLang, LM
Studio, Ollama's ``/v1``, llama-swap, LiteLLM, another oai-proxy, a cloud API). Chats go to
its ``/chat/completions`` and raw prompts to its ``/completions``, each its own way
(:mod:`.ways`), chosen once, as the request comes; embeddings go to its
``/embeddings`` (:mod:`.vectors`) and reranking to its ``/rerank``
(:mod:`proxy.backends.wire.ranking`), each under the name the upstream knows the model by.
Which of these the upstream serves is declared or learned (:mod:`.endpoints`); what it
cannot honour is refused by name. One that declares OpenAI's Responses API takes a
Responses client's own body there, where the proxy keeps nothing of it
(:mod:`.responses`)."""

from __future__ import annotations

import itertools
import json
from typing import Iterator, Optional, Sequence

from proxy.backends.openai import responses, vectors
from proxy.backends.openai.endpoints import OF_PATH, PATHS, Endpoints
from proxy.backends.openai.responses import ResponsesWay
from proxy.backends.openai.ways import ChatWay, PromptWay
from proxy.backends.wire import form, ranking
from proxy.backends.wire.client import MissingRoute, UpstreamClient
from proxy.backends.wire.relay import Relay
from proxy.backends.wire.way import Way
from proxy.config.catalog import Filters
from proxy.config.price import Price
from proxy.core.answers import Embeddings, Ranking, told_tokens
from proxy.core.audio import Speech, Transcript, Transcription, told_usage
from proxy.core.caller import NOBODY, Caller
from proxy.core.errors import ProxyError
from proxy.core.pictures import Drawing, Pictures
from proxy.core.types import GenerationRequest
from proxy.queue.admission import Admission


class OpenAIBackend(Relay):
    """One OpenAI-compatible server (a replica) of one model."""

    name = "openai"
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
        price: Optional[Price] = None,
    ) -> None:
        """``endpoints``: the routes the models file says the server has (empty: it does
        not say, and they are learned); ``price``: the model's, which judges the fields of
        a body that change what the server charges (:mod:`proxy.config.price`)."""
        super().__init__(client, admission, served_name, upstream_model, filters, price)
        self.endpoints = Endpoints(served_name, endpoints)

    def way(self, request: GenerationRequest) -> Way:
        """A chat to the chat route, a raw prompt to the legacy completions; a Responses
        client's own body to the upstream's Responses API, where it declares one."""
        own = request.verbatim
        if own is not None and own.api == responses.API and "responses" in self.endpoints.declared:
            return ResponsesWay(own.body, self.client.label, self.upstream_model)
        kind = ChatWay if request.is_chat else PromptWay
        return kind(
            request,
            self.client.label,
            self.upstream_model,
            self.filters.strip,
            self.endpoints.refusal(kind.endpoint),
        )

    def missing(self, exc: MissingRoute) -> ProxyError:
        endpoint = OF_PATH.get(exc.path)
        return exc if endpoint is None else self.endpoints.lacks(endpoint, exc.message)

    def capabilities(self) -> tuple:
        return self.endpoints.capabilities()

    def embed(
        self, inputs: Sequence[str], model: Optional[str] = None, caller: Caller = NOBODY
    ) -> Embeddings:
        with self.client.blamed():
            path = self._path_of("embeddings")
            answer = self.send(path, vectors.body(inputs, self.upstream_model), caller)
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
            answer = self.send(path, body, caller)
            self.endpoints.served("rerank")
            return ranking.ranking(answer, len(documents), self.client.label, path)

    def transcribe(self, asked: Transcription, caller: Caller = NOBODY) -> Transcript:
        """The form as it came, under the name the upstream knows the model by."""
        reply = self._posted(asked.task, self._form(asked), caller)
        json_asked = asked.response_format in ("json", "verbose_json")
        return Transcript(reply.content, told_usage(reply.content) if json_asked else None)

    def _form(self, asked: Transcription) -> tuple:
        """``(content type, body)``: the transcription's form as it came, under the name the
        upstream knows the model by."""
        audio = asked.audio
        return form.encoded({**asked.fields, "model": self.upstream_model,
                             "file": (audio.filename, audio.content_type, audio.data)})  # fmt: skip

    def draw(self, asked: Drawing, caller: Caller = NOBODY) -> Pictures:
        """The body (a generation's) or the form (an edit's, its pictures byte for byte) as
        it came, under the name the upstream knows the model by; the answer as it was
        written, its tokens read where it tells them."""
        fields = {**asked.fields, "model": self.upstream_model}
        if asked.task == "edits":
            body = form.with_uploads(fields, asked.uploads)
        else:
            body = ("application/json", json.dumps(fields).encode())
        reply = self._posted(f"image_{asked.task}", body, caller)
        return Pictures(reply.content, told_tokens(reply.content))

    def _posted(self, endpoint: str, body: tuple, caller: Caller):
        """The answer to ``body``, already encoded (``(content type, bytes)``), at
        ``endpoint``, whole, taking a slot as a generation does."""
        content_type, data = body
        with self.client.blamed():
            path = self._path_of(endpoint)
            try:
                reply = self.admission.run(
                    lambda: self.client.post_encoded(path, content_type, data, caller=caller),
                    caller,
                )
            except MissingRoute as exc:
                raise self.missing(exc) from None
            self.endpoints.served(endpoint)
        return reply

    def speak(self, asked: Speech, caller: Caller = NOBODY) -> Iterator[bytes]:
        """The body as it came, under the name the upstream knows the model by; its audio
        passed on as it comes, never held whole."""
        return self._streamed("speech", {**asked.body, "model": self.upstream_model}, caller)

    def stream_transcript(self, asked: Transcription, caller: Caller = NOBODY) -> Iterator[bytes]:
        """The form as it came, under the name the upstream knows the model by; the
        transcript's events passed on as they come."""
        return self._streamed(asked.task, self._form(asked), caller)

    def _streamed(self, endpoint: str, body, caller: Caller) -> Iterator[bytes]:
        """The answer to ``body`` (JSON, or an encoded form) at ``endpoint``, its bytes as
        they come; the upstream reached (or its refusal raised) before this returns."""
        with self.client.blamed():
            path = self._path_of(endpoint)

            def pieces() -> Iterator[bytes]:
                with self.client.stream_bytes(path, body, caller=caller) as read:
                    yield from read

            streamed = self.admission.stream(pieces, caller)
            try:
                first = next(streamed, b"")
            except MissingRoute as exc:
                raise self.missing(exc) from None
            self.endpoints.served(endpoint)
        return itertools.chain((first,), streamed)

    def _path_of(self, endpoint: str) -> str:
        """The path of ``endpoint``, a route other than a generation's, unless the server
        is known to lack it."""
        problem = self.endpoints.refusal(endpoint)
        if problem is not None:
            raise problem
        return PATHS[endpoint]
