"""An OpenAI-compatible server that answers every chat with one failure status, as a cloud
API over its rate limit (429) or overloaded (503) does: OpenAI's error body, and
``Retry-After``. It lists its models (a rate limit or an overload leaves ``/v1/models``
answering) and counts the requests it refused, at ``GET /refused``. The standard library
alone, so that it starts at once (:class:`tests.e2e.refusing.RefusingServer` runs it).

``python tests/e2e/servers/refusing_upstream.py --port PORT --status 429``
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# what OpenAI's API answers over a rate limit, and overloaded
ERRORS = {
    429: {
        "message": "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    },
    503: {
        "message": "The engine is currently overloaded, please try again later",
        "type": "server_error",
        "param": None,
        "code": None,
    },
}


def handler(status: int) -> type:
    """The request handler of a server refusing every POST with ``status``."""
    refused = [0]
    counting = threading.Lock()

    class Refusing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with counting:
                refused[0] += 1
            self.reply(status, {"error": ERRORS[status]}, ("Retry-After", "1"))

        def do_GET(self) -> None:
            if self.path == "/refused":
                self.reply(200, {"refused": refused[0]})
            elif self.path == "/v1/models":
                self.reply(200, {"object": "list", "data": [{"id": "any", "object": "model"}]})
            else:
                self.reply(404, {"error": {"message": "not found", "type": "invalid_request"}})

        def reply(self, code: int, body: dict, *headers: tuple) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Refusing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--status", type=int, choices=sorted(ERRORS), required=True)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), handler(args.status)).serve_forever()


if __name__ == "__main__":
    main()
