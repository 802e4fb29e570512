"""``python -m bench.affinity``: what KV-cache affinity saves two real llama-servers.

Conversations the way retrieval chat sends them: a short system prompt all share, a long
document of its own in the first user message, then short follow-ups, each turn resending
the whole chat. They run at once against two llama-servers of four slots each, four ways,
the servers restarted between ways so every way starts with cold caches, over several runs:

- ``affinity``: through the proxy, as it ships (each conversation back to its replica and slot);
- ``affinity, shared load``: the same with ``--redis-url`` (a real ``redis-server``): new
  conversations balanced by the live conversations on each replica;
- ``least busy``: through the proxy with ``--affinity off``;
- ``pinned``: straight to the servers, each live conversation pinned to one server and slot
  (the floor no router can beat).

Figures: the prompt tokens the servers evaluated (their own ``llamacpp:prompt_tokens_total``),
time to first token, and what share of least busy's excess over the floor each affinity way
removes, run by run.
A second part times the fleet layer itself: one upstream against two replicas, over the
synthetic server. Writes ``bench/results/affinity{,-quick}.md``.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import cli, processes

SYSTEM = "Answer from the document, briefly."
SLOTS = 4
MAX_TOKENS = 8


@dataclass(frozen=True)
class Workload:
    conversations: int
    turns: int
    concurrency: int
    words: int  # of each conversation's document
    cost_requests: int  # non-streamed requests timed per fleet-cost variant


FULL = Workload(conversations=24, turns=6, concurrency=8, words=350, cost_requests=2000)
QUICK = Workload(conversations=4, turns=2, concurrency=4, words=60, cost_requests=20)


def document(index: int, words: int) -> str:
    from tests.e2e.tinymodel import _WORDS

    chooser = random.Random(index)
    return " ".join(chooser.choice(_WORDS) for _ in range(words))


def follow_up(turn: int) -> str:
    return f"and what about part {turn} of it?"


# -- one conversation, through the proxy or pinned --------------------------------------------


def stream_ttft(url: str, body: dict) -> tuple:
    """Send a streamed request; (seconds to the first text, the whole text)."""
    started = time.perf_counter()
    first, texts = None, []
    with requests.post(url, json=body, stream=True, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            text = (
                event["choices"][0]["delta"].get("content")
                if "choices" in event
                else event.get("content")
            )
            if text and first is None:
                first = time.perf_counter() - started
            texts.append(text or "")
    return (first if first is not None else time.perf_counter() - started), "".join(texts)


def via_proxy(proxy_url: str):
    def turn(messages: list, worker: int) -> tuple:
        return stream_ttft(
            proxy_url + "/v1/chat/completions",
            {
                "model": "tiny",
                "messages": messages,
                "stream": True,
                "max_tokens": MAX_TOKENS,
                "temperature": 0,
            },
        )

    return turn


def pinned(server_urls: list):
    """Each worker owns one server and one slot: the perfect placement."""
    from proxy.backends.servercpp.prompting import build_template
    from proxy.core.types import Message

    template = build_template("chatml", historic=None)

    def turn(messages: list, worker: int) -> tuple:
        rendered = template.render([Message(m["role"], m["content"]) for m in messages])
        server = server_urls[worker % len(server_urls)]
        return stream_ttft(
            server + "/completion",
            {
                "prompt": rendered.text,
                "stop": list(rendered.stop),
                "stream": True,
                "n_predict": MAX_TOKENS,
                "temperature": 0,
                "cache_prompt": True,
                "n_keep": -1,
                "id_slot": worker // len(server_urls),
            },
        )

    return turn


def run_conversations(turn, workload: Workload) -> dict:
    """Every conversation, ``concurrency`` at a time; each worker runs whole conversations."""
    todo = list(range(workload.conversations))
    lock, firsts, errors = threading.Lock(), [], []

    def worker(index: int) -> None:
        while True:
            with lock:
                if not todo:
                    return
                number = todo.pop(0)
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": document(number, workload.words)},
            ]
            for turn_number in range(workload.turns):
                try:
                    first, text = turn(messages, index)
                except requests.RequestException as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    break
                with lock:
                    firsts.append(first)
                messages += [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": follow_up(turn_number)},
                ]

    started = time.perf_counter()
    with ThreadPoolExecutor(workload.concurrency) as pool:
        list(pool.map(worker, range(workload.concurrency)))
    return {
        "seconds": time.perf_counter() - started,
        "errors": errors,
        "ttft_p50_ms": statistics.median(firsts) * 1000 if firsts else None,
        "turns": len(firsts),
    }


def prompt_tokens(server_url: str) -> int:
    text = requests.get(server_url + "/metrics", timeout=10).text
    return sum(
        int(float(line.split()[-1]))
        for line in text.splitlines()
        if line.startswith("llamacpp:prompt_tokens_total")
    )


WAYS = {
    "affinity": (),
    "affinity, shared load": None,
    "least busy": ("--affinity", "off"),
    "pinned": None,
}


def affinity_runs(workload: Workload, work: Path, runs: int, redis_url: str) -> list:
    """``runs`` rounds of every way; each way starts on cold servers (and an empty Redis)."""
    from tests.e2e.llama_server import LlamaServer
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    model = write_tiny_llama_gguf(work / "tiny-llama.gguf")
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                LlamaServer(
                    model,
                    work / f"llama-server-{i}.log",
                    parallel=SLOTS,
                    ctx_size=4096,
                    extra_args=["--metrics"],
                )
            )
            for i in range(2)
        ]
        return [one_run(workload, work, servers, redis_url) for _ in range(runs)]


def one_run(workload: Workload, work: Path, servers: list, redis_url: str) -> dict:
    import redis

    urls = [server.url for server in servers]
    results = {}
    for way, args in WAYS.items():
        for server in servers:  # cold caches, counters from zero
            server.stop()
            server.start()
        if way == "pinned":
            figures = run_conversations(pinned(urls), workload)
        else:
            if args is None:
                redis.Redis.from_url(redis_url).flushall()
                args = ("--redis-url", redis_url)
            service = processes.proxy(
                "waitress",
                urls[0],
                work,
                threads=64,
                workers=1,
                args=("--llama-api", *urls, "--chat-template", "chatml", *args),
                name=way.replace(" ", "-").replace(",", ""),
            )
            with processes.running(service):
                figures = run_conversations(via_proxy(service.url), workload)
        figures["prompt_tokens"] = sum(prompt_tokens(url) for url in urls)
        results[way] = figures
    return results


def spread(values: list) -> str:
    low, high = min(values), max(values)
    return f"{low:.0%} in every run" if f"{low:.0%}" == f"{high:.0%}" else f"{low:.0%}–{high:.0%}"


def captured(run: dict, way: str) -> float:
    """The share of least busy's excess over the pinned floor that ``way`` removes."""
    floor, spread = run["pinned"]["prompt_tokens"], run["least busy"]["prompt_tokens"]
    if spread == floor:
        return float("nan")
    return (spread - run[way]["prompt_tokens"]) / (spread - floor)


# -- the fleet layer's own cost ------------------------------------------------------------------


def fleet_cost(workload: Workload, work: Path, redis_url: str) -> dict:
    with ExitStack() as stack:
        folders = [work / f"synthetic-{i}" for i in range(2)]
        for folder in folders:
            folder.mkdir(exist_ok=True)
        upstreams = [
            stack.enter_context(processes.running(processes.synthetic(folder)))
            for folder in folders
        ]
        replicas = ("--llama-api", upstreams[0].url, upstreams[1].url)
        ways = {
            "one upstream": (),
            "two replicas": replicas,
            "two replicas, shared load": (*replicas, "--redis-url", redis_url),
        }
        services = {
            way: stack.enter_context(
                processes.running(
                    processes.proxy(
                        "waitress",
                        upstreams[0].url,
                        work,
                        threads=16,
                        workers=1,
                        args=args,
                        name=way.replace(" ", "-").replace(",", ""),
                    )
                )
            )
            for way, args in ways.items()
        }
        rounds = {way: [] for way in ways}
        for _ in range(3):  # interleaved, so drift on the machine touches every way alike
            for way, service in services.items():
                rounds[way].append(processes.p50_ms(service.url, workload.cost_requests // 3))
    return {way: statistics.median(values) for way, values in rounds.items()}


def fleet_layer_us(count: int) -> dict:
    """Microseconds the fleet adds to a request, in process: routing, defaults, placement."""
    from proxy.backends.base import Backend
    from proxy.config.catalog import Catalog, ModelSpec, UpstreamSpec
    from proxy.core.answers import Completion, Usage
    from proxy.core.types import GenerationRequest, Message
    from proxy.fleet.fleet import Fleet
    from proxy.fleet.health import Rotation
    from proxy.fleet.replica import Replica
    from proxy.fleet.servedmodel import ServedModel

    answer = Completion("hi", "stop", Usage(10, 2), slot=0)

    class Instant(Backend):
        def complete(self, request):
            return answer

        def load(self):
            return 0, None

        def describe(self):
            return {}

        def finds_slots(self):
            return False

    urls = ("http://10.0.0.1:8080", "http://10.0.0.2:8080")
    spec = ModelSpec("tiny", upstreams=tuple(UpstreamSpec(url) for url in urls))
    fleet = Fleet(
        Catalog((spec,), "tiny", catch_all=True),
        [
            ServedModel(
                spec, tuple(Replica(url, Instant()) for url in urls), Rotation(lambda name: True)
            )
        ],
    )
    request = GenerationRequest(
        model="tiny",
        messages=(
            Message("system", SYSTEM),
            Message("user", document(0, 350)),
            Message("user", "more?"),
        ),
    )
    timings = {}
    for way, call in (("backend alone", Instant().complete), ("through the fleet", fleet.complete)):
        for _ in range(count // 10):
            call(request)
        started = time.perf_counter()
        for _ in range(count):
            call(request)
        timings[way] = (time.perf_counter() - started) / count * 1e6
    return timings


# -- report ---------------------------------------------------------------------------------------


def table(runs: list, cost: dict, workload: Workload, quick: bool) -> str:
    lines = [
        f"# KV-cache affinity on two llama-servers ({SLOTS} slots each)"
        f"{' (quick)' if quick else ''}",
        "",
        f"{workload.conversations} conversations of {workload.turns} turns at concurrency "
        f"{workload.concurrency}; each opens with a shared system prompt and a document of "
        f"{workload.words} words, then short follow-ups. {len(runs)} runs of four ways, each "
        f"way on restarted servers: through the proxy with affinity, with affinity and the "
        f"load shared through Redis (`--redis-url`), with `--affinity off` (least busy), and "
        f"straight to the servers with each conversation pinned to a server and slot (the "
        f"floor). `python -m bench.affinity{' --quick' if quick else ''}`.",
        "",
        "Prompt tokens the servers evaluated, and the share of least busy's excess over the "
        "floor each affinity way removes:",
        "",
        "| run | affinity | shared load | least busy | pinned | affinity removes | "
        "shared load removes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for number, run in enumerate(runs, 1):
        tokens = " | ".join(str(run[way]["prompt_tokens"]) for way in WAYS)
        lines.append(
            f"| {number} | {tokens} | {captured(run, 'affinity'):.0%} | "
            f"{captured(run, 'affinity, shared load'):.0%} |"
        )
    lines += [
        "",
        "| way | time to first token p50 ms (median of runs) | wall s | errors |",
        "|---|---:|---:|---:|",
    ]
    for way in WAYS:
        ttft = statistics.median(run[way]["ttft_p50_ms"] for run in runs)
        wall = statistics.median(run[way]["seconds"] for run in runs)
        errors = sum(len(run[way]["errors"]) for run in runs)
        lines.append(f"| {way} | {ttft:.1f} | {wall:.2f} | {errors} |")
    shared = [captured(run, "affinity, shared load") for run in runs]
    alone = [captured(run, "affinity") for run in runs]
    lines += [
        "",
        f"Share of least busy's excess removed, with the load shared: "
        f"{spread(shared)} (runs: {', '.join(f'{value:.0%}' for value in shared)}); by "
        f"hashing alone: {spread(alone)} ({', '.join(f'{value:.0%}' for value in alone)}).",
        "",
        "| fleet layer (synthetic upstream, non-streamed, c=1) | p50 ms |",
        "|---|---|",
    ]
    lines += [f"| {way} | {value:.3f} |" for way, value in cost.items() if way != "layer"]
    layer = cost["layer"]
    lines += [
        "",
        f"Two replicas add {cost['two replicas'] - cost['one upstream']:+.3f} ms at "
        f"the median over one upstream (on two shared cores it moves by ±0.2 ms from "
        f"run to run); sharing the load through Redis (two round trips a request) "
        f"{cost['two replicas, shared load'] - cost['two replicas']:+.3f} ms more. In "
        f"process, the fleet layer (routing, defaults, conversation key, placement, slot "
        f"memory) costs {layer['through the fleet'] - layer['backend alone']:.1f} µs a "
        f"request with a {workload.words}-word document.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = cli.arguments("affinity", "What KV-cache affinity saves real servers.")
    parser.add_argument("--runs", type=int, help="rounds of every way (default 5; quick: 1)")
    args = parser.parse_args()
    missing = processes.missing("llama-server")
    if missing:
        sys.exit(f"bench.affinity needs llama-server: {missing}")
    if shutil.which("redis-server") is None:
        sys.exit(
            "bench.affinity needs redis-server for the shared load: apt-get install redis-server"
        )
    workload = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-affinity-") as work, ExitStack() as stack:
        redis_process, redis_url = processes.redis_server(Path(work))
        stack.callback(redis_process.kill)
        runs = affinity_runs(workload, Path(work), args.runs or (1 if args.quick else 5), redis_url)
        cost = {
            **fleet_cost(workload, Path(work), redis_url),
            "layer": fleet_layer_us(workload.cost_requests * 10),
        }
    errors = [error for run in runs for way in run.values() for error in way["errors"]]
    report = table(runs, cost, workload, args.quick)
    cli.publish(args, "affinity", report)
    if errors:
        sys.exit(f"{len(errors)} requests failed, e.g. {errors[0]}")


if __name__ == "__main__":
    main()
