"""The tests' echo engine (:mod:`tests.e2e.servers.echo_upstream`: an OpenAI-compatible
server that chats, draws, hears and speaks), served from a thread of the test's own."""

from __future__ import annotations

import contextlib
import threading
from http.server import ThreadingHTTPServer
from typing import Iterator

from tests.e2e.servers.echo_upstream import handler


@contextlib.contextmanager
def echo_engine() -> Iterator[str]:
    """The engine's URL, without ``/v1``, while it serves."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler())
    thread = threading.Thread(target=server.serve_forever, name="echo-engine", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
