"""A replica of a server.cpp server that fails every second generation: it passes each
request on to the real server behind it and its answer back, but answers every second POST
that generates (``/completion``, ``/v1/chat/completions``…) with server.cpp's own 500, as a
replica whose GPU faults now and then does. It counts the generations it passed and failed
at ``GET /flaky``. The standard library alone (:class:`tests.e2e.flaky.FlakyReplica` runs
it).

``python tests/e2e/servers/flaky_replica.py --port PORT --upstream http://127.0.0.1:8080``
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

GENERATING = {"/completion", "/completions", "/v1/completions", "/chat/completions",
              "/v1/chat/completions"}  # fmt: skip
FAILURE = {"error": {"code": 500, "message": "CUDA error: an illegal memory access",
                     "type": "server_error"}}  # fmt: skip
SKIPPED = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def handler(upstream: str) -> type:
    """The request handler of a replica of ``upstream`` failing every second generation."""
    target = urlsplit(upstream)
    counts = {"passed": 0, "failed": 0}
    counting = threading.Lock()

    class Flaky(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/flaky":
                return self.reply(200, json.dumps(counts).encode(), [])
            self.pass_on(b"")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if urlsplit(self.path).path in GENERATING:
                with counting:
                    fails = (counts["passed"] + counts["failed"]) % 2 == 1
                    counts["failed" if fails else "passed"] += 1
                if fails:
                    return self.reply(500, json.dumps(FAILURE).encode(), [])
            self.pass_on(body)

        def pass_on(self, body: bytes) -> None:
            """The request sent to the server behind, its whole answer read and sent back."""
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in SKIPPED}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in SKIPPED]
                self.reply(answer.status, data, kept)
            finally:
                connection.close()

        def reply(self, code: int, data: bytes, headers: list) -> None:
            self.send_response(code)
            if not any(name.lower() == "content-type" for name, _ in headers):
                self.send_header("Content-Type", "application/json")
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Flaky


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), handler(args.upstream)).serve_forever()


if __name__ == "__main__":
    main()
