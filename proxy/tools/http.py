"""An MCP server over streamable HTTP: the SDK's transport, on an HTTP client whose
answers pass through a :class:`~proxy.tools.cutting.Cutter` as they are read (the SDK
reads a JSON answer whole), with the headers the operator names read from the
environment when the connection is made, and a traced call's W3C trace context."""

from __future__ import annotations

import contextlib
import json
from typing import AsyncIterator, Mapping

import httpx2
from mcp.client.streamable_http import streamable_http_client

from proxy.config.catalog import McpServerSpec
from proxy.tools.cutting import Cutter, TooLong
from proxy.tools.transport import Link, marked

CONNECT_TIMEOUT = 30.0  # seconds to connect, write or wait for the pool
STREAM_TIMEOUT = 300.0  # seconds between two reads of a stream the server holds open
TRACE_CONTEXT = ("traceparent", "tracestate")  # W3C's headers, as MCP's _meta names them too


class MissingCredential(LookupError):
    """An environment variable that ``headers_env`` names is not set (its name is the
    operator's to read in the log, its value never is)."""


class TooLongAnswer(httpx2.StreamError):
    """An answer kept more bytes than a connection's bound: the request it answers fails
    (the SDK reads it as a broken stream)."""


def headers_of(spec: McpServerSpec, environ: Mapping[str, str]) -> dict:
    """The headers ``spec.headers_env`` names, their values read from ``environ``."""
    headers = {}
    for header, variable in spec.headers_env:
        if not environ.get(variable):
            raise MissingCredential(variable)
        headers[header] = environ[variable]
    return headers


@contextlib.asynccontextmanager
async def http_transport(
    spec: McpServerSpec, environ: Mapping[str, str], link: Link, most: int
) -> AsyncIterator[tuple]:
    """The streams of a session with the server at ``spec.url``: each line of an answer
    keeps ``spec.max_output_bytes`` of its long strings and ``most`` bytes in all (a JSON
    answer, ``most`` in all); an answer past that fails its request, ``link`` told why."""
    client = httpx2.AsyncClient(
        headers={**headers_of(spec, environ), "Accept-Encoding": "identity"},
        timeout=httpx2.Timeout(CONNECT_TIMEOUT, read=STREAM_TIMEOUT),
        transport=Cutting(httpx2.AsyncHTTPTransport(), spec.max_output_bytes, most, link),
    )
    async with (
        client,
        streamable_http_client(
            spec.url, http_client=client, max_sse_event_size=most + 1024
        ) as streams,
    ):
        yield streams


def trace_context_of(request: httpx2.Request) -> dict:
    """The W3C trace context a request's JSON-RPC message carries in its ``_meta`` (a tool's
    call, traced), as the headers that carry it over HTTP: a server's HTTP tracing reads
    those, its MCP SDK the ``_meta``."""
    if request.method != "POST" or b'"traceparent"' not in request.content:
        return {}
    try:
        meta = json.loads(request.content)["params"]["_meta"]
    except (ValueError, KeyError, TypeError):
        return {}
    if not isinstance(meta, dict):
        return {}
    return {name: meta[name] for name in TRACE_CONTEXT if isinstance(meta.get(name), str)}


class Cutting(httpx2.AsyncBaseTransport):
    """An HTTP transport whose answers are cut as they arrive."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, budget: int, most: int, link: Link):
        self.inner, self.budget, self.most, self.link = inner, budget, most, link

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers.update(trace_context_of(request))
        response = await self.inner.handle_async_request(request)
        encoding = response.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            await response.aclose()
            self.link.why = f"it answered in the {encoding!r} encoding, asked for none"
            raise TooLongAnswer(self.link.why)
        streamed = response.headers.get("content-type", "").startswith("text/event-stream")
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=CutStream(response.stream, self, whole=not streamed),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class CutStream(httpx2.AsyncByteStream):
    """An answer's body as the cutter keeps it, line by line; ``whole``: a JSON body, kept
    to ``most`` bytes in all, not only per line."""

    def __init__(self, inner: httpx2.AsyncByteStream, cutting: Cutting, whole: bool) -> None:
        self.inner, self.cutting, self.whole = inner, cutting, whole

    async def __aiter__(self) -> AsyncIterator[bytes]:
        cutting = self.cutting
        cutter, line, total = Cutter(cutting.budget, cutting.most), [], 0
        try:
            async for chunk in self.inner:
                for piece, cut in cutter.pieces(chunk):
                    line.append(piece)
                    total += len(piece)
                    if self.whole and total > cutting.most:
                        raise TooLong(f"an answer kept more than {cutting.most} bytes")
                    if cut is not None:
                        data, line = b"".join(line), []
                        yield (marked(data) if cut else data) + b"\n"
            data = b"".join(line)
            if data:
                ((_, cut),) = cutter.pieces(b"\n")  # the body's end ends its last line
                yield marked(data) if cut else data
        except TooLong:
            cutting.link.why = f"it answered a message of more than {cutting.most} bytes"
            raise TooLongAnswer(cutting.link.why) from None

    async def aclose(self) -> None:
        await self.inner.aclose()
