"""``python -m bench.fim``: what an editor's completion costs through the proxy, and how fast
the slot of one it gives up on comes free.

One llama-server (four slots) with a tiny coder model (Qwen2.5-Coder's FIM tokens,
:mod:`tests.e2e.codermodels`), and the proxy in front of it under waitress.

1. Latency: the same gap (16 tokens back, streamed) asked of the server's own ``/infill`` and,
   through the proxy, of ``/infill``, OpenAI's ``/v1/completions`` with a ``suffix`` and
   Mistral's ``/v1/fim/completions``; beside them, a chat asked of the server's own chat route
   and through the proxy. The ways take turns over three rounds; p50 of the first byte and of
   the whole answer, and what the proxy adds to each. A gap's added first byte is to be
   within a chat's.
2. Cancelling: a gap is asked and dropped while the model writes (a long one), whole on
   ``/infill`` as llama.vim asks and streamed on Mistral's route as Continue asks; then twenty
   at once, ten of each, on the four slots. The time from the drop until the server's
   ``/slots`` shows none busy, looked at every 2 ms (the target: 0.25 s).

Writes ``bench/results/fim{,-quick}.md``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from bench import cli, processes
from bench.resources import ProcessTree

SLOTS = 4
PREFIX, SUFFIX = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"
SHORT, LONG = 16, 2000
INFILL = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": SHORT, "stream": True}
COMPLETION = {"model": "coder", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": SHORT,
              "stream": True}  # fmt: skip
CHAT = {"model": "coder", "messages": [{"role": "user", "content": "Add a and b."}],
        "max_tokens": SHORT, "stream": True}  # fmt: skip


def run(count: int, rounds: int, work: Path) -> tuple:
    """``(p50s of each way, seconds until the slots came free per case)``."""
    from tests.e2e.codermodels import CODERS
    from tests.e2e.llama_server import LlamaServer

    model = CODERS[0].write(work)
    with ExitStack() as stack:
        server = stack.enter_context(
            LlamaServer(model, work / "server.log", parallel=SLOTS, ctx_size=SLOTS * 2048)
        )
        proxy = stack.enter_context(
            processes.running(
                processes.proxy("waitress", server.url, work, threads=32, workers=1, name="fim")
            )
        )
        ways = {
            ("gap", "server /infill"): (server.url + "/infill", INFILL),
            ("gap", "proxy /infill"): (proxy.url + "/infill", INFILL),
            ("gap", "proxy /v1/completions"): (proxy.url + "/v1/completions", COMPLETION),
            ("gap", "proxy /v1/fim/completions"): (proxy.url + "/v1/fim/completions", COMPLETION),
            ("chat", "server /v1/chat/completions"): (server.url + "/v1/chat/completions", CHAT),
            ("chat", "proxy /v1/chat/completions"): (proxy.url + "/v1/chat/completions", CHAT),
        }
        latencies = _latencies(ways, count, rounds, ProcessTree(proxy.pid))
        freed = _cancelling(server.url, proxy.url, rounds)
    return latencies, freed


def _latencies(ways: dict, count: int, rounds: int, proxy: ProcessTree) -> dict:
    """Per way: p50 ms to the first byte and to the end, and the proxy's CPU ms per request."""
    for url, body in ways.values():  # warm up each way
        for _ in range(5):
            _timed(url, body)
    found: dict = {way: [] for way in ways}
    cpu: dict = {way: 0.0 for way in ways}
    for _ in range(rounds):
        for way, (url, body) in ways.items():
            spent = proxy.cpu_seconds()
            found[way] += [_timed(url, body) for _ in range(count // rounds)]
            cpu[way] += proxy.cpu_seconds() - spent
    return {
        way: (
            statistics.median(first for first, _ in times),
            statistics.median(whole for _, whole in times),
            cpu[way] * 1000 / len(times),
        )
        for way, times in found.items()
    }


def _timed(url: str, body: dict) -> tuple:
    """ms to the first byte of the answer's body and to its end, on a connection of its own
    (llama-server closes one after a stream)."""
    started = time.perf_counter()
    with requests.post(url, json=body, stream=True, timeout=60) as reply:
        reply.raise_for_status()
        pieces = reply.iter_content(chunk_size=None)
        next(pieces)
        first = time.perf_counter()
        for _ in pieces:
            pass
    ended = time.perf_counter()
    return (first - started) * 1000, (ended - started) * 1000


def _cancelling(server: str, proxy: str, rounds: int) -> dict:
    from tests.e2e.abandon import busy_slots, dropped, sent, until

    whole = (proxy, "/infill", {**INFILL, "n_predict": LONG, "stream": False})
    streamed = (proxy, "/v1/fim/completions", {**COMPLETION, "max_tokens": LONG})
    cases = {
        "one gap, whole (/infill)": [whole],
        "one gap, streamed (/v1/fim/completions)": [streamed],
        "twenty gaps, ten of each, on four slots": [whole] * 10 + [streamed] * 10,
    }
    freed: dict = {case: [] for case in cases}
    for _ in range(rounds * 3):
        for case, asked in cases.items():
            connections = [sent(*request) for request in asked]
            serving = min(len(asked), SLOTS)
            until(lambda: busy_slots(server) == serving, timeout=60)  # noqa: B023 (called here)
            time.sleep(0.3)  # the model writes a while
            for connection in connections:
                dropped(connection)
            freed[case].append(until(lambda: busy_slots(server) == 0, timeout=60))
    return freed


def table(latencies: dict, freed: dict, count: int, rounds: int, quick: bool) -> str:
    command = f"python -m bench.fim{' --quick' if quick else ''}"
    lines = [
        f"# An editor's completion through the proxy{' (quick run)' if quick else ''}",
        "",
        f"One llama-server with four slots and a tiny coder model, the proxy under waitress "
        f"(`{command}`). {count} requests per way, {SHORT} tokens back, streamed, the ways "
        f"taking turns over {rounds} round{'s' if rounds > 1 else ''}.",
        "",
        "| asked | way | first byte p50 ms | added | whole p50 ms | added | proxy CPU ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (kind, way), (first, whole, cpu) in latencies.items():
        own = next(value for (k, w), value in latencies.items() if k == kind and "server" in w)
        added = "server" not in way
        lines.append(
            f"| {kind} | {way} | {first:.3f} | {f'{first - own[0]:+.3f}' if added else ''} | "
            f"{whole:.3f} | {f'{whole - own[1]:+.3f}' if added else ''} | "
            f"{f'{cpu:.3f}' if added else ''} |"
        )
    lines += [
        "",
        "## A gap given up on",
        "",
        f"Seconds from the client's drop (the model writing {LONG} tokens) until the server's "
        "`/slots` shows none busy, looked at every 2 ms; the target is 0.25 s.",
        "",
        "| case | drops | p50 s | max s |",
        "|---|---:|---:|---:|",
    ]
    for case, times in freed.items():
        lines.append(
            f"| {case} | {len(times)} | {statistics.median(times):.3f} | {max(times):.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = cli.arguments("fim", "What an editor's completion costs through the proxy.")
    args = args.parse_args()
    count, rounds = (5, 1) if args.quick else (300, 3)
    with tempfile.TemporaryDirectory(prefix="bench-fim-") as work:
        latencies, freed = run(count, rounds, Path(work))
    cli.publish(args, "fim", table(latencies, freed, count, rounds, args.quick))


if __name__ == "__main__":
    main()
