"""One MCP server as this process speaks to it, on the tool loop: connected on first use
(its process started, for a server on stdio) by a task that owns the SDK's ``Client`` from
its handshake to its end, its tools listed once and again after a change or a reconnect,
each call bounded by a deadline set before it, and every failure told as a
:class:`~proxy.core.errors.ToolError` that names the server by its name alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from typing import Any, Mapping, Optional

import anyio
import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from proxy import __version__
from proxy.config.catalog import McpServerSpec
from proxy.core.errors import (
    ToolError,
    ToolNotFoundError,
    ToolServerError,
    ToolServerUnavailableError,
    ToolTimeoutError,
)
from proxy.logs import raised_at
from proxy.tools.arguments import checker
from proxy.tools.http import MissingCredential, http_transport
from proxy.tools.results import ToolResult, result_of, tool_specs
from proxy.tools.stdio import stdio_transport
from proxy.tools.transport import CUT, Link

log = logging.getLogger(__name__)

MOST_PAGES = 100  # pages of a tool listing read before it is taken as whole
LEAST_MOST = 4 * 1024 * 1024  # bytes a message may keep in all, at the least
CLIENT = types.Implementation(name="oai-proxy", version=__version__)


class ServerSession:
    """One server's session, kept between calls (a :class:`_Session` at a time, the next
    opened once the last ended); every method runs on the tool loop."""

    def __init__(self, spec: McpServerSpec, environ: Mapping[str, str], log_folder: str):
        self.spec, self.environ, self.log_folder = spec, environ, log_folder
        self.tools: tuple = ()  # ToolSpec, as last listed
        self.busy = 0  # calls under way
        self.last_used = time.monotonic()
        self._checks: dict = {}  # tool name -> its arguments' check
        self._changes = 1  # tool lists the server announced (or a reconnect implied)
        self._listed = 0  # the count of changes the tools were last listed at
        self._session: Optional[_Session] = None  # the session now, or the last one
        self._owners: set = set()  # the tasks that hold a session, ending ones too

    @property
    def running(self) -> bool:
        """Whether a session is up, or starting, and not ending."""
        session = self._session
        return session is not None and not session.owner.done() and not session.link.ended.is_set()

    @property
    def listed(self) -> bool:
        """Whether its tools are listed and no change was announced since."""
        return self._listed == self._changes

    async def list_tools(self, bound: float) -> tuple:
        """Its tools: as listed, else listed now (connecting first) within ``bound``
        seconds."""
        if self.listed:
            return self.tools
        self.busy += 1  # the idle reaper leaves a server alone while it starts and lists
        try:
            client = await self._connected()
            with self._until(bound, "listing its tools"):
                await self._list(client)
        finally:
            self.busy -= 1
            self.last_used = time.monotonic()
        return self.tools

    async def call(
        self, tool: str, arguments: Any, bound: float, trace_context: Mapping[str, str]
    ) -> ToolResult:
        """Call ``tool`` with ``arguments``, checked first against its input schema; the
        call, its listing included, ends within ``bound`` seconds, once the server is up (a
        start has its own bound, the server's ``start_timeout``). Its ``_meta`` carries
        ``trace_context``, W3C's, as MCP's trace propagation has it."""
        self.busy += 1
        try:
            client = await self._connected()
            with self._until(bound, f"calling the tool {tool!r}"):
                if not self.listed:
                    await self._list(client)
                check = self._checks.get(tool)
                if check is None:
                    raise ToolNotFoundError(
                        f"the MCP server {self.spec.name!r} has no tool {tool!r}; its tools are "
                        f"{', '.join(t.name for t in self.tools) or 'none'}",
                        param="tool",
                    )
                check(arguments)
                result = await client.call_tool(tool, arguments, meta=dict(trace_context) or None)
            meta = result.meta or {}
            return result_of(
                result.content,
                result.structured_content,
                bool(result.is_error),
                bool(meta.get(CUT)),
                self.spec.max_output_bytes,
            )
        except ToolError:
            raise
        except MCPError as exc:
            raise self._failed(exc, f"the tool {tool!r}") from None
        except (ValidationError, RuntimeError) as exc:
            raise self._broken(exc, f"the tool {tool!r}") from None
        finally:
            self.busy -= 1
            self.last_used = time.monotonic()

    async def stop(self) -> None:
        """End its session (and its process): an idle server, a changed one, or at close;
        a session still ending is waited for too."""
        if self._session is not None:
            self._session.link.end("it was stopped")
        if self._owners:
            await asyncio.wait(set(self._owners))

    # -- the session's owner -----------------------------------------------------------------

    async def _connected(self) -> Client:
        """The session's client, a session started when none runs or the last is ending
        (a start under way is waited for)."""
        if not self.running:
            self._session = _Session()
            self._session.owner = asyncio.get_running_loop().create_task(self._own(self._session))
            self._owners.add(self._session.owner)
            self._session.owner.add_done_callback(self._owners.discard)
        session = self._session
        await session.up.wait()
        if session.client is None:
            raise session.failure or ToolServerUnavailableError(self._named("did not start"))
        return session.client

    @property
    def _link(self) -> Link:
        return self._session.link if self._session is not None else Link()

    async def _own(self, session: "_Session") -> None:
        """Hold ``session`` from its handshake, bounded by the server's ``start_timeout``,
        to its end: a stop, its transport's end, or a failure."""
        link, up = session.link, session.up
        stderr = self._stderr()
        try:
            with anyio.CancelScope(
                deadline=anyio.current_time() + self.spec.start_timeout
            ) as start:
                async with Client(
                    self._transport(link, stderr),
                    mode="auto",
                    cache=None,
                    message_handler=self._told,
                    client_info=CLIENT,
                ) as client:
                    start.deadline = math.inf
                    self._changes += 1  # a new session: its tools are listed anew
                    session.client = client
                    up.set()
                    log.info("connected to the MCP server %r", self.spec.name)
                    async with anyio.create_task_group() as tasks:
                        if _announces_changes(client):
                            tasks.start_soon(self._listen, client)
                        await link.ended.wait()
                        tasks.cancel_scope.cancel()
            if start.cancelled_caught:
                session.failure = ToolTimeoutError(
                    self._named(f"did not start within {self.spec.start_timeout:g} s")
                )
        except MissingCredential as exc:
            session.failure = ToolServerUnavailableError(
                self._named("is not configured right (see the proxy's log)"),
                detail=f"the environment variable {exc} named by headers_env is not set",
            )
        except Exception as exc:  # whatever ended the session is told
            session.failure = self._unreachable(exc, link)
        finally:
            if session.failure is not None:
                log.warning("%s", session.failure)
            session.client = None
            link.end("its session ended")
            up.set()
            if stderr is not None:
                stderr.close()
            log.info("the MCP server %r is stopped: %s", self.spec.name, link.why or "ended")

    def _transport(self, link: Link, stderr):
        most = max(LEAST_MOST, 4 * self.spec.max_output_bytes)
        if self.spec.stdio:
            return stdio_transport(self.spec, self.environ, stderr, link, most)
        return http_transport(self.spec, self.environ, link, most)

    def _stderr(self):
        """Where a stdio server's standard error goes: its log file, else the proxy's."""
        if not (self.spec.stdio and self.log_folder):
            return None
        os.makedirs(self.log_folder, exist_ok=True)
        return open(os.path.join(self.log_folder, f"mcp-{self.spec.name}.log"), "ab")

    async def _told(self, message: Any) -> None:
        """A notification, or a transport's fault, the session passes on."""
        if isinstance(message, types.ToolListChangedNotification):
            self._changes += 1
        elif isinstance(message, Exception):
            log.info(
                "the MCP server %r sent what could not be read: %s",
                self.spec.name,
                type(message).__name__,
            )

    async def _listen(self, client: Client) -> None:
        """On a 2026 session, changes come on a stream the client opens for them."""
        try:
            async with client.listen(tools_list_changed=True) as changes:
                async for _ in changes:
                    self._changes += 1
        except Exception as exc:  # the tools are listed anew on reconnect
            log.info(
                "the MCP server %r does not tell its tool changes (%s)",
                self.spec.name,
                type(exc).__name__,
            )

    async def _list(self, client: Client) -> None:
        changes, tools, cursor = self._changes, [], None
        try:
            for _ in range(MOST_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                cursor = page.next_cursor
                if not cursor:
                    break
        except MCPError as exc:
            raise self._failed(exc, "the listing of its tools") from None
        except (ValidationError, RuntimeError) as exc:
            raise self._broken(exc, "the listing of its tools") from None
        self.tools = tool_specs(tools)
        self._checks = {
            tool.name: checker(self.spec.name, tool.name, tool.input_schema) for tool in self.tools
        }
        self._listed = changes

    # -- errors ------------------------------------------------------------------------------

    def _until(self, bound: float, doing: str) -> "_Deadline":
        return _Deadline(
            anyio.current_time() + bound, self._named(f"did not finish {doing} within {bound:g} s")
        )

    def _named(self, what: str) -> str:
        return f"the MCP server {self.spec.name!r} {what}"

    def _failed(self, exc: MCPError, what: str) -> ToolError:
        """A JSON-RPC error for a request: the connection's end, or the server's refusal."""
        if exc.code == CONNECTION_CLOSED:
            why = self._link.why or "its connection closed"
            return ToolServerError(self._named(f"failed {what}: {why}"))
        return ToolServerError(
            self._named(f"refused {what}: {self._scrubbed(exc.message)[:300]}"),
            detail=f"JSON-RPC error {exc.code}",
        )

    def _broken(self, exc: Exception, what: str) -> ToolError:
        """An answer the SDK could not take: the session's end, or one MCP does not allow."""
        if self._link.ended.is_set():
            return ToolServerError(self._named(f"failed {what}: {self._link.why}"))
        return ToolServerError(
            self._named(f"answered {what} with what MCP does not allow"),
            detail=f"{type(exc).__name__}: {self._scrubbed(str(exc))[:500]}",
        )

    def _unreachable(self, exc: BaseException, link: Link) -> ToolError:
        """Why the session could not start, or ended: the client is told the server's name,
        the log the kind of failure and where it was raised, never an address or a key."""
        while len(getattr(exc, "exceptions", ())) == 1:  # a task group's one failure
            exc = exc.exceptions[0]
        return ToolServerUnavailableError(
            self._named(f"could not be reached{': ' + link.why if link.why else ''}"),
            detail=f"{type(exc).__name__} at {raised_at(exc)}: {self._scrubbed(str(exc))[:300]}",
        )

    def _scrubbed(self, text: str) -> str:
        """``text`` with the server's URL and every credential of it blanked."""
        secrets = [value for _, value in self.spec.env if len(value) >= 4]
        secrets += [self.environ.get(variable, "") for _, variable in self.spec.headers_env]
        if self.spec.url:
            secrets.append(self.spec.url)
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


class _Session:
    """One session with the server, as its owner task holds it."""

    def __init__(self) -> None:
        self.up = anyio.Event()  # set once it started, or failed to
        self.link = Link()
        self.client: Optional[Client] = None  # while it is up
        self.failure: Optional[ToolError] = None  # why it could not start, or ended
        self.owner: Optional[asyncio.Task] = None


class _Deadline:
    """A cancel scope ending at ``deadline`` whose end is a :class:`ToolTimeoutError`."""

    def __init__(self, deadline: float, message: str) -> None:
        self.scope = anyio.CancelScope(deadline=deadline)
        self.message = message

    def __enter__(self) -> None:
        self.scope.__enter__()

    def __exit__(self, *exc_info) -> bool:
        swallowed = self.scope.__exit__(*exc_info)
        if self.scope.cancelled_caught:
            raise ToolTimeoutError(self.message)
        return bool(swallowed)


def _announces_changes(client: Client) -> bool:
    """Whether the session must open a stream for tool changes: a 2026 session with a
    server whose tool list changes (an older session is told them unasked)."""
    tools = client.server_capabilities.tools
    return (
        client.protocol_version in MODERN_PROTOCOL_VERSIONS
        and tools is not None
        and bool(tools.list_changed)
    )
