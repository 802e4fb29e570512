"""A chat through the server's own chat layer (:mod:`.chat`), whole or streamed, and its
prompt counted as the server renders it.

The server renders the template and reads calls and thoughts back itself; the proxy only
stops at the client's stop words (the server would not say which ended the answer) and
finishes the answer as every route does (:mod:`.finish`).
"""

from __future__ import annotations

import contextlib
from contextlib import closing
from typing import Iterator, Optional

from proxy.backends.servercpp import budget, chatpayload
from proxy.backends.servercpp.detect import ServerFacts
from proxy.backends.servercpp.finish import Finisher, collect
from proxy.backends.servercpp.known import KnownServer
from proxy.backends.structured.stops import Stopped
from proxy.backends.wire import chatparse
from proxy.core.answers import Chunk, Completion
from proxy.core.errors import SlotUnavailableError, UpstreamError
from proxy.core.types import GenerationRequest

RENDER_TIMEOUT = 10.0  # seconds the inspector waits for the server's rendering of a prompt


class ChatRoute:
    """Chats sent to ``POST /v1/chat/completions`` of a server that has a chat layer."""

    def __init__(self, server: KnownServer) -> None:
        self.server = server

    def complete(self, request: GenerationRequest, facts: ServerFacts) -> Completion:
        if request.stop:  # the proxy stops at them itself, on the stream
            return collect(self.stream(request, facts))
        server = self.server
        payload = self._payload(request, facts, stream=False)
        self._tell(request, payload, facts)
        body = server.admission.run(
            lambda: server.reconnecting(
                lambda _: server.client.post_json(chatpayload.PATH, payload, caller=request.caller),
                facts,
            ),
            request.caller,
        )
        return self._finisher(request, facts).whole(
            chatparse.completion(body, server.client.label, request.logprobs)
        )

    def stream(self, request: GenerationRequest, facts: ServerFacts) -> Iterator[Chunk]:
        """The answer's chunks: one generator from the slot's lease to the last chunk, every
        step of a token's way a call it makes (the lease another attempt after a refusal
        before the first chunk, the lines read into chunks, the client's stop words cut, the
        last chunk finished with the answer's thoughts in hand)."""
        server = self.server
        client, caller = server.client, request.caller
        payload = self._payload(request, facts, stream=True)
        self._tell(request, payload, facts)
        finisher = self._finisher(request, facts)
        thoughts: list = []
        with client.blamed(), closing(server.admission.attempts(caller)) as attempts:
            for attempt in attempts:
                try:
                    with contextlib.ExitStack() as stack:
                        lines = server.reconnecting(
                            lambda _: stack.enter_context(
                                client.stream(chatpayload.PATH, payload, caller=caller)
                            ),
                            facts,
                        )
                        reader = chatparse.ChatStreamReader(
                            client.label, request.logprobs, chatparse.wanted(request.unread)
                        )
                        stops = Stopped(request.stop) if request.stop else None
                        for batch in lines:
                            read = reader.read(batch)
                            if read and not attempt.answered:
                                attempt.began()
                            for chunk in stops.cut_all(read) if stops else read:
                                if chunk.finish_reason is None:
                                    if chunk.reasoning:
                                        thoughts.append(chunk.reasoning)
                                    yield chunk
                                    continue
                                yield finisher.finish(chunk, "".join(thoughts) + chunk.reasoning)
                                return
                        last = reader.end()  # the server sent no usage: it ends all the same
                        for chunk in stops.cut_all(last) if stops else last:
                            yield finisher.finish(chunk, "".join(thoughts) + chunk.reasoning)
                    return
                except SlotUnavailableError as exc:
                    attempt.refused(exc)

    def count(self, request: GenerationRequest, facts: ServerFacts) -> int:
        """The prompt's tokens, as the server renders and counts it."""
        client = self.server.client
        reply = client.post(
            chatpayload.COUNT_PATH,
            chatpayload.count_payload(request, **_options(self.server, facts)),
        )
        if reply.status_code == 404:  # a server of 2025: render the prompt, then count it
            return len(self._tokenize_prompt(request, facts, bos=True))
        client.raise_for_status(reply)
        try:
            count = reply.json().get("input_tokens")
        except (ValueError, AttributeError):
            count = None
        if not isinstance(count, int):
            raise UpstreamError(f"{client.label} answered its token count without a number")
        return count

    def _payload(self, request: GenerationRequest, facts: ServerFacts, *, stream: bool) -> dict:
        """The chat's body, told the server's context as the length of an answer whose
        request sets none (:func:`.budget.unasked_bound`: the prompt the chat layer renders
        is not counted)."""
        payload = chatpayload.chat_payload(request, stream=stream, **_options(self.server, facts))
        if request.max_tokens is None:
            bound = budget.unasked_bound(facts.card.context_length, None)
            if bound is not None:
                payload["max_tokens"] = bound
        return payload

    def _tell(self, request: GenerationRequest, payload: dict, facts: ServerFacts) -> None:
        """Tell the inspector what went upstream, and how to ask the server what it
        rendered of it; the text the model wrote stays the server's (it reads calls and
        thoughts out of it itself)."""
        side = request.caller.side
        if side is not None:
            side.sent(chatpayload.PATH, payload)
            side.rendered_by_server(
                lambda: self._render_prompt(request, facts, timeout=RENDER_TIMEOUT)
            )

    def _finisher(self, request: GenerationRequest, facts: ServerFacts) -> Finisher:
        """The server's answers name no slot; their thoughts are always told apart."""
        prompt_ids = (lambda: self._tokenize_prompt(request, facts)) if request.tokenize else None
        return Finisher(self.server.tokens, prompt_ids=prompt_ids)

    def _tokenize_prompt(
        self, request: GenerationRequest, facts: ServerFacts, *, bos: bool = False
    ) -> tuple:
        """The token ids of the prompt the server renders for ``request`` (``bos``: with the
        BOS the server puts before it, where the model has one)."""
        rendered = self._render_prompt(request, facts)
        return tuple(self.server.tokens.token_ids(rendered, add_special=bos))

    def _render_prompt(
        self, request: GenerationRequest, facts: ServerFacts, timeout: Optional[float] = None
    ) -> str:
        """The prompt the server renders for ``request``, as its ``/apply-template`` says
        (``timeout``: seconds to wait for it, the upstream's by default)."""
        body = self.server.client.post_json(
            "/apply-template",
            chatpayload.count_payload(request, **_options(self.server, facts)),
            timeout=timeout,
        )
        prompt = body.get("prompt") if isinstance(body, dict) else None
        return prompt if isinstance(prompt, str) else ""


def _options(server: KnownServer, facts: ServerFacts) -> dict:
    """How chats are sent to the server's chat layer (:func:`.chatpayload.chat_payload`)."""
    layer = facts.layer
    return {
        "reasoning": server.reasoning != "none",
        "short_ids": layer is not None and layer.short_ids,
    }
