"""``python -m bench.batches``: a batch against the same requests fired by a script, and what
each costs a live key's first byte.

A four-slot llama-server with the tests' tiny model behind one waitress proxy with a team's
keys. The same chat requests (32 tokens back each) run as a batch (``/v1/batches``, the proxy
running four at a time) and as a script keeping four in flight with the batch key; meanwhile
key B asks short questions one at a time. Figures: requests a second, and B's first byte p50
with its ratio to the next-slot bound (B alone plus one batch answer over the slots). Writes
``bench/results/batches{,-quick}.md``.
"""

from __future__ import annotations

import io
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import openai
import requests

from bench import cli, processes

SLOTS = 4
KEYS = """
[[keys]]
name = "night"
key = "sk-night"

[[keys]]
name = "b"
key = "sk-b"
"""
QUICK = {"requests": 40, "questions": 4}
FULL = {"requests": 200, "questions": 20}


def body(number: int) -> dict:
    return {"model": "tiny", "max_tokens": 32,
            "messages": [{"role": "user", "content": f"Tell me about {number}."}]}  # fmt: skip


def asking(url: str, count: int, stop: threading.Event) -> list:
    """B's short questions, one at a time until ``count`` or ``stop``: first bytes in ms."""
    from tests.e2e.flood import ask

    found = []
    while len(found) < count and not stop.is_set():
        found.append(ask(url, "sk-b", 8, f"Question {len(found)}?").first_ms)
    return found


def as_batch(url: str, plan: dict) -> tuple:
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="sk-night", max_retries=0)
    lines = b"".join(
        json.dumps(
            {"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions", "body": body(n)}
        ).encode()
        + b"\n"  # fmt: skip
        for n in range(plan["requests"])
    )
    made = sdk.files.create(file=("lines.jsonl", io.BytesIO(lines)), purpose="batch")
    began = time.perf_counter()
    batch = sdk.batches.create(input_file_id=made.id, endpoint="/v1/chat/completions",
                               completion_window="24h")  # fmt: skip
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        questions = pool.submit(asking, url, plan["questions"], stop)
        while sdk.batches.retrieve(batch.id).status not in ("completed", "failed"):
            time.sleep(0.05)
        seconds = time.perf_counter() - began
        stop.set()
        first = questions.result()
    return plan["requests"] / seconds, first


def as_script(url: str, plan: dict) -> tuple:
    headers = {"Authorization": "Bearer sk-night"}

    def one(number: int) -> None:
        answer = requests.post(url + "/v1/chat/completions", json=body(number), headers=headers)
        answer.raise_for_status()

    stop = threading.Event()
    with ThreadPoolExecutor(1) as asker:
        questions = asker.submit(asking, url, plan["questions"], stop)
        began = time.perf_counter()
        with ThreadPoolExecutor(SLOTS) as pool:
            list(pool.map(one, range(plan["requests"])))
        seconds = time.perf_counter() - began
        stop.set()
        first = questions.result()
    return plan["requests"] / seconds, first


def measure(plan: dict, work: Path) -> dict:
    from tests.e2e.flood import ask
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    model = write_tiny_llama_gguf(work / "tiny.gguf")
    (work / "keys.toml").write_text(KEYS)
    with ExitStack() as stack:
        server = stack.enter_context(processes.endless(model, work, SLOTS))
        args = ["--keys", str(work / "keys.toml"), "--files-dir", str(work / "files")]
        started = processes.proxy("waitress", server.url, work, threads=64, workers=1,
                                  name="batches", args=args)  # fmt: skip
        proxy = stack.enter_context(processes.running(started))
        asking(proxy.url, 3, threading.Event())  # warm up
        alone = statistics.median(asking(proxy.url, plan["questions"], threading.Event()))
        answer = statistics.median(
            ask(proxy.url, "sk-night", 32, f"Tell me about {n}.").total_ms for n in range(5)
        )
        found = {"alone": alone, "bound": alone + answer / SLOTS}
        found["batch"] = as_batch(proxy.url, plan)
        found["script"] = as_script(proxy.url, plan)
    return found


def table(found: dict, plan: dict, quick: bool) -> str:
    command = f"python -m bench.batches{' --quick' if quick else ''}"
    bound = found["bound"]
    lines = [
        f"# A batch against a script{' (quick run)' if quick else ''}",
        "",
        f"`{command}`. A four-slot llama-server with the tests' tiny model; {plan['requests']} "
        "chat requests of 32 tokens, as a batch and as a script keeping four in flight; key B "
        f"asks short questions meanwhile. B alone: {found['alone']:.0f} ms; next-slot bound "
        f"{bound:.0f} ms.",
        "",
        "| way | requests a second | B's first byte p50 ms | p50 / bound |",
        "|---|---:|---:|---:|",
    ]
    for way in ("batch", "script"):
        rate, first = found[way]
        p50 = statistics.median(first) if first else float("nan")
        lines.append(f"| {way} | {rate:.1f} | {p50:.0f} | {p50 / bound:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = cli.arguments("batches", "A batch against a script, and a live key's first byte.")
    args = args.parse_args()
    plan = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as work:
        found = measure(plan, Path(work))
    cli.publish(args, "batches", table(found, plan, args.quick))


if __name__ == "__main__":
    main()
