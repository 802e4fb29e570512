"""A stand-in SearXNG on loopback, for the tests of the web tools and of the clients that
use them: a real HTTP server (a thread of the test's process) that answers SearXNG's JSON
API, ``GET /search?q=…&format=json``, with the hits of a fixed table chosen by the query's
words, and serves the pages ``web_fetch`` reads under ``/pages/``::

    with SearXNG() as searxng:
        spec = WebSearchSpec(searxng.url)       # searxng = "<url>" in a models file
        ...
        assert searxng.queries == ["llama facts"]

A query word of :data:`BEHAVIOURS` makes the answer misbehave (slow, broken, garbage, too
large); a hit's URL may be one of the stand-in's own pages (``{site}`` in the table).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping, Optional
from urllib.parse import parse_qs, urlsplit

HUGE = 3 * 1024 * 1024  # bytes of /pages/huge.html
LONGEST_WAIT = 60.0  # seconds a slow answer waits, unless the stand-in closes first

# a word of a query -> its hits, in SearXNG's shape; "{site}" is the stand-in's own URL
RESULTS: dict = {
    "llama": (
        {
            "url": "{site}/pages/llamas.html",
            "title": "Llamas of the Andes",
            "content": "Llamas are domesticated South American camelids, kept for wool and as "
            "pack animals.",
        },
        {
            "url": "https://en.wikipedia.org/wiki/Llama",
            "title": "Llama - Wikipedia",
            "content": "The llama (Lama glama) is a domesticated South American camelid.",
        },
        {
            "url": "https://www.nationalgeographic.com/animals/mammals/facts/llama",
            "title": "Llama facts",
            "content": "Llamas can weigh up to 400 pounds and hum to one another.",
        },
    ),
    "proxy": (
        {
            "url": "{site}/pages/notes.txt",
            "title": "oai-proxy release notes",
            "content": "The gateway now runs web search and fetch for a model.",
        },
    ),
    "many": tuple(
        {
            "url": f"https://many.example/{n}",
            "title": f"Result number {n}",
            "content": f"The snippet of result {n}.",
        }
        for n in range(1, 31)
    ),
}
BEHAVIOURS = {
    "slow": "answers only when the stand-in closes (or after a minute)",
    "broken": "answers 500",
    "garbage": "answers 200 with an HTML page, not JSON",
    "flood": "answers 5 MiB of JSON",
}

ARTICLE = b"""<!DOCTYPE html>
<html><head><title>Llamas of the Andes</title>
<style>body { font-family: serif }</style>
<script>window.track = "should never be read";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/animals">Animals</a></nav>
<main>
<h1>Llamas of the Andes</h1>
<p>Llamas are domesticated   South American camelids,
kept for their <b>wool</b> and as pack animals.</p>
<h2>Facts</h2>
<ul><li>They hum.</li><li>They weigh up to 200 kg.</li></ul>
</main>
</body></html>
"""
PAGES: dict = {  # path -> (status, content type, body, headers)
    "/pages/llamas.html": (200, "text/html; charset=utf-8", ARTICLE, {}),
    "/pages/notes.txt": (200, "text/plain; charset=utf-8", b"Release notes: web tools.\n", {}),
    "/pages/facts.json": (200, "application/json", b'{"llamas": 3, "hum": true}', {}),
    "/pages/latin1.html": (
        200,
        "text/html; charset=iso-8859-1",
        "<p>Caf\u00e9 cr\u00e8me</p>".encode("latin-1"),
        {},
    ),
    "/pages/picture.png": (200, "image/png", b"\x89PNG\r\n\x1a\n" + bytes(64), {}),
    "/pages/moved": (302, "text/html", b"", {"Location": "/pages/llamas.html"}),
    "/pages/loop": (302, "text/html", b"", {"Location": "/pages/loop"}),
    "/pages/broken": (500, "text/plain", b"Internal Server Error", {}),
}
STREAMED = {  # paths answered by a method of the handler
    "/pages/huge.html": "huge",
    "/pages/drip.html": "drip",
}


class SearXNG:
    """The stand-in, on ``host`` and a free port (``url``). ``queries``: the ``q`` of each
    search asked, in order; ``paths``: the path of every request, in order."""

    def __init__(
        self,
        results: Mapping[str, tuple] = RESULTS,
        pages: Mapping[str, tuple] = PAGES,
        host: str = "127.0.0.1",
    ) -> None:
        self.results, self.pages = results, pages
        self.queries: list = []
        self.paths: list = []
        self.closing = threading.Event()
        self._server = ThreadingHTTPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a slow answer's thread ends with the stand-in
        self._server.stand_in = self
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread: Optional[threading.Thread] = None

    def page(self, name: str) -> str:
        """The URL of the page ``name`` (``llamas.html``)."""
        return f"{self.url}/pages/{name}"

    def start(self) -> "SearXNG":
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="searxng-stand-in", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> "SearXNG":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def hits(self, query: str) -> list:
        """The table's hits for ``query``'s words, in the table's order."""
        words = set(re.findall(r"\w+", query.lower()))
        return [
            {
                **hit,
                "url": hit["url"].replace("{site}", self.url),
                "engine": "stand-in",
                "engines": ["stand-in"],
                "category": "general",
                "score": 1.0,
            }
            for word, found in self.results.items()
            if word in words
            for hit in found
        ]


class _Handler(BaseHTTPRequestHandler):
    server_version = "searxng-stand-in"

    @property
    def stand_in(self) -> SearXNG:
        return self.server.stand_in

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.stand_in.paths.append(url.path)
        try:
            if url.path == "/search":
                self._search(parse_qs(url.query))
            elif url.path in STREAMED:
                getattr(self, STREAMED[url.path])()
            elif url.path in self.stand_in.pages:
                self._send(*self.stand_in.pages[url.path])
            else:
                self._send(404, "text/plain", b"Not Found", {})
        except OSError:  # the client hung up
            pass

    def _search(self, query: dict) -> None:
        q = query.get("q", [""])[0]
        if query.get("format", ["html"])[0] != "json":  # as SearXNG answers a format it lacks
            self._send(403, "text/html", b"<h1>403 Forbidden</h1>", {})
            return
        self.stand_in.queries.append(q)
        words = set(re.findall(r"\w+", q.lower()))
        if "slow" in words:
            self.stand_in.closing.wait(LONGEST_WAIT)
        if "broken" in words:
            self._send(500, "text/html", b"<h1>Internal Server Error</h1>", {})
            return
        if "garbage" in words:
            self._send(200, "text/html", b"<html><body>Too many requests</body></html>", {})
            return
        hits = self.stand_in.hits(q)
        if "flood" in words:
            hits.append(
                {"url": "https://flood.example/", "title": "flood", "content": "x" * (5 << 20)}
            )
        answer = {
            "query": q,
            "number_of_results": len(hits),
            "results": hits,
            "answers": [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": [],
            "unresponsive_engines": [],
        }
        self._send(200, "application/json", json.dumps(answer).encode(), {})

    def huge(self) -> None:
        """An HTML page of :data:`HUGE` bytes, streamed with no length."""
        self._head(200, "text/html; charset=utf-8", {})
        paragraph = b"<p>" + b"All work and no play makes a dull llama. " * 20 + b"</p>\n"
        self.wfile.write(b"<html><head><title>A huge page</title></head><body>\n")
        for _ in range(HUGE // len(paragraph)):
            self.wfile.write(paragraph)
        self.wfile.write(b"</body></html>\n")

    def drip(self) -> None:
        """A page that never ends: a byte every 50 ms, never a pause to time out on."""
        self._head(200, "text/html; charset=utf-8", {})
        self.wfile.write(b"<html><body><p>")
        while not self.stand_in.closing.wait(0.05):
            self.wfile.write(b"z")
            self.wfile.flush()

    def _send(self, status: int, kind: str, body: bytes, headers: dict) -> None:
        self._head(status, kind, {**headers, "Content-Length": str(len(body))})
        self.wfile.write(body)

    def _head(self, status: int, kind: str, headers: dict) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass
