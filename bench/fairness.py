"""``python -m bench.fairness``: what one key's flood costs another key's first byte.

A llama-server with four slots and the tests' tiny model (answers run to their budget), and
the proxy under waitress with two keys. Key B asks short questions (8 tokens, streamed) one
at a time: alone, then while key A keeps 16 long streams (256 tokens) in flight; A's flood
also runs alone, for its throughput. Figures: B's first byte (p50, p90), A's answers (p50 and
per second), and the bound a fair line could reach, B alone plus one A answer over the slots
(B waits only for the next slot to free). Writes ``bench/results/fairness{,-quick}.md``.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from bench import cli, processes

SLOTS = 4
FLOOD = 16  # A's streams in flight
LONG, SHORT = 256, 8
KEYS = '[[keys]]\nname = "a"\nkey = "sk-a"\n\n[[keys]]\nname = "b"\nkey = "sk-b"\n'


def ask(url: str, key: str, tokens: int, question: str) -> tuple:
    """``(ms to the first byte of the answer, ms to its end)``: a streamed chat."""
    body = {"model": "tiny", "messages": [{"role": "user", "content": question}],
            "max_tokens": tokens, "stream": True}  # fmt: skip
    started = time.perf_counter()
    with requests.post(
        url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=600,
    ) as reply:
        reply.raise_for_status()
        pieces = reply.iter_content(chunk_size=None)
        next(pieces)
        first = time.perf_counter()
        for _ in pieces:
            pass
    return (first - started) * 1000, (time.perf_counter() - started) * 1000


class Flood:
    """Key A's streams, :data:`FLOOD` in flight while the ``with`` block runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(n,)) for n in range(FLOOD)]

    def _loop(self, n: int) -> None:
        while not self.stop.is_set():
            self.answers.append(ask(self.url, "sk-a", LONG, f"Tell story {n}.")[1])

    def __enter__(self) -> "Flood":
        self.began = time.perf_counter()
        for thread in self.threads:
            thread.start()
        time.sleep(3.0)  # every slot and the line full
        self.answers.clear()
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self.began
        self.done = len(self.answers)
        self.stop.set()
        for thread in self.threads:
            thread.join()


def questions(url: str, count: int) -> list:
    """B's first bytes, ``count`` questions one at a time."""
    return [ask(url, "sk-b", SHORT, f"Question {n}?")[0] for n in range(count)]


def run(count: int, work: Path) -> dict:
    from tests.e2e.llama_server import LlamaServer
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    model = write_tiny_llama_gguf(work / "tiny.gguf")
    keys = work / "keys.toml"
    keys.write_text(KEYS)
    with ExitStack() as stack:
        server = stack.enter_context(
            LlamaServer(
                model,
                work / "server.log",
                parallel=SLOTS,
                ctx_size=SLOTS * 1024,
                extra_args=["--ignore-eos"],
            )  # fmt: skip
        )
        proxy = stack.enter_context(
            processes.running(
                processes.proxy(
                    "waitress",
                    server.url,
                    work,
                    threads=64,
                    workers=1,
                    name="fairness",
                    args=["--keys", str(keys)],
                )  # fmt: skip
            )
        )
        questions(proxy.url, 3)  # warm up
        alone = questions(proxy.url, count)
        with Flood(proxy.url) as flood:
            flooded = questions(proxy.url, count)
        with Flood(proxy.url) as by_itself:
            time.sleep(flood.seconds)
    return {
        "alone": alone,
        "flooded": flooded,
        "a_answer_ms": statistics.median(flood.answers),
        "a_rate": flood.done / flood.seconds,
        "a_rate_alone": by_itself.done / by_itself.seconds,
    }


def table(found: dict, count: int, quick: bool) -> str:
    alone, flooded = found["alone"], found["flooded"]
    bound = statistics.median(alone) + found["a_answer_ms"] / SLOTS

    def p(values: list, q: float) -> float:
        return sorted(values)[min(int(q * len(values)), len(values) - 1)]

    command = f"python -m bench.fairness{' --quick' if quick else ''}"
    return (
        "\n".join(
            [
                f"# One key's flood and another key's first byte{' (quick run)' if quick else ''}",
                "",
                f"llama-server with {SLOTS} slots and the tests' tiny model, the proxy under "
                f"waitress with keys A and B (`{command}`). B asks {count} short questions "
                f"({SHORT} tokens, streamed) one at a time, alone and while A keeps {FLOOD} "
                f"streams of {LONG} tokens in flight.",
                "",
                "| B's first byte | p50 ms | p90 ms |",
                "|---|---:|---:|",
                f"| alone | {statistics.median(alone):.1f} | {p(alone, 0.9):.1f} |",
                f"| under A's flood | {statistics.median(flooded):.1f} | {p(flooded, 0.9):.1f} |",
                f"| next-slot bound (alone + one A answer / {SLOTS}) | {bound:.1f} | |",
                "",
                f"A's answers under the flood: p50 {found['a_answer_ms']:.0f} ms, "
                f"{found['a_rate']:.2f} a second while B asks, {found['a_rate_alone']:.2f} alone.",
            ]
        )
        + "\n"
    )


def main() -> None:
    args = cli.arguments("fairness", "What one key's flood costs another key's first byte.")
    args = args.parse_args()
    count = 8 if args.quick else 40
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as work:
        found = run(count, Path(work))
    cli.publish(args, "fairness", table(found, count, args.quick))


if __name__ == "__main__":
    main()
