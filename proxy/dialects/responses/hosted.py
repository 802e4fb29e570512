"""The tools a Responses request asks OpenAI's servers to run that the gateway runs itself,
as uses of its servers of tools (:class:`~proxy.core.tooluse.ToolUse`): an ``mcp`` tool names
one of its MCP servers by its ``server_label``, with the tools allowed and those that wait
for the client's approval; a ``web_search`` tool is its web search. Pure.

The gateway reaches only the MCP servers its operator declares: a tool's ``server_url`` is
where the client thinks the server is, and its credentials and connectors are refused by
name, since the operator holds those of the servers it runs.
"""

from __future__ import annotations

from proxy.config.catalog import WEB
from proxy.core.fields import Fields
from proxy.core.tooluse import ToolUse

SEARCH = ("web_search", "web_search_preview")  # the web search's types, dated ones as these begin
APPROVAL = ("always", "never")


def mcp_use(tool: Fields) -> ToolUse:
    """An ``mcp`` tool: one of the gateway's MCP servers, by its name as the label."""
    for name, why in (
        ("connector_id", "has no connectors: name one of its MCP servers as the server_label"),
        ("headers", "holds the credentials of the MCP servers it runs itself"),
        ("authorization", "holds the credentials of the MCP servers it runs itself"),
    ):
        if tool.raw(name) is not None:
            raise tool.fail(name, f"is not read here: this gateway {why}")
    allowed = tool.raw("allowed_tools")
    if isinstance(allowed, dict):
        allowed = Fields(allowed, tool.prefix + "allowed_tools.").raw("tool_names")
    if allowed is not None and not (
        isinstance(allowed, list) and all(isinstance(name, str) for name in allowed)
    ):
        raise tool.fail("allowed_tools", 'must be a list of tool names, or {"tool_names": [...]}')
    approval, exempt = _approval(tool)
    label = tool.required("server_label")
    url = tool.string("server_url") or ""
    allowed = None if allowed is None else tuple(allowed)
    return ToolUse(label, label, allowed, approval, exempt, url=url)


def _approval(tool: Fields) -> tuple:
    """``(approval, exempt)`` from ``require_approval``: ``always`` (OpenAI's default) or
    ``never``, or ``{"always": {"tool_names": …}, "never": {"tool_names": …}}``, whose
    lists say which tools are the other way."""
    raw = tool.raw("require_approval")
    if raw is None or raw in APPROVAL:
        return raw != "never", ()
    if not isinstance(raw, dict) or not set(raw) <= set(APPROVAL):
        raise tool.fail("require_approval", 'must be "always", "never" or {"never": …}')
    options = Fields(raw, tool.prefix + "require_approval.")
    named = {}
    for way in APPROVAL:
        group = options.object(way)
        names = group.raw("tool_names") if group is not None else None
        if names is not None and not (
            isinstance(names, list) and all(isinstance(name, str) for name in names)
        ):
            raise group.fail("tool_names", "must be a list of tool names")
        named[way] = tuple(names or ())
    if named["never"]:  # every other tool is asked for
        return True, named["never"]
    return False, named["always"]


def search_use(tool: Fields) -> ToolUse:
    """A ``web_search`` tool: the gateway's web search, which may open the pages it finds
    unless the client keeps it to what the search returns (``external_web_access``)."""
    filters = tool.raw("filters")
    if filters is not None:
        raise tool.fail("filters", "is not read here: this gateway's web search takes no filters")
    opens = tool.boolean("external_web_access") is not False
    return ToolUse(WEB, "web", None if opens else ("web_search",), kind=tool.string("type"))
