"""Draw latency and throughput against concurrency, straight and through the proxy, as a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    NullFormatter,  # noqa: E402
    NullLocator,
)

from bench.plan import Plan  # noqa: E402

COLORS = {
    "direct": "black",
    "waitress": "tab:blue",
    "gunicorn": "tab:orange",
    "llama.cpp /v1": "tab:green",
    "litellm": "tab:red",
}
STYLES = {"synthetic": "-", "llama-server": "--"}

# (panel title, scenario family, result field, y label)
PANELS = [
    ("non-streaming latency p50", "requests", "p50_ms", "ms"),
    ("non-streaming latency p99", "requests", "p99_ms", "ms"),
    ("non-streaming throughput", "requests", "rps", "requests/s"),
    ("streams: first event p50", "streams", "ttfb_p50_ms", "ms"),
    ("streams flat out: throughput", "streams", "events_per_s", "chunks/s"),
    ("paced streams: chunk delay p50", "paced", "delay_p50_ms", "ms"),
    ("paced streams: throughput", "paced", "events_per_s", "chunks/s"),
    ("held streams: chunk delay p50", "hold", "delay_p50_ms", "ms"),
    ("held streams: proxy RSS", "hold", "rss_mb", "MB"),
]


def save(plan: Plan, results: dict, path: Path) -> None:
    figure, axes = plt.subplots(3, 3, figsize=(15, 12), constrained_layout=True)
    for ax, (title, family, name, unit) in zip(axes.flat, PANELS, strict=True):
        levels = set()
        for upstream, runs in results.items():
            scenarios = [s for s in plan.scenarios(upstream) if s.key.split()[0] == family]
            for route in runs:
                points = [(s.concurrency, runs[route][s.key].get(name)) for s in scenarios]
                points = [(x, y) for x, y in points if y is not None]
                if points:
                    ax.plot(
                        *zip(*points, strict=True),
                        STYLES[upstream],
                        color=COLORS[route],
                        marker="o",
                        label=f"{route}, {upstream}",
                    )
                    levels.update(x for x, _ in points)
        style(
            ax, title, unit, "held streams" if family == "hold" else "concurrency", sorted(levels)
        )
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=6)
    figure.suptitle(f"oai-proxy: straight to the upstream vs through the proxy ({plan.name})")
    figure.savefig(path, dpi=80)
    plt.close(figure)


def style(ax, title: str, unit: str, xlabel: str, levels: list) -> None:
    """Log axes (ratios read as distances) labelled with plain numbers."""
    ax.set_title(title)
    ax.set_xscale("log")
    ax.set_xticks(levels, [str(level) for level in levels])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(unit)
    if unit != "MB":
        ax.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:.0f}" if value >= 10 else f"{value:.2g}")
        low, high = ax.get_ylim()
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain if high < 5 * low else NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
