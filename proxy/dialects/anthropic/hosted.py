"""The tools a Messages request asks Anthropic's servers to run, as uses of the servers of
tools the gateway runs (:class:`~proxy.core.tooluse.ToolUse`): the MCP connector's servers
(``mcp_servers``; their tools configured by ``tool_configuration``, as beta
``mcp-client-2025-04-04`` has it, or by an ``mcp_toolset`` tool, as ``mcp-client-2025-11-20``
does) and the web search and fetch server tools (``web_search_*``, ``web_fetch_*``). Pure.

The gateway reaches only the MCP servers its operator declares, by name: a server's ``url``
is where the client thinks it is, and is never connected to; its ``authorization_token`` is
refused, since the operator holds the credentials of the servers it runs. An option the
gateway cannot honour is refused by name (an :class:`UntranslatableError`: a Messages API
server reads it), never dropped.
"""

from __future__ import annotations

from typing import Optional

from proxy.config.catalog import WEB
from proxy.core.errors import InvalidRequestError, UntranslatableError
from proxy.core.fields import Fields, shown_name
from proxy.core.tooluse import ToolUse

TOOLSET = "mcp_toolset"
WEB_TOOLS = ("web_search", "web_fetch")  # each type's prefix, and the web server's tool
WEB_SERVER_TOOLS = tuple(f"{name}_" for name in WEB_TOOLS)  # their dated types' beginnings
UPSTREAM_ONLY = ("code_execution_",)  # Anthropic's server tools the gateway does not run
SERVER_FIELDS = ("type", "url", "name", "authorization_token", "tool_configuration")
# what a web tool may say, the gateway being able to honour it (a field set to null is unsaid)
WEB_FIELDS = (
    "type",
    "name",
    "cache_control",
    "strict",
    "defer_loading",
    "allowed_callers",
    "max_uses",
)
WEB_FETCH_FIELDS = ("citations",)
# why the options the gateway cannot honour are refused
UNHONOURED = {
    "allowed_domains": "the gateway's web search does not keep to domains",
    "blocked_domains": "the gateway's web search does not keep to domains",
    "user_location": "the gateway's web search does not place its results",
    "max_content_tokens": "the gateway bounds a fetched page by its own limit",
    "url_sources": "the gateway fetches any URL its operator allows",
}


def upstream_runs(body: object) -> tuple:
    """The servers of tools a Messages body asks its upstream to run, as ``(server, the
    field that asks)``: the web tools as the gateway's web search, the MCP connector's
    servers and toolsets by their names, code execution by its type's name. Read from the
    body as it came (what the upstream reads), whatever else in it the proxy cannot read."""
    if not isinstance(body, dict):
        return ()
    runs = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            continue
        if kind.startswith(WEB_SERVER_TOOLS):
            runs.append((WEB, "tools"))
        elif kind == TOOLSET:
            runs.append((str(tool.get("mcp_server_name")), "tools"))
        elif kind.startswith(UPSTREAM_ONLY):
            runs.append((kind.rstrip("_0123456789"), "tools"))
    servers = body.get("mcp_servers")
    for server in servers if isinstance(servers, list) else ():
        runs.append(
            (str(server.get("name") if isinstance(server, dict) else server), "mcp_servers")
        )
    return tuple(dict.fromkeys(runs))


def web_use(tool: Fields, kind: str) -> ToolUse:
    """A ``web_search_*`` or ``web_fetch_*`` server tool (``kind``, its dated type) as a use
    of the gateway's web search, allowing that one of its tools."""
    name = next(name for name in WEB_TOOLS if kind.startswith(f"{name}_"))
    fetch = name == "web_fetch"
    _known(tool, WEB_FIELDS + (WEB_FETCH_FIELDS if fetch else ()), f"a {name} tool")
    _deferred(tool)
    callers = tool.raw("allowed_callers")
    if callers is not None and callers != ["direct"]:
        raise _unhonoured(tool, "allowed_callers", "the model is its only caller here: ['direct']")
    citations = tool.object("citations")
    if citations is not None and citations.boolean("enabled"):
        raise _unhonoured(tool, "citations", "a fetched page's text is not cited here")
    tool.boolean("strict")  # honoured: a call's arguments are checked against the schema
    max_uses = tool.integer("max_uses", 1)
    return ToolUse(WEB, label=name, allowed=(name,), kind=name, max_uses=max_uses)


def mcp_uses(fields: Fields, toolsets: dict) -> tuple:
    """``mcp_servers`` as uses of the operator's MCP servers by the same names, each
    configured by its ``tool_configuration`` or by the ``mcp_toolset`` of ``toolsets``
    (the server's name to the tool's :class:`Fields`) that names it; a server whose tools
    are all off is not offered."""
    uses, named = [], set()
    for server in fields.objects("mcp_servers"):
        _known(server, SERVER_FIELDS, "an MCP server's definition")
        if server.string("type") != "url":
            raise server.fail("type", "must be url")
        name = server.required("name")
        if name in named:
            raise server.fail("name", f"names {name!r} twice: each server has a name of its own")
        named.add(name)
        server.string("url")  # where the client thinks it is: the gateway knows its own
        if server.raw("authorization_token") is not None:
            raise _unhonoured(
                server,
                "authorization_token",
                "the gateway holds the credentials of the MCP servers it runs",
            )
        toolset, configured = toolsets.pop(name, None), server.object("tool_configuration")
        if toolset is not None and configured is not None:
            raise server.fail(
                "tool_configuration",
                f"and an {TOOLSET} tool both configure {name!r}'s tools: give one",
            )
        allowed = _toolset(toolset) if toolset is not None else _configured(configured)
        if allowed != ():
            uses.append(ToolUse(name, label=name, allowed=allowed, kind="mcp"))
    for toolset in toolsets.values():
        raise toolset.fail(
            "mcp_server_name",
            f"names {toolset.raw('mcp_server_name')!r}, which is none of the mcp_servers",
        )
    return tuple(uses)


def toolset_server(tool: Fields, toolsets: dict) -> None:
    """An ``mcp_toolset`` tool, kept in ``toolsets`` by the name of the server it configures."""
    _known(
        tool,
        ("type", "mcp_server_name", "default_config", "configs", "cache_control"),
        f"an {TOOLSET} tool",
    )
    name = tool.required("mcp_server_name")
    if name in toolsets:
        raise tool.fail("mcp_server_name", f"names {name!r}, which another {TOOLSET} names")
    toolsets[name] = tool


def _configured(configuration: Optional[Fields]) -> Optional[tuple]:
    """The tools ``tool_configuration`` allows: ``None`` for every one, ``()`` for none."""
    if configuration is None:
        return None
    _known(configuration, ("enabled", "allowed_tools"), "a tool_configuration")
    if configuration.boolean("enabled") is False:
        return ()
    allowed = configuration.raw("allowed_tools")
    if allowed is None:
        return None
    if not isinstance(allowed, list) or not all(isinstance(tool, str) for tool in allowed):
        raise configuration.fail("allowed_tools", "must be a list of tool names")
    return tuple(allowed)


def _toolset(toolset: Fields) -> Optional[tuple]:
    """The tools an ``mcp_toolset`` enables: every one (``None``) unless its
    ``default_config`` turns them off, then those its ``configs`` turn on. Turning some off
    while the rest are on is refused: the gateway takes the tools to allow."""
    default = toolset.object("default_config")
    on = _enabled(default, True) if default is not None else True
    configs = toolset.raw("configs")
    if configs is not None and not isinstance(configs, dict):
        raise toolset.fail("configs", "must be an object of tool names to their configuration")
    allowed = []
    for tool, raw in (configs or {}).items():
        config = Fields(raw, f"{toolset.prefix}configs.{tool}.")
        enabled = _enabled(config, on)
        if on and not enabled:
            raise _unhonoured(
                config,
                "enabled",
                "a tool turned off while the rest are on: give default_config.enabled false "
                "and turn on each tool to allow",
            )
        if enabled:
            allowed.append(tool)
    return None if on else tuple(allowed)


def _enabled(config: Fields, default: bool) -> bool:
    """A tool's configuration (``enabled``, ``defer_loading``): whether it is on."""
    _known(config, ("enabled", "defer_loading"), "a tool's configuration")
    _deferred(config)
    enabled = config.boolean("enabled")
    return default if enabled is None else enabled


def _deferred(fields: Fields) -> None:
    if fields.boolean("defer_loading"):
        raise _unhonoured(fields, "defer_loading", "every tool offered is shown to the model here")


def _known(fields: Fields, names: tuple, what: str) -> None:
    """Refuse a field the gateway does not read (one set to null is not there)."""
    for name, value in fields.body.items():
        if value is None or name in names:
            continue
        if name in UNHONOURED:
            raise _unhonoured(fields, name, UNHONOURED[name])
        shown = shown_name(name)
        raise UntranslatableError(
            f"'{fields.prefix}{shown}' is not a field of {what} this gateway reads",
            param=fields.prefix + shown,
        )


def _unhonoured(fields: Fields, name: str, why: str) -> InvalidRequestError:
    return UntranslatableError(
        f"'{fields.prefix}{name}' is not honoured by this gateway: {why}",
        param=fields.prefix + name,
    )
