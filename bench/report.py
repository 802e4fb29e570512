"""Turn a run's results into the Markdown table, the targets' verdicts and the list of failures."""
from __future__ import annotations

import os
import platform
import time
from typing import Callable, Optional

from bench.plan import PATHS, REQUIRED_HOLD, Plan

PROXIES = PATHS[1:]


def per_request_ms(result: dict) -> Optional[float]:
    if "cpu_s" not in result or not result["all_requests"]:
        return None
    return result["cpu_s"] / result["all_requests"] * 1000


def per_chunk_us(result: dict) -> Optional[float]:
    if "cpu_s" not in result or not result["all_events"]:
        return None
    return result["cpu_s"] / result["all_events"] * 1e6


def field(name: str) -> Callable[[dict], Optional[float]]:
    return lambda result: result.get(name)


# (label, value, how the proxy compares: "ratio" of rates, "added" ms, or nothing)
FIGURES = {
    "requests": [("requests/s", field("rps"), "ratio"), ("p50 ms", field("p50_ms"), "added"),
                 ("p99 ms", field("p99_ms"), "added"),
                 ("proxy CPU ms/request", per_request_ms, None)],
    "streams": [("first event p50 ms", field("ttfb_p50_ms"), "added"),
                ("first event p99 ms", field("ttfb_p99_ms"), "added"),
                ("chunks/s", field("events_per_s"), "ratio"),
                ("proxy CPU µs/chunk", per_chunk_us, None)],
    "paced": [("chunks/s", field("events_per_s"), "ratio"),
              ("chunk delay p50 ms", field("delay_p50_ms"), "added"),
              ("chunk delay p99 ms", field("delay_p99_ms"), "added"),
              ("proxy CPU µs/chunk", per_chunk_us, None)],
    "hold": [("streams open at once", field("peak_open"), None),
             ("errors", field("errors"), None),
             ("first event p50 ms", field("ttfb_p50_ms"), "added"),
             ("chunk delay p50 ms", field("delay_p50_ms"), "added"),
             ("proxy RSS MB", field("rss_mb"), None)],
}


def number(value: Optional[float]) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 \
        else f"{value:.2f}"


def versus(kind: Optional[str], proxied: Optional[float], direct: Optional[float]) -> str:
    if kind is None or proxied is None or direct is None:
        return ""
    if kind == "ratio":
        return f"{proxied / direct:.0%}" if direct else ""
    return f"{proxied - direct:+.2f} ms"


def table(plan: Plan, upstream: str, results: dict) -> list:
    heading = "| scenario | figure | direct | " + " | ".join(
        f"{path} | vs direct" for path in PROXIES) + " |"
    lines = [heading, "|---|---|---:|" + "---:|---:|" * len(PROXIES)]
    for scenario in plan.scenarios(upstream):
        family = scenario.key.split()[0]
        for row, (label, value, kind) in enumerate(FIGURES[family]):
            direct = value(results["direct"][scenario.key])
            cells = [scenario.key if row == 0 else "", label, number(direct)]
            for path in PROXIES:
                proxied = value(results[path][scenario.key])
                cells += [number(proxied), versus(kind, proxied, direct)]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets(plan: Plan, results: dict) -> list:
    """The issue's targets, judged on the synthetic upstream."""
    runs = results.get("synthetic")
    if runs is None:
        return ["(the synthetic upstream was not measured)"]
    checks = [
        ("non-streaming p50 added at concurrency 1 ≤ 1 ms", "requests c=1", "p50_ms",
         lambda d, p: (p - d <= 1.0, f"{p - d:+.2f} ms")),
        ("time to first event added, p50 at concurrency 1 ≤ 2 ms", "streams c=1",
         "ttfb_p50_ms", lambda d, p: (p - d <= 2.0, f"{p - d:+.2f} ms")),
        (f"streaming throughput ≥ 80% of direct at 64 streams of {plan.paced_rate:g} tokens/s",
         "paced c=64", "events_per_s", lambda d, p: (p / d >= 0.8, f"{p / d:.0%}")),
        ("the same, upstream flat out (a ceiling, not a target)", "streams c=64",
         "events_per_s", lambda d, p: (None, f"{p / d:.0%}")),
        ("latency added per chunk, p50 of paced streams at concurrency 1", "paced c=1",
         "delay_p50_ms", lambda d, p: (None, f"{p - d:+.2f} ms")),
    ]
    lines = ["| target | " + " | ".join(PROXIES) + " |", "|---|" + "---|" * len(PROXIES)]
    for label, key, name, judge in checks:
        cells = [label]
        for path in PROXIES:
            direct, proxied = runs["direct"].get(key, {}).get(name), runs[path].get(key, {})
            if direct is None or proxied.get(name) is None:
                cells.append("–")
                continue
            met, shown = judge(direct, proxied[name])
            cells.append(shown + ("" if met is None else " met" if met else " **missed**"))
        lines.append("| " + " | ".join(cells) + " |")
    cells = [f"{REQUIRED_HOLD} concurrent streams, zero errors"]
    for path in PROXIES:
        result = runs[path].get(f"hold {REQUIRED_HOLD}")
        if result is None:
            cells.append("–")
            continue
        met = result["errors"] == 0 and result["peak_open"] == REQUIRED_HOLD
        cells.append(f"{result['peak_open']} open, {result['errors']} errors"
                     + (" met" if met else " **missed**"))
    lines.append("| " + " | ".join(cells) + " |")
    return lines


def failures(plan: Plan, results: dict) -> list:
    """Scenarios where a request failed although none may."""
    found = []
    for upstream, runs in results.items():
        for scenario in plan.scenarios(upstream):
            for path in PATHS:
                result = runs[path][scenario.key]
                if result["errors"] and scenario.zero_errors_required:
                    found.append(f"{upstream} {path} {scenario.key}: {result['errors']} "
                                 f"errors, e.g. {result['error_sample']}")
    return found


def load_average() -> str:
    """The machine's 1-minute load before the run: how busy it already was."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


def markdown(plan: Plan, results: dict, took: float, load: str) -> str:
    lines = [f"# oai-proxy bench ({plan.name})", "",
             f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, {platform.system()}; load generator, "
             f"upstream and proxy on the same machine. Took {took:.0f} s; the load average "
             f"before it was {load}.", "",
             f"Proxy: `--threads {plan.threads}`; gunicorn `--workers {plan.workers}` "
             f"(gthread). {plan.duration:g} s measured per scenario after "
             f"{plan.warmup:g} s of warm-up. Non-streaming answers are {plan.tokens} tokens; "
             f"streams {plan.stream_tokens} tokens flat out; paced streams "
             f"{plan.paced_tokens} tokens at {plan.paced_rate:g}/s; held streams "
             f"{plan.hold_rate:g} tokens/s for {plan.hold_seconds:g} s.", "",
             "## Targets (synthetic upstream)", "", *targets(plan, results)]
    for upstream, runs in results.items():
        lines += ["", f"## {upstream}", "", *table(plan, upstream, runs)]
    errors = [f"- {upstream} {path} {key}: {result['errors']} errors, e.g. "
              f"`{result['error_sample']}`"
              for upstream, runs in results.items() for path, by_key in runs.items()
              for key, result in by_key.items() if result["errors"]]
    lines += ["", "## Errors", "", *(errors or ["None."])]
    return "\n".join(lines) + "\n"
