"""``python -m bench.capture``: what keeping exchanges for the inspector costs a request.

The synthetic upstream (:mod:`bench.synthetic`, no model: the proxy's own cost shows) and
three proxies in front of it under waitress: capture off, capture on for a key that is not
the one asking (every request then watches its model's side, and keeps none), and capture on
for everyone. The same chat (64 tokens back) whole and streamed, the ways taking turns over
three rounds, and the server's own ``/completion`` beside them.

Per way: p50 of the answer, what it adds to the server's own, the proxy's CPU per request,
and per streamed chunk (a streamed answer's CPU less a whole one's, over its chunks); then the
store's size per exchange. Writes ``bench/results/capture{,-quick}.md``.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from bench import cli, processes
from bench.resources import ProcessTree

TOKENS = 64
KEYS = '[[keys]]\nname = "team"\nkey = "sk-team"\n\n[[keys]]\nname = "kept"\nkey = "sk-kept"\ncapture = true\n'  # noqa: E501
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Tell me a story."}],
        "max_tokens": TOKENS}  # fmt: skip
WAYS = ("capture off", "capture for another key", "capture on")


def run(count: int, rounds: int, work: Path) -> tuple:
    """``(p50 ms and CPU ms per way and answer, what the store with capture on holds)``."""
    keys = work / "keys.toml"
    keys.write_text(KEYS)
    flags = {
        "capture off": ["--keys", str(keys)],
        "capture for another key": ["--keys", str(keys)],
        "capture on": ["--keys", str(keys), "--capture", "on"],
    }
    with ExitStack() as stack:
        upstream = stack.enter_context(processes.running(processes.synthetic(work)))
        proxies = {
            way: stack.enter_context(
                processes.running(
                    processes.proxy(
                        "waitress",
                        upstream.url,
                        work,
                        threads=8,
                        workers=1,
                        name=way.replace(" ", "-"),
                        args=[*args, "--exchanges-db", str(work / f"{way}.sqlite3")],
                    )
                )
            )
            for way, args in flags.items()
        }
        native = {"prompt": "<|im_start|>user\nTell me a story.", "n_predict": TOKENS}
        found = _timed_ways(upstream.url, proxies, native, count, rounds)
        time.sleep(1.0)  # the writer's last half second
        return found, _kept(work / "capture on.sqlite3")


def _kept(path: Path) -> tuple:
    """``(exchanges kept, bytes of their records, bytes of the files on disk)``."""
    with sqlite3.connect(path) as db:
        count, size = db.execute("SELECT COUNT(*), SUM(bytes) FROM exchanges").fetchone()
    disk = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return count, size, disk


def _timed_ways(upstream: str, proxies: dict, native: dict, count: int, rounds: int) -> dict:
    headers = {"Authorization": "Bearer sk-team"}
    trees = {way: ProcessTree(proxy.pid) for way, proxy in proxies.items()}
    found: dict = {}
    cpu: dict = {}
    for _ in range(rounds):
        for stream in (False, True):
            found.setdefault(("server", stream), []).extend(
                _timed(upstream + "/completion", {**native, "stream": stream}, {}, count // rounds)
            )
            for way, proxy in proxies.items():
                spent = trees[way].cpu_seconds()
                url = proxy.url + "/v1/chat/completions"
                body = {**CHAT, "stream": stream}
                found.setdefault((way, stream), []).extend(
                    _timed(url, body, headers, count // rounds)
                )
                cpu[(way, stream)] = cpu.get((way, stream), 0.0) + trees[way].cpu_seconds() - spent
    return {
        key: (statistics.median(times), cpu.get(key, 0.0) * 1000 / len(times))
        for key, times in found.items()
    }


def _timed(url: str, body: dict, headers: dict, count: int) -> list:
    """ms for each of ``count`` answers, each on a connection of its own (the upstream
    closes one after a stream), after a few to warm up."""
    times = []
    for number in range(count + 5):
        started = time.perf_counter()
        with requests.post(url, json=body, headers=headers, timeout=30) as reply:
            reply.raise_for_status()
            if not reply.content:
                raise RuntimeError(f"{url} answered nothing")
        if number >= 5:
            times.append((time.perf_counter() - started) * 1000)
    return times


def table(found: dict, kept: tuple, count: int, rounds: int, quick: bool) -> str:
    command = f"python -m bench.capture{' --quick' if quick else ''}"
    lines = [
        f"# What the inspector's capture costs{' (quick run)' if quick else ''}",
        "",
        f"The synthetic upstream, three proxies under waitress in front of it (`{command}`); "
        f"the same chat, {TOKENS} tokens back, {count} requests per way and answer over "
        f"{rounds} round{'s' if rounds > 1 else ''}. Added: the p50 less the server's own "
        "`/completion`; CPU per chunk: a streamed answer's CPU less a whole one's, over its "
        f"{TOKENS} chunks.",
        "",
        "| way | whole p50 ms | added | streamed p50 ms | added | CPU ms/answer | vs off "
        "| CPU µs/chunk | vs off |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    server_whole, server_streamed = found[("server", False)][0], found[("server", True)][0]
    off_whole, off_stream = found[("capture off", False)][1], found[("capture off", True)][1]
    off_chunk = (off_stream - off_whole) * 1000 / TOKENS
    lines.append(f"| server | {server_whole:.3f} | | {server_streamed:.3f} | | | | | |")
    for way in WAYS:
        (whole, cpu_whole), (streamed, cpu_stream) = found[(way, False)], found[(way, True)]
        chunk = (cpu_stream - cpu_whole) * 1000 / TOKENS
        lines.append(
            f"| {way} | {whole:.3f} | {whole - server_whole:+.3f} | {streamed:.3f} | "
            f"{streamed - server_streamed:+.3f} | {cpu_whole:.3f} | {cpu_whole - off_whole:+.3f} "
            f"| {chunk:.1f} | {chunk - off_chunk:+.1f} |"
        )
    exchanges, size, disk = kept
    lines += [
        "",
        f"The store with capture on holds {exchanges} exchanges: {size / exchanges / 1024:.1f} "
        f"KiB of record each (this chat's request, answer and model's side), "
        f"{disk / exchanges / 1024:.1f} KiB each on disk.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = cli.arguments("capture", "What keeping exchanges for the inspector costs.")
    args = args.parse_args()
    count, rounds = (10, 1) if args.quick else (600, 3)
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as work:
        found, kept = run(count, rounds, Path(work))
    cli.publish(args, "capture", table(found, kept, count, rounds, args.quick))


if __name__ == "__main__":
    main()
