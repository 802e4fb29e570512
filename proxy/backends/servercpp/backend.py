"""The servercpp backend: generation requests over server.cpp's HTTP API, whichever kind answers.

Chats go where the server renders them best. A server with its own chat layer (current
llama-server and the bundled engine, with their Jinja templates on) gets them on its
OpenAI chat route (:mod:`.chatroute`): its template, its thinking switch, its tool-call parser
for the model's family, wherever it honours all the chat asks (:mod:`.route`). Any other
chat, any other server (PowerInfer's, llama.cpp's of 2023, a llama-server without Jinja),
and any template the operator names, gets a prompt the proxy renders
(:mod:`proxy.backends.servercpp.prompting`) on ``POST /completion`` (:mod:`.completionroute`),
and the proxy reads the calls and thoughts back itself. Raw prompts always go to
``/completion``, and so does a client's own ``/completion`` body, as it came
(:mod:`.nativeroute`). This module only checks a request, picks its route and answers what is
not a generation (tokens, embeddings, ranking, health).
"""

from __future__ import annotations

import itertools
from typing import Iterator, Optional, Sequence, Union

from proxy.backends.base import Backend, not_a_reranker
from proxy.backends.servercpp import budget, embedding, hearing, unread
from proxy.backends.servercpp.chatroute import ChatRoute
from proxy.backends.servercpp.completionroute import CompletionRoute
from proxy.backends.servercpp.detect import DETECT_TIMEOUT, ServerFacts
from proxy.backends.servercpp.embedding import TokenClient
from proxy.backends.servercpp.kinds import CHAT_LAYER, INFILL, route
from proxy.backends.servercpp.known import KnownServer
from proxy.backends.servercpp.nativeroute import API, NativeRoute
from proxy.backends.servercpp.prompting import TemplateChoice
from proxy.backends.wire import ranking
from proxy.backends.wire.client import UpstreamClient
from proxy.core import images
from proxy.core.answers import Chunk, Completion, Embeddings, Health, ModelCard, ModelInfo, Ranking
from proxy.core.audio import Transcript, Transcription
from proxy.core.caller import NOBODY, Caller
from proxy.core.errors import InvalidRequestError, UpstreamError, UpstreamUnavailableError
from proxy.core.types import GenerationRequest
from proxy.queue.admission import Admission


class ServerCppBackend(Backend):
    """Translate to llama.cpp's or PowerInfer's HTTP API, whichever kind of server answers.

    The server's kind is detected on first contact and forgotten whenever the upstream cannot
    be reached, so a server restarted on another build is detected afresh.
    """

    name = "servercpp"

    def __init__(
        self,
        client: UpstreamClient,
        templates: TemplateChoice,
        admission: Admission,
        served_name: str = "",
        embedding: Optional[tuple] = None,
        reasoning: str = "auto",
    ) -> None:
        """``templates``: how chats become prompts, once the server is known; ``embedding``:
        the client and admission of a separate embedding server, if any; ``reasoning``: how
        the model's thoughts are told from its answer (``auto``: as its template writes
        them)."""
        self.client = client
        self.admission = admission
        self.tokens = TokenClient(client, admission)
        self.embeddings = TokenClient(*embedding) if embedding else self.tokens
        self.served_name = served_name
        self.server = KnownServer(client, self.tokens, templates, admission, reasoning)
        self.chat = ChatRoute(self.server)
        self.completion = CompletionRoute(self.server)
        self.native = NativeRoute(self.server)

    # -- generation: checked here, sent by its route ------------------------------------

    def complete(self, request: GenerationRequest) -> Completion:
        with self.client.blamed():
            if request.clients_own(API) is not None:
                return self.native.complete(request)
            facts = self._checked(request)
            return self._route(request, facts).complete(request, facts)

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        """The route's stream itself, checked before it is returned: no generator of the
        backend's own under every token."""
        with self.client.blamed():
            if request.clients_own(API) is not None:
                return self.native.stream(request)
            facts = self._checked(request)
            return self._route(request, facts).stream(request, facts)

    def count_tokens(self, request: GenerationRequest) -> int:
        with self.client.blamed():
            facts = self.server.detect()
            self._check_media(request, facts)
            return self._route(request, facts).count(request, facts)

    def _route(
        self, request: GenerationRequest, facts: ServerFacts
    ) -> Union[ChatRoute, CompletionRoute]:
        """Which way ``request`` goes (see :mod:`.route`)."""
        layer = self.server.probe_chat_layer(request, facts)
        return self.chat if route(request, layer) == CHAT_LAYER else self.completion

    def _checked(self, request: GenerationRequest) -> ServerFacts:
        """The server's facts, found once for the request; what the server cannot serve
        refused at once, before it spends time on it."""
        facts = self.server.detect()
        self._check_media(request, facts)
        if request.suffix is not None and facts.kind.fills != INFILL and facts.fim is None:
            raise InvalidRequestError(
                f"suffix cannot be served: {self.client.label} is a {facts.kind.name} server, "
                "which has no /infill, and the proxy finds no fill-in-the-middle tokens in its "
                "model (a code model's, such as Qwen2.5-Coder's, in a GGUF file it can read)",
                param="suffix",
            )
        problem = unread.refusal(request.unread, facts.kind, self.client.label)
        if problem is not None:
            raise problem
        budget.check_fits(request, facts.card.context_length)
        return facts

    def _check_media(self, request: GenerationRequest, facts: ServerFacts) -> None:
        """Refuse images the model cannot see and sounds it cannot hear: its server reads
        none (no projector of theirs, or a generation without one the proxy sends them to),
        or audio of a format it does not decode."""
        shown = request.images
        model = request.model or facts.model
        if shown and "vision" not in facts.card.capabilities:
            raise images.unseen(
                shown[0], model, "its server was started without a vision projector (--mmproj)"
            )
        problem = hearing.sound_refusal(request.sounds, facts.card, model)
        if problem is not None:
            raise problem

    # -- everything else ------------------------------------------------------------------

    def tokenize(self, text: str, model: Optional[str] = None) -> list:
        with self.client.blamed():
            return self.tokens.tokenize(text)

    def token_count(self, text: str, model: Optional[str] = None) -> int:
        with self.client.blamed():
            return len(self.tokens.token_ids(text))

    def detokenize(self, tokens: Sequence[int], model: Optional[str] = None) -> str:
        with self.client.blamed():
            return self.tokens.detokenize(tokens)

    def transcribe(self, asked: Transcription, caller: Caller = NOBODY) -> Transcript:
        """On llama-server's own route, taking a slot as a generation does."""
        client = self.client
        with client.blamed():
            content_type, data = self._heard(asked)
            reply = self.admission.run(
                lambda: client.post_encoded(hearing.PATH, content_type, data, caller=caller), caller
            )
            return hearing.transcript(reply.content, asked.response_format, client.label)

    def stream_transcript(self, asked: Transcription, caller: Caller = NOBODY) -> Iterator[bytes]:
        """On llama-server's own route, its events as they come; the server reached (or its
        refusal raised) before this returns."""
        client = self.client
        with client.blamed():
            body = self._heard(asked)

            def pieces() -> Iterator[bytes]:
                with client.stream_bytes(hearing.PATH, body, caller=caller) as read:
                    yield from read

            streamed = self.admission.stream(pieces, caller)
            first = next(streamed, b"")
        return itertools.chain((first,), streamed)

    def _heard(self, asked: Transcription) -> tuple:
        """``(content type, body)`` of ``asked`` for the server's route, what it cannot
        give refused first."""
        facts = self.server.detect()
        problem = hearing.refusal(asked, facts.kind, facts.card, asked.model or facts.model)
        if problem is not None:
            raise problem
        return hearing.body(asked)

    def ask_native(self, path: str, body: Optional[dict] = None) -> tuple:
        """The server's refusals pass as it wrote them (a route it has switched off is its
        501); its failures are the proxy's errors, which name no server."""
        client = self.client
        with client.blamed():
            reply = client.get(path) if body is None else client.post(path, body)
            if reply.status_code >= 500 and reply.status_code != 501:
                client.raise_for_status(reply)
            try:
                return reply.status_code, reply.json()
            except ValueError:
                raise UpstreamError(
                    f"{client.label} answered {path} with something not JSON"
                ) from None

    def embed(
        self, inputs: Sequence[str], model: Optional[str] = None, caller: Caller = NOBODY
    ) -> Embeddings:
        with self.embeddings.client.blamed():
            return self.embeddings.embed(inputs, caller)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        model: Optional[str] = None,
        caller: Caller = NOBODY,
    ) -> Ranking:
        with self.client.blamed():
            facts = self.server.detect()
            if "rerank" not in facts.card.capabilities:
                raise not_a_reranker(model or facts.model)
            body = self.admission.run(
                lambda: self.client.post_json(
                    embedding.PATH, ranking.payload(query, documents), caller=caller
                ),
                caller,
            )
            return ranking.ranking(body, len(documents), self.client.label, embedding.PATH)

    def load(self) -> tuple:
        return self.admission.busy()

    def models(self) -> list:
        """The model, with its card once the server has been reached."""
        facts = self.server.known()
        return [
            ModelInfo(
                self.served_name or (facts.model if facts else "servercpp"),
                owned_by="llamacpp",
                card=facts.card if facts else ModelCard(),
            )
        ]

    def finds_slots(self) -> bool:
        facts = self.server.known()
        return facts is not None and facts.kind.finds_slots

    def describe(self) -> dict:
        facts = self.server.known()
        return {
            "generation": facts.kind.name if facts else None,
            "served_model": facts.model if facts else None,
            **self.admission.snapshot(),
        }

    def probe(self) -> Health:
        detail = {"upstream": self.client.base_url}
        try:
            facts = self.server.detect()
            status = self.client.get("/health", timeout=DETECT_TIMEOUT).status_code
            if (status == 404) != facts.kind.legacy:  # restarted on another build
                self.server.forget()
                facts = self.server.detect()
        except UpstreamUnavailableError as exc:
            return Health(False, self.name, {**detail, "error": exc.message})
        detail.update(
            generation=facts.kind.name,
            model=self.models()[0].id,
            template=facts.template_name,
            **self.admission.snapshot(),
        )
        if self.embeddings is not self.tokens:
            detail["embedding_upstream"] = {
                "url": self.embeddings.client.base_url,
                **self.embeddings.admission.snapshot(),
            }
        if status == 503:
            return Health(False, self.name, {**detail, "error": "the upstream is loading"})
        return Health(True, self.name, detail)

    def close(self) -> None:
        self.client.close()
        self.embeddings.client.close()
