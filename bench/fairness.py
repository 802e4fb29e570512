"""``python -m bench.fairness``: what one key's flood costs another key's first byte.

A server with four slots and the tests' tiny model (current llama-server, its answers run to
their budget, and PowerInfer's), and the proxy under waitress with a team's keys. Key B asks
short questions (8 tokens, streamed) one at a time: alone, then while key A keeps 16 long
streams (256 tokens) in flight, in each of the ways the queue can go:

- **first come**: B asks with A's key, so the queue is first come first served, as every
  request's was before turns by key;
- **by turns**: B with its own key;
- **A capped**: A's key holds at most three slots (``max_concurrent = 3``);
- **batch and interactive**: A's key at the lowest priority, B's at the highest.

A's flood also runs alone, for its throughput. Figures: B's first byte (p50, p90) and its
ratio to the bound a fair line can reach, B alone plus one A answer over the slots (B waits
only for the next slot to free); A's answers per second in each way, against A alone.
Writes ``bench/results/fairness{,-quick}.md``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench import cli, processes

SLOTS = 4
WAYS = {  # the flood's key and the questions' key
    "first come (one key)": ("sk-a", "sk-a"),
    "by turns": ("sk-a", "sk-b"),
    "A capped at 3 slots": ("sk-capped", "sk-b"),
    "A batch, B interactive": ("sk-batch", "sk-interactive"),
}
KINDS = {"llamacpp": "current llama-server", "powerinfer": "PowerInfer"}
QUICK = {"kinds": ("llamacpp",), "count": 2, "tokens": 32, "filling": 0.5, "alone": 1.0}
FULL = {"kinds": tuple(KINDS), "count": 30, "tokens": 256, "filling": 3.0, "alone": 10.0}


def measure(kind: str, plan: dict, work: Path) -> dict:
    from tests.e2e.flood import TEAM, Flood, questions
    from tests.e2e.llama_server import LlamaServer
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    model = write_tiny_llama_gguf(work / "tiny.gguf")
    keys = work / "keys.toml"
    keys.write_text(TEAM)
    with ExitStack() as stack:
        server = stack.enter_context(
            LlamaServer(
                model,
                work / f"server-{kind}.log",
                kind=kind,
                parallel=SLOTS,
                ctx_size=SLOTS * 1024,
                extra_args=["--ignore-eos"] if kind == "llamacpp" else [],
            )
        )
        proxy = stack.enter_context(
            processes.running(
                processes.proxy(
                    "waitress",
                    server.url,
                    work,
                    threads=64,
                    workers=1,
                    name=f"fairness-{kind}",
                    args=["--keys", str(keys)],
                )
            )
        )
        count, flooded = plan["count"], {"filling": plan["filling"], "tokens": plan["tokens"]}
        questions(proxy.url, "sk-b", 3)  # warm up
        found = {"alone": [q.first_ms for q in questions(proxy.url, "sk-b", count)]}
        rates, answers, seconds = {}, {}, {}
        for way, (flooding, asking) in WAYS.items():
            with Flood(proxy.url, flooding, **flooded) as flood:
                found[way] = [q.first_ms for q in questions(proxy.url, asking, count)]
            rates[way] = flood.done / flood.seconds
            answers[way] = statistics.median(a.total_ms for a in flood.answers)
            seconds[way] = flood.seconds
        with Flood(proxy.url, "sk-a", **flooded) as alone:
            time.sleep(max(seconds["by turns"], plan["alone"]))
        rates["A alone"] = alone.done / alone.seconds
    return {"first": found, "rates": rates, "a_answer_ms": answers["by turns"]}


def section(kind: str, found: dict) -> list:
    first, rates = found["first"], found["rates"]
    alone = statistics.median(first["alone"])
    bound = alone + found["a_answer_ms"] / SLOTS

    def p(values: list, q: float) -> float:
        return sorted(values)[min(int(q * len(values)), len(values) - 1)]

    lines = [
        f"## {KINDS[kind]}",
        "",
        f"Next-slot bound: B alone ({alone:.1f} ms) + one A answer "
        f"({found['a_answer_ms']:.0f} ms) / {SLOTS} = **{bound:.0f} ms**.",
        "",
        "| B's first byte | p50 ms | p90 ms | p50 / bound | A's answers a second |",
        "|---|---:|---:|---:|---:|",
        f"| alone | {alone:.1f} | {p(first['alone'], 0.9):.1f} | | |",
    ]
    for way in WAYS:
        values = first[way]
        lines.append(
            f"| {way} | {statistics.median(values):.0f} | {p(values, 0.9):.0f} | "
            f"{statistics.median(values) / bound:.2f} | {rates[way]:.2f} |"
        )
    lines += ["", f"A's flood alone: {rates['A alone']:.2f} answers a second.", ""]
    return lines


def table(results: dict, plan: dict, quick: bool) -> str:
    command = f"python -m bench.fairness{' --quick' if quick else ''}"
    lines = [
        f"# One key's flood and another key's first byte{' (quick run)' if quick else ''}",
        "",
        f"A server with {SLOTS} slots and the tests' tiny model, the proxy under waitress with "
        f"a team's keys (`{command}`). B asks {plan['count']} short questions (8 tokens, "
        f"streamed) one at a time, alone and while A keeps 16 streams of {plan['tokens']} "
        "tokens in flight.",
        "",
    ]
    for kind, found in results.items():
        lines += section(kind, found)
    return "\n".join(lines)


def main() -> None:
    args = cli.arguments("fairness", "What one key's flood costs another key's first byte.")
    args = args.parse_args()
    plan = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as work:
        results = {kind: measure(kind, plan, Path(work)) for kind in plan["kinds"]}
    cli.publish(args, "fairness", table(results, plan, args.quick))


if __name__ == "__main__":
    main()
