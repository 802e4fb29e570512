"""``python -m bench.soak``: the proxy's memory, open files and threads over many requests.

The synthetic upstream (:mod:`bench.synthetic`) and the proxy with its defaults (1,024
threads) under waitress, under gunicorn (two workers, the master's and the workers' figures
added up) and under waitress with its stores in Redis; keys on (16 of them, each request
another's), capture on, Responses stored: 8 clients ask at once, every client API in turn
(chat whole and streamed, Messages, Responses stored, Ollama's chat, completions), every
conversation new. After each block of requests the proxy's RSS, open files and threads are
read; the growth per 1,000 requests is taken from the second block (warmed up) to the last.
With ``--baseline DIR``, that checkout's proxy runs the same soak first, under waitress and
gunicorn. Where the waitress proxy grows more than 2 MiB per 1,000 requests, the same requests
run in one process under tracemalloc, and the sites whose allocations grew most are listed.
Writes ``bench/results/soak{,-quick}.md``.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import requests

from bench import cli, processes
from bench.resources import ProcessTree

CLIENTS = 8
KEYS = 16
MIB = 1024 * 1024
GROWING = 2.0  # MiB of RSS per 1,000 requests past which the heap's growth is looked into
TOP = "top allocations"


def _ask(api: str, text: str) -> tuple:
    """``(path, body)`` of one request in ``api``, about ``text``."""
    chat = [{"role": "user", "content": text}]
    return {
        "chat": ("/v1/chat/completions", {"model": "m", "messages": chat}),
        "chat streamed": (
            "/v1/chat/completions",
            {"model": "m", "messages": chat, "stream": True},
        ),  # fmt: skip
        "messages": ("/v1/messages", {"model": "m", "max_tokens": 16, "messages": chat}),
        "responses": ("/v1/responses", {"model": "m", "input": text}),
        "ollama": ("/api/chat", {"model": "m", "messages": chat, "stream": False}),
        "completions": ("/v1/completions", {"model": "m", "prompt": text}),
    }[api]


APIS = ("chat", "chat streamed", "messages", "responses", "ollama", "completions")


def soak(url: str, pid: int, count: int, block: int) -> list:
    """``(requests so far, RSS bytes, open files, threads)`` after each block."""
    tree = ProcessTree(pid)
    sessions = threading.local()
    numbers = itertools.count()

    def one(_: int) -> None:
        session = getattr(sessions, "session", None)
        if session is None:
            session = sessions.session = requests.Session()
        number = next(numbers)
        path, body = _ask(APIS[number % len(APIS)], f"conversation {uuid.uuid4().hex}")
        key = {"Authorization": f"Bearer sk-soak-{number % KEYS}"}
        with session.post(url + path, json=body, headers=key, timeout=60, stream=True) as reply:
            reply.raise_for_status()
            for _ in reply.iter_content(65536):
                pass

    samples = []
    with ThreadPoolExecutor(CLIENTS) as clients:
        for done in range(block, count + 1, block):
            list(clients.map(one, range(block)))
            every = tree.processes()
            files = sum(process.num_fds() for process in every)
            threads = sum(process.num_threads() for process in every)
            samples.append((done, tree.rss_bytes(), files, threads))
    return samples


def top_allocations(upstream: str, work: Path, count: int) -> list:
    """Where the Python heap grew over ``count`` requests after as many to warm up, in one
    process (the app itself, over a test client): the ten sites that grew most, each as
    ``(KiB, objects, its innermost frames)``."""
    from proxy.app import create_app
    from proxy.config.runtime import Runtime
    from proxy.config.settings import Settings

    settings = Settings.from_args([
        "--llama-api", upstream, "--keys", str(work / "keys.toml"),
        "--config", str(work / "models.toml"), "--capture", "on",
        *("--usage-db", str(work / "traced-usage.sqlite3")),
        *("--responses-db", str(work / "traced-responses.sqlite3")),
        *("--exchanges-db", str(work / "traced-exchanges.sqlite3")),
    ])  # fmt: skip
    app = create_app(settings, Runtime.from_environment())
    client = app.test_client()

    def ask(numbers: range) -> None:
        for number in numbers:
            path, body = _ask(APIS[number % len(APIS)], f"conversation {uuid.uuid4().hex}")
            key = {"Authorization": f"Bearer sk-soak-{number % KEYS}"}
            client.post(path, json=body, headers=key).close()

    try:
        ask(range(count))
        tracemalloc.start(12)
        first = tracemalloc.take_snapshot()
        ask(range(count, 2 * count))
        grown = tracemalloc.take_snapshot().compare_to(first, "traceback")[:10]
        tracemalloc.stop()
    finally:
        app.extensions["proxy"].router.close()
    return [
        (stat.size_diff / 1024, stat.count_diff, stat.traceback.format(limit=3)) for stat in grown
    ]


def run(count: int, block: int, work: Path, baseline: Optional[Path] = None) -> dict:
    """The samples of each soak: this checkout's proxy under waitress, under gunicorn (two
    workers, read as one tree) and under waitress with its stores in Redis (where the
    machine has ``redis-server``); the baseline's under waitress and gunicorn first."""
    keys = "".join(f'[[keys]]\nname = "k{n}"\nkey = "sk-soak-{n}"\n\n' for n in range(KEYS))
    (work / "keys.toml").write_text(keys)
    found = {}
    with ExitStack() as stack:
        upstream = stack.enter_context(processes.running(processes.synthetic(work)))
        (work / "models.toml").write_text(f'[models.m]\nupstreams = ["{upstream.url}"]\n')
        soaks = []
        if baseline is not None:
            at = cli.commit_of(baseline)
            soaks += [(f"at {at}, waitress", baseline, "waitress", []),
                      (f"at {at}, gunicorn, 2 workers", baseline, "gunicorn", [])]  # fmt: skip
        soaks += [("waitress", processes.ROOT, "waitress", []),
                  ("gunicorn, 2 workers", processes.ROOT, "gunicorn", [])]  # fmt: skip
        redis = processes.redis_server(work)
        if redis is not None:
            stack.callback(redis[0].kill)
            soaks.append(("waitress, Redis", processes.ROOT, "waitress", ["--redis-url", redis[1]]))
        for name, root, server, extra in soaks:
            label = "".join(c if c.isalnum() else "-" for c in name)
            proxy = processes.proxy(
                server,
                upstream.url,
                work,
                threads=1024,
                workers=2,
                name=f"soak-{label}",
                args=[
                    *("--keys", str(work / "keys.toml")),
                    *("--config", str(work / "models.toml")),
                    *("--capture", "on"),
                    *("--usage-db", str(work / f"usage-{label}.sqlite3")),
                    *("--responses-db", str(work / f"responses-{label}.sqlite3")),
                    *("--exchanges-db", str(work / f"exchanges-{label}.sqlite3")),
                    *extra,
                ],
                root=root,
            )
            with processes.running(proxy) as running:
                found[name] = soak(running.url, running.pid, count, block)
        grew = growth(found["waitress"])
        if grew > GROWING:
            found[TOP] = top_allocations(upstream.url, work, min(count, 2000))
    return found


def growth(samples: list) -> float:
    """MiB of RSS per 1,000 requests, from the second block to the last."""
    (warm, warm_rss, _, _), (last, last_rss, _, _) = samples[min(1, len(samples) - 1)], samples[-1]
    return (last_rss - warm_rss) / MIB * 1000 / max(last - warm, 1)


def table(found: dict, count: int, block: int, quick: bool) -> str:
    command = f"python -m bench.soak{' --quick' if quick else ''}"
    lines = [
        f"# The proxy over many requests{' (quick run)' if quick else ''}",
        "",
        f"The synthetic upstream and the proxy with its defaults (`{command}`): "
        f"{KEYS} keys, capture on, Responses stored; {CLIENTS} clients ask {count} requests, "
        f"every client API in turn ({', '.join(APIS)}), every conversation new. Read after "
        f"each block of {block}; the growth per 1,000 requests is from the second block to "
        "the last. Under gunicorn, its processes' figures added up (the supervisor's too).",
        "",
        "| proxy | RSS after the second block, MiB | after the last | growth per 1,000 | "
        "open files (most) | threads (most) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    top = found.pop(TOP, None)
    for name, samples in found.items():
        warm_rss, last_rss = samples[min(1, len(samples) - 1)][1], samples[-1][1]
        lines.append(
            f"| {name} | {warm_rss / MIB:.1f} | {last_rss / MIB:.1f} | "
            f"{growth(samples):+.2f} MiB | {max(s[2] for s in samples)} | "
            f"{max(s[3] for s in samples)} |"
        )
    lines += ["", "Each block (requests: RSS MiB, open files, threads):", ""]
    for name, samples in found.items():
        shown = ", ".join(f"{done}: {rss / MIB:.0f}, {files}, {threads}"
                          for done, rss, files, threads in samples)  # fmt: skip
        lines.append(f"- {name}: {shown}")
    if top is not None:
        lines += ["", f"The waitress proxy grew more than {GROWING:g} MiB per 1,000 requests: "
                  "where the Python heap of one process grows (tracemalloc, after a warm-up as "
                  "long):", ""]  # fmt: skip
        lines += [f"- {kib:+.1f} KiB, {objects:+d} objects: {' / '.join(frames)}"
                  for kib, objects, frames in top]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = cli.with_baseline(cli.arguments("soak", __doc__.splitlines()[0].split(": ")[1]))
    args = parser.parse_args()
    count, block = (600, 100) if args.quick else (12000, 500)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as work:
        found = run(count, block, Path(work), args.baseline)
    cli.publish(args, "soak", table(found, count, block, args.quick))


if __name__ == "__main__":
    main()
