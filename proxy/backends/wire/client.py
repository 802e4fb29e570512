"""HTTP to the upstream server, with every transport failure mapped to a proxy error."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import orjson

from proxy.backends.wire.chunked import BrokenChunks
from proxy.backends.wire.connections import (
    Abandoned,
    BrokenAnswer,
    Connection,
    ConnectionPool,
    Head,
)
from proxy.backends.wire.events import error_message, lacks_route, stream_error
from proxy.core.caller import NOBODY, Caller, never
from proxy.core.errors import (
    UNREACHABLE,
    ClientGoneError,
    InvalidRequestError,
    ProxyError,
    SlotUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from proxy.ops.measure import Measure, waiting

JSON_TYPE = b"Content-Type: application/json\r\n"  # the head line of a JSON body


@dataclass(frozen=True)
class UpstreamReply:
    """A whole upstream answer."""

    status_code: int
    reason: str
    content: bytes
    path: str

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> object:
        """The decoded body; ``ValueError`` when it is not JSON."""
        return _loads(self.content)


class MissingRoute(UpstreamError):
    """A server of a public API has no such route (:func:`lacks_route`): the backend that
    asked names what its model does not serve; anywhere else, it is the upstream's error."""

    def __init__(self, label: str, path: str, status: int, said: str) -> None:
        super().__init__(f"{label} has no {path} (it answered {status}: {said[:200]})")
        self.path = path


def probe_ready(url: str) -> Optional[bool]:
    """Whether a server just started serves: True, False while it loads its model (current
    llama.cpp answers /health 503), None while nothing listens (old servers listen only
    once loaded, and answer /health 404)."""
    client = UpstreamClient(url, pool_size=0, connect_timeout=2, read_timeout=2)
    try:
        return client.get("/health").status_code != 503
    except UpstreamError:
        return None
    finally:
        client.close()


class UpstreamClient:
    """Pooled keep-alive connections to one server.cpp base URL.

    Its errors name the server by ``label`` (which model's, which replica), never by its
    address: that goes into their ``detail``, for the log.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        pool_size: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 600.0,
        label: str = "the upstream server",
        remedy: str = "is llama-server running and --llama-api right?",
        key_remedy: str = "set --llama-api-key to the key the server expects",
        timeout_remedy: str = "raise --upstream-timeout or ask for fewer tokens",
        headers: Optional[dict] = None,
        first_byte_timeout: Optional[float] = None,
        public_api: bool = False,
    ) -> None:
        """``remedy``, ``key_remedy``, ``timeout_remedy``: what the operator checks when the
        server cannot be reached, when it refuses the proxy's key, and when it says nothing
        for ``read_timeout`` seconds; ``headers``: sent with every request (an API's version,
        a key under another name than ``Authorization``, the operator's own);
        ``first_byte_timeout``: seconds a stream's first bytes may take (``None``: as any
        others, ``read_timeout``); ``public_api``: the server speaks a public API (OpenAI's,
        Anthropic's), whose 404, 405 and 501 say a route is missing (:class:`MissingRoute`),
        where an old server.cpp's 404 says it has no free slot."""
        self.base_url = base_url.rstrip("/")
        self.label = label
        self.remedy = remedy
        self.key_remedy = key_remedy
        self.timeout_remedy = timeout_remedy
        self.first_byte_timeout = first_byte_timeout
        self.pool = ConnectionPool(
            self.base_url,
            size=pool_size,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.api_key = api_key
        self.headers = dict(headers or {})
        self.public_api = public_api
        self._heads: dict = {}

    def get(self, path: str, *, timeout: Optional[float] = None) -> UpstreamReply:
        """GET without judging the status (detection reads 404s)."""
        return self._whole(path, self._head("GET", path) + b"\r\n", timeout)

    def post(self, path: str, body: dict, *, timeout: Optional[float] = None) -> UpstreamReply:
        """POST without judging the status (detection reads refusals)."""
        return self._whole(path, self._post(path, body), timeout)

    def post_json(
        self, path: str, body: dict, *, caller: Caller = NOBODY, timeout: Optional[float] = None
    ) -> object:
        """POST and return the decoded JSON answer, or raise the mapped error; ``caller``:
        the request's, whose waits are taken off its measure and whose client's leaving
        gives the answer up (and tells the server to stop working on it); ``timeout``:
        seconds, the upstream's by default."""
        reply = self._whole(path, self._post(path, body), timeout, caller)
        self.raise_for_status(reply)
        try:
            return reply.json()
        except ValueError:
            raise UpstreamError(
                f"{self.label} answered {path} with something that is not JSON"
            ) from None

    def post_encoded(
        self, path: str, content_type: str, data: bytes, *, caller: Caller = NOBODY
    ) -> UpstreamReply:
        """POST a body already encoded (a multipart form of :mod:`.form`, a client's JSON)
        as ``content_type``, and return the answer as it came, or raise the mapped error."""
        reply = self._whole(path, self._encoded(path, (content_type, data)), None, caller)
        self.raise_for_status(reply)
        return reply

    @contextlib.contextmanager
    def stream_bytes(
        self, path: str, body: Union[dict, tuple], *, caller: Caller = NOBODY
    ) -> Iterator[Iterator[bytes]]:
        """POST ``body`` (JSON, or ``(content type, bytes)`` already encoded: a form) and
        yield the answer's bytes as they arrive, whatever they are (audio, a transcript's
        events); leaving closes the connection."""
        request = self._encoded(path, body) if isinstance(body, tuple) else self._post(path, body)
        connection, head = self._send(request, self.first_byte_timeout, caller)
        try:
            if head.status >= 400:
                self.raise_for_status(self._read(connection, head, path, caller.measure))
            yield self._pieces(connection, head)
        finally:
            connection.close()

    def _pieces(self, connection: Connection, head: Head) -> Iterator[bytes]:
        """The answer's bytes as they arrive; a failure on the way is the proxy's error."""
        try:
            yield from connection.pieces(head)
        except Exception as exc:
            raise self._failed(exc) from exc

    @contextlib.contextmanager
    def stream(self, path: str, body: dict, *, caller: Caller = NOBODY) -> Iterator[Iterator[list]]:
        """POST and yield the body's lines as they arrive (see :meth:`Connection.lines`);
        leaving closes the connection.

        Closing the connection early is what tells server.cpp to stop generating; servers
        close it after a stream anyway, so it never goes back to the pool. ``caller``: as for
        :meth:`post_json`, its client watched while the server sends nothing (a long prompt).
        """
        first = self.first_byte_timeout
        late = "" if first is None else self._late()
        connection, head = self._send(self._post(path, body), first, caller, late)
        try:
            if head.status >= 400:
                self.raise_for_status(self._read(connection, head, path, caller.measure))
            if first is not None:
                self._begun(connection, caller.measure, late)
            yield connection.lines(head, self._failed, caller.measure)
        finally:
            connection.close()

    def _late(self) -> str:
        """What a stream's first bytes that took too long are told as."""
        return (
            f"{self.label} did not begin its answer in time; raise the model's timeouts.first_byte"
        )

    def _begun(self, connection: Connection, measure: Optional[Measure], late: str) -> None:
        """Wait for a stream's first bytes within the first-byte timeout, then read on as
        any answer is read: a server that takes too long to begin has failed before any
        byte reached the client, and the request may go elsewhere."""
        try:
            with waiting(measure):
                connection.await_body()
        except Exception as exc:
            raise self._failed(exc, late) from exc
        connection.set_deadline(self.pool.read_timeout)

    def _head(self, method: str, path: str) -> bytes:
        """A request's first lines, made once per method and path."""
        head = self._heads.get((method, path))
        if head is None:
            lines = [f"{method} {self.pool.prefix}{path} HTTP/1.1", f"Host: {self.pool.authority}"]
            if method == "POST":
                lines.append(JSON_TYPE.decode().rstrip())
            if self.api_key:
                lines.append(f"Authorization: Bearer {self.api_key}")
            lines.extend(f"{name}: {value}" for name, value in self.headers.items())
            head = self._heads[method, path] = "".join(f"{line}\r\n" for line in lines).encode()
        return head

    def _post(self, path: str, body: dict) -> bytes:
        data = _dumps(body)
        return b"%sContent-Length: %d\r\n\r\n%s" % (self._head("POST", path), len(data), data)

    def _encoded(self, path: str, body: tuple) -> bytes:
        """The request of a ``(content type, bytes)`` body."""
        content_type, data = body
        head = self._head("POST", path).replace(
            JSON_TYPE, b"Content-Type: %s\r\n" % content_type.encode()
        )
        return b"%sContent-Length: %d\r\n\r\n%s" % (head, len(data), data)

    def _whole(
        self, path: str, request: bytes, timeout: Optional[float], caller: Caller = NOBODY
    ) -> UpstreamReply:
        connection, head = self._send(request, timeout, caller)
        try:
            reply = self._read(connection, head, path, caller.measure)
        except ProxyError:
            connection.close()
            raise
        if caller.gone is not never:
            connection.watch(None)
        if head.keep_alive and not head.chunked:  # a chunked body's trailers are left unread
            if timeout is not None:
                connection.set_deadline(self.pool.read_timeout)
            self.pool.give_back(connection)
        else:
            connection.close()
        return reply

    def _send(
        self, request: bytes, timeout: Optional[float], caller: Caller = NOBODY, late: str = ""
    ) -> tuple:
        """Send the request and read the answer's head, on a pooled connection if one is
        open; one that the server closed while idle is replaced once. ``late``: what a
        timeout says, when not the read timeout's message."""
        trace = caller.trace
        if trace is not None:  # the upstream's spans join the request's trace
            request = _with_headers(request, trace.headers())
        with waiting(caller.measure):
            for _ in range(2):
                connection, reused = self._take()
                if timeout is not None:
                    connection.set_deadline(timeout)
                if caller.gone is not never:
                    connection.watch(caller.gone)
                try:
                    return connection, connection.exchange(request)
                except ConnectionError as exc:
                    connection.close()
                    if not reused:
                        raise self._unreachable() from exc
                except Exception as exc:
                    connection.close()
                    raise self._failed(exc, late) from exc
            raise AssertionError("a new connection either answers or raises")

    def _take(self) -> tuple:
        try:
            return self.pool.take()
        except socket.timeout as exc:
            raise UpstreamUnavailableError(
                f"cannot connect to {self.label} in time: {self.remedy}",
                code=UNREACHABLE,
                retry_after=2,
            ) from exc
        except OSError as exc:
            raise self._unreachable() from exc

    def _read(
        self, connection: Connection, head: Head, path: str, measure: Optional[Measure] = None
    ) -> UpstreamReply:
        try:
            with waiting(measure):
                content = connection.body(head)
        except Exception as exc:
            raise self._failed(exc) from exc
        return UpstreamReply(head.status, head.reason, content, path)

    def raise_for_status(self, reply: UpstreamReply) -> None:
        if reply.ok:
            return
        text = reply.text[:500]
        body = _error_body(text, reply.reason)
        if self.public_api and lacks_route(reply.status_code, body):
            raise MissingRoute(self.label, reply.path, reply.status_code, error_message(body))
        if not self.public_api and reply.status_code == 404 and "File Not Found" in text:
            # PowerInfer and llama.cpp 2023 answer a request with no free slot this way
            raise SlotUnavailableError(
                f"{self.label} has no free slot for the request (or does not "
                f"serve {reply.path}); retry shortly, or start it with more --parallel slots",
                retry_after=1,
            )
        if reply.status_code == 501 and reply.path == "/infill":
            # current llama-server: the model's vocabulary names no fill-in-the-middle tokens
            raise InvalidRequestError(
                f"suffix cannot be served: the model of {self.label} has no fill-in-the-middle "
                "tokens (a code model's, such as Qwen2.5-Coder's)",
                param="suffix",
            )
        if reply.status_code == 429:
            raise UpstreamUnavailableError(
                f"{self.label} is over its rate limit; retry shortly", retry_after=1
            )
        if reply.status_code == 401:
            raise UpstreamError(f"{self.label} refused the proxy's key; {self.key_remedy}")
        error = stream_error(body, self.label)
        if reply.status_code == 503 and not isinstance(error, UpstreamUnavailableError):
            error = UpstreamUnavailableError(
                f"{self.label} is not ready ({error.message}); retry shortly", retry_after=1
            )
        raise error

    def _unreachable(self) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(
            f"cannot reach {self.label}: {self.remedy}", code=UNREACHABLE, retry_after=2
        )

    def _failed(self, exc: Exception, late: str = "") -> ProxyError:
        """A failure once the request was sent: a timeout (``late``: what it says, when not
        the read timeout's message), the client gone, or the exchange broke off."""
        if isinstance(exc, Abandoned):
            return ClientGoneError(
                "the client went away before its answer was whole; the server was told to stop"
            )
        if isinstance(exc, socket.timeout):
            return UpstreamTimeoutError(
                late or f"{self.label} did not answer in time; {self.timeout_remedy}"
            )
        return UpstreamError(f"the exchange with {self.label} failed: {broken(exc)}")

    @contextlib.contextmanager
    def blamed(self) -> Iterator[None]:
        """Errors raised inside, with this server's address as their detail (for the log)."""
        try:
            yield
        except ProxyError as exc:
            exc.detail = exc.detail or f"upstream {self.base_url}"
            raise

    def close(self) -> None:
        self.pool.close()


def _error_body(text: str, reason: str) -> object:
    """An error answer's body: its JSON, or its text as a message."""
    try:
        return json.loads(text)
    except ValueError:
        return {"message": text.strip() or reason}


def _dumps(body: dict) -> bytes:
    """JSON in UTF-8; ``json`` for what orjson refuses (integers wider than 64 bits)."""
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(body, ensure_ascii=False).encode()


def _loads(content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


def broken(exc: Exception) -> str:
    """What broke an exchange, in words a client reads (never the class that says it)."""
    if isinstance(exc, (BrokenChunks, BrokenAnswer)):
        return str(exc)  # its own words: what of the answer was not HTTP
    if isinstance(exc, ConnectionResetError):
        return "the server reset the connection"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "the server closed the connection mid-answer"
    if isinstance(exc, ssl.SSLError):
        return "the TLS session broke"
    return "the connection broke"


def _with_headers(request: bytes, headers: dict) -> bytes:
    """``request`` with ``headers`` after its first line."""
    line, rest = request.split(b"\r\n", 1)
    added = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()
    return b"%s\r\n%s%s" % (line, added, rest)
