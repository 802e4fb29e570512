"""A chat through the server's own chat layer (:mod:`.chat`), whole or streamed, and its
prompt counted as the server renders it.

The server renders the template and reads calls and thoughts back itself; the proxy only
stops at the client's stop words (the server would not say which ended the answer) and
finishes the answer as every route does (:mod:`.finish`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from proxy.backends.servercpp import chatpayload
from proxy.backends.servercpp.finish import Finisher, collect
from proxy.backends.servercpp.known import KnownServer
from proxy.backends.structured.stops import stopping
from proxy.backends.wire import chatparse
from proxy.core.errors import UpstreamError
from proxy.core.types import Chunk, Completion, GenerationRequest

RENDER_TIMEOUT = 10.0  # seconds the inspector waits for the server's rendering of a prompt


class ChatRoute:
    """Chats sent to ``POST /v1/chat/completions`` of a server that has a chat layer."""

    def __init__(self, server: KnownServer) -> None:
        self.server = server

    def complete(self, request: GenerationRequest) -> Completion:
        if request.stop:  # the proxy stops at them itself, on the stream
            return collect(self.stream(request))
        server = self.server
        payload = chatpayload.chat_payload(request, stream=False, **self._options())
        self._tell(request, payload)
        body = server.admission.run(
            lambda: server.reconnecting(
                lambda _: server.client.post_json(chatpayload.PATH, payload, caller=request.caller)
            ),
            request.caller,
        )
        return self._finisher(request).whole(
            chatparse.completion(body, server.client.label, request.logprobs)
        )

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        chunks = self.server.admission.stream(lambda: self._chunks(request), request.caller)
        if request.stop:
            chunks = stopping(chunks, request.stop)
        return self._finisher(request).stream(chunks)

    def count(self, request: GenerationRequest) -> int:
        """The prompt's tokens, as the server renders and counts it."""
        client = self.server.client
        reply = client.post(
            chatpayload.COUNT_PATH, chatpayload.count_payload(request, **self._options())
        )
        if reply.status_code == 404:  # a server of 2025: render the prompt, then count it
            return len(self._prompt_ids(request, bos=True))
        client.raise_for_status(reply)
        try:
            count = reply.json().get("input_tokens")
        except (ValueError, AttributeError):
            count = None
        if not isinstance(count, int):
            raise UpstreamError(f"{client.label} answered its token count without a number")
        return count

    def _chunks(self, request: GenerationRequest) -> Iterator[Chunk]:
        """One attempt: open the upstream stream and read it into chunks."""
        server = self.server
        payload = chatpayload.chat_payload(request, stream=True, **self._options())
        self._tell(request, payload)
        with contextlib.ExitStack() as stack:
            lines = server.reconnecting(
                lambda _: stack.enter_context(
                    server.client.stream(chatpayload.PATH, payload, caller=request.caller)
                )
            )
            yield from chatparse.stream_chunks(lines, server.client.label, request.logprobs)

    def _tell(self, request: GenerationRequest, payload: dict) -> None:
        """Tell the inspector what went upstream, and how to ask the server what it
        rendered of it; the text the model wrote stays the server's (it reads calls and
        thoughts out of it itself)."""
        side = request.caller.side
        if side is not None:
            side.sent(chatpayload.PATH, payload)
            side.rendered_by_server(lambda: self._rendered(request, timeout=RENDER_TIMEOUT))

    def _finisher(self, request: GenerationRequest) -> Finisher:
        """The server's answers name no slot; their thoughts are always told apart."""
        prompt_ids = (lambda: self._prompt_ids(request)) if request.tokenize else None
        return Finisher(self.server.tokens, prompt_ids=prompt_ids)

    def _prompt_ids(self, request: GenerationRequest, *, bos: bool = False) -> tuple:
        """The token ids of the prompt the server renders for ``request`` (``bos``: with the
        BOS the server puts before it, where the model has one)."""
        return tuple(self.server.tokens.token_ids(self._rendered(request), add_special=bos))

    def _rendered(self, request: GenerationRequest, timeout: Optional[float] = None) -> str:
        """The prompt the server renders for ``request``, as its ``/apply-template`` says
        (``timeout``: seconds to wait for it, the upstream's by default)."""
        body = self.server.client.post_json(
            "/apply-template",
            chatpayload.count_payload(request, **self._options()),
            timeout=timeout,
        )
        prompt = body.get("prompt") if isinstance(body, dict) else None
        return prompt if isinstance(prompt, str) else ""

    def _options(self) -> dict:
        """How chats are sent to this server's chat layer (:func:`.chatpayload.chat_payload`)."""
        layer = self.server.detect().layer
        return {
            "reasoning": self.server.reasoning != "none",
            "short_ids": layer is not None and layer.short_ids,
        }
