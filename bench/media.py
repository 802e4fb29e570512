"""``python -m bench.media``: what an image, a clip, a picture and a rerank cost through the
proxy, against the same request sent to its engine directly.

1. Images: the tests' tiny vision model and its projector (:mod:`tests.e2e.visionmodel`) on
   llama-server; one chat with a screenshot-sized PNG (1280x720, 2.7 MB of random pixels, so
   that it does not compress) and one with a small one, through the proxy and direct, the
   ways interleaved over three rounds. The proxy reads every image before it sends it on.
2. Audio: the tests' tiny model that hears (:mod:`tests.e2e.audiomodel`) on llama-server;
   a transcription of a 10-second WAV (a multipart form the proxy reads and writes again)
   and a chat that holds the same clip as an ``input_audio`` part.
3. Pictures: a generation and an edit of a 512x512 PNG on the tests' echo engine
   (:mod:`tests.e2e.servers.echo_upstream`), which answers at once: the proxy's own cost;
   and a 64x64 picture in one step on stable-diffusion.cpp's sd-server with the tests' tiny
   model (:mod:`tests.e2e.sdmodel`), a tenth as many (each takes about half a second).
4. Reranking: the tests' tiny reranker (:mod:`tests.e2e.rerankmodel`) on llama-server with
   ``--reranking``: 16 documents ranked through the proxy and direct.

Each way's added time is its p50 less its direct p50; the proxy's CPU per request is read
from its process. Writes ``bench/results/media{,-quick}.md``.
"""

from __future__ import annotations

import base64
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
    """Each ask's request, as ``requests.post``'s keywords: a JSON body, or a form."""
    from tests.e2e.audiomodel import wav
    from tests.images import data_uri, noise, picture

    def chat(part: dict) -> dict:
        content = [{"type": "text", "text": "What is this?"}, part]
        return {"json": {"max_tokens": 8, "temperature": 0,
                         "messages": [{"role": "user", "content": content}]}}  # fmt: skip

    clip = wav(10.0)
    heard = {"data": base64.b64encode(clip).decode(), "format": "wav"}
    photo = picture(size=(512, 512))

    def shown(image: bytes) -> dict:
        return chat({"type": "image_url", "image_url": {"url": data_uri(image)}})

    return {
        "screenshot": shown(noise((1280, 720))),
        "small image": shown(picture()),
        "transcription": {"data": {"model": "ears"}, "files": {"file": ("a.wav", clip)}},
        "chat with a clip": chat({"type": "input_audio", "input_audio": heard}),
        "picture": {"json": {"model": "painter", "prompt": "a red fox in snow"}},
        "sd-server picture": {"json": {"model": "sd", "prompt": "a red fox in snow"}},
        "edit": {"data": {"model": "painter", "prompt": "at night"},
                 "files": {"image": ("fox.png", photo, "image/png")}},
        "rerank": {"json": {"query": "which medal is best?", "documents": DOCUMENTS}},
    }  # fmt: skip


def run(count: int, work: Path) -> tuple:
    """p50 ms of each ask each way, and the proxy's CPU ms per request of each ask."""
    from tests.e2e.audiomodel import write_audio_model
    from tests.e2e.llama_server import LlamaServer
    from tests.e2e.refusing import EchoServer
    from tests.e2e.rerankmodel import write_reranker
    from tests.e2e.sd_server import SdServer
    from tests.e2e.sdmodel import write_sd_model
    from tests.e2e.visionmodel import write_vision_model

    model, mmproj = write_vision_model(work)
    hearing, ears_mmproj = write_audio_model(work)
    reranker = write_reranker(work / "tiny-reranker.gguf")
    asks = _asks()
    with ExitStack() as stack:
        eyes = stack.enter_context(
            LlamaServer(
                model, work / "vision.log", parallel=1, extra_args=["--mmproj", str(mmproj)]
            )
        )
        ears = stack.enter_context(
            LlamaServer(
                hearing,
                work / "ears.log",
                parallel=1,
                ctx_size=2048,
                extra_args=["--mmproj", str(ears_mmproj)],
            )  # fmt: skip
        )
        ranker = stack.enter_context(
            LlamaServer(reranker, work / "rerank.log", parallel=1, extra_args=["--reranking"])
        )
        echo = stack.enter_context(EchoServer(work / "echo.log"))
        sd = stack.enter_context(SdServer(write_sd_model(work / "sdxs.gguf"), work / "sd.log"))
        models = work / "pictures.toml"
        models.write_text(
            f'[models.painter]\nbackend = "openai"\nupstreams = ["{echo.url}/v1"]\n'
            f'[models.sd]\nbackend = "sdserver"\nupstreams = ["{sd.url}"]\n'
        )
        proxies = {
            name: stack.enter_context(processes.running(processes.proxy(
                "waitress", upstream, work, threads=16, workers=1, name=name, args=args
            )))
            for name, upstream, args in (
                ("vision", eyes.url, ()), ("ears", ears.url, ()), ("rerank", ranker.url, ()),
                ("painter", echo.url, ("--config", str(models))),
            )
        }  # fmt: skip
        trees = {proxy.url: ProcessTree(proxy.pid) for proxy in proxies.values()}

        def both(name: str, direct: str, proxy: str, path: str, direct_path: str = "") -> None:
            ways[name, "direct"] = (direct, direct_path or path, None)
            url = proxies[proxy].url
            ways[name, THROUGH] = (url, path, trees[url])

        ways: dict = {}
        both("screenshot", eyes.url, "vision", "/v1/chat/completions")
        both("small image", eyes.url, "vision", "/v1/chat/completions")
        both("transcription", ears.url, "ears", "/v1/audio/transcriptions")
        both("chat with a clip", ears.url, "ears", "/v1/chat/completions")
        both("picture", echo.url, "painter", "/v1/images/generations")
        both("edit", echo.url, "painter", "/v1/images/edits")
        both("sd-server picture", sd.url, "painter", "/v1/images/generations")
        both("rerank", ranker.url, "rerank", "/v1/rerank")
        for (name, _), way in ways.items():  # warm up each way
            _batch(way, asks[name], 5)
        found = {key: [] for key in ways}
        for _ in range(3):
            for (name, how), way in ways.items():
                slow = name == "sd-server picture"
                found[name, how].append(
                    _batch(way, asks[name], max(count // (30 if slow else 3), 1))
                )
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
        session.post(url + path, timeout=120, **body).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    spent = (tree.cpu_seconds() - cpu) * 1000 / count if tree else 0.0
    return statistics.median(times), spent


def table(figures: dict, count: int, quick: bool) -> str:
    lines = [
        f"# What an image, a clip, a picture and a rerank cost{' (quick run)' if quick else ''}",
        "",
        f"{count} requests per way, one at a time over three interleaved rounds, on "
        f"llama-server with the tests' tiny vision model, model that hears and reranker, and "
        f"on the tests' echo engine and sd-server with the tests' tiny model for pictures "
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
    args = cli.arguments(
        "media", "What an image, a clip, a picture and a rerank cost."
    ).parse_args()
    count = 5 if args.quick else 300
    with tempfile.TemporaryDirectory(prefix="bench-media-") as work:
        figures = run(count, Path(work))
    cli.publish(args, "media", table(figures, count, args.quick))


if __name__ == "__main__":
    main()
