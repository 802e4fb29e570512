"""``python -m bench.footprint``: how much Python one answer runs, through the proxy and
through the Flask pass-through (:mod:`bench.passthrough`), for each client API: the distinct
functions and files a whole answer walks and the calls it makes, the same for a streamed
one, and the calls each streamed token makes.

Counts, not times (a profile hook over one answer, in process, after a warm-up, the same
real llama-server and tiny model answering both): two commits or two ways compare without
the noise of a timed run. The calls a token move a little with how many tokens each of the
server's reads brings (the median of five pairs of streams is taken). They count the work,
not what it costs, which :mod:`bench.dialects` times.

Writes ``bench/results/footprint{,-quick}.md``.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import orjson

from bench import cli, passthrough, processes
from bench.dialects import DIALECTS, SERVER_ROUTES, TOKENS

FEWER = 16  # the shorter stream's tokens: the calls a token are the slope between the two
PAIRS = 5  # pairs of streams the slope is the median of (how many tokens each of the
# server's reads brings moves with timing, and the calls with it)
OWN = str(Path(__file__).resolve().parent.parent / "proxy") + os.sep
WARMUP = 3


@dataclass(frozen=True)
class Walk:
    """What one answer ran: its distinct Python functions (code objects), those of the
    proxy's own package, the files they are in, and every call (a generator's resumptions
    each count)."""

    functions: int
    own: int
    modules: int
    calls: int


def walked(calls: Iterable[tuple]) -> Walk:
    """The walk of ``calls``, each ``(file, first line, name)`` of a function called."""
    every = list(calls)
    distinct = set(every)
    own = sum(1 for file, _, _ in distinct if file.startswith(OWN))
    return Walk(len(distinct), own, len({file for file, _, _ in distinct}), len(every))


def per_token(longer: Walk, shorter: Walk, tokens: int) -> float:
    """The calls each of ``tokens`` more tokens made: the slope between two streams."""
    return (longer.calls - shorter.calls) / tokens


def traced(app: Callable, path: str, body: dict) -> Walk:
    """The walk of one answer of ``app`` (a WSGI app) to ``body`` at ``path``, read to its
    end as a server would."""
    seen = []

    def hook(frame, event, arg) -> None:
        if event == "call":
            code = frame.f_code
            seen.append((code.co_filename, code.co_firstlineno, code.co_name))

    sys.setprofile(hook)
    try:
        _answered(app, path, body)
    finally:
        sys.setprofile(None)
    return walked(seen)


def _answered(app: Callable, path: str, body: dict) -> None:
    data = orjson.dumps(body)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8080",
        "wsgi.input": io.BytesIO(data),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    status = []
    pieces = app(environ, lambda line, headers, error=None: status.append(line))
    try:
        for _ in pieces:
            pass
    finally:
        getattr(pieces, "close", lambda: None)()
    if not status[0].startswith("200"):
        raise RuntimeError(f"{path} answered {status[0]}")


def _asked(spec: tuple, stream: bool, tokens: int) -> dict:
    """``spec``'s body asking for ``tokens`` tokens, whole or streamed."""
    body = orjson.loads(orjson.dumps(spec[1]))
    if "options" in body:
        body["options"]["num_predict"] = tokens
    else:
        body["max_output_tokens" if "max_output_tokens" in body else "max_tokens"] = tokens
    return {**body, "stream": stream}


def measure(proxy: Callable, floor: Callable) -> dict:
    """``{(API, way): (whole, streamed, calls a token)}`` for the proxy and the floor."""
    figures = {}
    for name, spec in DIALECTS.items():
        # the floor asks the server's own route for each API (its chat route for Ollama's)
        own_words = DIALECTS["chat completions" if name == "Ollama chat" else name][1]
        floor_spec = (SERVER_ROUTES[name], own_words)
        for way, app, (path, body) in (("proxy", proxy, spec), ("pass-through", floor, floor_spec)):
            asks = {
                kind: _asked((path, body), stream, tokens)
                for kind, stream, tokens in (
                    ("whole", False, TOKENS),
                    ("streamed", True, TOKENS),
                    ("fewer", True, FEWER),
                )
            }
            for asked in asks.values():
                for _ in range(WARMUP):
                    _answered(app, path, asked)
            whole = traced(app, path, asks["whole"])
            slopes = []
            for _ in range(PAIRS):
                streamed = traced(app, path, asks["streamed"])
                fewer = traced(app, path, asks["fewer"])
                slopes.append(per_token(streamed, fewer, TOKENS - FEWER))
            figures[name, way] = (whole, streamed, statistics.median(slopes))
    return figures


def table(figures: dict) -> str:
    """The report: each API's walks through the proxy beside the pass-through's, and the
    proxy's as the pass-through's multiple."""
    rows = [
        "| API | way | whole: functions (own) | files | calls | streamed: functions (own) "
        "| calls a token |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in DIALECTS:
        proxy = figures[name, "proxy"]
        floor = figures[name, "pass-through"]
        for way, (whole, streamed, slope) in (("proxy", proxy), ("pass-through", floor)):
            rows.append(
                f"| {name} | {way} | {whole.functions} ({whole.own}) | {whole.modules} "
                f"| {whole.calls} | {streamed.functions} ({streamed.own}) | {slope:.1f} |"
            )
        (whole, streamed, slope), (floor_whole, floor_streamed, floor_slope) = proxy, floor
        rows.append(
            f"| {name} | proxy ÷ pass-through | {whole.functions / floor_whole.functions:.2f}× "
            f"| {whole.modules / floor_whole.modules:.2f}× "
            f"| {whole.calls / floor_whole.calls:.2f}× "
            f"| {streamed.functions / floor_streamed.functions:.2f}× "
            f"| {slope / floor_slope:.2f}× |"
        )
    return "\n".join(rows)


def main() -> None:
    args = cli.arguments("footprint", __doc__.splitlines()[0]).parse_args()
    work = Path(tempfile.mkdtemp(prefix="footprint-"))
    os.environ["HOME"] = str(work)  # the proxy's stores in a folder of the run's own
    from proxy.app import create_app
    from proxy.config.runtime import Runtime
    from proxy.config.settings import Settings

    with processes.llama_server(work, parallel=1) as server:
        settings = Settings.from_args(["--llama-api", server.url, "--log-level", "warning"])
        proxy = create_app(settings, Runtime.from_environment())
        figures = measure(proxy, passthrough.app(server.url))
    report = (
        "# What one answer walks\n\n"
        f"`python -m bench.footprint`: one answer of {TOKENS} tokens from llama-server "
        "(the tests' tiny model), in process, after a warm-up: the distinct Python functions "
        "it ran (the proxy's own in brackets), the files they are in and its Python calls "
        "(a generator's resumptions each count), whole and streamed, and the Python calls "
        f"each streamed token made (the median slope between {FEWER} and "
        f"{TOKENS} tokens). The floor is `bench/passthrough.py`'s Flask app, asking the "
        "server's own route for each API (chat completions for Ollama's).\n\n"
        + table(figures)
        + "\n"
    )
    cli.publish(args, "footprint", report)


if __name__ == "__main__":
    main()
