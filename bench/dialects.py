"""``python -m bench.dialects``: what each client API costs over chat completions, and what
a chat costs through a server's own chat layer against a prompt the proxy renders.

1. The same question, one request at a time, asked through one waitress proxy in front of
   the synthetic upstream, in each dialect the proxy speaks: OpenAI chat completions (the
   floor), Anthropic's Messages API, OpenAI's Responses API and Ollama's chat (each when the
   proxy serves it), whole and streamed (64 tokens). The dialects take turns over three rounds, so drift
   on the machine touches each alike; the proxy's own CPU time is read from its process for
   each batch.
2. On real llama-server (the tests' tiny model, 64 tokens): a chat through the proxy by its
   default path, the server's ``/v1/chat/completions``, against the same chat asked of that
   route directly; and through a proxy that renders the model's template itself (named with
   ``--chat-template``) onto ``/completion``, against that prompt sent to ``/completion``
   directly. Each way's added time is its p50 less its direct p50, the four interleaved over
   three rounds.

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
    "Ollama chat": ("/api/chat", {
        "model": "tiny", "options": {"num_predict": TOKENS},
        "messages": [{"role": "user", "content": QUESTION}]}),
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


THROUGH = "through the proxy"


def chat_paths(count: int, work: Path) -> dict:
    """p50 ms of a chat each way, whole and streamed: by each of the two paths, through the
    proxy and straight to the server."""
    from tests.e2e.tinymodel import CHAT_TEMPLATE

    template = work / "template.jinja"
    template.write_text(CHAT_TEMPLATE)
    with ExitStack() as stack:
        server = stack.enter_context(processes.llama_server(work, parallel=1))
        layered = stack.enter_context(processes.running(processes.proxy(
            "waitress", server.url, work, threads=16, workers=1, name="chat-layer")))
        rendered = stack.enter_context(processes.running(processes.proxy(
            "waitress", server.url, work, threads=16, workers=1, name="rendered",
            args=["--chat-template", str(template)])))
        messages = [{"role": "user", "content": QUESTION}]
        prompt = requests.post(server.url + "/apply-template", json={"messages": messages},
                               timeout=30).json()["prompt"]
        asks = {
            "chat layer, direct": (server.url, "/v1/chat/completions",
                                   {"messages": messages, "max_tokens": TOKENS}),
            f"chat layer, {THROUGH}": (layered.url, "/v1/chat/completions",
                                       {"messages": messages, "max_tokens": TOKENS}),
            "/completion, direct": (server.url, "/completion",
                                    {"prompt": prompt, "n_predict": TOKENS}),
            f"/completion, {THROUGH}": (rendered.url, "/v1/chat/completions",
                                        {"messages": messages, "max_tokens": TOKENS}),
        }
        figures = {(way, stream): [] for way in asks for stream in (False, True)}
        for (way, stream) in figures:  # warm up each way
            _times(asks[way], 20, stream)
        for _ in range(3):
            for (way, stream), found in figures.items():
                found.append(statistics.median(_times(asks[way], count // 3, stream)))
    return {key: statistics.median(found) for key, found in figures.items()}


def _times(ask: tuple, count: int, stream: bool) -> list:
    """ms of each of ``count`` requests, one after another, each on a connection of its own
    (llama-server closes a kept one after a stream)."""
    url, path, body = ask
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with requests.post(url + path, json={**body, "temperature": 0, "stream": stream},
                           timeout=60, stream=stream) as response:
            response.raise_for_status()
            for _ in response.iter_content(chunk_size=None):
                pass
        times.append((time.perf_counter() - started) * 1000)
    return times


def paths_table(figures: dict, count: int) -> str:
    lines = ["", "## A chat through the server's chat layer, and through /completion", "",
             f"One chat ({TOKENS} tokens back, greedy) on llama-server with the tests' tiny "
             f"model, {count} requests per way over three interleaved rounds.", "",
             "| way | answer | p50 ms | added by the proxy |", "|---|---|---:|---:|"]
    for (way, stream), p50 in figures.items():
        direct = figures[way.replace(THROUGH, "direct"), stream]
        added = f"{p50 - direct:+.3f} ms" if THROUGH in way else ""
        lines.append(f"| {way} | {'streamed' if stream else 'whole'} | {p50:.3f} | {added} |")
    return "\n".join(lines) + "\n"


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
    paths_count = 60 if args.quick else 600
    with tempfile.TemporaryDirectory(prefix="bench-dialects-") as work:
        figures = run(count, Path(work))
        paths = chat_paths(paths_count, Path(work))
    report = table(figures, count, args.quick) + paths_table(paths, paths_count)
    cli.publish(args, "dialects", report)


if __name__ == "__main__":
    main()
