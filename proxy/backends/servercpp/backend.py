"""The servercpp backend: generation requests over server.cpp's HTTP API, whichever kind answers.

Chats go where the server renders them best. A server with its own chat layer (current
llama-server and the bundled engine, with their Jinja templates on) gets them on its
OpenAI chat route (:mod:`.chat`): its template, its thinking switch, its tool-call parser
for the model's family. Any other server (PowerInfer's, llama.cpp's of 2023, a llama-server
without Jinja), and any template the operator names, gets a prompt the proxy renders
(:mod:`proxy.backends.servercpp.prompting`) on ``POST /completion``, and the proxy reads the calls and thoughts
back itself. Raw prompts always go to ``/completion``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional, Sequence, TypeVar

from proxy.backends.base import Backend
from proxy.backends.servercpp import budget, chat, parse
from proxy.backends.servercpp.client import UpstreamClient
from proxy.backends.servercpp.embedding import TokenClient
from proxy.backends.servercpp.kinds import ServerKind, classify
from proxy.backends.servercpp.payload import completion_payload, unique
from proxy.backends.structured import callids, replies
from proxy.backends.structured.stops import stopping
from proxy.backends.structured.constraints import output_fields
from proxy.backends.structured.toolformats import FORMATS, tool_names
from proxy.core.errors import UNREACHABLE, UpstreamError, UpstreamUnavailableError
from proxy.backends.admission import Admission
from proxy.backends.servercpp.prompting import (THINK_CLOSE, THINK_OPEN, ChatTemplate, RenderedPrompt,
                             TemplateChoice)
from proxy.core.types import (Chunk, Completion, Embeddings, GenerationRequest, Health, ModelInfo,
                         Usage, assembled)

logger = logging.getLogger(__name__)

DETECT_TIMEOUT = 5.0
T = TypeVar("T")


@dataclass(frozen=True)
class ServerFacts:
    """What the proxy learned about the server when it (re)connected."""

    kind: ServerKind
    model: str
    template: Optional[ChatTemplate]  # None: the server's own chat layer renders chats
    lazy_grammar: bool = False  # applies a grammar from a trigger word on (current llama.cpp)
    short_ids: bool = False  # the server's template takes only Mistral's call ids
    thinking: bool = False  # the proxy tells the thoughts its template's models write from
    #                         their answers (see proxy.backends.structured.reasoning)

    @property
    def chat_layer(self) -> bool:
        return self.template is None

    @property
    def template_name(self) -> str:
        return self.template.name if self.template else "the server's own (its chat layer)"


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
        self.reasoning = reasoning
        self.admission = admission
        self.tokens = TokenClient(client, admission)
        self.embeddings = TokenClient(*embedding) if embedding else self.tokens
        self.templates = templates
        self.model_name = model_name
        self._facts: Optional[ServerFacts] = None
        self._lock = threading.Lock()

    # -- requests -----------------------------------------------------------------------

    def complete(self, request: GenerationRequest) -> Completion:
        with self.client.blamed():
            return self._complete(request)

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        with self.client.blamed():
            if request.is_chat and self._connected().chat_layer:
                yield from self._chat_stream(request)
            else:
                yield from self._stream(request, count_first=request.is_chat)

    def _complete(self, request: GenerationRequest) -> Completion:
        if request.is_chat and self._connected().chat_layer:
            return self._chat_complete(request)
        if self._connected().kind.legacy:
            # Their whole answers cut characters into U+FFFD and drop logprobs; their streams
            # hold an unfinished character back, as current servers do: read those instead.
            return _collect(self._stream(request, count_first=False))

        def post(facts: ServerFacts) -> tuple:
            prompt, payload = self._payload(request, facts, stream=False)
            return facts, prompt, self.client.post_json("/completion", payload)

        facts, prompt, body = self.admission.run(lambda: self._reconnecting(post),
                                                 request.client_gone)
        result = parse.completion(body, self.client.label, request.logprobs)
        self.admission.saw_slot(result.slot)
        if request.tokenize:
            result = replace(result, prompt_tokens=tuple(self.tokens.token_ids(prompt.text)))
        opened = _thoughts_open(facts, request, prompt)
        if opened is not None:
            result = replies.with_thoughts(result, opened)
            result = replace(result, usage=self._with_thoughts(result.usage, result.reasoning))
        if request.tools:
            result = replies.with_calls(result, FORMATS[prompt.tool_format],
                                        tool_names(request.tools))
        return result

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
            chunks = _resumed(first, chunks)
            if opened is not None:
                chunks = replies.thinking_chunks(chunks, opened)
            if request.tools:
                chunks = replies.calling_chunks(chunks, FORMATS[prompt.tool_format],
                                                tool_names(request.tools))

            def finish(chunk: Chunk, thoughts: str) -> Chunk:
                self.admission.saw_slot(chunk.slot)
                if opened is not None:
                    chunk = replace(chunk, usage=self._with_thoughts(chunk.usage or Usage(),
                                                                     thoughts))
                if request.tokenize:
                    chunk = replace(chunk, prompt_tokens=tuple(
                        self.tokens.token_ids(prompt.text)))
                return chunk

            yield from _finishing(chunks, finish)

    def _chunks(self, request: GenerationRequest, sent: list,
                count_first: bool) -> Iterator[Chunk]:
        """One attempt: open the upstream stream and read it into chunks; what was sent, and
        to which server, goes into ``sent``."""
        with contextlib.ExitStack() as stack:
            def attempt(facts: ServerFacts) -> tuple:
                prompt, payload = self._payload(_counted(request, facts), facts, stream=True)
                sent.append((facts, prompt))
                return facts, prompt, stack.enter_context(
                    self.client.stream("/completion", payload))

            facts, prompt, pieces = self._reconnecting(attempt)
            limit = _legacy_limit(request, facts)
            top = _counted(request, facts).logprobs  # what was asked of the server
            chunks = parse.stream_chunks(parse.line_batches(pieces), self.client.label, top)
            if limit is not None:
                chunks = budget.limited(chunks, limit,
                                        keep_logprobs=request.logprobs is not None)
            if facts.kind.legacy and count_first:
                chunks = _counted_first(chunks, lambda: self.tokens.count(prompt.text,
                                                                          legacy=True))
            yield from chunks

    # -- through the server's own chat layer --------------------------------------------

    def _chat_complete(self, request: GenerationRequest) -> Completion:
        if request.stop:  # the proxy stops at them itself, on the stream
            return _collect(self._chat_stream(request))
        payload = chat.chat_payload(request, stream=False, **self._chat_options())
        body = self.admission.run(
            lambda: self._reconnecting(lambda _: self.client.post_json(chat.PATH, payload)),
            request.client_gone)
        result = chat.completion(body, self.client.label, request.logprobs)
        result = replace(result, usage=self._with_thoughts(result.usage, result.reasoning))
        if request.tokenize:
            result = replace(result, prompt_tokens=self._chat_prompt_ids(request))
        return result

    def _chat_stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        chunks = self.admission.stream(lambda: self._chat_chunks(request), request.client_gone)
        if request.stop:
            chunks = stopping(chunks, request.stop)

        def finish(chunk: Chunk, thoughts: str) -> Chunk:
            chunk = replace(chunk, usage=self._with_thoughts(chunk.usage or Usage(), thoughts))
            if request.tokenize:
                chunk = replace(chunk, prompt_tokens=self._chat_prompt_ids(request))
            return chunk

        return _finishing(chunks, finish)

    def _chat_chunks(self, request: GenerationRequest) -> Iterator[Chunk]:
        payload = chat.chat_payload(request, stream=True, **self._chat_options())
        with contextlib.ExitStack() as stack:
            pieces = self._reconnecting(
                lambda _: stack.enter_context(self.client.stream(chat.PATH, payload)))
            yield from chat.stream_chunks(parse.line_batches(pieces), self.client.label,
                                          request.logprobs)

    def _chat_prompt_ids(self, request: GenerationRequest, *, bos: bool = False) -> tuple:
        """The token ids of the prompt the server renders for ``request`` (``bos``: with the
        BOS the server puts before it, where the model has one)."""
        body = self.client.post_json("/apply-template", chat.count_payload(
            request, **self._chat_options()))
        prompt = body.get("prompt") if isinstance(body, dict) else None
        return tuple(self.tokens.token_ids(prompt if isinstance(prompt, str) else "",
                                           add_special=bos))

    def _chat_options(self) -> dict:
        """How chats are sent to this server's chat layer (see :func:`.chat.chat_payload`)."""
        return {"reasoning": self.reasoning != "none",
                "short_ids": self._connected().short_ids}

    def count_tokens(self, request: GenerationRequest) -> int:
        with self.client.blamed():
            facts = self._connected()
            if request.is_chat and facts.chat_layer:
                return self._chat_count(request)
            prompt, _ = self._prompt(request, facts)
            return self.tokens.count(prompt.text, legacy=facts.kind.legacy)

    def _chat_count(self, request: GenerationRequest) -> int:
        """The prompt's tokens, as the server renders and counts it."""
        payload = chat.count_payload(request, **self._chat_options())
        reply = self.client.post(chat.COUNT_PATH, payload)
        if reply.status_code == 404:  # a server of 2025: render the prompt, then count it
            return len(self._chat_prompt_ids(request, bos=True))
        self.client.raise_for_status(reply)
        try:
            count = reply.json().get("input_tokens")
        except (ValueError, AttributeError):
            count = None
        if not isinstance(count, int):
            raise UpstreamError(f"{self.client.label} answered its token count without a "
                                f"number")
        return count

    def tokenize(self, text: str, model: Optional[str] = None) -> list:
        with self.client.blamed():
            return self.tokens.tokenize(text)

    def detokenize(self, tokens: Sequence[int], model: Optional[str] = None) -> str:
        with self.client.blamed():
            return self.tokens.detokenize(tokens)

    def embed(self, inputs: Sequence[str], model: Optional[str] = None) -> Embeddings:
        with self.embeddings.client.blamed():
            return self.embeddings.embed(inputs)

    def load(self) -> tuple:
        return self.admission.busy()

    def models(self) -> list:
        facts = self._facts
        return [ModelInfo(self.model_name or (facts.model if facts else "servercpp"),
                          owned_by="llamacpp")]

    def finds_slots(self) -> bool:
        facts = self._facts
        return facts is not None and facts.kind.finds_slots

    def describe(self) -> dict:
        facts = self._facts
        return {"generation": facts.kind.name if facts else None,
                "served_model": facts.model if facts else None,
                **self.admission.snapshot()}

    def health(self) -> Health:
        detail = {"upstream": self.client.base_url}
        try:
            facts = self._connected()
            status = self.client.get("/health", timeout=DETECT_TIMEOUT).status_code
            if (status == 404) != facts.kind.legacy:  # restarted on another build
                self._facts = None
                facts = self._connected()
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

    # -- what is known of the server ----------------------------------------------------

    def _connected(self) -> ServerFacts:
        facts = self._facts
        if facts is None:
            with self._lock:
                facts = self._facts or self._detect()
        return facts

    def _detect(self) -> ServerFacts:
        health = self.client.get("/health", timeout=DETECT_TIMEOUT).status_code
        if health == 503:
            raise UpstreamUnavailableError(f"{self.client.label} is still "
                                           f"loading its model; retry shortly", retry_after=2)
        models_status = None
        if health == 404:
            models_status = self.client.get("/v1/models", timeout=DETECT_TIMEOUT).status_code
        kind = classify(health, models_status)
        props = self._props(kind)
        chat_layer = self.templates.servers_own and kind.has_props_template \
            and self._renders(callids.probe(callids.template_id(callids.LONG_ID)))
        template = None if chat_layer else self._template(props)
        model = os.path.basename(str(props.get("model_alias") or props.get("model_path")
                                     or self._model_from_list(kind) or "servercpp"))
        # lazy grammars came with the Jinja tool-calling work, which added chat_template_caps
        self._facts = ServerFacts(kind, model, template,
                                  lazy_grammar="chat_template_caps" in props,
                                  short_ids=chat_layer and not self._renders(
                                      callids.probe(callids.LONG_ID)),
                                  thinking=template is not None
                                  and thinking_of(self.reasoning, template))
        self.admission.report(_total_slots(props), queues=not kind.legacy)
        logger.info("upstream %s is %s serving %s; chat template %s", self.client.base_url,
                    kind.name, model, self._facts.template_name)
        return self._facts

    def _renders(self, chat: dict) -> bool:
        """Whether the server renders ``chat`` (with its tools) itself: llama-server with its
        Jinja templates on does (``/apply-template``), and its chat layer is what the proxy
        chats through; without them, or before that route, it refuses."""
        try:
            reply = self.client.post("/apply-template", chat, timeout=DETECT_TIMEOUT)
        except UpstreamError:
            return False
        return reply.ok

    def _template(self, props: dict) -> ChatTemplate:
        server = {"server_template": props.get("chat_template") or None,
                  "bos_token": props.get("bos_token") or "",
                  "eos_token": props.get("eos_token") or ""}
        try:
            return self.templates.build(**server, adds_bos=self._adds_bos(server))
        except ValueError as exc:
            logger.error("the upstream's chat template cannot be used (%s); "
                         "using the historic template", exc)
            return self.templates.build()

    def _adds_bos(self, server: dict) -> bool:
        """Whether the server's tokenizer puts BOS before a prompt itself (the model's
        ``add_bos_token``): a prompt's tokens with and without its special tokens differ."""
        if not server["server_template"] or not server["bos_token"]:
            return True
        try:
            plain = self.tokens.token_ids("x")
            special = self.tokens.token_ids("x", add_special=True)
        except UpstreamError:
            return True
        return len(special) > len(plain)

    def _props(self, kind: ServerKind) -> dict:
        if not kind.has_props_template:
            return {}
        response = self.client.get("/props", timeout=DETECT_TIMEOUT)
        body = response.json() if response.ok else {}
        return body if isinstance(body, dict) else {}

    def _model_from_list(self, kind: ServerKind) -> str:
        """The model's name from an old server: ``/model.json`` (PowerInfer), ``/v1/models``."""
        if kind.name == "powerinfer":
            response = self.client.get("/model.json", timeout=DETECT_TIMEOUT)
            try:
                return response.json()["model"]
            except (ValueError, KeyError, TypeError):
                return ""
        response = self.client.get("/v1/models", timeout=DETECT_TIMEOUT)
        try:
            return response.json()["data"][0]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            return ""

    def _reconnecting(self, attempt: Callable[[ServerFacts], T]) -> T:
        """Run ``attempt``; if the upstream was unreachable, detect it afresh and try once more.

        A restarted server leaves dead pooled connections behind, perhaps on another build,
        and a request that never reached it is safe to send again.
        """
        try:
            return attempt(self._connected())
        except UpstreamUnavailableError as exc:
            if exc.code != UNREACHABLE:
                raise
            self._facts = None
            return attempt(self._connected())

    # -- helpers ------------------------------------------------------------------------

    def _payload(self, request: GenerationRequest, facts: ServerFacts, *, stream: bool) -> tuple:
        """``(prompt, body)``: what ``/completion`` is sent for ``request``."""
        prompt, stop = self._prompt(request, facts)
        tool_format = FORMATS[prompt.tool_format]
        constraints = output_fields(request, tool_format,
                                    json_schema=facts.kind.has_json_schema,
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
        rendered = facts.template.render(request.messages, request.tools,
                                         request.template_kwargs)
        return rendered, unique(rendered.stop + tuple(request.stop))

    def _with_thoughts(self, usage: Usage, thoughts: str) -> Usage:
        """``usage`` with the tokens of the thoughts counted (by the server's tokenizer)."""
        return replace(usage, reasoning_tokens=len(self.tokens.token_ids(thoughts))
                       if thoughts else 0)



def _total_slots(props: dict) -> Optional[int]:
    total = props.get("total_slots")
    return total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None


def _legacy_limit(request: GenerationRequest, facts: ServerFacts) -> Optional[int]:
    """The token limit the proxy must keep itself: old servers overshoot theirs."""
    return request.max_tokens if facts.kind.legacy else None


def _counted(request: GenerationRequest, facts: ServerFacts) -> GenerationRequest:
    """The request as sent: with at least one probability per token where the proxy counts."""
    if _legacy_limit(request, facts) is not None and request.logprobs is None:
        return replace(request, logprobs=0)
    return request


def thinking_of(reasoning: str, template: ChatTemplate) -> Optional[bool]:
    """Whether the proxy tells the thoughts of the template's models from their answers."""
    return not (reasoning == "none" or (reasoning == "auto" and not template.thinks))


def _thoughts_open(facts: ServerFacts, request: GenerationRequest,
                   prompt: RenderedPrompt) -> Optional[bool]:
    """``None`` when the answer's thoughts stay in it (raw prompts, models that write none),
    else whether ``prompt`` opened them."""
    return prompt.opens_thinking if facts.thinking and request.is_chat else None


def _counted_first(chunks: Iterator[Chunk], count: Callable[[], int]) -> Iterator[Chunk]:
    """``chunks``, the first carrying the prompt's token count (``count()``) if it has none
    (and the server counts it: the count is no reason to fail the answer)."""
    with contextlib.closing(chunks):
        first = next(chunks)
        if first.prompt_count is None:
            try:
                first = replace(first, prompt_count=count())
            except UpstreamError as exc:
                logger.info("the prompt could not be counted ahead: %s", exc.message)
        yield first
        yield from chunks


def _finishing(chunks: Iterator[Chunk],
               finish: Callable[[Chunk, str], Chunk]) -> Iterator[Chunk]:
    """``chunks``, the last as ``finish(last, thoughts)`` makes it, with the answer's
    thoughts in hand (their tokens count in its usage)."""
    thoughts = []
    with contextlib.closing(chunks):
        for chunk in chunks:
            if chunk.finish_reason is None:
                if chunk.reasoning:
                    thoughts.append(chunk.reasoning)
                yield chunk
                continue
            yield finish(chunk, "".join(thoughts) + chunk.reasoning)
            return


def _resumed(first: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    """The chunks of a stream whose ``first`` was read already."""
    with contextlib.closing(rest):
        yield first
        yield from rest


def _collect(chunks: Iterator[Chunk]) -> Completion:
    texts, thoughts, logprobs, calls = [], [], [], []
    for chunk in chunks:
        texts.append(chunk.text)
        thoughts.append(chunk.reasoning)
        logprobs.extend(chunk.logprobs)
        calls.extend(chunk.tool_calls)
        if chunk.finish_reason is not None:
            return Completion("".join(texts), chunk.finish_reason, chunk.usage or Usage(),
                              tuple(logprobs), chunk.prompt_tokens, chunk.truncated,
                              assembled(calls), slot=chunk.slot, reasoning="".join(thoughts),
                              stop_sequence=chunk.stop_sequence)
    raise AssertionError("a stream always ends with a finish reason")



