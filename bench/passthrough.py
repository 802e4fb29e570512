"""``python -m bench.passthrough --upstream URL --port N``: the least a Flask app under
waitress can do in front of a server, for the bench to measure as the floor of the proxy's
own shape: each request's body sent on as it came, on a kept connection, and the answer's
bytes passed back as they arrive, with nothing read or changed.

What the proxy adds beyond this floor is its own work; what this adds over the server
directly is the framework's and the extra hop's.
"""

from __future__ import annotations

import argparse
import http.client
import threading
from typing import Iterator
from urllib.parse import urlsplit

import waitress
from flask import Flask, Response, request

PIECE = 65536


def exchanged(
    upstream: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict
) -> http.client.HTTPResponse:
    upstream.request(method, path, body=body, headers=headers)
    return upstream.getresponse()


def app(upstream: str) -> Flask:
    """A Flask app passing every request to ``upstream``, one kept connection per thread."""
    target = urlsplit(upstream)
    kept = threading.local()
    forwarder = Flask(__name__)

    def connection() -> http.client.HTTPConnection:
        if getattr(kept, "connection", None) is None:
            kept.connection = http.client.HTTPConnection(target.hostname, target.port)
        return kept.connection

    def sent(method: str, path: str, body: bytes, headers: dict) -> http.client.HTTPResponse:
        """The upstream's answer; once more on a new connection when a kept one fails (the
        server closed it while idle), as any pooled client does."""
        reused = getattr(kept, "connection", None) is not None
        try:
            return exchanged(connection(), method, path, body, headers)
        except (http.client.HTTPException, ConnectionError):
            dropped()
            if not reused:
                raise
        try:
            return exchanged(connection(), method, path, body, headers)
        except Exception:
            dropped()
            raise

    def dropped() -> None:
        kept.connection.close()
        kept.connection = None

    def pieces(answer: http.client.HTTPResponse) -> Iterator[bytes]:
        """The answer's bytes; its connection is kept only once they were all read."""
        read = False
        try:
            while piece := answer.read1(PIECE):
                yield piece
            read = True
        finally:
            if not read or answer.will_close:
                dropped()

    @forwarder.route("/<path:path>", methods=["GET", "POST"])
    def forwarded(path: str) -> Response:
        answer = sent(
            request.method,
            "/" + path,
            request.get_data(),
            {"Content-Type": request.content_type or "application/json"},
        )
        kind = answer.getheader("Content-Type")
        if answer.getheader("Content-Length") is not None:  # a whole answer: one write
            body = answer.read()
            if answer.will_close:
                dropped()
            return Response(body, status=answer.status, content_type=kind)
        return Response(pieces(answer), status=answer.status, content_type=kind)

    return forwarder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    waitress.serve(
        app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        threads=args.threads,
        asyncore_use_poll=True,
        _quiet=True,
    )  # as the proxy's own waitress


if __name__ == "__main__":
    main()
