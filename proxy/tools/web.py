"""The web tools the gateway runs for a model when the models file has ``[web_search]``,
as one server of tools named ``web``, in the shape of :class:`~proxy.tools.manager.ToolServers`:
``web_search`` asks the operator's SearXNG instance, ``web_fetch`` (unless ``fetch = "off"``)
reads a page by its URL, only at public addresses unless ``fetch = "any"``, reached at the
address checked, its redirects checked again (:func:`proxy.core.fetching.fetch`). Each call
has one deadline from its connect to its last byte and a bound of bytes read, decided before
it starts, and is counted.

What the model got wrong, and a page it cannot have (refused, unreachable, of a type that is
no text), is an error result the model reads; a search service that fails is a
:class:`~proxy.core.errors.ToolError`, which never names its address. What a page or a hit
says is data, never followed.
"""

from __future__ import annotations

import codecs
import http.client
import time
from email.message import Message
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from proxy.config.catalog import WebSearchSpec
from proxy.core.addresses import http_parts
from proxy.core.errors import (
    ToolArgumentsError,
    ToolError,
    ToolNotFoundError,
    ToolServerError,
    ToolServerUnavailableError,
    ToolTimeoutError,
)
from proxy.core.fetching import (
    REDIRECTING,
    Deadline,
    Got,
    NotPublic,
    NotWeb,
    TimedOut,
    Unfetched,
    WithCredentials,
    fetch,
    get,
)
from proxy.core.outbound import Resolve, resolve
from proxy.core.tooluse import Source
from proxy.tools.arguments import checker
from proxy.tools.manager import NO_TRACE, TOOL_REPORTED, ToolMetrics
from proxy.tools.pagetext import page_text
from proxy.tools.results import ToolResult, ToolSpec
from proxy.tools.searxng import hits, listing, search_url

SERVER = "web"  # the name the web tools are served and counted under
SEARCH, FETCH = "web_search", "web_fetch"
SEARCH_BYTES = 4 * 1024 * 1024  # bytes of a search service's answer read, at the most
LONGEST_QUERY = 1000  # characters
LONGEST_URL = 8192  # characters of a URL to fetch
REDIRECTS = 3  # a fetch's redirects followed, each checked as the first URL was
HTML = frozenset({"text/html", "application/xhtml+xml"})
AS_IS = frozenset({"application/json", "application/xml"})  # and text/*, and …+json
SEARCH_HEADERS = {"User-Agent": "oai-proxy", "Accept": "application/json"}
FETCH_HEADERS = {
    "User-Agent": "oai-proxy",
    "Accept": "text/html, application/xhtml+xml, text/plain;q=0.9, application/json;q=0.9, "
    "text/*;q=0.8",
}


class WebTools:
    """``web_search`` and ``web_fetch`` as ``spec`` declares them; ``metrics`` counts the
    calls, ``resolve`` finds a host's addresses (the system's resolver, unless a test
    says)."""

    def __init__(
        self,
        spec: WebSearchSpec,
        *,
        metrics: Optional[ToolMetrics] = None,
        resolve: Resolve = resolve,
    ) -> None:
        self.spec = spec
        self._metrics, self._resolve = metrics, resolve
        self._tools = (_search_tool(spec),) + (() if spec.fetch == "off" else (_fetch_tool(spec),))
        self._checks = {
            tool.name: checker(SERVER, tool.name, tool.input_schema) for tool in self._tools
        }
        self._runs: dict = {SEARCH: self._search, FETCH: self._fetch}

    def list_tools(
        self, server: str = SERVER, timeout: Optional[float] = None, key: str = ""
    ) -> tuple:
        """The web tools (:class:`~proxy.tools.results.ToolSpec`): ``web_search``, and
        ``web_fetch`` unless ``fetch = "off"``; ``timeout`` and ``key`` are there for the
        shape of :meth:`ToolServers.list_tools`: listing them asks nothing of anyone, and
        they keep nothing between calls."""
        _named(server)
        return self._tools

    def call(
        self,
        server: str,
        tool: str,
        arguments: Any,
        timeout: Optional[float] = None,
        key: str = "",
        trace_context: Mapping[str, str] = NO_TRACE,
    ) -> ToolResult:
        """Call ``tool`` with ``arguments`` (a JSON object), within ``timeout`` seconds and
        the spec's ``timeout``, whichever is shorter. Arguments that do not fit the tool's
        input schema, and a page that cannot be had, are an error result (the model reads
        why); a search service that fails is a :class:`~proxy.core.errors.ToolError`. The
        search service, the operator's, is sent the W3C ``trace_context``; a page, never."""
        _named(server)
        bound = self.spec.timeout if timeout is None else max(0.0, min(timeout, self.spec.timeout))
        started, error, counted = time.monotonic(), "", tool
        try:
            if tool not in self._checks:
                counted = ""
                raise ToolNotFoundError(
                    f"the web tools have no tool {tool!r}; they are {', '.join(self._checks)}",
                    param="tool",
                )
            try:
                self._checks[tool](arguments)
            except ToolArgumentsError as exc:
                result = ToolResult(exc.message, is_error=True)
            else:
                with Deadline(bound) as deadline:
                    result = self._runs[tool](arguments, deadline, trace_context)
            if result.is_error:
                error = TOOL_REPORTED
            return result
        except ToolError as exc:
            error = exc.code or "tool_error"
            raise
        finally:
            if self._metrics is not None:
                self._metrics.tool_called(SERVER, counted, time.monotonic() - started, error)

    # -- web_search ----------------------------------------------------------------------

    def _search(self, arguments: dict, deadline: Deadline, trace_context: Mapping) -> ToolResult:
        query = arguments["query"].strip()
        if not query:
            return ToolResult("the query of web_search is empty: say what to search for", True)
        url = urlsplit(search_url(self.spec.searxng, query))
        try:  # the operator's own service: reached by its name, trusted
            got = get(url, None, deadline, SEARCH_BYTES, {**SEARCH_HEADERS, **trace_context})
        except TimeoutError:
            raise ToolTimeoutError(
                f"the search service did not answer within {deadline.seconds:g} s"
            ) from None
        except (OSError, ValueError):
            raise ToolServerUnavailableError("the search service cannot be reached") from None
        except http.client.HTTPException:
            raise ToolServerError("the search service broke off its answer") from None
        if got.status != 200:
            hint = " (SearXNG does so when its settings leave out the json format)"
            raise ToolServerError(
                f"the search service answered {got.status}{hint if got.status == 403 else ''}"
            )
        if got.cut:
            raise ToolServerError(
                f"the search service answered more than the {SEARCH_BYTES} bytes read of it"
            )
        try:
            found = hits(got.body, arguments.get("count", self.spec.max_results))
        except ValueError:
            raise ToolServerError(
                "the search service answered what is not SearXNG's JSON"
            ) from None
        return ToolResult(listing(query, found), sources=found)

    # -- web_fetch -----------------------------------------------------------------------

    def _fetch(self, arguments: dict, deadline: Deadline, _trace_context: Mapping) -> ToolResult:
        url = arguments["url"].strip()
        if http_parts(url) is None:
            return _failed(f"web_fetch reads http(s) URLs only, not {_quoted(url)}")
        try:
            got = fetch(
                url,
                deadline,
                self.spec.max_fetch_bytes,
                FETCH_HEADERS,
                policy=self.spec.fetch,
                resolve=self._resolve,
                redirects=REDIRECTS,
                credentials=False,
            )
        except Unfetched as unfetched:
            return _failed(_unfetched(unfetched, deadline))
        if got.status in REDIRECTING and got.location:
            return _failed(f"{_quoted(got.url)} redirects more than {REDIRECTS} times")
        if got.status != 200:
            host = urlsplit(got.url).hostname
            return _failed(f"{host} answered {got.status} for {_quoted(got.url)}")
        return self._read(got)

    def _read(self, got: Got) -> ToolResult:
        """The page ``got`` as text a model reads: its URL and title first, cut to the
        bytes a fetch gives."""
        url = got.url
        kind, charset = _content_type(got.content_type)
        if kind in HTML:
            page = page_text(_decoded(got.body, charset, got.cut))
            title, text = page.title, page.text
        elif kind.startswith("text/") or kind in AS_IS or kind.endswith("+json"):
            title, text = "", _decoded(got.body, charset, got.cut)
        else:
            return _failed(
                f"{_quoted(url)} is {kind or 'of no type it names'}: web_fetch reads HTML, "
                f"text and JSON only"
            )
        head = [f"URL: {url}"] + ([f"Title: {title}"] if title else [])
        if got.cut:
            head.append(f"(the page goes on past the first {self.spec.max_fetch_bytes} bytes)")
        text, cut = _bounded("\n".join(head) + "\n\n" + text, self.spec.max_fetch_bytes)
        return ToolResult(text, truncated=got.cut or cut, sources=(Source(url, title),))


def _search_tool(spec: WebSearchSpec) -> ToolSpec:
    most = spec.max_results
    return ToolSpec(
        SEARCH,
        f"Search the web. Answers with up to {most} results, each with its title, URL and a "
        f"snippet; cite the URLs the answer draws on.",
        {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": LONGEST_QUERY,
                    "description": "What to search for.",
                },
                "count": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": most,
                    "description": f"How many results: {most} at the most, and if not said.",
                },
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    )


def _fetch_tool(spec: WebSearchSpec) -> ToolSpec:
    return ToolSpec(
        FETCH,
        f"Read a web page by its http(s) URL. Answers with its readable text (HTML as text; "
        f"plain text and JSON as they are), at most {spec.max_fetch_bytes} bytes of it.",
        {
            "type": "object",
            "properties": {
                "url": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": LONGEST_URL,
                    "description": "The page's http(s) URL.",
                }
            },
            "required": ["url"],
            "additionalProperties": False,
        },
    )


def _named(server: str) -> None:
    if server != SERVER:
        raise ToolNotFoundError(
            f"the web tools are served as {SERVER!r}, not {server!r}", param="server_label"
        )


def _failed(why: str) -> ToolResult:
    return ToolResult(why, is_error=True)


def _unfetched(unfetched: Unfetched, deadline: Deadline) -> str:
    """Why a page was not fetched, as the model reads it."""
    url, host = _quoted(unfetched.url), unfetched.host
    if isinstance(unfetched, WithCredentials):
        return f"{url} holds a user name or password: it is not fetched"
    if isinstance(unfetched, NotWeb):
        return f"the page redirects to {url}, which is no http(s) URL"
    if isinstance(unfetched, NotPublic):
        return (
            f"the host {host} of {url} is not on the internet: web_fetch reads pages at "
            f"public addresses only"
        )
    if isinstance(unfetched, TimedOut):
        return f"{host} did not answer within {deadline.seconds:g} s"
    return f"{host} could not be reached, or broke off its answer"


def _quoted(url: str, most: int = 200) -> str:
    """``url`` as an error result names it: quoted, a long one shortened."""
    return repr(url if len(url) <= most else url[: most - 1] + "…")


def _content_type(value: str) -> tuple:
    """A Content-Type's type, lower-case ("" if there is none), and its charset, if it
    names one Python knows (else UTF-8)."""
    if not value.strip():
        return "", "utf-8"
    header = Message()
    header["Content-Type"] = value
    charset = header.get_content_charset() or "utf-8"
    try:
        b"a".decode(charset, "replace")  # a text encoding: not zlib, base64, rot13, "undefined"
    except (LookupError, UnicodeError):
        charset = "utf-8"
    return header.get_content_type(), charset


def _decoded(body: bytes, charset: str, cut: bool) -> str:
    """``body`` as text; of a body cut at its bound, a character the cut split is left
    out. A codec that refuses the bytes even so (UTF-16 without its byte order mark, say)
    leaves them to UTF-8."""
    try:
        return codecs.getincrementaldecoder(charset)("replace").decode(body, final=not cut)
    except UnicodeError:
        return codecs.getincrementaldecoder("utf-8")("replace").decode(body, final=not cut)


def _bounded(text: str, most: int) -> tuple:
    """``text`` within ``most`` bytes of UTF-8, cut between characters, and whether it was
    cut."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= most:
        return text, False
    return encoded[:most].decode("utf-8", "ignore"), True
