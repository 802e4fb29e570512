"""``python -m bench.managed``: how long the servers the proxy runs keep a client waiting.

Start, swap, restart: two models of the tests' tiny GGUF in one models file with
``max_running = 1``, behind one waitress proxy; each figure is one non-streamed completion:

- ``start``: the first request for a stopped model, which starts its llama-server;
- ``warm``: the next request, to the running server;
- ``swap``: a request for the other model, whose start first stops the running one;
- ``after a crash``: the first request after the running server was killed, which waits
  out the back-off after a death (1 s) and the restart.

A conversation over a swap: a model big enough that evaluating a long history takes seconds
(:data:`tests.e2e.tinymodel.SMALL`), swapped out by the tiny one between two turns of a
conversation, once with its slots saved before the stop and restored when the conversation
comes back (``slot_save = "on-stop"``) and once without (``"off"``): the swap's time, and the
time to the first token of the turn after it, as the client sees them.

Install to first answer: ``pip install`` of the project into a fresh virtual environment
with no pip cache (everything downloaded, as on a new machine), then ``oai-proxy --model``
on the tiny GGUF with the bundled engine, until its first chat answer.

Writes ``bench/results/managed{,-quick}.md``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import psutil
import requests

from bench import cli, dialects, processes
from tests.processes import ROOT, free_port

ADMIN = "bench-admin"
FIGURES = ("start", "warm", "swap", "after a crash")


def models_file(work: Path) -> Path:
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    model = write_tiny_llama_gguf(work / "tiny-llama.gguf")
    path = work / "models.toml"
    path.write_text(
        "max_running = 1\n"
        + "".join(
            f'[models.{name}]\nmodel = "{model}"\nargs = ["-np", "1", "-c", "1024"]\n'
            for name in ("first", "second")
        )
    )
    return path


def timed(url: str, model: str) -> float:
    """Seconds one completion for ``model`` takes through the proxy."""
    started = time.perf_counter()
    response = requests.post(
        url + "/v1/completions",
        timeout=120,
        json={"model": model, "prompt": "the cat", "max_tokens": 4},
    )
    if response.status_code != 200:
        raise RuntimeError(f"{model}: {response.status_code} {response.text[:500]}")
    return time.perf_counter() - started


def admin(url: str, path: str) -> dict:
    response = requests.post(
        url + "/admin/models" + path, timeout=120, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    response.raise_for_status()
    return response.json()


def running_server(proxy_pid: int) -> psutil.Process:
    """The one model server under the proxy."""
    (server,) = [
        child
        for child in psutil.Process(proxy_pid).children(recursive=True)
        if "llama-server" in " ".join(child.cmdline())
    ]
    return server


def one_round(service: processes.Service) -> dict:
    for name in ("first", "second"):
        admin(service.url, f"/{name}/unload")
    figures = {
        "start": timed(service.url, "first"),
        "warm": timed(service.url, "first"),
        "swap": timed(service.url, "second"),
    }
    server = running_server(service.pid)
    server.kill()
    while server.is_running() and server.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)  # dead, left for the proxy to reap
    figures["after a crash"] = timed(service.url, "second")
    return figures


def managed_proxy(work: Path, name: str, *args: str) -> processes.Service:
    """A waitress proxy running the servers of :func:`models_file` (``args``: more flags)."""
    return processes.proxy(
        "waitress",
        "http://127.0.0.1:9",
        work,
        threads=16,
        workers=1,
        args=["--config", str(models_file(work)), "--log-dir", str(work / "servers"), *args],
        name=name,
    )


def run(rounds: int, work: Path) -> dict:
    service = managed_proxy(work, "managed", "--admin-key", ADMIN)
    with processes.running(service):
        seen = [one_round(service) for _ in range(rounds)]
    return {figure: [each[figure] for each in seen] for figure in FIGURES}


# -- a new conversation's first byte -----------------------------------------------------------


def new_conversations(count: int, work: Path) -> dict:
    """Seconds to the first byte of ``count`` streamed chats, each a conversation new to the
    server (the proxy looks for a slot to keep its cache in), asked of the running server
    directly and through the proxy in turn."""
    service = managed_proxy(work, "new-conversations")
    seen: dict = {"server": [], "proxy": []}
    with processes.running(service):
        timed(service.url, "first")  # started
        command = running_server(service.pid).cmdline()
        server = f"http://127.0.0.1:{command[command.index('--port') + 1]}"
        for number in range(count):
            for way, url in (("server", server), ("proxy", service.url)):
                question = [{"role": "user", "content": f"Conversation {number} by the {way}"}]
                body = {"model": "first", "messages": question, "max_tokens": 4}
                first_byte, _ = dialects.timed(
                    dialects.Way(url, "/v1/chat/completions", body), stream=True
                )
                seen[way].append(first_byte / 1000)
    return seen


# -- a conversation over a swap ----------------------------------------------------------------

HISTORY_WORDS = 3000  # about as many tokens: seconds of evaluation for the SMALL model
SWAP_SAVES = ("on-stop", "off")


def swap_file(work: Path, slot_save: str) -> Path:
    from tests.e2e.tinymodel import SMALL, write_tiny_llama_gguf

    big = work / "small.gguf"
    if not big.exists():
        write_tiny_llama_gguf(big, SMALL, context=16384)
    tiny = write_tiny_llama_gguf(work / "tiny-llama.gguf")
    path = work / f"swap-{slot_save}.toml"
    path.write_text(
        f"max_running = 1\n"
        f'[models.big]\nmodel = "{big}"\nslot_save = "{slot_save}"\n'
        f'args = ["-np", "1", "-c", "8192"]\n'
        f'[models.other]\nmodel = "{tiny}"\nargs = ["-np", "1", "-c", "1024"]\n'
    )
    return path


def history(round_number: int) -> list:
    """A conversation's opening: a long document of its own (so no round finds another's
    cache) and a question."""
    from tests.e2e.tinymodel import _WORDS

    document = " ".join(
        _WORDS[(round_number * 7 + i * i) % len(_WORDS)] for i in range(HISTORY_WORDS)
    )
    return [{"role": "user", "content": f"Round {round_number}. Read this: {document}"}]


def first_token(url: str, messages: list) -> tuple:
    """Seconds to the first token of a streamed chat turn for ``big``, and the cached tokens
    its usage reports."""
    started = time.perf_counter()
    ttft, cached = None, None
    with requests.post(
        url + "/v1/chat/completions",
        stream=True,
        timeout=300,
        json={
            "model": "big",
            "messages": messages,
            "max_tokens": 4,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            if ttft is None and any(
                choice["delta"].get("content") for choice in chunk.get("choices", [])
            ):
                ttft = time.perf_counter() - started
            if chunk.get("usage"):
                cached = chunk["usage"].get("prompt_tokens_details", {}).get("cached_tokens")
    return ttft, cached or 0


def swap_round(url: str, round_number: int) -> dict:
    """Turn one of a conversation on ``big``, a swap to ``other``, turn two on ``big``."""
    messages = history(round_number)
    reply = requests.post(
        url + "/v1/chat/completions",
        timeout=300,
        json={"model": "big", "messages": messages, "max_tokens": 4},
    ).json()
    messages += [reply["choices"][0]["message"], {"role": "user", "content": "And then?"}]
    swap = timed(url, "other")
    ttft, cached = first_token(url, messages)
    return {
        "swap": swap,
        "turn after the swap": ttft,
        "cached": cached,
        "prompt": reply["usage"]["prompt_tokens"],
    }


def run_swaps(rounds: int, work: Path) -> dict:
    """Each way of saving in turn, with its own proxy and slot folder."""
    seen = {}
    for slot_save in SWAP_SAVES:
        service = processes.proxy(
            "waitress",
            "http://127.0.0.1:9",
            work,
            threads=16,
            workers=1,
            name=f"swap-{slot_save}",
            args=[
                "--config",
                str(swap_file(work, slot_save)),
                "--log-dir",
                str(work / "servers"),
                "--slot-cache-dir",
                str(work / f"slots-{slot_save}"),
            ],
        )
        with processes.running(service):
            seen[slot_save] = [swap_round(service.url, number) for number in range(rounds)]
    files = list((work / "slots-on-stop").glob("*/*.bin"))
    seen["file MiB"] = sum(path.stat().st_size for path in files) / max(len(files), 1) / 2**20
    return seen


# -- install to first answer -------------------------------------------------------------------


def install_and_answer(work: Path) -> dict:
    """Seconds for ``pip install`` into a fresh venv with no pip cache, then from starting
    ``oai-proxy --model`` (the bundled engine) to its first chat answer."""
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    venv = work / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": str(venv / "bin"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    started = time.perf_counter()
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-cache-dir", str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if install.returncode:
        raise RuntimeError(
            "pip install failed:\n" + install.stdout[-2000:] + install.stderr[-2000:]
        )
    installed = time.perf_counter() - started
    model = write_tiny_llama_gguf(work / "tiny-llama.gguf")
    port = free_port()
    service = processes.Service(
        "fresh oai-proxy",
        [
            str(venv / "bin" / "oai-proxy"),
            "--model",
            str(model),
            "--port",
            str(port),
            "--log-dir",
            str(work / "servers"),
            "--slot-cache-dir",
            str(work / "slots-fresh"),
            "--admin-key",
            ADMIN,
        ],
        port,
        work / "proxy-fresh.log",
        env=env,
    )
    launched = time.perf_counter()
    with processes.running(service):
        response = requests.post(
            service.url + "/v1/chat/completions",
            timeout=120,
            json={
                "model": "tiny",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        response.raise_for_status()
        answered = time.perf_counter() - launched
        engine = requests.get(
            service.url + "/health", timeout=10, headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()["managed"]["engine"]  # the admin's detail
    return {"install": installed, "first answer": answered, "engine": engine}


# -- the report ---------------------------------------------------------------------------------


def row(name: str, values: list) -> str:
    return f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |"


def median_of(seen: list, figure: str) -> float:
    return statistics.median(each[figure] for each in seen)


def table(times: dict, swaps: dict, fresh: Optional[dict], quick: bool) -> str:
    from tests.e2e.tinymodel import SMALL

    rounds = len(times["start"])
    command = f"`python -m bench.managed{' --quick' if quick else ''}`"
    lines = [
        f"# Servers the proxy runs{' (quick run)' if quick else ''}",
        "",
        "## Start, swap, restart",
        "",
        f"The tests' tiny model, two models with `max_running = 1`, {rounds} rounds; "
        f"each figure is one completion through the proxy as its client waits for it "
        f"({command}).",
        "",
        "| request | median s | fastest s | slowest s |",
        "|---|---:|---:|---:|",
    ]
    lines += [row(figure, times[figure]) for figure in FIGURES]
    direct, proxied = (statistics.median(times[way]) * 1000 for way in ("server", "proxy"))
    lines += [
        "",
        "## A new conversation's first byte",
        "",
        f"{len(times['proxy'])} streamed chats, each a conversation new to the running "
        f"server (the proxy finds it a slot to keep its cache in, from the server's "
        f"`/slots`), asked of the server directly and through the proxy in turn: the first "
        f"byte's p50 {direct:.2f} ms directly, {proxied:.2f} ms through the proxy "
        f"({proxied - direct:+.2f} ms).",
    ]
    saved, unsaved, file_size = swaps["on-stop"], swaps["off"], swaps["file MiB"]
    prompt = median_of(saved, "prompt")
    lines += [
        "",
        "## A conversation over a swap",
        "",
        f"A model of {SMALL.layers} layers of width {SMALL.width} in f32 (evaluating the "
        f"conversation's {prompt:.0f}-token opening takes seconds on this machine) and "
        f"the tiny one, `max_running = 1`, {len(saved)} rounds of: a turn on the big "
        f"model, a request for the tiny one (the swap), the next turn on the big one "
        f"(streamed; the time to its first token includes the big model's restart). "
        f"Once with "
        f'`slot_save = "on-stop"` (its slot saved before the swap, restored for the '
        f'turn after it) and once with `"off"`.',
        "",
        "| figure | median s | fastest s | slowest s |",
        "|---|---:|---:|---:|",
    ]
    for slot_save in SWAP_SAVES:
        lines.append(
            row(f"swap, slot_save = {slot_save}", [each["swap"] for each in swaps[slot_save]])
        )
    for slot_save in SWAP_SAVES:
        lines.append(
            row(
                f"turn after the swap, first token, slot_save = {slot_save}",
                [each["turn after the swap"] for each in swaps[slot_save]],
            )
        )
    turn = "turn after the swap"
    ratio = median_of(unsaved, turn) / median_of(saved, turn)
    lines += [
        "",
        f"Restoring makes the turn after a swap {ratio:.1f}× faster to its first "
        f"token: its prompt took {median_of(saved, 'cached'):.0f} tokens from the "
        f"restored cache (without: {median_of(unsaved, 'cached'):.0f}). Each saved "
        f"conversation is a file of {file_size:.1f} MiB; saving it is part of the "
        f"swap's time above.",
        "",
        "## Install to first answer",
        "",
    ]
    if fresh is None:
        lines.append(
            "Not measured in a quick run: `tests/e2e/test_fresh_install.py` runs the same "
            "install and first answer in every CI run."
        )
    else:
        lines.append(
            f"`pip install` of the project into a fresh virtual environment with no pip "
            f"cache: {fresh['install']:.1f} s; then `oai-proxy --model tiny.gguf` to its "
            f"first chat answer: {fresh['first answer']:.2f} s, with {fresh['engine']}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = cli.arguments(
        "managed", "How long the servers the proxy runs keep a client waiting."
    ).parse_args()
    missing = processes.missing("llama-server")
    if missing:
        raise SystemExit(f"bench.managed needs llama-server: {missing}")
    with tempfile.TemporaryDirectory(prefix="bench-managed-") as work:
        times = run(1 if args.quick else 7, Path(work))
        times.update(new_conversations(5 if args.quick else 300, Path(work)))
        swaps = run_swaps(1 if args.quick else 5, Path(work))
        fresh = None if args.quick else install_and_answer(Path(work))
    report = table(times, swaps, fresh, args.quick)
    cli.publish(args, "managed", report)


if __name__ == "__main__":
    main()
