"""``python -m bench.dialects``: what each client API costs over chat completions.

The same question, one request at a time, asked through one waitress proxy in front of the
synthetic upstream, in each dialect the proxy speaks: OpenAI chat completions (the floor),
Anthropic's Messages API and OpenAI's Responses API (each when the proxy serves it), whole
and streamed (64 tokens). The dialects take turns over three rounds, so drift on the machine
touches each alike; the proxy's own CPU time is read from its process for each batch.
Writes ``bench/results/dialects{,-quick}.md``.
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

TOKENS = 64
QUESTION = "hello there"
DIALECTS = {
    "chat completions": ("/v1/chat/completions", {
        "model": "tiny", "max_tokens": TOKENS,
        "messages": [{"role": "user", "content": QUESTION}]}),
    "Messages": ("/v1/messages", {
        "model": "tiny", "max_tokens": TOKENS,
        "messages": [{"role": "user", "content": QUESTION}]}),
    "Responses": ("/v1/responses", {
        "model": "tiny", "max_output_tokens": TOKENS, "input": QUESTION, "store": False}),
}


def served(url: str) -> dict:
    """The dialects this proxy answers (a route it lacks answers 404)."""
    session = requests.Session()
    return {name: spec for name, spec in DIALECTS.items()
            if session.post(url + spec[0], json=spec[1], timeout=30).status_code != 404}


def batch(session: requests.Session, url: str, spec: tuple, count: int, stream: bool,
          proxy: ProcessTree) -> tuple:
    """p50 ms of ``count`` requests, and the proxy's CPU ms per request."""
    path, body = spec
    body = {**body, "stream": stream}
    times = []
    cpu = proxy.cpu_seconds()
    for _ in range(count):
        started = time.perf_counter()
        with session.post(url + path, json=body, timeout=30, stream=stream) as response:
            response.raise_for_status()
            for _ in response.iter_content(chunk_size=None):
                pass
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, (proxy.cpu_seconds() - cpu) * 1000 / count


def run(count: int, work: Path) -> tuple:
    with ExitStack() as stack:
        upstream = stack.enter_context(processes.running(processes.synthetic(work)))
        proxy = stack.enter_context(processes.running(processes.proxy(
            "waitress", upstream.url, work, threads=16, workers=1, name="dialects")))
        dialects = served(proxy.url)
        tree = ProcessTree(proxy.pid)
        session = requests.Session()
        figures = {(name, stream): [] for name in dialects for stream in (False, True)}
        for name, spec in dialects.items():  # warm up each way
            for stream in (False, True):
                batch(session, proxy.url, spec, 30, stream, tree)
        for _ in range(3):
            for (name, stream), found in figures.items():
                found.append(batch(session, proxy.url, dialects[name], count // 3, stream,
                                   tree))
    return {key: (statistics.median(p50 for p50, _ in found),
                  statistics.median(cpu for _, cpu in found))
            for key, found in figures.items()}


def table(figures: dict, count: int, quick: bool) -> str:
    lines = [f"# What each client API costs{' (quick run)' if quick else ''}", "",
             f"The same question ({TOKENS} tokens back), one request at a time, {count} per "
             f"way over three interleaved rounds, through waitress to the synthetic upstream "
             f"(`python -m bench.dialects{' --quick' if quick else ''}`).", "",
             "| API | answer | p50 ms | vs chat completions | proxy CPU ms/request "
             "| vs chat completions |", "|---|---|---:|---:|---:|---:|"]
    for (name, stream), (p50, cpu) in figures.items():
        floor_p50, floor_cpu = figures["chat completions", stream]
        lines.append(f"| {name} | {'streamed' if stream else 'whole'} | {p50:.3f} | "
                     f"{p50 - floor_p50:+.3f} ms | {cpu:.3f} | {cpu - floor_cpu:+.3f} ms |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = cli.arguments("dialects", "What each client API costs.").parse_args()
    count = 150 if args.quick else 1500
    with tempfile.TemporaryDirectory(prefix="bench-dialects-") as work:
        figures = run(count, Path(work))
    report = table(figures, count, args.quick)
    cli.publish(args, "dialects", report)


if __name__ == "__main__":
    main()
