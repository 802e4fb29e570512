"""Who a request is served for, below the API, and for which model: made once per request by
the API, carried down on the request (:attr:`GenerationRequest.caller
<proxy.core.types.GenerationRequest.caller>`) or handed to the router's other calls, and read
where it matters: the fleet serves its target, the queue takes turns by its party, every wait
on a server is taken off its measure, the inspector's marks go on the model's side, and a
request waiting for a slot gives up once its client has gone."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from proxy.core.party import ANYONE, Party
from proxy.core.target import Target
from proxy.ops.measure import Measure
from proxy.ops.modelside import ModelSide

if TYPE_CHECKING:  # OpenTelemetry's SDK is loaded only with --otel on
    from proxy.traces.trace import Trace


def never() -> bool:
    return False


def anything(model_id: str) -> bool:
    return True


@dataclass(frozen=True)
class Caller:
    """``party``: whose turn the request waits as (its key's); ``measure``: its time and
    tokens (``None``: not measured, as in a call made outside any request); ``gone``: whether
    its client has hung up, polled while it waits; ``may_use``: whether its key may use a
    model (by id), which a fallback must be; ``side``: the model's side of its exchange,
    kept while capture asks for it (``None``: not kept); ``owner``: whose sessions of MCP
    servers its tool calls are in (its key's owner, never its name; "": no key);
    ``target``: the model its request names, resolved at the door (``None``: a call of the
    proxy's own, which names its model); ``trace``: its spans, where ``--otel`` traces
    requests (``None``: not traced)."""

    party: Party = ANYONE
    measure: Optional[Measure] = None
    gone: Callable[[], bool] = never
    may_use: Callable[[str], bool] = anything
    side: Optional[ModelSide] = None
    owner: str = ""
    target: Optional[Target] = None
    trace: Optional["Trace"] = None


NOBODY = Caller()  # a call of the proxy's own: nobody's turn, nothing measured
UNTRACED = nullcontext()  # the span of what a request not traced does: none
