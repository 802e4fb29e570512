"""``python -m bench.operations``: what metrics, keys and limits add to a request.

One synthetic upstream, one waitress proxy per way, non-streamed completions one after
another, the ways interleaved over three rounds so drift on the machine touches each alike:

- ``metrics off``: ``--metrics off``, no keys (the floor for this bench);
- ``metrics on``: as the proxy ships;
- ``+ keys, limits``: a keys file whose key has requests and tokens per minute (counted in
  the process);
- ``+ limits in Redis``: the same through ``--redis-url`` (a real ``redis-server`` on this
  machine; left out, with a note, when none is installed).

Usage is recorded in every way (off the request path, once a second). Writes
``bench/results/operations{,-quick}.md``.
"""

from __future__ import annotations

import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench import cli, processes

KEY = "sk-bench"
KEYS = (
    f'[[keys]]\nname = "bench"\nkey = "{KEY}"\nrequests_per_minute = 100000000\n'
    f"tokens_per_minute = 1000000000\n"
)


def run(count: int, work: Path) -> tuple:
    keys = work / "keys.toml"
    keys.write_text(KEYS)
    notes = []
    with ExitStack() as stack:
        upstream = stack.enter_context(processes.running(processes.synthetic(work)))
        ways = {
            "metrics off": (["--metrics", "off"], ""),
            "metrics on": ([], ""),
            "+ keys, limits": (["--keys", str(keys)], KEY),
        }
        redis = processes.redis_server(work)
        if redis is None:
            notes.append("no redis-server on this machine: the Redis row is left out")
        else:
            stack.callback(redis[0].kill)
            ways["+ limits in Redis"] = (["--keys", str(keys), "--redis-url", redis[1]], KEY)
        services = {
            way: stack.enter_context(
                processes.running(
                    processes.proxy(
                        "waitress",
                        upstream.url,
                        work,
                        threads=16,
                        workers=1,
                        args=[*args, "--usage-db", str(work / f"usage-{index}.sqlite3")],
                        name=f"operations-{index}",
                    )
                )
            )
            for index, (way, (args, _)) in enumerate(ways.items())
        }
        rounds = {way: [] for way in ways}
        for _ in range(3):
            for way, service in services.items():
                rounds[way].append(processes.p50_ms(service.url, count // 3, ways[way][1]))
    return {way: statistics.median(values) for way, values in rounds.items()}, notes


def table(p50: dict, notes: list, count: int, quick: bool) -> str:
    floor = p50["metrics off"]
    lines = [
        f"# What metrics, keys and limits add{' (quick run)' if quick else ''}",
        "",
        f"Non-streamed completions, one at a time, {count} per way over three interleaved "
        f"rounds, through waitress to the synthetic upstream (`python -m bench.operations"
        f"{' --quick' if quick else ''}`).",
        "",
        "| way | p50 ms | added to metrics off, ms |",
        "|---|---:|---:|",
    ]
    for way, value in p50.items():
        lines.append(f"| {way} | {value:.3f} | {value - floor:+.3f} |")
    lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    args = cli.arguments("operations", "What metrics, keys and limits cost.").parse_args()
    count = 30 if args.quick else 3000
    with tempfile.TemporaryDirectory(prefix="bench-operations-") as work:
        p50, notes = run(count, Path(work))
    report = table(p50, notes, count, args.quick)
    cli.publish(args, "operations", report)


if __name__ == "__main__":
    main()
