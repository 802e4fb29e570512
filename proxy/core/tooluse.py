"""The hosted tools the gateway runs, as the rest of the proxy knows them: a request's uses of
servers of tools and the client's approvals, what the operator says of a model's tools, and
what the gateway listed and ran (the pages they drew on among it), as answers tell them, and
where an answer's text cites those pages. Plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence


@dataclass(frozen=True)
class ToolUse:
    """A server of tools a request has the gateway run for its model (an MCP server the
    client names by its ``label``, the web search): which of its tools the model may call
    (``None``: every one), and which of those wait for the client's approval before they
    run (``approval`` for each tool, but the ones ``exempt`` names the other way)."""

    server: str  # the server's name in the models file (``web`` for the web search)
    label: str = ""  # what the client calls it, as its answer names it again
    allowed: Optional[tuple] = None
    approval: bool = False
    exempt: tuple = ()
    kind: str = "mcp"  # how the client asked for it: ``mcp``, ``web_search``…, as its API names it
    url: str = field(default="", repr=False)  # where the client says the server is, if it does
    max_uses: Optional[int] = None  # calls of its tools one request may run, at the most
    field: str = "tools"  # the request's field that asked for it, which a refusal names

    @property
    def name(self) -> str:
        return self.label or self.server

    def needs_approval(self, tool: str) -> bool:
        return self.approval != (tool in self.exempt)

    def allows(self, tool: str) -> bool:
        return self.allowed is None or tool in self.allowed


TOOL_TURNS = 8  # a model's turns in one request's tool loop, unless the operator says otherwise


@dataclass(frozen=True)
class ToolPolicy:
    """What the operator says of a model's hosted tools: the servers of tools the gateway
    runs for it whatever the client asks (their names), its turns in one request's tool
    loop, and whether hosted tools the gateway does not run are left out (else refused)."""

    servers: tuple = ()
    turns: int = TOOL_TURNS
    drop_hosted: bool = False


@dataclass(frozen=True)
class Approval:
    """The client's word on a call the gateway asked it to approve: the call as asked
    (its id, its server's label, the tool and its arguments) and whether it may run."""

    id: str
    label: str
    tool: str
    arguments: str
    approve: bool
    reason: str = ""


@dataclass(frozen=True)
class Source:
    """A page a tool's result was drawn from (a search's hit, a fetched page): what each
    API's citations name."""

    url: str
    title: str = ""
    snippet: str = ""


@dataclass(frozen=True)
class ToolListing:
    """The tools of a server as the model was offered them: ``(name, description, input
    schema)`` each, under the label the client knows the server by."""

    label: str
    tools: tuple
    kind: str = "mcp"
    error: str = ""  # why the server could not list them


@dataclass(frozen=True)
class ToolRun:
    """A call of a hosted tool the model made, as the gateway ran it (or, ``pending``,
    leaves it pending the client's approval): its output (``truncated``: cut to its server's
    bound), or why it failed (``error``), and the pages it drew on."""

    id: str
    label: str
    tool: str
    arguments: str  # JSON text
    output: str = ""
    error: str = ""
    sources: tuple = ()  # Source values
    pending: bool = False
    kind: str = "mcp"
    approval_id: str = ""  # the approval it ran by, when it waited for one
    code: str = ""  # why it was not run, in a word: ``max_uses_exceeded``
    truncated: bool = False


def sources_of(runs: Iterable) -> list:
    """The pages the runs of an answer drew from (its listings draw from none)."""
    return [source for step in runs for source in getattr(step, "sources", ())]


def cited(text: str, sources: Sequence[Source]) -> list:
    """``(start, end, source)`` where ``text`` names a source's URL (the first time it
    does), in the text's order: a model cites a page by writing its address, and each API
    marks the span its own way."""
    found = []
    for source in {source.url: source for source in sources}.values():
        start = text.find(source.url)
        if start >= 0:
            found.append((start, start + len(source.url), source))
    return sorted(found, key=lambda span: span[0])
