"""Turn a run's results into the Markdown table, the targets' verdicts and the list of failures."""

from __future__ import annotations

import os
import platform
import time
from typing import Callable, Optional

from bench.plan import PATHS, Plan

PROXIES = PATHS[1:]


def per_request_ms(result: dict) -> Optional[float]:
    if "cpu_s" not in result or not result["all_requests"]:
        return None
    return result["cpu_s"] / result["all_requests"] * 1000


def per_chunk_us(result: dict) -> Optional[float]:
    if "cpu_s" not in result or not result["all_events"]:
        return None
    return result["cpu_s"] / result["all_events"] * 1e6


def per_stream_kb(result: dict) -> Optional[float]:
    """What each open stream added to the proxy's memory, on top of what it held before."""
    if "rss_mb" not in result or not result.get("peak_open"):
        return None
    return (result["rss_mb"] - result["rss_before_mb"]) * 1024 / result["peak_open"]


def field(name: str) -> Callable[[dict], Optional[float]]:
    return lambda result: result.get(name)


# (label, value, how the proxy compares: "ratio" of rates, "added" ms, or nothing)
FIGURES = {
    "requests": [
        ("requests/s", field("rps"), "ratio"),
        ("p50 ms", field("p50_ms"), "added"),
        ("p99 ms", field("p99_ms"), "added"),
        ("proxy CPU ms/request", per_request_ms, None),
    ],
    "streams": [
        ("first event p50 ms", field("ttfb_p50_ms"), "added"),
        ("first event p99 ms", field("ttfb_p99_ms"), "added"),
        ("chunks/s", field("events_per_s"), "ratio"),
        ("proxy CPU µs/chunk", per_chunk_us, None),
    ],
    "paced": [
        ("chunks/s", field("events_per_s"), "ratio"),
        ("chunk delay p50 ms", field("delay_p50_ms"), "added"),
        ("chunk delay p99 ms", field("delay_p99_ms"), "added"),
        ("proxy CPU µs/chunk", per_chunk_us, None),
    ],
    "hold": [
        ("streams open at once", field("peak_open"), None),
        ("errors", field("errors"), None),
        ("first event p50 ms", field("ttfb_p50_ms"), "added"),
        ("chunk delay p50 ms", field("delay_p50_ms"), "added"),
        ("proxy RSS MB", field("rss_mb"), None),
        ("proxy RSS KB per open stream", per_stream_kb, None),
    ],
}


def number(value: Optional[float]) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return (
        f"{value:.0f}"
        if abs(value) >= 100
        else f"{value:.1f}"
        if abs(value) >= 10
        else f"{value:.2f}"
    )


def versus(kind: Optional[str], proxied: Optional[float], direct: Optional[float]) -> str:
    if kind is None or proxied is None or direct is None:
        return ""
    if kind == "ratio":
        return f"{proxied / direct:.0%}" if direct else ""
    return f"{proxied - direct:+.2f} ms"


def table(plan: Plan, upstream: str, results: dict) -> list:
    """Every figure of every path to ``upstream``, each next to how it compares to direct."""
    others = [path for path in results if path != "direct"]
    heading = (
        "| scenario | figure | direct | "
        + " | ".join(f"{path} | vs direct" for path in others)
        + " |"
    )
    lines = [heading, "|---|---|---:|" + "---:|---:|" * len(others)]
    for scenario in plan.scenarios(upstream):
        family = scenario.key.split()[0]
        for row, (label, value, kind) in enumerate(FIGURES[family]):
            direct = value(results["direct"][scenario.key])
            cells = [scenario.key if row == 0 else "", label, number(direct)]
            for path in others:
                proxied = value(results[path][scenario.key])
                cells += [number(proxied), versus(kind, proxied, direct)]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


# (target, upstream, scenario, judge(direct figures, proxied figures) -> (met or None, shown))
TARGETS = [
    (
        "time to first event added, p50 at concurrency 1 ≤ 1.0 ms",
        "synthetic",
        "streams c=1",
        lambda d, p: _at_most(p["ttfb_p50_ms"] - d["ttfb_p50_ms"], 1.0, "{:+.2f} ms"),
    ),
    (
        "proxy CPU per streamed chunk, flat out (64 streams) ≤ 15 µs",
        "synthetic",
        "streams c=64",
        lambda d, p: _at_most(per_chunk_us(p), 15, "{:.1f} µs"),
    ),
    (
        "proxy CPU per non-streamed request at concurrency 1 ≤ 0.4 ms",
        "synthetic",
        "requests c=1",
        lambda d, p: _at_most(per_request_ms(p), 0.4, "{:.2f} ms"),
    ),
    (
        "non-streamed requests/s at concurrency 16 ≥ 2,000",
        "synthetic",
        "requests c=16",
        lambda d, p: _at_least(p["rps"], 2000, "{:.0f}/s"),
    ),
    (
        "llama-server: requests/s at concurrency 16 ≥ 95% of direct",
        "llama-server",
        "requests c=16",
        lambda d, p: _at_least(p["rps"] / d["rps"], 0.95, "{:.0%}"),
    ),
    (
        "llama-server: streamed chunks/s at 64 streams ≥ 90% of direct",
        "llama-server",
        "streams c=64",
        lambda d, p: _at_least(p["events_per_s"] / d["events_per_s"], 0.9, "{:.0%}"),
    ),
    (
        "streaming throughput ≥ 80% of direct at 64 paced streams",
        "synthetic",
        "paced c=64",
        lambda d, p: _at_least(p["events_per_s"] / d["events_per_s"], 0.8, "{:.0%}"),
    ),
]


def _at_most(value: Optional[float], limit: float, shown: str) -> tuple:
    return (None, "–") if value is None else (value <= limit, shown.format(value))


def _at_least(value: Optional[float], limit: float, shown: str) -> tuple:
    return (None, "–") if value is None else (value >= limit, shown.format(value))


def targets(plan: Plan, results: dict) -> list:
    """The performance targets, judged for the proxy under each server."""
    lines = ["| target | " + " | ".join(PROXIES) + " |", "|---|" + "---|" * len(PROXIES)]
    for label, upstream, key, judge in TARGETS:
        runs = results.get(upstream)
        cells = [label]
        for path in PROXIES:
            if runs is None or key not in runs["direct"]:
                cells.append("not measured")
                continue
            met, shown = judge(runs["direct"][key], runs[path][key])
            cells.append(shown + ("" if met is None else " met" if met else " **missed**"))
        lines.append("| " + " | ".join(cells) + " |")
    held = max(plan.holds)
    cells = [f"{held} held streams: zero errors; memory per open stream"]
    for path in PROXIES:
        result = results.get("synthetic", {}).get(path, {}).get(f"hold {held}")
        if result is None:
            cells.append("not measured")
            continue
        met = result["errors"] == 0 and result["peak_open"] == held
        cells.append(
            f"{result['peak_open']} open, {result['errors']} errors, "
            f"{number(per_stream_kb(result))} KB each" + (" met" if met else " **missed**")
        )
    lines.append("| " + " | ".join(cells) + " |")
    return lines


def failures(plan: Plan, results: dict) -> list:
    """Scenarios where a request failed although none may."""
    found = []
    for upstream, runs in results.items():
        for scenario in plan.scenarios(upstream):
            for path in runs:
                result = runs[path][scenario.key]
                if result["errors"] and scenario.zero_errors_required:
                    found.append(
                        f"{upstream} {path} {scenario.key}: {result['errors']} "
                        f"errors, e.g. {result['error_sample']}"
                    )
    return found


def load_average() -> str:
    """The machine's 1-minute load before the run: how busy it already was."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


def reference_loop() -> float:
    """CPU seconds of a fixed Python loop: on a shared machine whose host is busy it takes
    up to twice as long, and every figure of the run moves with it."""
    started = time.process_time()
    sum(range(30_000_000))
    return time.process_time() - started


def markdown(plan: Plan, results: dict, took: float, load: str) -> str:
    lines = [
        f"# oai-proxy bench ({plan.name})",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()}; load generator, "
        f"upstream and proxy on the same machine. Took {took:.0f} s; the load average "
        f"before it was {load}.",
        "",
        f"Proxy: `--threads {plan.threads}`; gunicorn `--workers {plan.workers}` "
        f"(gthread). {plan.duration:g} s measured per scenario after "
        f"{plan.warmup:g} s of warm-up. Non-streaming answers are {plan.tokens} tokens; "
        f"streams {plan.stream_tokens} tokens flat out; paced streams "
        f"{plan.paced_tokens} tokens at {plan.paced_rate:g}/s; held streams "
        f"{plan.hold_rate:g} tokens/s for {plan.hold_seconds:g} s.",
        "",
        "## Targets",
        "",
        *targets(plan, results),
    ]
    for upstream, runs in results.items():
        lines += ["", f"## {upstream}", "", *table(plan, upstream, runs)]
    errors = [
        f"- {upstream} {path} {key}: {result['errors']} errors, e.g. `{result['error_sample']}`"
        for upstream, runs in results.items()
        for path, by_key in runs.items()
        for key, result in by_key.items()
        if result["errors"]
    ]
    lines += ["", "## Errors", "", *(errors or ["None."])]
    return "\n".join(lines) + "\n"
