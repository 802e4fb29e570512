"""The servercpp backend: generation requests over server.cpp's HTTP API, whichever kind answers.

Chats go where the server renders them best. A server with its own chat layer (current
llama-server and the bundled engine, with their Jinja templates on) gets them on its
OpenAI chat route (:mod:`.chat`): its template, its thinking switch, its tool-call parser
for the model's family, wherever it honours all the chat asks (:mod:`.route`). Any other
chat, any other server (PowerInfer's, llama.cpp's of 2023, a llama-server without Jinja),
and any template the operator names, gets a prompt the proxy renders
(:mod:`proxy.backends.servercpp.prompting`) on ``POST /completion``, and the proxy reads the
calls and thoughts back itself. Raw prompts always go to ``/completion``.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Iterator, Optional, Sequence

from proxy.backends.admission import Admission
from proxy.backends.base import Backend, not_a_reranker
from proxy.backends.servercpp import budget, parse, rerank
from proxy.backends.servercpp.chatroute import ChatRoute
from proxy.backends.servercpp.client import UpstreamClient
from proxy.backends.servercpp.detect import DETECT_TIMEOUT, ServerFacts
from proxy.backends.servercpp.embedding import TokenClient
from proxy.backends.servercpp.finish import Finish
from proxy.backends.servercpp.known import KnownServer
from proxy.backends.servercpp.payload import completion_payload, unique
from proxy.backends.servercpp.prompting import (THINK_CLOSE, THINK_OPEN, RenderedPrompt,
                                                TemplateChoice)
from proxy.backends.servercpp.route import CHAT_LAYER, route
from proxy.backends.servercpp.streams import collect, counted_first, resumed
from proxy.backends.structured import replies
from proxy.backends.structured.constraints import output_fields
from proxy.backends.structured.toolformats import FORMATS, tool_names
from proxy.core import context, images
from proxy.core.errors import UpstreamUnavailableError
from proxy.core.types import (Chunk, Completion, Embeddings, GenerationRequest, Health, ModelCard,
                              ModelInfo, Ranking)



class ServerCppBackend(Backend):
    """Translate to llama.cpp's or PowerInfer's HTTP API, whichever kind of server answers.

    The server's kind is detected on first contact and forgotten whenever the upstream cannot
    be reached, so a server restarted on another build is detected afresh.
    """

    name = "servercpp"

    def __init__(self, client: UpstreamClient, templates: TemplateChoice,
                 admission: Admission, model_name: str = "",
                 embedding: Optional[tuple] = None, reasoning: str = "auto") -> None:
        """``templates``: how chats become prompts, once the server is known; ``embedding``:
        the client and admission of a separate embedding server, if any; ``reasoning``: how
        the model's thoughts are told from its answer (``auto``: as its template writes
        them)."""
        self.client = client
        self.admission = admission
        self.tokens = TokenClient(client, admission)
        self.embeddings = TokenClient(*embedding) if embedding else self.tokens
        self.model_name = model_name
        self.server = KnownServer(client, self.tokens, templates, admission, reasoning)
        self.chat = ChatRoute(self.server)

    # -- requests -----------------------------------------------------------------------

    def complete(self, request: GenerationRequest) -> Completion:
        with self.client.blamed():
            self._check(request)
            return self._complete(request)

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        with self.client.blamed():
            self._check(request)
            if self._route(request) == CHAT_LAYER:
                yield from self.chat.stream(request)
            else:
                yield from self._stream(request, count_first=request.is_chat)

    def _check(self, request: GenerationRequest) -> None:
        """Refuse at once what the server cannot serve, before it spends time on it."""
        self._check_images(request)
        context.check_fits(request, self.server.facts().card.context_length)

    def _check_images(self, request: GenerationRequest) -> None:
        """Refuse images the model cannot see: its server reads none (no vision projector,
        or a generation without one the proxy sends images to)."""
        shown = request.images
        if not shown:
            return
        facts = self.server.facts()
        if "vision" not in facts.card.capabilities:
            raise images.unseen(shown[0], request.model or facts.model,
                                "its server was started without a vision projector (--mmproj)")

    def _route(self, request: GenerationRequest) -> str:
        """Which way ``request`` goes (see :mod:`.route`)."""
        return route(request, self.server.chat_layer(request))

    def _complete(self, request: GenerationRequest) -> Completion:
        if self._route(request) == CHAT_LAYER:
            return self.chat.complete(request)
        if self.server.facts().kind.legacy:
            # Their whole answers cut characters into U+FFFD and drop logprobs; their streams
            # hold an unfinished character back, as current servers do: read those instead.
            return collect(self._stream(request, count_first=False))

        def post(facts: ServerFacts) -> tuple:
            prompt, payload = self._payload(request, facts, stream=False)
            return facts, prompt, self.client.post_json("/completion", payload,
                                                        client_gone=request.client_gone)

        facts, prompt, body = self.admission.run(lambda: self.server.reconnecting(post),
                                                 request.client_gone)
        result = parse.completion(body, self.client.label, request.logprobs)
        opened = _thoughts_open(facts, request, prompt)
        if opened is not None:
            result = replies.with_thoughts(result, opened)
        if request.tools:
            result = replies.with_calls(result, FORMATS[prompt.tool_format],
                                        tool_names(request.tools))
        return self._finish(request, prompt, opened).whole(result)

    def _stream(self, request: GenerationRequest, *, count_first: bool) -> Iterator[Chunk]:
        """The ``/completion`` stream (``count_first``: with the prompt's token count on the
        first chunk, which old servers tell only on the last: a chat's client may show it
        from the start, as Anthropic's ``message_start`` does)."""
        sent: list = []  # (facts, prompt) of the attempt that reached the server
        chunks = self.admission.stream(lambda: self._chunks(request, sent, count_first),
                                       request.client_gone)
        with contextlib.closing(chunks):
            first = next(chunks)
            facts, prompt = sent[-1]
            opened = _thoughts_open(facts, request, prompt)
            chunks = resumed(first, chunks)
            if opened is not None:
                chunks = replies.thinking_chunks(chunks, opened)
            if request.tools:
                chunks = replies.calling_chunks(chunks, FORMATS[prompt.tool_format],
                                                tool_names(request.tools))
            yield from self._finish(request, prompt, opened).stream(chunks)

    def _chunks(self, request: GenerationRequest, sent: list,
                count_first: bool) -> Iterator[Chunk]:
        """One attempt: open the upstream stream and read it into chunks; what was sent, and
        to which server, goes into ``sent``."""
        with contextlib.ExitStack() as stack:
            def attempt(facts: ServerFacts) -> tuple:
                prompt, payload = self._payload(_counted(request, facts), facts, stream=True)
                sent.append((facts, prompt))
                return facts, prompt, stack.enter_context(
                    self.client.stream("/completion", payload, client_gone=request.client_gone))

            facts, prompt, pieces = self.server.reconnecting(attempt)
            limit = _legacy_limit(request, facts)
            top = _counted(request, facts).logprobs  # what was asked of the server
            chunks = parse.stream_chunks(parse.line_batches(pieces), self.client.label, top)
            if limit is not None:
                chunks = budget.limited(chunks, limit,
                                        keep_logprobs=request.logprobs is not None)
            if facts.kind.legacy and count_first:
                chunks = counted_first(chunks, lambda: self.tokens.count(prompt.text,
                                                                          legacy=True))
            yield from chunks

    def count_tokens(self, request: GenerationRequest) -> int:
        with self.client.blamed():
            self._check_images(request)
            if self._route(request) == CHAT_LAYER:
                return self.chat.count(request)
            facts = self.server.facts()
            prompt, _ = self._prompt(request, facts)
            return self.tokens.count(prompt.text, legacy=facts.kind.legacy)

    def tokenize(self, text: str, model: Optional[str] = None) -> list:
        with self.client.blamed():
            return self.tokens.tokenize(text)

    def detokenize(self, tokens: Sequence[int], model: Optional[str] = None) -> str:
        with self.client.blamed():
            return self.tokens.detokenize(tokens)

    def embed(self, inputs: Sequence[str], model: Optional[str] = None) -> Embeddings:
        with self.embeddings.client.blamed():
            return self.embeddings.embed(inputs)

    def rerank(self, query: str, documents: Sequence[str],
               model: Optional[str] = None) -> Ranking:
        with self.client.blamed():
            facts = self.server.facts()
            if "rerank" not in facts.card.capabilities:
                raise not_a_reranker(model or facts.model)
            body = self.admission.run(lambda: self.client.post_json(
                rerank.PATH, rerank.payload(query, documents)))
            return rerank.ranking(body, len(documents), self.client.label)

    def load(self) -> tuple:
        return self.admission.busy()

    def models(self) -> list:
        """The model, with its card once the server has been reached."""
        facts = self.server.known()
        return [ModelInfo(self.model_name or (facts.model if facts else "servercpp"),
                          owned_by="llamacpp", card=facts.card if facts else ModelCard())]

    def finds_slots(self) -> bool:
        facts = self.server.known()
        return facts is not None and facts.kind.finds_slots

    def describe(self) -> dict:
        facts = self.server.known()
        return {"generation": facts.kind.name if facts else None,
                "served_model": facts.model if facts else None,
                **self.admission.snapshot()}

    def health(self) -> Health:
        detail = {"upstream": self.client.base_url}
        try:
            facts = self.server.facts()
            status = self.client.get("/health", timeout=DETECT_TIMEOUT).status_code
            if (status == 404) != facts.kind.legacy:  # restarted on another build
                self.server.forget()
                facts = self.server.facts()
        except UpstreamUnavailableError as exc:
            return Health(False, self.name, {**detail, "error": exc.message})
        detail.update(generation=facts.kind.name, model=self.models()[0].id,
                      template=facts.template_name, **self.admission.snapshot())
        if self.embeddings is not self.tokens:
            detail["embedding_upstream"] = {"url": self.embeddings.client.base_url,
                                            **self.embeddings.admission.snapshot()}
        if status == 503:
            return Health(False, self.name, {**detail, "error": "the upstream is loading"})
        return Health(True, self.name, detail)

    def close(self) -> None:
        self.client.close()
        self.embeddings.client.close()

    # -- helpers ------------------------------------------------------------------------

    def _payload(self, request: GenerationRequest, facts: ServerFacts, *, stream: bool) -> tuple:
        """``(prompt, body)``: what ``/completion`` is sent for ``request``."""
        prompt, stop = self._prompt(request, facts)
        tool_format = FORMATS[prompt.tool_format]
        schema = request.response_format is not None \
            and request.response_format.type == "json_schema"
        constraints = output_fields(request, tool_format,
                                    json_schema=schema and self.server.compiles_schemas(facts),
                                    lazy_grammar=facts.lazy_grammar)
        if request.is_chat and not facts.kind.legacy:
            # the markers the proxy reads calls and thoughts by, even where they are control
            # tokens (a server leaves those out of what it sends unless told to keep them)
            thoughts = (THINK_OPEN, THINK_CLOSE) if facts.thinking else ()
            constraints["preserved_tokens"] = unique(
                [*constraints.get("preserved_tokens", ()), *tool_format.markers, *thoughts])
        return prompt, completion_payload(request, prompt.text, stop, facts.kind,
                                          stream=stream, constraints=constraints)

    def _prompt(self, request: GenerationRequest, facts: ServerFacts) -> tuple:
        """``(prompt, stop words)``: a raw prompt as it is, a chat rendered by the template."""
        if not request.is_chat:
            return RenderedPrompt(request.prompt, ()), unique(request.stop)
        messages = images.marked(request.messages, facts.media_marker) if request.images \
            else request.messages
        rendered = facts.template.render(messages, request.tools, request.template_kwargs)
        return rendered, unique(rendered.stop + tuple(request.stop))

    def _finish(self, request: GenerationRequest, prompt: RenderedPrompt,
                opened: Optional[bool]) -> Finish:
        """The server's answers name their slot; thoughts are counted where they were told
        apart (``opened`` is not ``None``)."""
        tokens = self.tokens
        prompt_ids = (lambda: tuple(tokens.token_ids(prompt.text))) if request.tokenize \
            else None
        return Finish(tokens, self.admission, thoughts=opened is not None,
                      prompt_ids=prompt_ids)



def _legacy_limit(request: GenerationRequest, facts: ServerFacts) -> Optional[int]:
    """The token limit the proxy must keep itself: old servers overshoot theirs."""
    return request.max_tokens if facts.kind.legacy else None


def _counted(request: GenerationRequest, facts: ServerFacts) -> GenerationRequest:
    """The request as sent: with at least one probability per token where the proxy counts."""
    if _legacy_limit(request, facts) is not None and request.logprobs is None:
        return replace(request, logprobs=0)
    return request


def _thoughts_open(facts: ServerFacts, request: GenerationRequest,
                   prompt: RenderedPrompt) -> Optional[bool]:
    """``None`` when the answer's thoughts stay in it (raw prompts, models that write none),
    else whether ``prompt`` opened them."""
    return prompt.opens_thinking if facts.thinking and request.is_chat else None
