"""``python -m bench.managed``: how long the servers the proxy runs take to start, to swap and
to come back after a crash, as a client waits for them.

Two models of the tests' tiny GGUF in one models file with ``max_running = 1``, behind one
waitress proxy; each figure is one non-streamed completion through the proxy:

- ``start``: the first request for a stopped model, which starts its llama-server;
- ``warm``: the next request, to the running server;
- ``swap``: a request for the other model, whose start first stops the running one;
- ``after a crash``: the first request after the running server was killed, which waits
  out the back-off after a death (1 s) and the restart.

Writes ``bench/results/managed{,-quick}.md``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psutil
import requests

from bench import processes
from bench.__main__ import RESULTS

ADMIN = "bench-admin"
FIGURES = ("start", "warm", "swap", "after a crash")


def models_file(work: Path) -> Path:
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    model = write_tiny_llama_gguf(work / "tiny-llama.gguf")
    path = work / "models.toml"
    path.write_text("max_running = 1\n" + "".join(
        f'[models.{name}]\nmodel = "{model}"\nargs = ["-np", "1", "-c", "1024"]\n'
        for name in ("first", "second")))
    return path


def timed(url: str, model: str) -> float:
    """Seconds one completion for ``model`` takes through the proxy."""
    started = time.perf_counter()
    response = requests.post(url + "/v1/completions", timeout=120,
                             json={"model": model, "prompt": "the cat", "max_tokens": 4})
    if response.status_code != 200:
        raise RuntimeError(f"{model}: {response.status_code} {response.text[:500]}")
    return time.perf_counter() - started


def admin(url: str, path: str) -> dict:
    response = requests.post(url + "/admin/models" + path, timeout=120,
                             headers={"Authorization": f"Bearer {ADMIN}"})
    response.raise_for_status()
    return response.json()


def running_server(proxy_pid: int) -> psutil.Process:
    """The one model server under the proxy."""
    (server,) = [child for child in psutil.Process(proxy_pid).children(recursive=True)
                 if "llama-server" in " ".join(child.cmdline())]
    return server


def one_round(service: processes.Service) -> dict:
    for name in ("first", "second"):
        admin(service.url, f"/{name}/unload")
    figures = {"start": timed(service.url, "first"), "warm": timed(service.url, "first"),
               "swap": timed(service.url, "second")}
    server = running_server(service.pid)
    server.kill()
    while server.is_running() and server.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)  # dead, left for the proxy to reap
    figures["after a crash"] = timed(service.url, "second")
    return figures


def run(rounds: int, work: Path) -> dict:
    service = processes.proxy("waitress", "http://127.0.0.1:9", work, threads=16, workers=1,
                              args=["--config", str(models_file(work)), "--admin-key", ADMIN,
                                    "--log-dir", str(work / "servers")], name="managed")
    with processes.running(service):
        seen = [one_round(service) for _ in range(rounds)]
    return {figure: [each[figure] for each in seen] for figure in FIGURES}


def table(times: dict, quick: bool) -> str:
    rounds = len(times["start"])
    lines = [f"# Servers the proxy runs: start, swap, restart{' (quick run)' if quick else ''}",
             "", f"The tests' tiny model, two models with `max_running = 1`, {rounds} rounds; "
             f"each figure is one completion through the proxy as its client waits for it "
             f"(`python -m bench.managed{' --quick' if quick else ''}`).", "",
             "| request | median s | fastest s | slowest s |", "|---|---:|---:|---:|"]
    for figure in FIGURES:
        values = times[figure]
        lines.append(f"| {figure} | {statistics.median(values):.3f} | {min(values):.3f} | "
                     f"{max(values):.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.managed",
                                     description="Start, swap and restart times of managed "
                                                 "servers.")
    parser.add_argument("--quick", action="store_true", help="a short run that proves it runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    missing = processes.missing("llama-server")
    if missing:
        raise SystemExit(f"bench.managed needs llama-server: {missing}")
    with tempfile.TemporaryDirectory(prefix="bench-managed-") as work:
        times = run(2 if args.quick else 7, Path(work))
    report = table(times, args.quick)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"managed{'-quick' if args.quick else ''}.md").write_text(report)


if __name__ == "__main__":
    main()
