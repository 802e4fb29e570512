"""The models file's servers of tools: its ``[mcp_servers.NAME]`` tables, each an MCP server
the gateway runs or reaches, and its ``[web_search]`` table, the SearXNG instance the web
tools go through. Each is checked once, at start-up, a mistake named by its key and never
quoting a credential.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import urlsplit

from proxy.config.catalog import WEB, McpServerSpec, WebSearchSpec
from proxy.config.files import no_unknown, parse_size, resolved, resolved_arguments
from proxy.core.addresses import http_parts

MCP_KEYS = {
    "command",
    "env",
    "cwd",
    "url",
    "headers_env",
    "call_timeout",
    "start_timeout",
    "max_output_bytes",
    "idle_stop",
    "shared",
    "max_sessions",
}
# an MCP server's name, as a client's server_label is written (OpenAI's rule)
MCP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header's name (a token)
MCP_OUTPUT = 1024 * 1024  # bytes of an MCP tool's result kept, unless the file says
LEAST_OUTPUT = 1024  # the least a server's max_output_bytes may be
WEB_SEARCH_KEYS = {"searxng", "max_results", "timeout", "fetch", "max_fetch_bytes"}
WEB_FETCH = ("public", "any", "off")  # where web_fetch may go: as --image-urls says it
MOST_RESULTS = 20  # the most hits a search may give the model


def mcp_server_specs(tables: Any, fail, folder: str) -> tuple:
    """``[mcp_servers.NAME]`` tables, each a server the gateway runs tools on."""
    if not isinstance(tables, dict):
        raise fail("mcp_servers", "must be tables: [mcp_servers.<name>]")
    return tuple(
        _mcp_server(name, spec, f"mcp_servers.{name}", fail, folder)
        for name, spec in tables.items()
    )


def _mcp_server(name: str, spec: Any, key: str, fail, folder: str) -> McpServerSpec:
    """One MCP server: ``command`` (stdio, with ``env`` and ``cwd``) or ``url`` (streamable
    HTTP, with ``headers_env``), and the bounds of its calls."""
    if not MCP_NAME.fullmatch(name):
        raise fail(key, "a name is 1 to 64 letters, digits, '-' or '_'")
    if name == WEB:
        raise fail(key, f"{WEB!r} is the web search's name ([web_search]); choose another")
    if not isinstance(spec, dict):
        raise fail(key, "must be a table")
    no_unknown(spec, MCP_KEYS, key + ".", fail)
    if ("command" in spec) == ("url" in spec):
        raise fail(key, 'needs command = [...] (a server on stdio) or url = "...", one of them')
    for field_name, belongs in (("env", "command"), ("cwd", "command"), ("headers_env", "url")):
        if field_name in spec and belongs not in spec:
            raise fail(f"{key}.{field_name}", f"belongs to a server with a {belongs}")
    command = spec.get("command", [])
    if "command" in spec and (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part for part in command)
    ):
        raise fail(f"{key}.command", "must be a list: the program, then its arguments")
    env = _strings(
        spec.get("env", {}), f"{key}.env", fail, "{ <variable> = <value> }", str.isidentifier
    )
    cwd = spec.get("cwd", "")
    if not isinstance(cwd, str):
        raise fail(f"{key}.cwd", "must be the path of a folder")
    headers = _strings(
        spec.get("headers_env", {}),
        f"{key}.headers_env",
        fail,
        '{ <header> = "<the environment variable that holds its value>" }',
        lambda name: bool(HEADER_NAME.fullmatch(name)),
        values=str.isidentifier,
    )
    url = spec.get("url", "")
    if "url" in spec:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise fail(f"{key}.url", "must be an http(s) URL")
        if "@" in parts.netloc:
            raise fail(
                f"{key}.url",
                "holds a user name or password: a credential goes in headers_env, read from "
                "the environment, never in the models file",
            )
    return McpServerSpec(
        name=name,
        command=resolved_arguments(command, folder, exists=lambda path: False),
        env=env,
        cwd=resolved(cwd, folder),
        url=url,
        headers_env=headers,
        call_timeout=_seconds(spec, "call_timeout", 60.0, key, fail, zero=False),
        start_timeout=_seconds(spec, "start_timeout", 30.0, key, fail, zero=False),
        max_output_bytes=_output_bytes(
            spec.get("max_output_bytes", MCP_OUTPUT), f"{key}.max_output_bytes", fail
        ),
        idle_stop=_seconds(spec, "idle_stop", 600.0, key, fail, zero=True),
        shared=_flag(spec, "shared", key, fail),
        max_sessions=_count(spec, "max_sessions", 16, key, fail),
    )


def _flag(spec: dict, name: str, key: str, fail) -> bool:
    value = spec.get(name, False)
    if not isinstance(value, bool):
        raise fail(f"{key}.{name}", "must be true or false")
    return value


def _count(spec: dict, name: str, default: int, key: str, fail) -> int:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
        raise fail(f"{key}.{name}", "must be a whole number from 1 to 1024")
    return value


def web_search_spec(table: Any, fail) -> Optional[WebSearchSpec]:
    """``[web_search]``: the SearXNG instance searches go through, and the bounds of the
    ``web_search`` and ``web_fetch`` calls; None when the file has no such table."""
    if table is None:
        return None
    key = "web_search"
    if not isinstance(table, dict):
        raise fail(key, 'must be a table: [web_search] with searxng = "http://…"')
    no_unknown(table, WEB_SEARCH_KEYS, key + ".", fail)
    if "searxng" not in table:
        raise fail(key, 'needs searxng = "http://…": the base URL of a SearXNG instance')
    searxng = table["searxng"]
    parts = http_parts(searxng)
    if parts is None:
        raise fail(f"{key}.searxng", "must be an http(s) URL: the base URL of a SearXNG instance")
    if "@" in parts.netloc:
        raise fail(f"{key}.searxng", "holds a user name or password: a search needs none")
    if parts.query or parts.fragment:
        raise fail(
            f"{key}.searxng",
            "must be the base URL of a SearXNG instance, without a query: the gateway asks "
            "<searxng>/search?q=…&format=json",
        )
    most = table.get("max_results", 5)
    if isinstance(most, bool) or not isinstance(most, int) or not 1 <= most <= MOST_RESULTS:
        raise fail(f"{key}.max_results", f"must be a whole number from 1 to {MOST_RESULTS}")
    fetch = table.get("fetch", "public")
    if fetch not in WEB_FETCH:
        raise fail(f"{key}.fetch", f"must be one of {', '.join(WEB_FETCH)}, got {fetch!r}")
    return WebSearchSpec(
        searxng=searxng.rstrip("/"),
        max_results=most,
        timeout=_seconds(table, "timeout", 10.0, key, fail, zero=False),
        fetch=fetch,
        max_fetch_bytes=_output_bytes(
            table.get("max_fetch_bytes", MCP_OUTPUT), f"{key}.max_fetch_bytes", fail
        ),
    )


def _strings(table: Any, key: str, fail, shape: str, named, values=lambda value: True) -> tuple:
    """A table of strings by name, as ``(name, value)`` pairs; ``named`` and ``values`` say
    which names and values it may hold."""
    if not isinstance(table, dict):
        raise fail(key, f"must be a table: {shape}")
    for name, value in table.items():
        if not named(name):
            raise fail(f"{key}.{name}", f"is not a name this table may hold: {shape}")
        if not isinstance(value, str) or not values(value):
            raise fail(f"{key}.{name}", f"must be a string, as in {shape}")
    return tuple(table.items())


def _seconds(spec: dict, name: str, default: float, key: str, fail, zero: bool) -> float:
    value = spec.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < 0
        or (value == 0 and not zero)
    ):
        never = " (0 = never)" if zero else ""
        raise fail(f"{key}.{name}", f"must be a number of seconds{never}, got {value!r}")
    return float(value)


def _output_bytes(value: Any, key: str, fail) -> int:
    """A result's bound, as ``"1MiB"`` or a number of bytes, of at least :data:`LEAST_OUTPUT`."""
    try:
        size = parse_size(value) if isinstance(value, str) else value
    except ValueError as exc:
        raise fail(key, str(exc)) from None
    if isinstance(size, bool) or not isinstance(size, int) or size < LEAST_OUTPUT:
        raise fail(
            key, f'must be a size of at least {LEAST_OUTPUT} bytes, such as "1MiB", got {value!r}'
        )
    return size
