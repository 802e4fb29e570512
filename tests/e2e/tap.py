"""A tap between a client and the proxy: it passes every request on as it came, streams the
answer back as it goes, and keeps what each request was, so that a test can say what a real
client sent (its model listing, its tools, whether it streamed), not only that it worked."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlsplit

from tests.processes import free_port

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "content-length",
}


@dataclass(frozen=True)
class Tapped:
    """One request as the client sent it, and the status and bytes the proxy answered."""

    method: str
    path: str
    headers: dict
    body: object  # the JSON body, or its bytes when it is not JSON (None: no body)
    status: int
    answer: bytearray = field(default_factory=bytearray, compare=False)  # grows as it comes

    @property
    def streamed(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def tools(self) -> list:
        return self.body.get("tools") or [] if isinstance(self.body, dict) else []


class Tap:
    """``with Tap(proxy_url) as tap``: give clients ``tap.url``; read ``tap.requests``."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self.requests: list = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True

    def paths(self, method: Optional[str] = None) -> list:
        """The paths asked, in order (of ``method`` only, when given)."""
        return [
            tapped.path.split("?")[0]
            for tapped in self.requests
            if method is None or tapped.method == method
        ]

    def to(self, path: str) -> list:
        """The requests to ``path`` (with or without a query)."""
        return [tapped for tapped in self.requests if tapped.path.split("?")[0] == path]

    def __enter__(self) -> "Tap":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, tapped: Tapped) -> None:
        with self._lock:
            self.requests.append(tapped)

    def _handler(self):
        tap = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._pass_on()

            do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET

            def _pass_on(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else None
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in HOP_BY_HOP
                }
                upstream = http.client.HTTPConnection(
                    tap.target.hostname, tap.target.port, timeout=600
                )
                try:
                    upstream.request(
                        self.command,
                        self.path,
                        body=raw,
                        headers={**headers, "Host": tap.target.netloc},
                    )
                    answer = upstream.getresponse()
                    tapped = Tapped(self.command, self.path, headers, _body(raw), answer.status)
                    tap._record(tapped)
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in HOP_BY_HOP:
                            self.send_header(name, value)
                    if self.command == "HEAD" or answer.status in (204, 304):
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    while piece := answer.read1(65536):  # as it comes: a stream stays one
                        tapped.answer.extend(piece)
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                finally:
                    upstream.close()

            def log_message(self, *args) -> None:
                pass

        return Handler


def _body(raw: Optional[bytes]) -> object:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw
