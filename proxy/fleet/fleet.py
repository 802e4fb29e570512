"""The fleet: many models, each on one or more replicas, behind the one :class:`Router` the API
and the core know (:mod:`proxy.core.router`).

The fleet picks where a request runs, never how: each replica is a backend of its own (a
server.cpp upstream with its admission queue, or a chatglm.cpp model), and the fleet routes by
the request's ``model``, fills in the model's defaults, places the request on a replica (the
conversation's replica and slot first, the least busy one when that is overloaded), takes a
replica that cannot be reached out of rotation and sends the request to another before any
byte has reached the client.
"""

from __future__ import annotations

import logging
import threading
from contextlib import closing
from typing import Callable, Iterator, Optional, Sequence, TypeVar

from proxy.backends.base import Backend
from proxy.config.catalog import Catalog, ModelSpec, with_defaults
from proxy.config.modeltable import APIS
from proxy.config.price import Price
from proxy.core.answers import Chunk, Completion, Embeddings, Health, Ranking, Served
from proxy.core.audio import Speech, Transcript, Transcription
from proxy.core.caller import NOBODY, Caller
from proxy.core.conversation import thread_id
from proxy.core.errors import InvalidRequestError, ModelNotFoundError
from proxy.core.pictures import Drawing, Pictures
from proxy.core.target import Target
from proxy.core.tooluse import ToolPolicy
from proxy.core.types import GenerationRequest, amended
from proxy.fleet import report, traced
from proxy.fleet.failover import FALLS_BACK, RETRIED, Chain, Failover
from proxy.fleet.placement import continues, overflowing
from proxy.fleet.replica import Replica
from proxy.fleet.seats import answered_from
from proxy.fleet.servedmodel import ServedModel, counted_id
from proxy.servers.pool import ProcessPool
from proxy.servers.processes import ManagedServer
from proxy.servers.remote import RemoteServer, Supervised

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Fleet:
    """Route each request to its model, and the model's replica that should serve it."""

    name = "fleet"

    def __init__(
        self,
        catalog: Catalog,
        models: Sequence[ServedModel],
        processes: Optional[ProcessPool | Supervised] = None,
    ) -> None:
        """``processes``: what runs the servers the proxy runs itself (this process's pool,
        or a gunicorn worker's connections to the supervisor), closed with the fleet."""
        # what it serves, replaced whole (a request reads the two of one moment)
        self._serving = (catalog, {model.spec.id: model for model in models})
        self._changing = threading.Lock()
        self.processes = processes

    @property
    def catalog(self) -> Catalog:
        return self._serving[0]

    @property
    def _models(self) -> dict:
        return self._serving[1]

    def serve_instead(self, catalog: Catalog, made: Callable[[ModelSpec], ServedModel]) -> list:
        """Serve ``catalog`` from now on: a model whose spec is unchanged keeps its replicas
        (and the conversations they hold), a new or changed one is ``made``. Returns the
        models no longer served, for the caller to retire once their requests end."""
        with self._changing:
            _, before = self._serving
            now = {}
            for spec in catalog.models:
                old = before.get(spec.id)
                now[spec.id] = old if old is not None and old.spec == spec else made(spec)
            self._serving = (catalog, now)
        return [model for model_id, model in before.items() if now.get(model_id) is not model]

    @property
    def concurrent(self) -> bool:
        return all(r.backend.concurrent for m in self._models.values() for r in m.replicas)

    # -- generation ------------------------------------------------------------------------

    def complete(self, request: GenerationRequest) -> Completion:
        """The answer of the request's model, or of its fallbacks in turn while none of its
        replicas can answer; it names the model that made it (:class:`Served`)."""
        asked = self._model_of(request.model, request.caller)
        chain = self._chain(asked, request)
        model = chain.first
        while True:
            try:
                answer = self._complete_on(model, request)
                break
            except FALLS_BACK as exc:
                model = chain.fall_back(model, exc)
                if model is None:
                    raise
        return amended(answer, served=model.served(asked, answer.served))

    def _complete_on(self, model: ServedModel, request: GenerationRequest) -> Completion:
        request = model.taking(request)
        conversation = model.conversation(request)

        def attempt(replica: Replica) -> Completion:
            seats = model.seats[replica.name]
            trace = request.caller.trace
            with replica.serving(request.caller.measure), traced.attempt(request, model, replica):
                slot = seats.prepare(conversation, request)
                try:
                    result = replica.backend.complete(in_slot(request, slot))
                finally:
                    seats.release(slot)
                served = answered_from(result.slot, slot)
                seats.served(conversation, served)
                _placed(request, replica, served)
                if trace is not None:
                    traced.answered(trace, model, result.usage, result.finish_reason, result.text)
            return result

        return self._failing_over(
            model, conversation, attempt, continues(request), request.caller.trace
        )

    def stream(self, request: GenerationRequest) -> Iterator:
        """The chunks of the request's model, or of its fallbacks in turn while none of its
        replicas could begin, after the :class:`Served` that names the model that answers:
        once a chunk has gone, a failure ends the stream.

        One generator for the chain of models and each model's replicas (see
        :class:`Failover`): every streamed token passes through it.
        """
        asked = self._model_of(request.model, request.caller)
        chain = self._chain(asked, request)
        model = chain.first
        started = False
        trace = request.caller.trace
        while True:
            try:
                asking = model.taking(request)
                conversation = model.conversation(asking)
                failover = Failover(model, conversation, continues(asking), trace)
                while True:
                    replica = failover.place()
                    seats = model.seats[replica.name]
                    try:
                        with (
                            replica.serving(asking.caller.measure),
                            traced.attempt(asking, model, replica),
                        ):
                            slot = seats.prepare(conversation, asking)
                            told = None  # what the backend says of its request, first
                            try:
                                with closing(
                                    replica.backend.stream(in_slot(asking, slot))
                                ) as chunks:
                                    for chunk in chunks:
                                        if not started:
                                            if type(chunk) is Served:
                                                told = chunk
                                                continue
                                            started = True
                                            if trace is not None:
                                                trace.event("gen_ai.first_token")
                                            yield model.served(asked, told)
                                        if type(chunk) is Chunk and chunk.finish_reason:
                                            served = answered_from(chunk.slot, slot)
                                            seats.served(conversation, served)
                                            _placed(asking, replica, served)
                                            if trace is not None:
                                                traced.answered(trace, model, chunk.usage,
                                                                chunk.finish_reason)  # fmt: skip
                                        yield chunk
                            finally:
                                seats.release(slot)
                        return
                    except RETRIED as exc:
                        if started or not failover.drop(replica, exc):
                            raise
            except FALLS_BACK as exc:
                model = None if started else chain.fall_back(model, exc)
                if model is None:
                    raise

    # -- tokens and embeddings -------------------------------------------------------------

    def count_tokens(self, request: GenerationRequest) -> int:
        model = self._model_of(request.model, request.caller)
        request = with_defaults(request, model.spec.defaults)
        attempt = _attempt(lambda backend: backend.count_tokens(request), request.caller)
        return self._failing_over(model, None, attempt, trace=request.caller.trace)

    def tokenize(self, text: str, model: Optional[str] = None, caller: Caller = NOBODY) -> list:
        return self._any_replica(model, lambda backend: backend.tokenize(text), caller)

    def token_count(self, text: str, model: Optional[str] = None, caller: Caller = NOBODY) -> int:
        return self._any_replica(model, lambda backend: backend.token_count(text), caller)

    def detokenize(
        self, tokens: Sequence[int], model: Optional[str] = None, caller: Caller = NOBODY
    ) -> str:
        return self._any_replica(model, lambda backend: backend.detokenize(tokens), caller)

    def transcribe(self, asked: Transcription, caller: Caller = NOBODY) -> Transcript:
        return self._any_replica(
            asked.model, lambda backend: backend.transcribe(asked, caller), caller
        )

    def stream_transcript(self, asked: Transcription, caller: Caller = NOBODY) -> Iterator[bytes]:
        return self._any_replica(
            asked.model, lambda backend: backend.stream_transcript(asked, caller), caller
        )

    def speak(self, asked: Speech, caller: Caller = NOBODY) -> Iterator[bytes]:
        return self._any_replica(asked.model, lambda backend: backend.speak(asked, caller), caller)

    def draw(self, asked: Drawing, caller: Caller = NOBODY) -> Pictures:
        return self._any_replica(asked.model, lambda backend: backend.draw(asked, caller), caller)

    def ask_native(
        self, path: str, body: Optional[dict], model: Optional[str], caller: Caller = NOBODY
    ) -> tuple:
        return self._any_replica(model, lambda backend: backend.ask_native(path, body), caller)

    def embed(
        self, inputs: Sequence[str], model: Optional[str] = None, caller: Caller = NOBODY
    ) -> Embeddings:
        return self._any_replica(
            model, lambda backend: backend.embed(inputs, model, caller), caller
        )

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        model: Optional[str] = None,
        caller: Caller = NOBODY,
    ) -> Ranking:
        return self._any_replica(
            model, lambda backend: backend.rerank(query, documents, model, caller), caller
        )

    def resolve(self, model: Optional[str]) -> Target:
        """The model ``model`` names, looked up once (see :class:`Target`)."""
        catalog, models = self._serving
        spec = catalog.find(model) if model is None or isinstance(model, str) else None
        if spec is None:
            return Target(model)
        return Target(
            model,
            counted_id(spec),
            spec.backend if spec.backend in APIS else "",
            ToolPolicy(spec.tools, spec.max_tool_turns, spec.drop_hosted_tools),
            spec.price,
            models[spec.id],
        )

    def prices(self) -> dict:
        return self.catalog.prices

    def held_price(self, target: Target, body: object) -> Optional[Price]:
        return target.model.spec.held_price(body) if target.found else None

    def local_models(self) -> frozenset:
        return self.catalog.local_models

    def longest_answer(self, target: Target) -> Optional[int]:
        if not target.found:
            return None
        return report.longest_answer(target.model.spec, self._models)

    def listed_id(self, target: Target) -> str:
        """The id ``target`` is listed under: its configured id, or what its first replica
        calls it."""
        return report.listed_id(self._found(target))

    def starting(self, target: Target) -> bool:
        return target.found and any(replica.starting() for replica in target.model.replicas)

    # -- what it serves --------------------------------------------------------------------

    def models(self) -> list:
        """Every model and alias, the default first, each saying whether it can serve now."""
        return report.listing(self._models.values(), self.catalog.default)

    def check(self) -> Health:
        """Ready when every model has a replica that can serve; each replica's own report
        (asking puts a serving replica back in rotation)."""
        return report.health(self._check_all(), self.name)

    def status(self, checked: bool = False) -> list:
        """Each model, its replicas in rotation or not, and the servers the proxy runs;
        ``checked`` checks each replica too (``ok``, and ``error`` when not)."""
        return report.status(self._models.values(), self._check_all() if checked else None)

    def server_of(self, name: str) -> ManagedServer | RemoteServer:
        """The server the proxy runs for model ``name``."""
        model = self._model(name)
        server = model.replicas[0].server
        if server is None:
            raise InvalidRequestError(
                f"the proxy does not run the servers of {name!r}", param="model"
            )
        return server

    def retire(self, model: ServedModel, within: float) -> None:
        """Close a model no longer served: the servers the proxy runs for it stop once their
        requests have ended (at most ``within`` seconds from now), its connections close."""
        for replica in model.replicas:
            if replica.server is not None and self.processes is not None:
                self.processes.retire(replica.server, within)
            replica.backend.close()
        model.rotation.close()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self.processes is not None:
            self.processes.close()
        for model in self._models.values():
            model.rotation.close()
            for replica in model.replicas:
                replica.backend.close()

    # -- routing -----------------------------------------------------------------------------

    def _chain(self, model: ServedModel, request: GenerationRequest) -> "Chain":
        """The models that may answer the request, in turn: its own (after the one it
        overflows to while every replica of its own is full), then its fallbacks; those its
        key may use."""
        spec = model.spec
        overflow = spec.overflow and overflowing(model.loads(), spec.overflow_after)
        return Chain(
            [
                *self._usable((spec.overflow,) if overflow else (), request),
                *self._warm(model, request),
                model,
                *self._usable(spec.fallbacks, request),
            ],
            lambda ids: self._usable(ids, request),
        )

    def _warm(self, model: ServedModel, request: GenerationRequest) -> list:
        """The first of the model's equals that runs now, while it does not: a client is
        not made to wait for a start or a swap when an equal model is ready."""
        if not model.spec.warm or not model.cold():
            return []
        return [equal for equal in self._usable(model.spec.warm, request) if not equal.cold()][:1]

    def _usable(self, ids: Sequence[str], request: GenerationRequest) -> list:
        """The models of ``ids`` served now that the request's key may use."""
        models = self._models
        return [models[i] for i in ids if i in models and request.caller.may_use(i)]

    def _model(self, name: Optional[str]) -> ServedModel:
        """The model ``name`` names, for the calls that come by name (the admin's, a
        proxy's own); a 404 naming the models served when none does."""
        return self._found(self.resolve(name))

    def _model_of(self, name: Optional[str], caller: Caller) -> ServedModel:
        """The model a request is for: the one its caller's target resolved at the door,
        else (a call of the proxy's own) the one ``name`` names."""
        return self._model(name) if caller.target is None else self._found(caller.target)

    def _found(self, target: Target) -> ServedModel:
        if not target.found:
            raise ModelNotFoundError(target.asked, [model.id for model in self.catalog.models])
        return target.model

    def _failing_over(
        self,
        model: ServedModel,
        conversation: Optional[str],
        attempt: Callable[[Replica], T],
        continuing: bool = False,
        trace=None,
    ) -> T:
        """Run ``attempt`` on the placed replica; if it never reached it, on another
        (``trace``: the request's, where traced)."""
        failover = Failover(model, conversation, continuing, trace)
        while True:
            replica = failover.place()
            try:
                return attempt(replica)
            except RETRIED as exc:
                if not failover.drop(replica, exc):
                    raise

    def _any_replica(self, name: Optional[str], call: Callable[[Backend], T], caller: Caller) -> T:
        model = self._model_of(name, caller)
        return self._failing_over(model, None, _attempt(call, caller), trace=caller.trace)

    def _check_all(self) -> dict:
        """Each model's ``(replica, its health)``, every replica checked."""
        return {
            model.spec.id: [(replica, self._check(model, replica)) for replica in model.replicas]
            for model in self._models.values()
        }

    def _check(self, model: ServedModel, replica: Replica) -> Health:
        """The replica's own health report; a serving replica goes back into rotation."""
        report = replica.probe()
        if report.ok:
            model.rotation.restore(replica.name)
        return report


def _placed(request: GenerationRequest, replica: Replica, slot: Optional[int]) -> None:
    """Tell the inspector where the turn ran, and the thread that links it to its
    conversation's other turns."""
    side = request.caller.side
    if side is not None:
        side.placed(thread_id(request), replica.name, slot)


def in_slot(request: GenerationRequest, slot: Optional[int]) -> GenerationRequest:
    return request if slot is None else request.in_slot(slot)


def _attempt(call: Callable[[Backend], T], caller: Caller) -> Callable[[Replica], T]:
    """``call`` on a replica's backend, the replica kept able to serve meanwhile (a wait for
    its server to start is ``caller``'s)."""

    def attempt(replica: Replica) -> T:
        with replica.serving(caller.measure):
            return call(replica.backend)

    return attempt
