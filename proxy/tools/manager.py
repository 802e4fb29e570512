"""The MCP servers the operator declares, as the synchronous proxy uses them: their tools
listed, a tool called with its arguments checked and its time and output bounded, each
session started on first use (one process per session, for a server on stdio), started
again after it died, and stopped when idle, when the models file no longer declares it as
it was, and when the proxy closes. Every call is counted, by server and tool.

A server keeps one session per key unless it is declared ``shared``: what a stateful server
holds (a memory, a browser, a writable folder's handles) never passes from one tenant to
the next. A server has at most ``max_sessions`` of them, the least recently used stopped to
make room; the key's name is never sent to the server.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Protocol, Sequence

from proxy.config.catalog import McpServerSpec
from proxy.core.errors import (
    ToolError,
    ToolNotFoundError,
    ToolServerUnavailableError,
    ToolTimeoutError,
)
from proxy.tools.loop import EventLoopThread
from proxy.tools.results import ToolResult

if TYPE_CHECKING:  # the MCP client is loaded with the first session: half a second a start
    from proxy.tools.session import ServerSession

log = logging.getLogger(__name__)

GRACE = 5.0  # seconds a caller waits past a call's bound for the loop to say it ended
CLOSE_WAIT = 15.0  # seconds the servers have to stop when the proxy closes
LONGEST_TICK = 1.0  # seconds between two looks for idle servers, at the most
NO_TRACE: Mapping[str, str] = MappingProxyType({})  # a call's trace context where none is traced
TOOL_REPORTED = "tool_reported"  # a result the tool itself marked as an error, as counted


class ToolMetrics(Protocol):
    """Where the calls are counted (:class:`proxy.ops.metrics.Metrics`)."""

    def tool_called(self, server: str, tool: str, seconds: float, error: str) -> None: ...


class ToolServers:
    """Every MCP server this process runs tools on. ``servers`` gives the servers declared
    now (the catalog's, as reloads change it); ``environ`` is where ``headers_env`` and a
    stdio server's inherited variables are read; a stdio server's standard error is
    appended to ``mcp-NAME.log`` in ``log_folder`` (else the proxy's own)."""

    def __init__(
        self,
        servers: Callable[[], Sequence[McpServerSpec]],
        *,
        environ: Mapping[str, str],
        log_folder: str = "",
        metrics: Optional[ToolMetrics] = None,
    ) -> None:
        self._servers = servers
        self._environ, self._log_folder, self._metrics = environ, log_folder, metrics
        self._loop = EventLoopThread()
        self._sessions: dict = {}  # (name, key) -> ServerSession; touched on the loop only
        self._reaper: Optional[asyncio.Task] = None

    def names(self) -> tuple:
        """The servers declared now."""
        return tuple(spec.name for spec in self._servers())

    def specs(self) -> tuple:
        """The servers declared now, as declared."""
        return tuple(self._servers())

    def list_tools(self, server: str, timeout: Optional[float] = None, key: str = "") -> tuple:
        """``server``'s tools (:class:`~proxy.tools.results.ToolSpec`) in the session of the
        key named ``key``, as listed once and listed again after the server announced a
        change or was started again; listing them first starts the session, within its
        ``start_timeout``, then lists them within ``timeout`` and its ``call_timeout``."""
        spec = self._spec(server)
        bound = _bound(spec, timeout)
        return self._run(self._tools(spec, bound, key), bound, spec, "")

    def call(
        self,
        server: str,
        tool: str,
        arguments: Any,
        timeout: Optional[float] = None,
        key: str = "",
        trace_context: Mapping[str, str] = NO_TRACE,
    ) -> ToolResult:
        """Call ``tool`` of ``server`` with ``arguments`` (a JSON object, checked against the
        tool's input schema before it is sent), bounded by ``timeout`` seconds and the
        server's ``call_timeout``, whichever is shorter, decided before the call starts (a
        start of the server first, within its ``start_timeout``).
        A result the tool marks as an error is a :class:`ToolResult` (the model reads
        why); anything else that fails is a :class:`~proxy.core.errors.ToolError`. The call
        is made in the session of the key named ``key`` ("": no keys), carrying the W3C
        ``trace_context`` of its span (in its ``_meta``, as MCP carries it, and in the HTTP
        headers of a server over HTTP)."""
        spec = self._spec(server)
        bound = _bound(spec, timeout)
        work = self._call(spec, tool, arguments, bound, key, trace_context)
        return self._run(work, bound, spec, tool)

    def running(self) -> tuple:
        """The servers with a session up now."""
        if not self._loop.started:
            return ()
        return self._loop.run(self._running(), GRACE)

    def close(self) -> None:
        """Stop every server, and the loop."""
        atexit.unregister(self.close)
        if self._loop.started:
            self._loop.close(self._stop_all(), CLOSE_WAIT)

    # -- on the caller's thread --------------------------------------------------------------

    def _spec(self, server: str) -> McpServerSpec:
        for spec in self._servers():
            if spec.name == server:
                return spec
        raise ToolNotFoundError(
            f"no MCP server is declared as {server!r} here", param="server_label"
        )

    def _run(self, work, bound: float, spec: McpServerSpec, tool: str) -> Any:
        server = spec.name
        if not self._loop.started:
            atexit.register(self.close)  # no server outlives the proxy
        started, error = time.monotonic(), ""
        try:
            result = self._loop.run(work, spec.start_timeout + bound + GRACE)
            if isinstance(result, ToolResult) and result.is_error:
                error = TOOL_REPORTED
            return result
        except TimeoutError:
            error = ToolTimeoutError.code
            raise ToolTimeoutError(
                f"the MCP server {server!r} did not answer within {bound:g} s"
            ) from None
        except ToolError as exc:
            error = exc.code or "tool_error"
            raise
        finally:
            if tool and self._metrics is not None:
                counted = "" if error == ToolNotFoundError.code else tool
                self._metrics.tool_called(server, counted, time.monotonic() - started, error)

    # -- on the loop -------------------------------------------------------------------------

    async def _tools(self, spec: McpServerSpec, bound: float, key: str) -> tuple:
        return await (await self._ensure_session(spec, key)).list_tools(bound)

    async def _call(self, spec: McpServerSpec, tool: str, arguments: Any, bound: float, key: str,
                    trace_context: Mapping[str, str]):  # fmt: skip
        session = await self._ensure_session(spec, key)
        return await session.call(tool, arguments, bound, trace_context)

    async def _ensure_session(self, spec: McpServerSpec, key: str) -> "ServerSession":
        """The session of ``spec`` the key whose owner is ``key`` uses (every key's, for a
        shared server), made if there is none; one declared otherwise before is stopped
        first, and the reaper started."""
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())
        whose = (spec.name, "" if spec.shared else key)
        session = self._sessions.get(whose)
        if session is not None and session.spec != spec:
            log.info("the MCP server %r is declared anew: stopping it", spec.name)
            del self._sessions[whose]
            await session.stop()
            session = None
        if session is None:
            from proxy.tools.session import ServerSession

            await self._make_room(spec)
            session = self._sessions[whose] = ServerSession(spec, self._environ, self._log_folder)
        session.last_used = time.monotonic()  # the least recently used is stopped first
        return session

    async def _make_room(self, spec: McpServerSpec) -> None:
        """Room for one more session of ``spec``: the least recently used of its sessions
        stopped while it has ``max_sessions``; a 503 when every one is busy."""
        mine = [(whose, s) for whose, s in self._sessions.items() if whose[0] == spec.name]
        if len(mine) < spec.max_sessions:
            return
        idle = [(session.last_used, whose) for whose, session in mine if not session.busy]
        if not idle:
            raise ToolServerUnavailableError(
                f"the MCP server {spec.name!r} has {spec.max_sessions} sessions, each busy "
                "with another key's call; retry shortly"
            )
        _, whose = min(idle)
        log.info("the MCP server %r has %d sessions: stopping the least recently used",
                 spec.name, len(mine))  # fmt: skip
        await self._sessions.pop(whose).stop()

    async def _reap(self) -> None:
        """Stop each session idle past its ``idle_stop``, or of a server no longer declared
        as it was."""
        while True:
            declared = {spec.name: spec for spec in self._servers()}
            now, tick = time.monotonic(), LONGEST_TICK
            for whose, session in list(self._sessions.items()):
                spec = session.spec
                if declared.get(whose[0]) != spec:
                    del self._sessions[whose]
                    await session.stop()
                    continue
                if not session.running or session.busy or not spec.idle_stop:
                    continue
                idle = now - session.last_used
                if idle >= spec.idle_stop:
                    log.info("the MCP server %r is idle: stopping it", whose[0])
                    del self._sessions[whose]
                    await session.stop()
                else:
                    tick = min(tick, spec.idle_stop - idle)
            await asyncio.sleep(max(tick, 0.01))

    async def _running(self) -> tuple:
        return tuple(dict.fromkeys(whose[0] for whose, c in self._sessions.items() if c.running))

    async def _stop_all(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(session.stop() for session in sessions))


def _bound(spec: McpServerSpec, timeout: Optional[float]) -> float:
    """A call's time bound: the caller's, within its server's."""
    if timeout is None:
        return spec.call_timeout
    return max(0.0, min(float(timeout), spec.call_timeout))
