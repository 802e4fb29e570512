"""``python -m bench.fleet``: what the fleet's KV-cache affinity saves two real llama-servers.

Two llama-servers of four slots serve retrieval-style chats: a system prompt every
conversation shares, a long document of its own in the first user message, then short
follow-ups, each turn resending the whole chat. The same conversations run three ways, the
servers restarted before each so every way starts with cold caches and zeroed counters:

- ``affinity``: through the proxy as it ships (a conversation goes back to its replica and slot);
- ``least busy``: through the proxy with ``--affinity off``;
- ``floor (pinned)``: straight to the servers' ``/completion`` with the prompt the proxy would
  send, each live conversation pinned to one server and one slot, which no router can beat.

The figure that matters is the prompt tokens the servers evaluated (their own
``llamacpp:prompt_tokens_total``): affinity should remove most of least busy's excess over the
floor. A second part times what the fleet layer adds to a request: the proxy in front of one
synthetic upstream against the proxy in front of two. Writes ``bench/results/fleet{,-quick}.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Optional

import requests

from bench import plan, processes, report
from bench.__main__ import RESULTS
from bench.loadgen import LoadGenerator
from bench.runner import job, measure

logger = logging.getLogger("bench")

SLOTS = 4
# With --parallel given, every slot gets its own 2048 tokens (the tiny model's training
# context). The longest full-size conversation needs under 1,000; context shift is off, so
# a prompt that did not fit would be an error, and errors fail the run.
CTX_SIZE = SLOTS * 2048
MAX_TOKENS = 8
SYSTEM = "you are a good model: tell the user what the text says, in very few words"
FOLLOW_UPS = ("what is the first thing it says", "who is in it", "where was it", "when was it",
              "why did they go", "what came next")
WAYS = {"affinity": ("--affinity", "on"), "least busy": ("--affinity", "off"),
        "floor (pinned)": None}
COST_WAYS = ("one upstream", "two replicas")
HEADROOM_TARGET = 0.75
COST_TARGET_MS = 0.1


@dataclass(frozen=True)
class Workload:
    """Sizes of a run; ``QUICK`` only proves the bench still works."""

    conversations: int
    turns: int
    concurrency: int
    words: int  # of each conversation's document: about one token a word with the tiny model
    cost_rounds: int  # of the fleet-cost part, alternating its two proxies
    cost_seconds: float  # measured per round


FULL = Workload(conversations=24, turns=6, concurrency=8, words=400, cost_rounds=3,
                cost_seconds=2.0)
QUICK = Workload(conversations=6, turns=3, concurrency=4, words=100, cost_rounds=1,
                 cost_seconds=0.5)


def document(number: int, words: int) -> str:
    """Conversation ``number``'s document: words the tiny model has whole, one token each."""
    from tests.e2e.tinymodel import _WORDS

    chooser = random.Random(number)
    return " ".join(chooser.choice(_WORDS) for _ in range(words))


def opening(number: int, words: int) -> list:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": document(number, words)}]


# -- one turn -------------------------------------------------------------------------------------

def stream(url: str, body: dict) -> tuple:
    """Send a streamed request: (seconds to the first text, the whole text).

    An answer with no text at all counts its whole time. An error event raises, like an
    HTTP error, so the turn counts as failed.
    """
    started = time.perf_counter()
    first, texts = None, []
    with requests.post(url, json=body, stream=True, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                raise RuntimeError(f"error event: {event['error']}")
            text = event["choices"][0]["delta"].get("content") if "choices" in event \
                else event.get("content")
            if text and first is None:
                first = time.perf_counter() - started
            texts.append(text or "")
    return (first if first is not None else time.perf_counter() - started), "".join(texts)


def through_proxy(proxy_url: str) -> Callable:
    def turn(messages: list, worker: int) -> tuple:
        return stream(proxy_url + "/v1/chat/completions", {
            "model": "tiny", "messages": messages, "stream": True, "max_tokens": MAX_TOKENS,
            "temperature": 0})
    return turn


def pinned(server_urls: list) -> Callable:
    """Worker i owns slot i // 2 of server i % 2: every turn lands on its own cache."""
    from proxy.prompting import build_template
    from proxy.types import Message

    template = build_template("chatml", historic=None)

    def turn(messages: list, worker: int) -> tuple:
        rendered = template.render([Message(m["role"], m["content"]) for m in messages])
        server = server_urls[worker % len(server_urls)]
        return stream(server + "/completion", {
            "prompt": rendered.text, "stop": list(rendered.stop), "stream": True,
            "n_predict": MAX_TOKENS, "temperature": 0, "cache_prompt": True, "n_keep": -1,
            "id_slot": worker // len(server_urls)})
    return turn


# -- the conversations ----------------------------------------------------------------------------

def converse(turn: Callable, workload: Workload) -> dict:
    """Every conversation, ``concurrency`` workers each taking whole ones from one queue."""
    todo = queue.SimpleQueue()
    for number in range(workload.conversations):
        todo.put(number)
    lock, firsts, errors = threading.Lock(), [], []

    def worker(index: int) -> None:
        while True:
            try:
                number = todo.get_nowait()
            except queue.Empty:
                return
            messages = opening(number, workload.words)
            for follow_up in FOLLOW_UPS[:workload.turns]:
                try:
                    first, text = turn(messages, index)
                except (requests.RequestException, RuntimeError, ValueError) as exc:
                    with lock:
                        errors.append(f"conversation {number}: {type(exc).__name__}: {exc}")
                    break  # the rest of this conversation would build on a missing answer
                with lock:
                    firsts.append(first)
                messages = [*messages, {"role": "assistant", "content": text},
                            {"role": "user", "content": follow_up}]

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(workload.concurrency)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return {"wall_s": time.perf_counter() - started, "turns": len(firsts), "errors": errors,
            "ttft_p50_ms": statistics.median(firsts) * 1000 if firsts else None}


def prompt_tokens(server_url: str) -> int:
    """The prompt tokens a server evaluated since it started (cache hits not included)."""
    metrics = requests.get(server_url + "/metrics", timeout=10)
    metrics.raise_for_status()
    return sum(int(float(line.split()[-1])) for line in metrics.text.splitlines()
               if line.startswith("llamacpp:prompt_tokens_total"))


@contextlib.contextmanager
def llama_servers(work_dir: Path) -> Iterator[list]:
    """Two llama-servers with the tiny model, restartable in place (their URLs stay)."""
    from tests.e2e.llama_server import LlamaServer
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    model = write_tiny_llama_gguf(work_dir / "tiny-llama.gguf")
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(LlamaServer(
            model, work_dir / f"llama-server-{i}.log", parallel=SLOTS, ctx_size=CTX_SIZE,
            extra_args=["--metrics"])) for i in range(2)]


def run_way(way: str, servers: list, workload: Workload, work_dir: Path) -> dict:
    """One way from cold: restart the servers, converse, read their counters."""
    for server in servers:
        server.stop()
        server.start()
    urls = [server.url for server in servers]
    logger.info("%s: %d conversations of %d turns at concurrency %d", way,
                workload.conversations, workload.turns, workload.concurrency)
    if WAYS[way] is None:
        figures = converse(pinned(urls), workload)
    else:
        service = processes.proxy("waitress", urls, work_dir, threads=64, workers=1,
                                  args=("--chat-template", "chatml", *WAYS[way]),
                                  name=way.replace(" ", "-"))
        with processes.running(service):
            figures = converse(through_proxy(service.url), workload)
    return {**figures, "prompt_tokens": sum(prompt_tokens(url) for url in urls)}


# -- the fleet layer's cost -----------------------------------------------------------------------

def fleet_cost(workload: Workload, work_dir: Path) -> dict:
    """p50 ms of non-streamed completions at concurrency 1, one upstream against two replicas.

    The rounds alternate between the two proxies, so drift on the machine touches both alike.
    """
    timing = replace(plan.QUICK, duration=workload.cost_seconds,
                     warmup=min(1.0, workload.cost_seconds))
    scenario = plan.Scenario("requests c=1", 1, False, timing.tokens)
    rounds = {way: [] for way in COST_WAYS}
    loadgen = LoadGenerator()
    try:
        with contextlib.ExitStack() as stack:
            upstreams = [stack.enter_context(processes.running(
                processes.synthetic(work_dir, f"synthetic-{i}"))).url for i in range(2)]
            proxies = {way: stack.enter_context(processes.running(processes.proxy(
                "waitress", upstreams[:count], work_dir, threads=16, workers=1,
                name=way.replace(" ", "-")))) for count, way in enumerate(COST_WAYS, 1)}
            for _ in range(workload.cost_rounds):
                for way, service in proxies.items():
                    result = measure(loadgen, job(scenario, "proxy", service.url, timing), None)
                    if result["errors"]:
                        raise RuntimeError(f"fleet cost, {way}: {result['errors']} errors, "
                                           f"e.g. {result['error_sample']}")
                    rounds[way].append(result["p50_ms"])
    finally:
        loadgen.close()
    return {way: statistics.median(values) for way, values in rounds.items()}


# -- report ---------------------------------------------------------------------------------------

def headroom(runs: dict) -> Optional[float]:
    """Share of least busy's excess over the floor that affinity removes (1 = all of it)."""
    spread, placed = runs["least busy"]["prompt_tokens"], runs["affinity"]["prompt_tokens"]
    floor = runs["floor (pinned)"]["prompt_tokens"]
    return (spread - placed) / (spread - floor) if spread != floor else None


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def markdown(runs: dict, cost: dict, workload: Workload, quick: bool, load_before: str,
             took: float) -> str:
    captured = headroom(runs)
    affinity_ttft, busy_ttft = (runs[way]["ttft_p50_ms"] for way in ("affinity", "least busy"))
    faster = None not in (affinity_ttft, busy_ttft) and affinity_ttft < busy_ttft
    added = cost["two replicas"] - cost["one upstream"]
    lines = [
        f"# Fleet: KV-cache affinity on two llama-servers{' (quick)' if quick else ''}", "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; two llama-servers (tiny "
        f"model, `--parallel {SLOTS} --metrics --ctx-size {CTX_SIZE}`, restarted before each "
        f"way), the proxy (waitress) and the client on the same machine. Took {took:.0f} s; "
        f"the load average before it was {load_before}.", "",
        f"{workload.conversations} conversations of {workload.turns} turns at concurrency "
        f"{workload.concurrency}: a system prompt they share, a {workload.words}-word document "
        f"each, then short follow-ups; every turn streams the whole chat, "
        f"{MAX_TOKENS} tokens at temperature 0.", "",
        "| way | prompt tokens evaluated | time to first token p50 ms | wall s | turns | errors |",
        "|---|---:|---:|---:|---:|---:|"]
    for way, run in runs.items():
        lines.append(f"| {way} | {run['prompt_tokens']} | {report.number(run['ttft_p50_ms'])} "
                     f"| {run['wall_s']:.1f} | {run['turns']} | {len(run['errors'])} |")
    lines += [
        "", "| target | result | |", "|---|---|---|",
        f"| affinity removes ≥ {HEADROOM_TARGET:.0%} of least busy's excess prompt tokens over "
        f"the floor | " + ("no excess to remove | |" if captured is None else
                           f"{captured:.0%} | {verdict(captured >= HEADROOM_TARGET)} |"),
        f"| affinity's time to first token p50 below least busy's | "
        f"{report.number(affinity_ttft)} vs {report.number(busy_ttft)} ms | {verdict(faster)} |",
        "", "## Cost of the fleet layer", "",
        f"The proxy in front of one synthetic upstream, and in front of two as replicas: "
        f"non-streamed completions at concurrency 1, {workload.cost_rounds} round(s) of "
        f"{workload.cost_seconds:g} s each, alternating; the median of the rounds' p50.", "",
        "| proxy | p50 ms |", "|---|---:|",
        *(f"| {way} | {cost[way]:.3f} |" for way in COST_WAYS),
        f"| two replicas − one upstream | {added:+.3f} ({verdict(abs(added) <= COST_TARGET_MS)}: "
        f"within {COST_TARGET_MS:g} ms) |"]
    errors = [error for run in runs.values() for error in run["errors"]]
    lines += ["", "## Errors", "", *([f"- {error}" for error in errors] or ["None."])]
    return "\n".join(lines) + "\n"


def run(workload: Workload, work_dir: Path) -> tuple:
    with llama_servers(work_dir) as servers:
        runs = {way: run_way(way, servers, workload, work_dir) for way in WAYS}
    logger.info("cost of the fleet layer")
    return runs, fleet_cost(workload, work_dir)


def dump_logs(work_dir: Path) -> None:
    """The servers' side of a crash, before their folder is deleted."""
    for log in sorted(work_dir.glob("*.log")):
        logger.error("%s:\n%s", log.name, log.read_text(errors="replace")[-2000:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%X")
    missing = processes.missing("llama-server")
    if missing:
        sys.exit(f"bench.fleet needs llama-server: {missing}")
    workload = QUICK if args.quick else FULL
    started, load_before = time.monotonic(), report.load_average()
    with tempfile.TemporaryDirectory(prefix="oai-proxy-bench-") as work_dir:
        try:
            runs, cost = run(workload, Path(work_dir))
        except Exception:
            dump_logs(Path(work_dir))
            raise
    table = markdown(runs, cost, workload, args.quick, load_before, time.monotonic() - started)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"fleet{'-quick' if args.quick else ''}.md").write_text(table)
    sys.stdout.write(table)
    return 1 if any(run["errors"] for run in runs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
