"""The servercpp backend: OpenAI generation requests over server.cpp's ``POST /completion``."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional, Sequence, TypeVar

from proxy.backends.base import Backend
from proxy.backends.servercpp import budget, parse
from proxy.backends.servercpp.client import UpstreamClient
from proxy.backends.servercpp.embedding import TokenClient
from proxy.backends.servercpp.kinds import ServerKind, classify
from proxy.backends.servercpp.payload import completion_payload, unique
from proxy.structured import replies
from proxy.structured.constraints import output_fields
from proxy.structured.toolformats import FORMATS, ToolFormat, tool_names
from proxy.errors import UNREACHABLE, UpstreamUnavailableError
from proxy.backends.admission import Admission
from proxy.prompting import ChatTemplate, build_template
from proxy.types import (Chunk, Completion, Embeddings, GenerationRequest, Health, ModelInfo,
                         Usage)

logger = logging.getLogger(__name__)

DETECT_TIMEOUT = 5.0
T = TypeVar("T")


@dataclass(frozen=True)
class ServerFacts:
    """What the proxy learned about the server when it (re)connected."""

    kind: ServerKind
    model: str
    template: ChatTemplate
    lazy_grammar: bool = False  # applies a grammar from a trigger word on (current llama.cpp)
    thinking: Optional[bool] = None  # None: thoughts stay in the answer; else whether the
    #                                  prompt opens them (see proxy.structured.reasoning)


class ServerCppBackend(Backend):
    """Translate to llama.cpp's or PowerInfer's native API, whichever kind of server answers.

    The server's kind is detected on first contact and forgotten whenever the upstream cannot
    be reached, so a server restarted on another build is detected afresh.
    """

    name = "servercpp"

    def __init__(self, client: UpstreamClient, template_for: Callable[..., ChatTemplate],
                 admission: Admission, model_name: str = "",
                 embedding: Optional[tuple] = None, reasoning: str = "auto") -> None:
        """``embedding``: the client and admission of a separate embedding server, if any;
        ``reasoning``: how the model's thoughts are told from its answer (``auto``: by the
        chat template's own tags)."""
        self.client = client
        self.reasoning = reasoning
        self.admission = admission
        self.tokens = TokenClient(client, admission)
        self.embeddings = TokenClient(*embedding) if embedding else self.tokens
        self.template_for = template_for
        self.model_name = model_name
        self._facts: Optional[ServerFacts] = None
        self._lock = threading.Lock()

    # -- requests -----------------------------------------------------------------------

    def complete(self, request: GenerationRequest) -> Completion:
        if self._connected().kind.legacy:
            # Their whole answers cut characters into U+FFFD and drop logprobs; their streams
            # hold an unfinished character back, as current servers do: read those instead.
            return _collect(self.stream(request))

        def post(facts: ServerFacts) -> tuple:
            prompt, payload = self._payload(request, facts, stream=False)
            return prompt, self.client.post_json("/completion", payload)

        prompt, body = self.admission.run(lambda: self._reconnecting(post), request.client_gone)
        result = parse.completion(body, self.client.base_url, request.logprobs)
        self.admission.saw_slot(result.slot)
        if request.tokenize:
            result = replace(result, prompt_tokens=tuple(self.tokens.token_ids(prompt)))
        thinking = self._thinking(request)
        if thinking is not None:
            result = replies.with_thoughts(result, thinking)
            result = replace(result, usage=self._with_thoughts(result.usage, result.reasoning))
        if request.tools:
            result = replies.with_calls(result, self._tool_format(), tool_names(request.tools))
        return result

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        chunks = self.admission.stream(lambda: self._chunks(request), request.client_gone)
        thinking = self._thinking(request)
        if thinking is not None:
            chunks = replies.thinking_chunks(chunks, thinking)
        if request.tools:
            chunks = replies.calling_chunks(chunks, self._tool_format(),
                                            tool_names(request.tools))
        thoughts = []
        with contextlib.closing(chunks):
            for chunk in chunks:
                if chunk.finish_reason is None:
                    if chunk.reasoning:
                        thoughts.append(chunk.reasoning)
                    yield chunk
                    continue
                self.admission.saw_slot(chunk.slot)
                if thinking is not None:
                    usage = self._with_thoughts(chunk.usage or Usage(),
                                                "".join(thoughts) + chunk.reasoning)
                    chunk = replace(chunk, usage=usage)
                if request.tokenize:
                    prompt, _ = self._prompt(request, self._connected())
                    chunk = replace(chunk, prompt_tokens=tuple(self.tokens.token_ids(prompt)))
                yield chunk
                return

    def _chunks(self, request: GenerationRequest) -> Iterator[Chunk]:
        """One attempt: open the upstream stream and read it into chunks."""
        with contextlib.ExitStack() as stack:
            def attempt(facts: ServerFacts) -> tuple:
                _, payload = self._payload(_counted(request, facts), facts, stream=True)
                return facts, stack.enter_context(self.client.stream("/completion", payload))

            facts, pieces = self._reconnecting(attempt)
            limit = _legacy_limit(request, facts)
            top = _counted(request, facts).logprobs  # what was asked of the server
            chunks = parse.stream_chunks(parse.line_batches(pieces), self.client.base_url, top)
            if limit is not None:
                chunks = budget.limited(chunks, limit,
                                        keep_logprobs=request.logprobs is not None)
            yield from chunks

    def count_tokens(self, request: GenerationRequest) -> int:
        facts = self._connected()
        prompt, _ = self._prompt(request, facts)
        return self.tokens.count(prompt, legacy=facts.kind.legacy)

    def tokenize(self, text: str, model: Optional[str] = None) -> list:
        return self.tokens.tokenize(text)

    def detokenize(self, tokens: Sequence[int], model: Optional[str] = None) -> str:
        return self.tokens.detokenize(tokens)

    def embed(self, inputs: Sequence[str], model: Optional[str] = None) -> Embeddings:
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
                      template=facts.template.name, **self.admission.snapshot())
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
            raise UpstreamUnavailableError(f"the upstream {self.client.base_url} is still "
                                           f"loading its model; retry shortly", retry_after=2)
        models_status = None
        if health == 404:
            models_status = self.client.get("/v1/models", timeout=DETECT_TIMEOUT).status_code
        kind = classify(health, models_status)
        props = self._props(kind)
        template = self._template(props)
        model = os.path.basename(str(props.get("model_alias") or props.get("model_path")
                                     or self._model_from_list(kind) or "servercpp"))
        # lazy grammars came with the Jinja tool-calling work, which added chat_template_caps
        self._facts = ServerFacts(kind, model, template,
                                  lazy_grammar="chat_template_caps" in props,
                                  thinking=thinking_of(self.reasoning, template))
        self.admission.report(_total_slots(props), queues=not kind.legacy)
        logger.info("upstream %s is %s serving %s; chat template %s", self.client.base_url,
                    kind.name, model, template.name)
        return self._facts

    def _template(self, props: dict) -> ChatTemplate:
        server = {"server_template": props.get("chat_template") or None,
                  "bos_token": props.get("bos_token") or "",
                  "eos_token": props.get("eos_token") or ""}
        try:
            return self.template_for(**server)
        except ValueError as exc:
            logger.error("the upstream's chat template cannot be used (%s); "
                         "using the historic template", exc)
            return self.template_for(server_template=None)

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
        prompt, stop = self._prompt(request, facts)
        constraints = output_fields(request, FORMATS[facts.template.tool_format],
                                    json_schema=facts.kind.has_json_schema,
                                    lazy_grammar=facts.lazy_grammar)
        return prompt, completion_payload(request, prompt, stop, facts.kind,
                                          stream=stream, constraints=constraints)

    def _prompt(self, request: GenerationRequest, facts: ServerFacts) -> tuple:
        if not request.is_chat:
            return request.prompt, unique(request.stop)
        rendered = facts.template.render(request.messages, request.tools)
        return rendered.text, unique(rendered.stop + tuple(request.stop))

    def _with_thoughts(self, usage: Usage, thoughts: str) -> Usage:
        """``usage`` with the tokens of the thoughts counted (by the server's tokenizer)."""
        return replace(usage, reasoning_tokens=len(self.tokens.token_ids(thoughts))
                       if thoughts else 0)

    def _thinking(self, request: GenerationRequest) -> Optional[bool]:
        """Whether (and how) a chat's thoughts are told from its answer; raw prompts never."""
        return self._connected().thinking if request.is_chat else None

    def _tool_format(self) -> ToolFormat:
        """How the model writes calls: its template says (read once the server is known)."""
        return FORMATS[self._connected().template.tool_format]


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
    """``None`` when thoughts stay in the answer, else whether the prompt opens them."""
    if reasoning == "none" or (reasoning == "auto" and not template.thinks):
        return None
    return template.opens_thinking


def _collect(chunks: Iterator[Chunk]) -> Completion:
    texts, thoughts, logprobs = [], [], []
    for chunk in chunks:
        texts.append(chunk.text)
        thoughts.append(chunk.reasoning)
        logprobs.extend(chunk.logprobs)
        if chunk.finish_reason is not None:
            return Completion("".join(texts), chunk.finish_reason, chunk.usage or Usage(),
                              tuple(logprobs), chunk.prompt_tokens, chunk.truncated,
                              chunk.tool_calls, slot=chunk.slot, reasoning="".join(thoughts),
                              stop_sequence=chunk.stop_sequence)
    raise AssertionError("a stream always ends with a finish reason")


def build_template_factory(settings_template: str, historic) -> Callable[..., ChatTemplate]:
    """Bind the configured template spec; the server's own template is filled in on detect.

    A spec that names no preset or readable file fails here, at start-up.
    """
    def template_for(**server) -> ChatTemplate:
        return build_template(settings_template, historic=historic, **server)

    if settings_template != "auto":
        template_for()
    return template_for
