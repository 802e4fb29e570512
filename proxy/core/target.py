"""The model a request names, resolved once as the request comes in: what the key check,
the hosted tools, the budget's hold, the answer's name, metrics and the fleet itself read of
it, so that no later step looks its name up again (:meth:`Router.resolve
<proxy.core.router.Router.resolve>`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from proxy.core.tooluse import ToolPolicy

UNKNOWN = "unknown"  # what a name no model is counted under: never a client's text


@dataclass(frozen=True)
class Target:
    """The model ``asked`` names (``None``: the default model): the id metrics, usage, keys
    and prices count it under (:data:`UNKNOWN` where no model has that name), the client API
    its servers speak themselves (``openai``, ``anthropic``; ``""`` where the proxy renders
    its prompts), what its operator says of its hosted tools, its price (``None``: it costs
    nothing), and ``model``, the fleet's own handle on it (``None``: no model is served by
    that name), opaque above the fleet."""

    asked: Optional[str]
    id: str = UNKNOWN
    api: str = ""
    tools: ToolPolicy = field(default_factory=ToolPolicy)
    price: object = None
    model: object = field(default=None, compare=False, repr=False)

    @property
    def found(self) -> bool:
        return self.model is not None
