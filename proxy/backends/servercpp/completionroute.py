"""A generation on ``POST /completion``, whole or streamed: raw prompts, and chats whose prompt
the proxy renders itself (:mod:`.prompting`), on every kind of server.

The proxy then does what a chat layer would: it reads the model's thoughts and calls back out
of the text, keeps the token limit old servers overshoot, and finishes the answer as every
route does (:mod:`.finish`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from proxy.backends.servercpp import budget, parse
from proxy.backends.servercpp.chattemplate import THINK_CLOSE, THINK_OPEN, RenderedPrompt
from proxy.backends.servercpp.detect import ServerFacts
from proxy.backends.servercpp.finish import Finisher, collect, counted_first, finishing
from proxy.backends.servercpp.kinds import INFILL
from proxy.backends.servercpp.known import KnownServer
from proxy.backends.servercpp.payload import completion_payload, fill_payload, unique
from proxy.backends.structured import replies
from proxy.backends.structured.constraints import output_fields
from proxy.backends.structured.toolformats import FORMATS, tool_names
from proxy.backends.wire import chatparse
from proxy.core import images
from proxy.core.answers import Chunk, Completion
from proxy.core.types import GenerationRequest, amended
from proxy.ops.modelside import ModelSide


class CompletionRoute:
    """Prompts sent to ``POST /completion``, and the answers read back as a chat's."""

    def __init__(self, server: KnownServer) -> None:
        self.server = server

    def complete(self, request: GenerationRequest, facts: ServerFacts) -> Completion:
        server = self.server
        if facts.kind.legacy or request.suffix is not None:
            # Old servers' whole answers cut characters into U+FFFD and drop logprobs; their
            # streams hold an unfinished character back, as current servers do. And a server
            # stops writing a stream its reader has closed, never a whole answer: an editor
            # gives up on most gaps it asks as its user types on, and their slots come free.
            return collect(self._stream(request, facts, count_first=False))

        def post(facts: ServerFacts) -> tuple:
            prompt, payload, _ = self._payload(request, facts, stream=False)
            path = _path(request, facts)
            _tell(request, path, prompt, payload)
            return (facts, prompt, server.client.post_json(path, payload, caller=request.caller))

        facts, prompt, body = server.admission.run(
            lambda: server.reconnecting(post, facts), request.caller
        )
        result = parse.completion(body, server.client.label, request.logprobs)
        side = request.caller.side
        if side is not None:
            side.wrote(result.text)
        opened = _thoughts_open(facts, request, prompt)
        if opened is not None:
            result = replies.with_thoughts(result, opened)
        if request.tools:
            result = replies.with_calls(
                result, FORMATS[prompt.tool_format], tool_names(request.tools)
            )
        return self._finisher(request, prompt, opened).whole(result)

    def stream(self, request: GenerationRequest, facts: ServerFacts) -> Iterator[Chunk]:
        """The stream, a chat's with the prompt's token count on its first chunk, which old
        servers tell only on the last: a chat's client may show it from the start, as
        Anthropic's ``message_start`` does. Errors name the server in the log."""
        with self.server.client.blamed():
            yield from self._stream(request, facts, count_first=request.is_chat)

    def count(self, request: GenerationRequest, facts: ServerFacts) -> int:
        """The prompt's tokens, rendered here and counted by the server."""
        prompt, _ = self._prompt(request, facts)
        return self.server.tokens.count(prompt.text, legacy=facts.kind.legacy)

    def _stream(
        self, request: GenerationRequest, facts: ServerFacts, *, count_first: bool
    ) -> Iterator[Chunk]:
        finishers: list = []  # how the answer of the attempt that reached the server ends
        chunks = self.server.admission.stream(
            lambda: self._chunks(request, facts, finishers, count_first),
            request.caller,
            ends=_last,
            slot=_slot,
        )
        return finishing(chunks, lambda last, thoughts: finishers[-1].finish(last, thoughts))

    def _chunks(
        self, request: GenerationRequest, facts: ServerFacts, finishers: list, count_first: bool
    ) -> Iterator[Chunk]:
        """One attempt: open the upstream stream and read it into chunks, their thoughts and
        calls read out of the text as the prompt sent asks; how the answer ends goes into
        ``finishers``."""
        server = self.server
        with contextlib.ExitStack() as stack:

            def attempt(facts: ServerFacts) -> tuple:
                prompt, payload, size = self._payload(_counted(request, facts), facts, stream=True)
                path = _path(request, facts)
                _tell(request, path, prompt, payload)
                return (
                    facts,
                    prompt,
                    size,
                    stack.enter_context(server.client.stream(path, payload, caller=request.caller)),
                )

            facts, prompt, size, lines = server.reconnecting(attempt, facts)
            opened = _thoughts_open(facts, request, prompt)
            finishers.append(self._finisher(request, prompt, opened))
            limit = _legacy_limit(request, facts)
            top = _counted(request, facts).logprobs  # what was asked of the server
            asked = tuple(chatparse.wanted(request.unread))
            chunks = parse.stream_chunks(lines, server.client.label, top, asked)
            side = request.caller.side
            if side is not None:
                chunks = _written(chunks, side)
            if limit is not None:
                chunks = budget.limited(chunks, limit, keep_logprobs=request.logprobs is not None)
            if facts.kind.legacy and count_first:
                chunks = counted_first(
                    chunks,
                    lambda: (
                        size if size is not None else server.tokens.count(prompt.text, legacy=True)
                    ),
                )
            if opened is not None:
                chunks = replies.thinking_chunks(chunks, opened)
            if request.tools:
                chunks = replies.calling_chunks(
                    chunks, FORMATS[prompt.tool_format], tool_names(request.tools)
                )
            yield from chunks

    def _finisher(
        self, request: GenerationRequest, prompt: RenderedPrompt, opened: Optional[bool]
    ) -> Finisher:
        """The server's answers name their slot; thoughts are counted where they were told
        apart (``opened`` is not ``None``)."""
        tokens = self.server.tokens
        prompt_ids = (lambda: tuple(tokens.token_ids(prompt.text))) if request.tokenize else None
        return Finisher(
            tokens, self.server.admission, thoughts=opened is not None, prompt_ids=prompt_ids
        )

    def _payload(self, request: GenerationRequest, facts: ServerFacts, *, stream: bool) -> tuple:
        """``(prompt, body, the prompt's tokens where they were counted)``: what
        ``/completion`` is sent for ``request``, told the length of its answer where it sets
        none (:func:`.budget.unasked_bound`)."""
        prompt, stop = self._prompt(request, facts)
        tool_format = FORMATS[prompt.tool_format]
        schema = (
            request.response_format is not None and request.response_format.type == "json_schema"
        )
        constraints = output_fields(
            request,
            tool_format,
            json_schema=schema and self.server.probe_schemas(facts),
            lazy_grammar=facts.lazy_grammar,
        )
        if request.is_chat and not facts.kind.legacy:
            # the markers the proxy reads calls and thoughts by, even where they are control
            # tokens (a server leaves those out of what it sends unless told to keep them)
            thoughts = (THINK_OPEN, THINK_CLOSE) if facts.thinking else ()
            constraints["preserved_tokens"] = unique(
                [*constraints.get("preserved_tokens", ()), *tool_format.markers, *thoughts]
            )
        payload = completion_payload(
            request, prompt.text, stop, facts.kind, stream=stream, constraints=constraints
        )
        if request.suffix is not None:
            payload = fill_payload(
                payload, request, facts.kind, facts.fim, self.server.tokens.token_ids
            )
        size, context = None, facts.card.context_length
        if request.max_tokens is None and context is not None:
            size = self._size(payload["prompt"]) if facts.kind.legacy else None
            payload["n_predict"] = budget.unasked_bound(context, size)
        return prompt, payload, size

    def _size(self, prompt) -> int:
        """The tokens an old server takes ``prompt`` (a text, or token ids and texts) for,
        its BOS included."""
        tokens = self.server.tokens
        if isinstance(prompt, str):
            return tokens.count(prompt, legacy=True)
        return 1 + sum(
            1 if isinstance(part, int) else len(tokens.token_ids(part)) for part in prompt
        )

    def _prompt(self, request: GenerationRequest, facts: ServerFacts) -> tuple:
        """``(prompt, stop words)``: a raw prompt as it is, a chat rendered by the template."""
        if not request.is_chat:
            return RenderedPrompt(request.prompt, ()), unique(request.stop)
        messages = (
            images.marked(request.messages, facts.media_marker)
            if request.images or request.sounds
            else request.messages
        )
        rendered = facts.template.render(messages, request.tools, request.template_kwargs)
        return rendered, unique(rendered.stop + tuple(request.stop))


def _path(request: GenerationRequest, facts: ServerFacts) -> str:
    """Where ``request`` goes: ``/infill`` fills a gap where the server has it, ``/completion``
    goes on from a prompt (the gap's, where the proxy lays it out)."""
    return "/infill" if request.suffix is not None and facts.kind.fills == INFILL else "/completion"


def _tell(request: GenerationRequest, path: str, prompt: RenderedPrompt, payload: dict) -> None:
    """Tell the inspector what went upstream and, on ``/completion``, the prompt (a gap the
    server lays out itself on ``/infill``)."""
    side = request.caller.side
    if side is not None:
        side.sent(path, payload)
        if path == "/completion" and request.suffix is None:
            side.prompted(prompt.text)


def _written(chunks: Iterator[Chunk], side: ModelSide) -> Iterator[Chunk]:
    """``chunks``, their text told to the inspector (``side``) as the server sent it."""
    for chunk in chunks:
        side.wrote(chunk.text)
        yield chunk


def _slot(chunk: Chunk) -> Optional[int]:
    """The server's slot answering, which its first chunk names."""
    return chunk.slot


def _last(chunk: Chunk) -> bool:
    """Whether ``chunk`` ends the server's generation (and so frees its slot)."""
    return chunk.finish_reason is not None


def _legacy_limit(request: GenerationRequest, facts: ServerFacts) -> Optional[int]:
    """The token limit the proxy must keep itself: old servers overshoot theirs."""
    return request.max_tokens if facts.kind.legacy else None


def _counted(request: GenerationRequest, facts: ServerFacts) -> GenerationRequest:
    """The request as sent: with at least one probability per token where the proxy counts."""
    if _legacy_limit(request, facts) is not None and request.logprobs is None:
        return amended(request, logprobs=0)
    return request


def _thoughts_open(
    facts: ServerFacts, request: GenerationRequest, prompt: RenderedPrompt
) -> Optional[bool]:
    """``None`` when the answer's thoughts stay in it (raw prompts, models that write none),
    else whether ``prompt`` opened them."""
    return prompt.opens_thinking if facts.thinking and request.is_chat else None
