"""``python -m bench.passthrough --kind KIND --upstream URL --port N``: the floors under the
proxy's own cost, each the least one more layer of its shape can do in front of a server,
for the bench to tell apart what the proxy adds from what its shape costs:

- ``relay``: a process that copies bytes between two sockets: what any extra hop through
  a Python process costs;
- ``wsgi``: a bare WSGI application under waitress that passes each request on and the
  answer's bytes back as they arrive: what the WSGI server adds;
- ``flask``: the same as a Flask app: what the framework adds;
- ``json``: the same, each JSON body and streamed event read and written again (orjson, as
  the proxy does): the least a gateway that reads the API can do.

Each under waitress (the proxy's default), gunicorn's threads (``--server gunicorn``) or
granian (``--server granian``). Each request's body goes on as it came, on a kept
connection, with nothing read or changed.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import selectors
import socket
import threading
from typing import Callable, Iterator
from urllib.parse import urlsplit

import orjson
import waitress
from flask import Flask, Response, request

PIECE = 65536
KINDS = ("relay", "wsgi", "flask", "json")


class Forwarder:
    """Requests sent on to one server, one kept connection per thread."""

    def __init__(self, upstream: str) -> None:
        self.target = urlsplit(upstream)
        self.kept = threading.local()

    def answer(self, method: str, path: str, body: bytes, kind: str) -> tuple:
        """``(status, content type, body)``: the body whole when the server gave its length
        (one write), else an iterator of its pieces as they arrive."""
        answer = self._sent(method, path, body, {"Content-Type": kind or "application/json"})
        content_type = answer.getheader("Content-Type") or "application/octet-stream"
        if answer.getheader("Content-Length") is None:
            return answer.status, content_type, self._pieces(answer)
        whole = answer.read()
        if answer.will_close:
            self._dropped()
        return answer.status, content_type, whole

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.kept, "connection", None) is None:
            self.kept.connection = http.client.HTTPConnection(
                self.target.hostname, self.target.port
            )
        return self.kept.connection

    def _sent(self, method: str, path: str, body: bytes, headers: dict) -> http.client.HTTPResponse:
        """The upstream's answer; once more on a new connection when a kept one fails (the
        server closed it while idle), as any pooled client does."""
        reused = getattr(self.kept, "connection", None) is not None
        try:
            return _exchanged(self._connection(), method, path, body, headers)
        except (http.client.HTTPException, ConnectionError):
            self._dropped()
            if not reused:
                raise
        try:
            return _exchanged(self._connection(), method, path, body, headers)
        except Exception:
            self._dropped()
            raise

    def _dropped(self) -> None:
        self.kept.connection.close()
        self.kept.connection = None

    def _pieces(self, answer: http.client.HTTPResponse) -> Iterator[bytes]:
        """The answer's bytes; its connection is kept only once they were all read."""
        read = False
        try:
            while piece := answer.read1(PIECE):
                yield piece
            read = True
        finally:
            if not read or answer.will_close:
                self._dropped()


def _exchanged(
    upstream: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict
) -> http.client.HTTPResponse:
    upstream.request(method, path, body=body, headers=headers)
    return upstream.getresponse()


def wsgi_app(upstream: str) -> Callable:
    """A bare WSGI application passing every request to ``upstream``."""
    forwarder = Forwarder(upstream)

    def forwarded(environ: dict, start_response: Callable) -> object:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        status, kind, body = forwarder.answer(
            environ["REQUEST_METHOD"],
            environ["PATH_INFO"],
            environ["wsgi.input"].read(length),
            environ.get("CONTENT_TYPE", ""),
        )
        reason = http.client.responses.get(status, "")
        start_response(f"{status} {reason}", [("Content-Type", kind)])
        return [body] if type(body) is bytes else body

    return forwarded


def app(upstream: str, reading: bool = False) -> Flask:
    """A Flask app passing every request to ``upstream``; ``reading``: each JSON body and
    streamed event read and written again on the way."""
    forwarder = Forwarder(upstream)
    flask_app = Flask(__name__)

    @flask_app.route("/<path:path>", methods=["GET", "POST"])
    def forwarded(path: str) -> Response:
        asked = request.get_data()
        if reading and asked:
            asked = orjson.dumps(orjson.loads(asked))
        status, kind, body = forwarder.answer(
            request.method, "/" + path, asked, request.content_type
        )
        if reading:
            body = _reread(body) if type(body) is not bytes else _rewritten(body, kind)
        return Response(body, status=status, content_type=kind)

    return flask_app


def _rewritten(body: bytes, kind: str) -> bytes:
    return orjson.dumps(orjson.loads(body)) if "json" in kind else body


def _reread(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """A stream's events with each ``data:`` line's JSON read and written again, the lines
    of each piece that ends any in one write."""
    pending = b""
    for piece in pieces:
        *lines, pending = (pending + piece).split(b"\n")
        if lines:
            yield b"".join(_event_line(line) + b"\n" for line in lines)
    if pending:
        yield _event_line(pending)


def _event_line(line: bytes) -> bytes:
    if line.startswith(b"data: {"):
        return b"data: " + orjson.dumps(orjson.loads(line[6:]))
    return line


def relay(upstream: str, port: int) -> None:
    """Copy bytes both ways between each client and a connection of its own to ``upstream``,
    in one thread (whose CPU time the bench can read: a thread that ended takes its own along)."""
    target = urlsplit(upstream)
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in events.select():
            if key.fileobj is listener:
                _paired(listener.accept()[0], (target.hostname, target.port), events)
                continue
            source, sink = key.fileobj, key.data
            if source.fileno() < 0:  # its pair was closed earlier in this round
                continue
            try:
                piece = source.recv(PIECE)
                if piece:
                    sink.sendall(piece)
                    continue
            except OSError:
                pass
            for each in (source, sink):  # one side closed: so does the pair
                events.unregister(each)
                each.close()


def _paired(client: socket.socket, address: tuple, events: selectors.BaseSelector) -> None:
    server = socket.create_connection(address)
    for each, other in ((client, server), (server, client)):
        each.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        events.register(each, selectors.EVENT_READ, other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, default="flask")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--server", choices=("waitress", "gunicorn", "granian"), default="waitress")
    args = parser.parse_args()
    if args.kind == "relay":
        relay(args.upstream, args.port)
        return
    if args.kind == "wsgi":
        made = functools.partial(wsgi_app, args.upstream)
    else:
        made = functools.partial(app, args.upstream, reading=args.kind == "json")
    if args.server == "granian":
        granian(made, args.port, args.threads)
        return
    if args.server == "gunicorn":
        gunicorn(made(), args.port, args.threads)
        return
    waitress.serve(
        made(),
        host="127.0.0.1",
        port=args.port,
        threads=args.threads,
        asyncore_use_poll=True,
        _quiet=True,
    )  # as the proxy's own waitress


def gunicorn(made, port: int, threads: int) -> None:
    """Serve ``made`` under gunicorn's threads, one worker, as the proxy's own gunicorn does
    (without its hooks, its metrics' files or its supervisor: what gunicorn itself costs)."""
    from gunicorn.app.base import BaseApplication

    class Floor(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": [f"127.0.0.1:{port}"],
                "workers": 1,
                "worker_class": "gthread",
                "threads": threads,
                "keepalive": 5,
                "loglevel": "warning",
            }
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self):
            return made

    Floor().run()


def granian(made: Callable, port: int, threads: int) -> None:
    """Serve the app ``made`` gives under granian, as the proxy's own granian does."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server import Server

    Server(
        "bench.passthrough:app",
        port=port,
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=threads,
        http=HTTPModes.http1,
        log_level="warning",
    ).serve(target_loader=made, wrap_loader=False)


if __name__ == "__main__":
    main()
