"""A model on a server that speaks a public API (OpenAI's chat completions, Anthropic's
Messages): generations sent on in the API's body (translated, or the client's own when it
speaks the same API), and the answers read back, whole or streamed. Each API's backend
says which way a request goes, once, as it comes (:meth:`Relay.way`: a
:class:`~proxy.backends.wire.way.Way`, which says what it refuses, where it goes, its body,
its answers read); this holds what they share: the queue, the inspector told what went
upstream, health from the model list.

Such a server renders the prompt, parses the model's calls and thoughts and places each
request itself: the proxy names no slot, and counts no token itself (it has no tokenizer of
the server's model; a way whose API counts asks the server, and so does an answer whose
server told no usage, :mod:`.untold`). Its 404, 405 and 501 say it
has no such route (:class:`MissingRoute`), which the backend may name in its own words
(:meth:`Relay.missing`).

The model's filters (:meth:`~proxy.config.catalog.Filters.apply`) change the body last: a field the
operator strips is left out (one the API has no place for, too, rather than refused), one
it sets goes with its value; those the request had given travel with the answer (its
:class:`~proxy.core.answers.Served`), for its headers to name. The body as they leave it is
what the model's price judges (:mod:`proxy.config.price`): a field that changes what the
upstream charges and that the price does not cover is refused by its name before the body
is sent; the service tier it is priced at travels with the answer, and a stored completion
with its usage, for its charge.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from proxy.backends.base import Backend
from proxy.backends.wire import untold
from proxy.backends.wire.client import MissingRoute, UpstreamClient
from proxy.backends.wire.way import Way
from proxy.config.catalog import Filters
from proxy.config.price import Price, terms
from proxy.core.answers import (
    TOLD,
    UNTOLD,
    Chunk,
    Completion,
    Health,
    ModelCard,
    ModelInfo,
    Served,
    Usage,
)
from proxy.core.caller import Caller
from proxy.core.errors import InvalidRequestError, ProxyError, UpstreamError
from proxy.core.types import GenerationRequest, amended
from proxy.queue.admission import Admission

HEALTH_TIMEOUT = 5.0  # seconds the model list may take to say the server is there


class Relay(Backend):
    """One server (a replica) of one model, which speaks the API of the subclass."""

    models_path = ""  # where the server lists its models
    owned_by = ""

    def __init__(
        self,
        client: UpstreamClient,
        admission: Admission,
        served_name: str,
        upstream_model: str,
        filters: Filters = Filters(),
        price: Optional[Price] = None,
    ) -> None:
        """``upstream_model``: the name the server knows the model by, which
        ``served_name`` stands for here; ``filters``: the model's, on every body sent;
        ``price``: the model's, where the server's API prices fields of a body apart
        (OpenAI's: ``None`` elsewhere, or without a price, asks nothing of a body)."""
        self.client = client
        self.admission = admission
        self.served_name = served_name
        self.upstream_model = upstream_model
        self.filters = filters
        self.price = price

    # -- what each API says --------------------------------------------------------------

    def way(self, request: GenerationRequest) -> Way:
        """The way ``request`` goes to the server: asked once, as the request comes, and
        asked everything about it from then on."""
        raise NotImplementedError

    def missing(self, exc: MissingRoute) -> ProxyError:
        """The error of a request whose route the server turned out to lack: its own."""
        return exc

    def capabilities(self) -> tuple:
        """What the model's card says it can do: chat, and call tools."""
        return ("completion", "tools")

    # -- what they share -------------------------------------------------------------------

    def complete(self, request: GenerationRequest) -> Completion:
        with self.client.blamed():
            way = self._way(request)
            body = way.body(stream=False)
            noted = self._filter(way, body)
            tier, stored = self._priced(body)
            self._tell(request, way.path, body)
            completion = way.whole(self.send(way.path, body, request.caller))
            if completion.usage.how == UNTOLD:
                told = self._untold(way, request, body, untold.answered(completion))
                completion = amended(completion, usage=told)
            if stored:
                completion = amended(completion, usage=amended(completion.usage, stored=stored))
            if any(noted) or tier:
                return amended(completion, served=Served("", False, *noted, tier))
            return completion

    def send(self, path: str, body: dict, caller: Caller) -> object:
        """The server's whole answer at ``path``, once a slot is free."""
        try:
            return self.admission.run(
                lambda: self.client.post_json(path, body, caller=caller), caller
            )
        except MissingRoute as exc:
            raise self.missing(exc) from None

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        with self.client.blamed():
            way = self._way(request)
            body = way.body(stream=True)
            noted = self._filter(way, body)
            priced = self._priced(body)
            yield from self.admission.stream(
                lambda: self._chunks(way, request, body, (*noted, *priced)), request.caller
            )

    def count_tokens(self, request: GenerationRequest) -> int:
        """The prompt's tokens, counted by the server where the request's way has a count
        (the proxy has no tokenizer of the server's model)."""
        way = self.way(request)
        if not way.count_path:
            return super().count_tokens(request)
        with self.client.blamed():
            answer = self.client.post_json(way.count_path, way.count_body(), caller=request.caller)
        return way.counted(answer)

    def _chunks(
        self, way: Way, request: GenerationRequest, body: dict, noted: tuple
    ) -> Iterator[Chunk]:
        """The stream of ``body`` (filtered, priced: ``noted`` holds the fields the filters
        stripped and replaced, the service tier and the completions stored)."""
        stripped, replaced, tier, stored = noted
        self._tell(request, way.path, body)
        with contextlib.ExitStack() as stack:
            try:
                lines = stack.enter_context(
                    self.client.stream(way.path, body, caller=request.caller)
                )
            except MissingRoute as exc:
                raise self.missing(exc) from None
            if stripped or replaced or tier:
                yield Served("", False, stripped, replaced, tier)
            made, began = untold.PieceCount(), False
            try:
                for chunk in way.chunks(lines):
                    began = True
                    if type(chunk) is Chunk:
                        usage = chunk.usage
                        if usage is not None and chunk.finish_reason:
                            if usage.how == UNTOLD:
                                usage = self._untold(way, request, body, made.tokens)
                            if stored:
                                usage = amended(usage, stored=stored)
                            if usage is not chunk.usage:
                                chunk = amended(chunk, usage=usage)
                        elif chunk.text or chunk.reasoning or chunk.tool_calls:
                            made.add(chunk)
                    yield chunk
            except UpstreamError:
                if not began:  # an empty stream tells no reason: the server may, asked whole
                    self.client.post_json(way.path, untold.probe(body), caller=request.caller)
                raise

    def _untold(self, way: Way, request: GenerationRequest, body: dict, made: int) -> Usage:
        """The usage of an answer of ``made`` tokens (estimated) whose server told none
        (see :mod:`.untold`): its prompt counted by the server, else estimated too."""
        prompt = None
        with contextlib.suppress(ProxyError):
            answer = self.client.post_json(way.path, untold.probe(body), caller=request.caller)
            usage = way.whole(answer).usage
            prompt = usage.prompt_tokens if usage.how == TOLD else None
        return untold.usage(request, prompt, made)

    def _way(self, request: GenerationRequest) -> Way:
        """The way of ``request``, refused when it cannot go that way."""
        way = self.way(request)
        problem = way.refusal()
        if problem is not None:
            raise problem
        return way

    def _priced(self, body: dict) -> tuple:
        """What ``body``, as the filters left it, asks of the model's price: ``(tier,
        stored)``, the service tier it is priced at (``""``: the model's own) and the
        completions the upstream stores; a 400 naming the field the price does not cover."""
        if self.price is None:
            return "", 0
        asked = terms(body)
        problem = self.price.refusal(asked)
        if problem is not None:
            field, why = problem
            raise InvalidRequestError(
                f"{field} cannot be served on {self.served_name}: {why}", param=field
            )
        return asked.tier or "", int(asked.store)

    def _filter(self, way: Way, body: dict) -> tuple:
        """Apply the model's filters to ``body``; ``(stripped, replaced)``: the names of the
        fields of the request they took out or gave other values."""
        if not self.filters:
            return (), ()
        stripped, replaced = self.filters.apply(body, way.filled())
        strip = self.filters.strip
        return (*(name for name in way.unsent() if name in strip), *stripped), replaced

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

    def probe(self) -> Health:
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
