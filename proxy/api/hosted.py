"""Which generator a request runs on: the fleet itself, or the tool loop around it when its
model may call hosted tools the gateway runs (those the client asks for, and those the
operator gives the model); each server checked first, as configured and granted to the
request's key."""

from __future__ import annotations

from proxy.api.call import this_call
from proxy.api.requestmodel import answer_name, request_model
from proxy.api.state import get_state
from proxy.config.catalog import WEB
from proxy.core.errors import InvalidRequestError, ToolNotAllowedError
from proxy.core.tooluse import ToolUse
from proxy.core.types import amended
from proxy.dialects.dialect import Ask, hosted_refusal
from proxy.tools.toolloop import ToolLoop, anything


def generator(ask: Ask) -> tuple:
    """``(ask, generator)``: the ask with the servers of tools its model will be offered (and
    the types of the hosted tools asked for that are left out for its model, unconfigured,
    its operator's choice, among its ``not_offered``), and what runs it."""
    state = get_state()
    router = state.router
    policy = request_model().tools
    if ask.not_run and not policy.drop_hosted:
        raise hosted_refusal(ask, answer_name())
    not_offered = list(ask.not_offered)
    key = this_call().key
    may_run = key.may_run if key is not None else anything
    for server, field in ask.upstream_runs:  # the upstream runs them, on the operator's bill
        if not may_run(server, ""):
            raise ToolNotAllowedError(
                f"this key may not have the tools of {server!r} run", param=field
            )
    uses, named = [], set()
    for use in (*ask.request.uses, *_given(policy.servers)):
        if use.url:
            use = _declared_at(use, state.tools)
        if use.name in named:
            continue
        named.add(use.name)
        if state.tools is None or not state.tools.has(use.server):
            if policy.drop_hosted or not use.label:
                not_offered.append(use.kind)
                continue
            raise _not_here(use)
        if not may_run(use.server, ""):
            if use.label:  # the client asked for it
                raise ToolNotAllowedError(
                    f"this key may not run the tools of {use.name!r}", param=use.field
                )
            continue  # the model's own tools: offered to the keys granted them
        uses.append(use)
    not_offered = tuple(dict.fromkeys(not_offered))
    if not_offered != ask.not_offered:
        ask = amended(ask, not_offered=not_offered)
    if not uses and not ask.request.approvals:
        if ask.request.uses:  # none of them offered: the model is asked without them
            ask = ask.amended(lambda request: amended(request, uses=()))
        return ask, router
    ask = ask.amended(lambda request: amended(request, uses=tuple(uses)))
    return ask, ToolLoop(
        router, state.tools, may_run=may_run, turns=policy.turns, helpers=state.helpers
    )


def _declared_at(use: ToolUse, tools) -> ToolUse:
    """A use naming its server by URL, as the server declared there; a URL no declared
    server has is refused (the gateway reaches no server its operator did not declare)."""
    server = tools.at(use.url) if tools is not None else None
    if server is None:
        raise InvalidRequestError(
            f"the server_url of the MCP server {use.name!r} is not one this gateway reaches: "
            f"it reaches only the MCP servers its operator declares; name one by its name "
            f"as the server_label",
            param="tools",
        )
    return amended(use, server=server, url="")


def _given(servers: tuple) -> tuple:
    """The servers of tools the operator gives a model, as uses of them."""
    return tuple(ToolUse(name, kind="web_search" if name == WEB else "mcp") for name in servers)


def _not_here(use: ToolUse) -> InvalidRequestError:
    if use.server == WEB:
        return InvalidRequestError(
            f"{use.kind!r} needs a web search, and this gateway has none configured "
            f"([web_search] in the models file)",
            param=use.field,
        )
    return InvalidRequestError(
        f"the tool type {use.kind!r} names {use.name!r}, and no MCP server is declared here "
        f"as {use.name!r}; name one of the gateway's by its name",
        param="tools",
    )
