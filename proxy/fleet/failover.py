"""What a request falls back to when it never reached a server able to answer it: another
replica of its model (:class:`Failover`), and then its model's fallbacks (:class:`Chain`),
each only while nothing has gone to the client."""

from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

from proxy.core.errors import (
    UNREACHABLE,
    ContextLengthError,
    ProxyError,
    QueueFullError,
    QueueTimeoutError,
    SlotUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from proxy.fleet import traced
from proxy.fleet.replica import Replica
from proxy.fleet.servedmodel import ServedModel

logger = logging.getLogger(__name__)

# Failures that mean the request never reached a replica able to serve it: it may go to another.
# A full or slow queue is the replica's load, not its health; the others may still have room.
BUSY = (QueueFullError, SlotUnavailableError)
# What a request that may go to another replica fails with (the rest is the request's own).
RETRIED = (UpstreamUnavailableError, UpstreamTimeoutError)
# What sends a request to its model's fallback: any upstream failure (refused, unreachable,
# 5xx, 429, overloaded, timed out) before the first byte left; a prompt longer than the
# model's context, to its context fallbacks.
FALLS_BACK = (UpstreamError, ContextLengthError)


class Chain:
    """The models one request may be answered by, in turn: the first, then each next one
    while those before it fail before the first byte. A model none of whose replicas a
    connection reached when last tried (until a probe reaches one) is asked after the
    others, not first: a request does not wait out a connection that just failed while a
    fallback can answer, and still asks it where none can. A model that refused for its
    load (a 429, a 503) is asked first again: its load is the next request's to find."""

    def __init__(self, models: list, usable: Callable[[Sequence[str]], list]) -> None:
        """``usable``: the models of some ids that the request's key may use."""
        models = reachable_first(models)
        self.first, self.pending = models[0], models[1:]
        self.usable = usable

    def fall_back(self, model: ServedModel, exc: Exception) -> Optional[ServedModel]:
        """The model to ask once ``model`` failed with ``exc`` (``None``: none is left). A
        prompt too long for ``model`` goes on to its context fallbacks alone."""
        if isinstance(exc, ContextLengthError):
            self.pending = reachable_first(self.usable(model.spec.context_fallbacks))
        if not self.pending:
            return None
        _fell_back(model, exc)
        following, self.pending = self.pending[0], self.pending[1:]
        return following


class Failover:
    """The replicas one request tries, in turn, while it has reached none able to serve it.

    A replica that cannot be reached, or is not ready, leaves the rotation until a probe finds
    it serving again; one whose queue is full is only passed over this time; one whose server
    the proxy runs and saw die is tried again once it has restarted.
    """

    def __init__(
        self, model: ServedModel, conversation: Optional[str], continuing: bool, trace=None
    ) -> None:
        """``trace``: the request's, where traced (``None``: not)."""
        self.model = model
        self.conversation = conversation
        self.continuing = continuing
        self.trace = trace
        self.tried: list = []
        self.restarts = 0

    def place(self) -> Replica:
        """The replica to try next: where there is a choice, a span of the request's trace
        that says which (the shared placement's look at Redis within it)."""
        model, trace = self.model, self.trace
        left = len(model.replicas) - len(self.tried)
        if trace is None or left < 2:
            return model.place(self.conversation, exclude=self.tried, continuing=self.continuing)
        with traced.placement(trace, left, self.continuing):
            replica = model.place(self.conversation, exclude=self.tried, continuing=self.continuing)
            traced.placed(trace, replica)
        return replica

    def drop(self, replica: Replica, exc: UpstreamUnavailableError | UpstreamTimeoutError) -> bool:
        """Drop ``replica`` after it failed the request with ``exc`` (out of rotation where it
        cannot be reached, its conversations forgotten): whether the request is tried again."""
        if isinstance(exc, QueueTimeoutError):
            return False
        if replica.restarts_after(exc, self.restarts):
            self.restarts += 1
            return True
        if not isinstance(exc, BUSY):
            self.model.rotation.eject(replica.name, exc.message, exc.code == UNREACHABLE)
            self.model.affinity.forget_replica(replica.name)
        self.tried.append(replica)
        return not isinstance(exc, UpstreamTimeoutError) and len(self.tried) < len(
            self.model.replicas
        )


def reachable_first(models: list) -> list:
    """``models`` in their order, those no connection reached moved after the rest."""
    return sorted(models, key=ServedModel.unreachable)


def _fell_back(model: ServedModel, exc: ProxyError) -> None:
    logger.warning(
        "model %r could not answer (%s); its next fallback is asked", model.spec.id, exc.message
    )
