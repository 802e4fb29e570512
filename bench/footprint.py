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

import copy
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from werkzeug.test import EnvironBuilder

from bench import cli, passthrough, processes
from bench.dialects import DIALECTS, TOKENS, server_spec

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
    files: int
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
    end as a server would (its request made before the walk begins)."""
    environ = EnvironBuilder(path=path, method="POST", json=body).get_environ()
    seen = []

    def hook(frame, event, arg) -> None:
        if event == "call":
            code = frame.f_code
            seen.append((code.co_filename, code.co_firstlineno, code.co_name))

    sys.setprofile(hook)
    try:
        _answered(app, environ)
    finally:
        sys.setprofile(None)
    return walked(seen)


def _answered(app: Callable, environ: dict) -> None:
    status = []
    pieces = app(environ, lambda line, headers, error=None: status.append(line))
    try:
        for _ in pieces:
            pass
    finally:
        getattr(pieces, "close", lambda: None)()
    if not status[0].startswith("200"):
        raise RuntimeError(f"{environ['PATH_INFO']} answered {status[0]}")


def _asked(spec: tuple, stream: bool, tokens: int) -> dict:
    """``spec``'s body asking for ``tokens`` tokens, greedy, whole or streamed."""
    body = {**copy.deepcopy(spec[1]), "temperature": 0}
    if "options" in body:
        body["options"]["num_predict"] = tokens
    else:
        body["max_output_tokens" if "max_output_tokens" in body else "max_tokens"] = tokens
    return {**body, "stream": stream}


def measure(proxy: Callable, floor: Callable) -> dict:
    """``{(API, way): (whole, streamed, calls a token)}`` for the proxy and the floor."""
    figures = {}
    for name, spec in DIALECTS.items():
        ways = (("proxy", proxy, spec), ("pass-through", floor, server_spec(name)))
        for way, app, (path, body) in ways:
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
                    traced(app, path, asked)
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
                f"| {name} | {way} | {whole.functions} ({whole.own}) | {whole.files} "
                f"| {whole.calls} | {streamed.functions} ({streamed.own}) | {slope:.1f} |"
            )
        (whole, streamed, slope), (floor_whole, floor_streamed, floor_slope) = proxy, floor
        rows.append(
            f"| {name} | proxy ÷ pass-through | {whole.functions / floor_whole.functions:.2f}× "
            f"| {whole.files / floor_whole.files:.2f}× "
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
