"""One request as the API serves it, in one value made as it comes in and held on Flask's ``g``
alone: what the door found of it (its key, what its limits and budgets say), its body as read
and the model it names, resolved, what it holds of its key's budgets, who it is served for
below the API, and its record of what it cost (its measure, the model's side of its
exchange). Every view and hook reads it here. An HTTP request's call is made by the first hook;
a batch's line is a call the runner makes itself and serves without HTTP
(:mod:`proxy.api.inprocess`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from flask import g

from proxy.access.budgets import Standing
from proxy.access.keyring import ANONYMOUS, KeySpec
from proxy.access.limits import Decision
from proxy.core.caller import Caller
from proxy.core.target import Target
from proxy.ops.measure import Measure
from proxy.ops.modelside import ModelSide

if TYPE_CHECKING:  # OpenTelemetry's SDK is loaded only with --otel on
    from proxy.traces.trace import Trace

UNREAD = object()  # a body not read yet (a body may be JSON null)


@dataclass
class Call:
    """A request as served: its ``measure`` (from its first hook to its last byte) and the
    model's ``side`` of its exchange where capture keeps one; once the door has checked it
    (``checked``: an API request, not a page), its ``key`` (``None``: the proxy has none),
    the ``limit`` its minute's count gave and the ``budget`` it stands at; its ``body`` once
    read and its ``target``, the model it names, once resolved; the ``hold`` it took of its
    key's budgets; its ``caller``, made once for what runs below the API; a batch's line's
    charge id (``charge``: its own, so that one asked again counts once) and ``lowest``, that
    it waits last whatever it asks; the ``nonce`` of a page's scripts; ``viewer``, whose
    exchanges the inspector shows it (``None``: everyone's); the WSGI ``environ`` of
    the HTTP request it came as (``None``: a batch's line, which came as none); and its
    ``trace`` where ``--otel`` traces requests (``None``: not traced)."""

    measure: Measure
    side: Optional[ModelSide] = None
    checked: bool = False
    key: Optional[KeySpec] = None
    limit: Optional[Decision] = None
    budget: Optional[Standing] = None
    body: object = UNREAD
    target: Optional[Target] = None
    hold: str = ""
    caller: Optional[Caller] = None
    charge: str = ""
    lowest: bool = False
    nonce: str = ""
    viewer: Optional[str] = None
    environ: Optional[dict] = None
    trace: Optional["Trace"] = None

    @property
    def maker(self) -> str:
        """The owner of what it makes to keep (a file, a batch): its key's (never its
        name)."""
        return self.key.owner if self.key is not None else ANONYMOUS


def this_call() -> Call:
    """The call of the request under way."""
    return g.call
