"""Every server of tools the gateway runs, by the name a request uses: the operator's MCP
servers (:class:`~proxy.tools.manager.ToolServers`) and the web search (``web``), when
``[web_search]`` is configured."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Protocol
from urllib.parse import urlsplit, urlunsplit

from proxy.config.catalog import WEB, WebSearchSpec
from proxy.core.errors import ToolNotFoundError
from proxy.tools.manager import NO_TRACE, ToolMetrics
from proxy.tools.results import ToolResult
from proxy.tools.web import WebTools


class ToolProvider(Protocol):
    """A server of tools, as the tool loop reaches it for the key named ``key``."""

    def list_tools(self, server: str, timeout: Optional[float] = None, key: str = "") -> tuple: ...

    def call(
        self,
        server: str,
        tool: str,
        arguments: Any,
        timeout: Optional[float] = None,
        key: str = "",
        trace_context: Mapping[str, str] = NO_TRACE,
    ) -> ToolResult: ...


class Toolbox:
    """``mcp``: the MCP servers; ``web``: the web search configured now (``[web_search]``),
    if any; ``metrics``: where the web tools' calls are counted (the MCP servers' own)."""

    def __init__(
        self,
        mcp,
        web: Callable[[], Optional[WebSearchSpec]] = lambda: None,
        metrics: Optional[ToolMetrics] = None,
    ) -> None:
        self._mcp, self._web_spec, self._metrics = mcp, web, metrics

    def at(self, url: str) -> Optional[str]:
        """The name of the MCP server declared at ``url``, if one is."""
        wanted = _normal(url)
        return next(
            (spec.name for spec in self._mcp.specs() if spec.url and _normal(spec.url) == wanted),
            None,
        )

    def has(self, server: str) -> bool:
        """Whether ``server`` is configured now."""
        if server == WEB:
            return self._web() is not None
        return server in self._mcp.names()

    def list_tools(self, server: str, timeout: Optional[float] = None, key: str = "") -> tuple:
        return self._provider(server).list_tools(server, timeout, key)

    def call(
        self,
        server: str,
        tool: str,
        arguments: Any,
        timeout: Optional[float] = None,
        key: str = "",
        trace_context: Mapping[str, str] = NO_TRACE,
    ) -> ToolResult:
        """``tool`` of ``server`` called; ``trace_context``: the W3C trace context of the
        call's span, which the server is sent where it is the operator's (never a page on
        the web)."""
        return self._provider(server).call(server, tool, arguments, timeout, key, trace_context)

    def _web(self) -> Optional[WebTools]:
        """The web tools as configured now (they hold nothing but their settings)."""
        spec = self._web_spec()
        return None if spec is None else WebTools(spec, metrics=self._metrics)

    def _provider(self, server: str) -> ToolProvider:
        if server != WEB:
            return self._mcp
        web = self._web()
        if web is None:
            raise ToolNotFoundError("no web search is configured here", param="tools")
        return web


def _normal(url: str) -> str:
    """A URL as two spellings of it compare: its scheme and host in lower case, no
    trailing slash."""
    parts = urlsplit(url.strip())
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, "")
    )
