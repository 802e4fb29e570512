"""``python -m bench.admission``: what the proxy's queue for slots costs on current llama-server.

Current llama-server queues requests beyond its slots by itself; the proxy's admission lets
one request per slot wait there and holds the rest back in its own queue. One run sends the
same load straight to the server, through the proxy as it ships (at most twice as many
requests in flight as the server reports slots), and through the proxy with admission out of
the way (``--slots`` far above the server's, so the server's own queue does all the
waiting), and prints each figure with the ratio of admission on to admission off. Writes
``bench/results/admission{,-quick}.md``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import cli, processes, report
from bench.loadgen import LoadGenerator
from bench.plan import Plan, Scenario
from bench.runner import job, measure

SLOTS = 4
LEVELS = (16, 64)
ROUTES = {"direct": None, "admission on": (), "admission off": ("--slots", "1024")}
FIGURES = {
    "requests": (("requests/s", "rps"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms")),
    "streams": (
        ("requests/s", "rps"),
        ("first event p50 ms", "ttfb_p50_ms"),
        ("p50 ms", "p50_ms"),
        ("chunks/s", "events_per_s"),
    ),
}


def scenarios(quick: bool) -> list:
    tokens, levels = (16, LEVELS[:1]) if quick else (32, LEVELS)
    found = [Scenario(f"requests c={c}", c, False, tokens) for c in levels]
    return found + [Scenario(f"streams c={c}", c, True, tokens * 4) for c in levels]


def run(quick: bool, work_dir: Path) -> dict:
    plan = Plan(
        name="admission",
        duration=0.2 if quick else 5.0,
        warmup=0.05 if quick else 1.0,
        levels=LEVELS,
        tokens=16,
        stream_tokens=64,
        paced_levels=(),
        paced_rate=0,
        paced_tokens=0,
        holds=(),
        hold_rate=0,
        hold_seconds=0,
        llama_slots=SLOTS,
        threads=256,
    )
    results, loadgen = {}, LoadGenerator()
    try:
        with processes.llama_server(work_dir, parallel=SLOTS) as server:
            for route, args in ROUTES.items():
                if args is None:
                    results[route] = {
                        s.key: measure(loadgen, job(s, server.url, True, plan), None)
                        for s in scenarios(quick)
                    }
                    continue
                service = processes.proxy(
                    "waitress",
                    server.url,
                    work_dir,
                    threads=256,
                    workers=1,
                    args=args,
                    name=route.replace(" ", "-"),
                )
                with processes.running(service):
                    results[route] = {
                        s.key: measure(loadgen, job(s, service.url, False, plan), None)
                        for s in scenarios(quick)
                    }
    finally:
        loadgen.close()
    return results


def markdown(results: dict, quick: bool, load_before: str) -> str:
    lines = [
        f"# Admission on current llama-server ({SLOTS} slots){' (quick)' if quick else ''}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; load generator, "
        f"llama-server and the proxy (waitress) on the same machine; load average before "
        f"the run {load_before}.",
        "",
        "| scenario | figure | direct | admission on | admission off | on / off |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario in scenarios(quick):
        for label, key in FIGURES[scenario.key.split()[0]]:
            values = [results[route][scenario.key].get(key) for route in ROUTES]
            if any(value is None for value in values):
                continue
            on, off = values[1], values[2]
            ratio = f"{on / off:.2f}" if off else "–"
            lines.append(
                f"| {scenario.key} | {label} | "
                + " | ".join(report.number(v) for v in values)
                + f" | {ratio} |"
            )
    errors = {route: sum(r["errors"] for r in by_key.values()) for route, by_key in results.items()}
    lines += ["", "Errors: " + ", ".join(f"{route} {count}" for route, count in errors.items()), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = cli.arguments("admission", __doc__.splitlines()[0]).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%X")
    missing = processes.missing("llama-server")
    if missing:
        sys.exit(f"bench.admission needs llama-server: {missing}")
    load_before = report.load_average()
    with tempfile.TemporaryDirectory(prefix="oai-proxy-bench-") as work_dir:
        results = run(args.quick, Path(work_dir))
    table = markdown(results, args.quick, load_before)
    cli.publish(args, "admission", table)
    failed = any(r["errors"] for by_key in results.values() for r in by_key.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
