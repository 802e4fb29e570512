"""A model on a server that speaks a public API (OpenAI's chat completions, Anthropic's
Messages): generations translated to the API's body, sent on, and the answers read back,
whole or streamed. Each API's backend says how (:class:`Relay`'s methods: what it refuses,
where a request goes, its body, its answers read); this holds what they share: the queue,
the inspector told what went upstream, health from the model list.

Such a server renders the prompt, parses the model's calls and thoughts and places each
request itself: the proxy names no slot, and counts no token (it has no tokenizer of the
server's model). Its 404, 405 and 501 say it has no such route (:class:`MissingRoute`),
which the backend may name in its own words (:meth:`Relay.missing`).

The model's filters (:mod:`proxy.backends.wire.filters`) change the body last: a field the
operator strips is left out (one the API has no place for, too, rather than refused), one
it sets goes with its value; those the request had given travel with the answer (its
:class:`~proxy.core.types.Served`), for its headers to name.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Iterable, Iterator, Optional

from proxy.backends.admission import Admission
from proxy.backends.base import Backend
from proxy.backends.wire.client import MissingRoute, UpstreamClient
from proxy.backends.wire.filters import apply
from proxy.config.catalog import Filters
from proxy.core.caller import Caller
from proxy.core.errors import ProxyError
from proxy.core.types import (
    Chunk,
    Completion,
    GenerationRequest,
    Health,
    ModelCard,
    ModelInfo,
    Served,
)

HEALTH_TIMEOUT = 5.0  # seconds the model list may take to say the server is there


class Relay(Backend):
    """One server (a replica) of one model, which speaks the API of the subclass."""

    path = ""  # where chats go
    models_path = ""  # where the server lists its models
    owned_by = ""

    def __init__(
        self,
        client: UpstreamClient,
        admission: Admission,
        served_name: str,
        upstream_model: str,
        filters: Filters = Filters(),
    ) -> None:
        """``upstream_model``: the name the server knows the model by, which
        ``served_name`` stands for here; ``filters``: the model's, on every body sent."""
        self.client = client
        self.admission = admission
        self.served_name = served_name
        self.upstream_model = upstream_model
        self.filters = filters

    # -- what each API says --------------------------------------------------------------

    def refusal(self, request: GenerationRequest) -> Optional[ProxyError]:
        """Why ``request`` cannot be sent in this API, or ``None`` (what the filters strip
        is left out, not refused)."""
        raise NotImplementedError

    def unsent(self, request: GenerationRequest) -> Iterable[str]:
        """The names the client gave the fields of ``request`` this API has no place for."""
        raise NotImplementedError

    def filled(self, request: GenerationRequest) -> tuple:
        """The fields of the body the proxy writes though ``request`` gave none."""
        return ()

    def route(self, request: GenerationRequest) -> str:
        """Where ``request`` goes: chats to :attr:`path`."""
        return self.path

    def missing(self, exc: MissingRoute) -> ProxyError:
        """The error of a request whose route the server turned out to lack: its own."""
        return exc

    def capabilities(self) -> tuple:
        """What the model's card says it can do: chat, and call tools."""
        return ("completion", "tools")

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
            path = self.route(request)
            body = self.body(request, stream=False)
            noted = self._filter(request, body)
            self._tell(request, path, body)
            completion = self.whole(self.answer(path, body, request.caller), request)
            if any(noted):
                return replace(completion, served=Served("", False, *noted))
            return completion

    def answer(self, path: str, body: dict, caller: Caller) -> object:
        """The server's whole answer at ``path``, once a slot is free."""
        try:
            return self.admission.run(
                lambda: self.client.post_json(path, body, caller=caller), caller
            )
        except MissingRoute as exc:
            raise self.missing(exc) from None

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        with self.client.blamed():
            self._check(request)
            yield from self.admission.stream(lambda: self._chunks(request), request.caller)

    def _chunks(self, request: GenerationRequest) -> Iterator[Chunk]:
        path = self.route(request)
        body = self.body(request, stream=True)
        noted = self._filter(request, body)
        self._tell(request, path, body)
        with contextlib.ExitStack() as stack:
            try:
                lines = stack.enter_context(self.client.stream(path, body, caller=request.caller))
            except MissingRoute as exc:
                raise self.missing(exc) from None
            if any(noted):
                yield Served("", False, *noted)
            yield from self.chunks(lines, request)

    def _check(self, request: GenerationRequest) -> None:
        problem = self.refusal(request)
        if problem is not None:
            raise problem

    def _filter(self, request: GenerationRequest, body: dict) -> tuple:
        """Apply the model's filters to ``body``; ``(left out, replaced)``: the names of the
        fields of ``request`` they took out or gave other values."""
        if not self.filters:
            return (), ()
        left_out, replaced = apply(self.filters, body, self.filled(request))
        stripped = self.filters.strip
        return (*(name for name in self.unsent(request) if name in stripped), *left_out), replaced

    def _tell(self, request: GenerationRequest, path: str, body: dict) -> None:
        """Tell the inspector what went upstream, and a raw prompt as the prompt (a chat's
        the server renders, and does not show)."""
        side = request.caller.side
        if side is not None:
            side.sent(path, body)
            if not request.is_chat:
                side.prompted(request.prompt)

    def models(self) -> list:
        return [
            ModelInfo(
                self.served_name,
                owned_by=self.owned_by,
                card=ModelCard(capabilities=self.capabilities()),
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
