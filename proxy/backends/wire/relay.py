"""A model on a server that speaks a public API (OpenAI's chat completions, Anthropic's
Messages): chats translated to the API's body, sent on, and the answers read back, whole or
streamed. Each API's backend says how (:class:`Relay`'s four methods); this holds what they
share: the queue, the inspector told what went upstream, health from the model list.

Such a server renders the prompt, parses the model's calls and thoughts and places each
request itself: the proxy names no slot, and counts no token (it has no tokenizer of the
server's model).
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Optional

from proxy.backends.admission import Admission
from proxy.backends.base import Backend
from proxy.backends.wire.client import UpstreamClient
from proxy.core.errors import InvalidRequestError, ProxyError
from proxy.core.types import Chunk, Completion, GenerationRequest, Health, ModelCard, ModelInfo

HEALTH_TIMEOUT = 5.0  # seconds the model list may take to say the server is there


class Relay(Backend):
    """One server (a replica) of one model, which speaks the API of the subclass."""

    path = ""  # where chats go
    models_path = ""  # where the server lists its models
    owned_by = ""

    def __init__(
        self, client: UpstreamClient, admission: Admission, served_name: str, upstream_model: str
    ) -> None:
        """``upstream_model``: the name the server knows the model by, which
        ``served_name`` stands for here."""
        self.client = client
        self.admission = admission
        self.served_name = served_name
        self.upstream_model = upstream_model

    # -- what each API says --------------------------------------------------------------

    def refusal(self, request: GenerationRequest) -> Optional[InvalidRequestError]:
        """Why ``request`` cannot be sent in this API, or ``None``."""
        raise NotImplementedError

    def body(self, request: GenerationRequest, *, stream: bool) -> dict:
        raise NotImplementedError

    def whole(self, answer: object, request: GenerationRequest) -> Completion:
        raise NotImplementedError

    def chunks(self, lines: Iterable[list], request: GenerationRequest) -> Iterator[Chunk]:
        raise NotImplementedError

    # -- what they share -------------------------------------------------------------------

    def complete(self, request: GenerationRequest) -> Completion:
        with self.client.blamed():
            self._check(request)
            body = self.body(request, stream=False)
            self._tell(request, body)
            answer = self.admission.run(
                lambda: self.client.post_json(self.path, body, caller=request.caller),
                request.caller,
            )
            return self.whole(answer, request)

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        with self.client.blamed():
            self._check(request)
            yield from self.admission.stream(lambda: self._chunks(request), request.caller)

    def _chunks(self, request: GenerationRequest) -> Iterator[Chunk]:
        body = self.body(request, stream=True)
        self._tell(request, body)
        with contextlib.ExitStack() as stack:
            lines = stack.enter_context(self.client.stream(self.path, body, caller=request.caller))
            yield from self.chunks(lines, request)

    def _check(self, request: GenerationRequest) -> None:
        problem = self.refusal(request)
        if problem is not None:
            raise problem

    def _tell(self, request: GenerationRequest, body: dict) -> None:
        """Tell the inspector what went upstream (the server renders the prompt and does not
        show it)."""
        if request.caller.side is not None:
            request.caller.side.sent(self.path, body)

    def models(self) -> list:
        return [
            ModelInfo(
                self.served_name,
                owned_by=self.owned_by,
                card=ModelCard(capabilities=("completion", "tools")),
            )
        ]

    def health(self) -> Health:
        """Whether the server lists its models with the key (every such server does)."""
        detail = {"upstream": self.client.label, "model": self.served_name}
        try:
            with self.client.blamed():
                reply = self.client.get(self.models_path, timeout=HEALTH_TIMEOUT)
                self.client.raise_for_status(reply)
        except ProxyError as exc:  # unreachable, or there and refusing
            return Health(False, self.name, {**detail, "error": exc.message})
        return Health(True, self.name, {**detail, **self.admission.snapshot()})

    def load(self) -> tuple:
        return self.admission.busy()

    def describe(self) -> dict:
        return {"upstream_model": self.upstream_model, **self.admission.snapshot()}

    def finds_slots(self) -> bool:
        """The server places its requests itself; the proxy names no slot."""
        return True

    def close(self) -> None:
        self.client.close()
