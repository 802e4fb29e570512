"""``python -m bench.traces``: what tracing (``--otel on``) costs a request, and that off it
costs nothing.

The synthetic upstream (:mod:`bench.synthetic`, no model: the proxy's own cost shows) and
proxies under waitress in front of it: tracing off, off in another checkout (``--baseline``,
the last landed main, say), and on with a sampler keeping every trace and one in a hundred,
exporting over OTLP/HTTP to a receiver in this process that takes every batch and keeps
nothing. The same chat (64 tokens back) whole and streamed, the ways taking turns over three
rounds.

Per way: p50 of the answer and the proxy's CPU per request (its exporter's thread among it),
each beside tracing off. Writes ``bench/results/traces{,-quick}.md``.
"""

from __future__ import annotations

import http.server
import statistics
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Optional

from bench import cli, processes
from bench.capture import _timed
from bench.resources import ProcessTree
from tests.processes import free_port

TOKENS = 64
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Tell me a story."}],
        "max_tokens": TOKENS}  # fmt: skip
OFF = "off"
SAMPLED = {"on, every trace": "1.0", "on, one in a hundred": "0.01"}


@contextmanager
def receiver() -> Iterator[str]:
    """An OTLP/HTTP endpoint that takes every batch and keeps none: the exporter's work, not
    a collector's, is what is measured."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run(count: int, rounds: int, work: Path, baseline: Optional[Path] = None) -> dict:
    """p50 ms and CPU ms per request, by way and answer (whole, streamed)."""
    with ExitStack() as stack:
        upstream = stack.enter_context(processes.running(processes.synthetic(work)))
        endpoint = stack.enter_context(receiver())
        ways: dict = {OFF: ([], None, processes.ROOT)}
        if baseline is not None:
            ways[f"{OFF} at {cli.commit_of(baseline)}"] = ([], None, baseline)
        for way, ratio in SAMPLED.items():
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "bench",
                   "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                   "OTEL_TRACES_SAMPLER_ARG": ratio}  # fmt: skip
            ways[way] = (["--otel", "on"], env, processes.ROOT)
        proxies = {
            way: stack.enter_context(
                processes.running(
                    processes.proxy(
                        "waitress",
                        upstream.url,
                        work,
                        threads=8,
                        workers=1,
                        name="traces-" + way.replace(" ", "-").replace(",", ""),
                        args=args,
                        root=root,
                        env=env,
                    )  # fmt: skip
                )
            )
            for way, (args, env, root) in ways.items()
        }
        return _measured(proxies, count, rounds)


def _measured(proxies: dict, count: int, rounds: int) -> dict:
    times: dict = {}
    cpu: dict = {}
    trees = {way: ProcessTree(proxy.pid) for way, proxy in proxies.items()}
    for _ in range(rounds):
        for stream in (False, True):
            for way, proxy in proxies.items():
                spent = trees[way].cpu_seconds()
                url = proxy.url + "/v1/chat/completions"
                times.setdefault((way, stream), []).extend(
                    _timed(url, {**CHAT, "stream": stream}, {}, count // rounds)
                )
                cpu[(way, stream)] = cpu.get((way, stream), 0.0) + trees[way].cpu_seconds() - spent
    return {
        key: (statistics.median(found), cpu[key] * 1000 / len(found))
        for key, found in times.items()
    }


def table(found: dict, count: int, rounds: int, quick: bool) -> str:
    command = f"python -m bench.traces{' --quick' if quick else ''}"
    lines = [
        f"# What tracing costs{' (quick run)' if quick else ''}",
        "",
        f"The synthetic upstream, a proxy under waitress per way in front of it (`{command}`); "
        f"the same chat, {TOKENS} tokens back, {count} requests per way and answer over "
        f"{rounds} round{'s' if rounds > 1 else ''}. On, each proxy exports over OTLP/HTTP to "
        "a receiver that keeps nothing; its CPU counts its exporter's thread and the warm-up "
        "requests too.",
        "",
        "| way | whole p50 ms | added | CPU ms/answer | added | streamed p50 ms | added "
        "| CPU ms/answer | added |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for way in dict.fromkeys(way for way, _ in found):
        cells = [way]
        for stream in (False, True):
            p50, cpu = found[(way, stream)]
            base_p50, base_cpu = found[(OFF, stream)]
            added = way != OFF
            cells += [f"{p50:.3f}", f"{p50 - base_p50:+.3f}" if added else "",
                      f"{cpu:.3f}", f"{cpu - base_cpu:+.3f}" if added else ""]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = cli.with_baseline(cli.arguments("traces", "What tracing costs a request."))
    args = parser.parse_args()
    count, rounds = (10, 1) if args.quick else (600, 3)
    with tempfile.TemporaryDirectory(prefix="bench-traces-") as work:
        found = run(count, rounds, Path(work), args.baseline)
    cli.publish(args, "traces", table(found, count, rounds, args.quick))


if __name__ == "__main__":
    main()
