"""``python -m bench.media``: what an image and a rerank cost through the proxy, against the
same request sent to llama-server directly.

1. Images: the tests' tiny vision model and its projector (:mod:`tests.e2e.visionmodel`) on
   llama-server; one chat with a screenshot-sized PNG (1280x720, 2.7 MB of random pixels, so
   that it does not compress) and one with a small one, through the proxy and direct, the
   ways interleaved over three rounds. The proxy reads every image before it sends it on.
2. Reranking: the tests' tiny reranker (:mod:`tests.e2e.rerankmodel`) on llama-server with
   ``--reranking``: 16 documents ranked through the proxy and direct.

Each way's added time is its p50 less its direct p50; the proxy's CPU per request is read
from its process. Writes ``bench/results/media{,-quick}.md``.
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

THROUGH = "through the proxy"
DOCUMENTS = [
    f"a {metal} medal number {n}"
    for n in range(4)
    for metal in ("gold", "silver", "bronze", "plain")
]


def _asks() -> dict:
    from tests.images import data_uri, noise, picture

    def chat(image: bytes) -> dict:
        return {
            "max_tokens": 8,
            "temperature": 0,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": data_uri(image)}},
                    ],
                }
            ],
        }

    return {
        "screenshot": chat(noise((1280, 720))),
        "small image": chat(picture()),
        "rerank": {"query": "which medal is best?", "documents": DOCUMENTS},
    }


def run(count: int, work: Path) -> tuple:
    """p50 ms of each ask each way, and the proxy's CPU ms per request of each ask."""
    from tests.e2e.llama_server import LlamaServer
    from tests.e2e.rerankmodel import write_reranker
    from tests.e2e.visionmodel import write_vision_model

    model, mmproj = write_vision_model(work)
    reranker = write_reranker(work / "tiny-reranker.gguf")
    asks = _asks()
    with ExitStack() as stack:
        eyes = stack.enter_context(
            LlamaServer(
                model, work / "vision.log", parallel=1, extra_args=["--mmproj", str(mmproj)]
            )
        )
        ranker = stack.enter_context(
            LlamaServer(reranker, work / "rerank.log", parallel=1, extra_args=["--reranking"])
        )
        seeing = stack.enter_context(
            processes.running(
                processes.proxy("waitress", eyes.url, work, threads=16, workers=1, name="vision")
            )
        )
        ranking = stack.enter_context(
            processes.running(
                processes.proxy("waitress", ranker.url, work, threads=16, workers=1, name="rerank")
            )
        )
        trees = {seeing.url: ProcessTree(seeing.pid), ranking.url: ProcessTree(ranking.pid)}
        ways = {}
        for name in ("screenshot", "small image"):
            ways[name, "direct"] = (eyes.url, "/v1/chat/completions", None)
            ways[name, THROUGH] = (seeing.url, "/v1/chat/completions", trees[seeing.url])
        ways["rerank", "direct"] = (ranker.url, "/v1/rerank", None)
        ways["rerank", THROUGH] = (ranking.url, "/v1/rerank", trees[ranking.url])
        for (name, _), way in ways.items():  # warm up each way
            _batch(way, asks[name], 5)
        found = {key: [] for key in ways}
        for _ in range(3):
            for (name, how), way in ways.items():
                found[name, how].append(_batch(way, asks[name], count // 3))
    return {
        key: (statistics.median(p50 for p50, _ in runs), statistics.median(cpu for _, cpu in runs))
        for key, runs in found.items()
    }


def _batch(way: tuple, body: dict, count: int) -> tuple:
    """p50 ms of ``count`` requests, and the proxy's CPU ms per request (0 direct)."""
    url, path, tree = way
    session = requests.Session()
    cpu = tree.cpu_seconds() if tree else 0.0
    times = []
    for _ in range(count):
        started = time.perf_counter()
        session.post(url + path, json=body, timeout=120).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    spent = (tree.cpu_seconds() - cpu) * 1000 / count if tree else 0.0
    return statistics.median(times), spent


def table(figures: dict, count: int, quick: bool) -> str:
    lines = [
        f"# What an image and a rerank cost{' (quick run)' if quick else ''}",
        "",
        f"{count} requests per way, one at a time over three interleaved rounds, on "
        f"llama-server with the tests' tiny vision model and reranker "
        f"(`python -m bench.media{' --quick' if quick else ''}`).",
        "",
        "| request | way | p50 ms | through / direct | added by the proxy | proxy CPU ms/request |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (name, how), (p50, cpu) in figures.items():
        direct = figures[name, "direct"][0]
        through = how == THROUGH
        lines.append(
            f"| {name} | {how} | {p50:.3f} | "
            f"{f'{p50 / direct:.3f}' if through else ''} | "
            f"{f'{p50 - direct:+.3f} ms' if through else ''} | "
            f"{f'{cpu:.3f}' if through else ''} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = cli.arguments("media", "What an image and a rerank cost.").parse_args()
    count = 5 if args.quick else 300
    with tempfile.TemporaryDirectory(prefix="bench-media-") as work:
        figures = run(count, Path(work))
    cli.publish(args, "media", table(figures, count, args.quick))


if __name__ == "__main__":
    main()
