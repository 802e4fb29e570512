"""A hub on loopback that speaks the part of the Hugging Face Hub's protocol the real
``huggingface_hub`` client uses to fetch a model: a repository's files with their sizes and
SHA-256 (``GET /api/models/<org>/<repo>?blobs=true``) and the files themselves
(``HEAD``/``GET /<org>/<repo>/resolve/<revision>/<path>``, with ``Range``, ``ETag`` and the
``X-Repo-Commit``/``X-Linked-*`` headers). The machine has no internet: tests point
``HF_ENDPOINT`` here. It can drop a connection in the middle of a file, lie about a file's
SHA-256, ask for a token, and tell what it was asked.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import unquote, urlsplit

from tests.processes import free_port

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_INFO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?/?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class Hub:
    """The repositories (``{repo: {path: bytes}}``) and what the next requests meet."""

    repos: dict = field(default_factory=dict)
    token: str = ""  # when set, every request needs it as a bearer token
    drop_after: dict = field(default_factory=dict)  # path -> bytes sent before one drop
    wrong_sha256: set = field(default_factory=set)  # paths whose SHA-256 the tree lies about
    requests: list = field(default_factory=list)  # (method, path, Range header or "")
    _server: Optional[ThreadingHTTPServer] = None
    _connections: set = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "Hub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                hub._connections.add(self.connection)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut the connections kept open: the hub is gone."""
        self._server.shutdown()
        self._server.server_close()
        for connection in list(self._connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._connections.clear()

    def downloads(self, path: str) -> list:
        """The ``Range`` of each GET of the file ``path`` ("" for the whole file)."""
        return [r for method, asked, r in self.requests if method == "GET" and asked == path]

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.requests.append(
            (handler.command, path.rpartition("/")[2], handler.headers.get("Range", ""))
        )
        if self.token and handler.headers.get("Authorization") != f"Bearer {self.token}":
            return _send(handler, 401, b'{"error":"Invalid credentials"}', body)
        info, resolve = _INFO.match(path), _RESOLVE.match(path)
        if info and info.group(1) in self.repos:
            return _send(handler, 200, json.dumps(self._info(info.group(1))).encode(), body)
        if resolve and path.rpartition("/")[2] and resolve.group(1) in self.repos:
            content = self.repos[resolve.group(1)].get(resolve.group(3))
            if content is not None:
                return self._file(handler, resolve.group(3), content, body)
        _send(
            handler,
            404,
            b'{"error":"Repository not found"}',
            body,
            {"X-Error-Code": "RepoNotFound"},
        )

    def _info(self, repo: str) -> dict:
        """The repository as ``GET /api/models/<repo>?blobs=true`` describes it."""
        siblings = [
            {
                "rfilename": path,
                "size": len(content),
                "blobId": hashlib.sha1(content).hexdigest(),
                "lfs": {
                    "sha256": self._sha256(path, content),
                    "size": len(content),
                    "pointerSize": 134,
                },
            }
            for path, content in sorted(self.repos[repo].items())
        ]
        return {"id": repo, "modelId": repo, "sha": COMMIT, "private": False, "siblings": siblings}

    def _sha256(self, path: str, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()
        return digest[::-1] if path in self.wrong_sha256 else digest

    def _file(self, handler, path: str, content: bytes, body: bool) -> None:
        sha256 = hashlib.sha256(content).hexdigest()
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{sha256}"',
            "X-Linked-Etag": f'"{sha256}"',
            "X-Linked-Size": str(len(content)),
            "Accept-Ranges": "bytes",
        }
        start = 0
        asked = _RANGE.match(handler.headers.get("Range", "")) if body else None
        if asked:
            start = int(asked.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
        part = content[start:]
        drop = self.drop_after.pop(path, None) if body else None
        if drop is None:
            return _send(handler, 206 if asked else 200, part, body, headers)
        handler.send_response(206 if asked else 200)
        for name, value in {**headers, "Content-Length": str(len(part))}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(part[:drop])
        handler.wfile.flush()
        handler.close_connection = True  # the rest never comes: the client must ask again


def _send(handler, status: int, content: bytes, body: bool, headers: Optional[dict] = None) -> None:
    handler.send_response(status)
    for name, value in {"Content-Length": str(len(content)), **(headers or {})}.items():
        handler.send_header(name, value)
    handler.end_headers()
    if body:
        handler.wfile.write(content)
