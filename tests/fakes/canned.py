"""An HTTP server answering from canned replies, recording what it was sent.

The unit tier's stand-in for an upstream whose answers a test dictates exactly: it speaks
real HTTP/1.1 with keep-alive, so the proxy's own client is what gets tested.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional


@dataclass
class Call:
    method: str
    path: str
    body: bytes
    peer: tuple  # the client's address: one per connection
    headers: dict = field(default_factory=dict)  # as sent, by lower-case name


@dataclass
class Canned:
    """One reply; ``calls`` holds the requests it answered."""

    status: int
    body: bytes
    content_type: str
    delay: float = 0.0
    chunks: int = 0  # send the body in this many chunked-coded writes, as streams go
    pause: float = 0.0  # seconds between the head and the body, as a stream's first token
    gap: float = 0.0  # seconds between two chunks, as a stream's next tokens
    calls: list = field(default_factory=list)
    whole: Optional["Canned"] = None  # the reply to a body that asks for no stream, if other


class CannedServer:
    """``server.post("/completion", json={...})`` arms a reply; the latest one for a method
    and path answers every request to it. Unarmed paths answer 404."""

    def __init__(self) -> None:
        self.calls: list = []
        self._replies: dict = {}
        self._connections: list = []
        self._http = _Quiet(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"

    def get(self, path: str, **reply) -> Canned:
        return self._arm("GET", path, **reply)

    def post(self, path: str, **reply) -> Canned:
        return self._arm("POST", path, **reply)

    def _arm(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json_body: object = None,
        body: str = "",
        content_type: Optional[str] = None,
        delay: float = 0.0,
        chunks: int = 0,
        pause: float = 0.0,
        gap: float = 0.0,
        whole: object = None,
    ) -> Canned:
        """``whole``: the JSON answering a body of ``"stream": false`` at the same path,
        where a stream's reply answers the others."""
        if json_body is not None:
            body, content_type = json.dumps(json_body), content_type or "application/json"
        canned = Canned(
            status, body.encode(), content_type or "text/plain", delay, chunks, pause, gap
        )
        if whole is not None:
            canned.whole = Canned(200, json.dumps(whole).encode(), "application/json")
        self._replies[method, path] = canned
        return canned

    def hang_up(self) -> None:
        """Close every connection from the server's side, as a server does with idle ones."""
        for connection in self._connections:
            connection.shutdown(socket.SHUT_RDWR)

    def _handler(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server._connections.append(self.connection)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                call = Call(
                    self.command,
                    self.path,
                    self.rfile.read(length),
                    self.client_address,
                    {name.lower(): value for name, value in self.headers.items()},
                )
                server.calls.append(call)
                canned = server._replies.get((self.command, self.path))
                if canned is None:
                    canned = Canned(404, b"File Not Found", "text/plain")
                elif canned.whole is not None and json.loads(call.body).get("stream") is False:
                    canned = canned.whole
                canned.calls.append(call)
                time.sleep(canned.delay)
                self.send_response(canned.status)
                self.send_header("Content-Type", canned.content_type)
                if not canned.chunks:
                    self.send_header("Content-Length", str(len(canned.body)))
                    self.end_headers()
                    self.wfile.write(canned.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                time.sleep(canned.pause)
                size = -(-len(canned.body) // canned.chunks)
                for start in range(0, len(canned.body), size):
                    if start:
                        time.sleep(canned.gap)
                    part = canned.body[start : start + size]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, *args) -> None:
                pass

        return Handler

    def __enter__(self) -> "CannedServer":
        threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._http.shutdown()
        self._http.server_close()


class _Quiet(ThreadingHTTPServer):
    """A client that went away while its answer was written (one that gave up waiting) is
    no error of the server's."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
