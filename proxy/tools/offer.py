"""What a model is offered of the hosted tools a request has the gateway run: each server's
tools listed, kept to those the client allows and the key is granted, and named so that no
two offered tools (nor a client's own) share a name. Pure: the listings in, the offer out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from proxy.core.tooluse import ToolListing, ToolUse
from proxy.core.types import function_tool

JOINER = "__"  # between a server's label and its tool's name, where names would clash


@dataclass(frozen=True)
class Offered:
    """A tool offered to the model under ``name``: which use of which server it is, and its
    own name there."""

    name: str
    use: ToolUse
    tool: str


@dataclass(frozen=True)
class Offer:
    """The tools offered, by the name the model calls them, as OpenAI function tools (what
    every backend takes), and the listings the client is shown."""

    tools: tuple  # function tools
    by_name: dict = field(default_factory=dict)  # offered name -> Offered
    listings: tuple = ()

    def is_offered(self, name: str) -> bool:
        return name in self.by_name


def offer(
    listed: Sequence[tuple], client_tools: Sequence[dict], may_run: Callable[[str, str], bool]
) -> Offer:
    """The offer of ``listed`` (``(use, specs)`` pairs, a server's tools as it listed them,
    in the order the request named the servers): a tool the use does not allow or the key
    may not run stays out, and one whose name is taken already is offered as
    ``<label>__<name>``."""
    taken = {tool["function"]["name"] for tool in client_tools}
    tools, by_name, listings = [], {}, []
    for use, specs in listed:
        shown = []
        for spec in specs:
            if not use.allows(spec.name) or not may_run(use.server, spec.name):
                continue
            name = spec.name if spec.name not in taken else f"{use.name}{JOINER}{spec.name}"
            if name in taken:
                continue  # the same server asked for twice
            taken.add(name)
            by_name[name] = Offered(name, use, spec.name)
            tools.append(
                function_tool(name, spec.input_schema or {"type": "object"}, spec.description)
            )
            shown.append((spec.name, spec.description, spec.input_schema))
        listings.append(ToolListing(use.name, tuple(shown), use.kind))
    return Offer(tuple(tools), by_name, tuple(listings))
