"""``python -m bench.holds``: what holding a budget costs a request.

The synthetic upstream (:mod:`bench.synthetic`, no model: the proxy's own cost shows) and a
proxy under waitress in front of it, its usage in SQLite, and another with Redis
(``--redis-url``) where the machine has ``redis-server``. Each proxy has two keys: one
without a budget, one with token and money budgets too large to spend (each of its requests
reads its standing, adds a hold, and lets it go with its charge). The same chat (16 tokens
back, whole) by each key, the keys taking turns over three rounds.

Per store and key: p50 of the answer and the proxy's CPU per request; the budgeted key's
less the other's is what a budget costs, holds and all. With ``--baseline DIR``, the same
through that checkout's proxies too (a budget without holds, say): the difference of the
differences is what a hold adds. Writes ``bench/results/holds{,-quick}.md``.
"""

from __future__ import annotations

import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from bench import cli, processes
from bench.capture import _timed
from bench.resources import ProcessTree

TOKENS = 16
KEYS = """
[[keys]]
name = "free"
key = "sk-free"

[[keys]]
name = "budgeted"
key = "sk-budgeted"
tokens_per_day = 1000000000000
usd_per_month = 1000000
"""
MODELS = '[models.m]\nupstreams = ["{url}"]\nprice = {{ input = 1, output = 2 }}\n'
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Tell me a story."}],
        "max_tokens": TOKENS}  # fmt: skip
WHO = ("free", "budgeted")


def run(count: int, rounds: int, work: Path, baseline: Optional[Path] = None) -> dict:
    """p50 ms and CPU ms per request, by store (and checkout) and key."""
    (work / "keys.toml").write_text(KEYS)
    with ExitStack() as stack:
        upstream = stack.enter_context(processes.running(processes.synthetic(work)))
        (work / "models.toml").write_text(MODELS.format(url=upstream.url))
        stores = {"SQLite": []}
        redis = processes.redis_server(work)
        if redis is not None:
            stack.callback(redis[0].kill)
            stores["Redis"] = ["--redis-url", redis[1]]
        roots = {"": processes.ROOT}
        if baseline is not None:
            roots[f" at {cli.commit_of(baseline)}"] = baseline
        proxies = {
            store + at: stack.enter_context(
                processes.running(
                    processes.proxy(
                        "waitress",
                        upstream.url,
                        work,
                        threads=8,
                        workers=1,
                        name=f"holds-{store}{at.replace(' ', '-')}",
                        args=[
                            *("--keys", str(work / "keys.toml")),
                            *("--config", str(work / "models.toml")),
                            *("--usage-db", str(work / f"usage-{store}{at}.sqlite3")),
                            *args,
                        ],
                        root=root,
                    )
                )
            )
            for store, args in stores.items()
            for at, root in roots.items()
        }
        return _measured(proxies, count, rounds)


def _measured(proxies: dict, count: int, rounds: int) -> dict:
    times: dict = {}
    cpu: dict = {}
    for _ in range(rounds):
        for store, proxy in proxies.items():
            tree = ProcessTree(proxy.pid)
            for who in WHO:
                spent = tree.cpu_seconds()
                headers = {"Authorization": f"Bearer sk-{who}"}
                times.setdefault((store, who), []).extend(
                    _timed(proxy.url + "/v1/chat/completions", CHAT, headers, count // rounds)
                )
                cpu[(store, who)] = cpu.get((store, who), 0.0) + tree.cpu_seconds() - spent
    return {
        key: (statistics.median(found), cpu[key] * 1000 / len(found))
        for key, found in times.items()
    }


def table(found: dict, count: int, rounds: int, quick: bool) -> str:
    command = f"python -m bench.holds{' --quick' if quick else ''}"
    lines = [
        f"# What holding a budget costs{' (quick run)' if quick else ''}",
        "",
        f"The synthetic upstream, a proxy under waitress per store in front of it "
        f"(`{command}`); the same chat, {TOKENS} tokens back, {count} requests per key and "
        f"store over {rounds} round{'s' if rounds > 1 else ''}. A budgeted key's request reads "
        "its standing (spent and held), adds a hold and lets it go with its charge; the other "
        "key's does none of it. The proxy's CPU counts the warm-up requests too.",
        "",
        "| store | key | p50 ms | added | CPU ms/request | added |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for store in dict.fromkeys(store for store, _ in found):
        free_p50, free_cpu = found[(store, "free")]
        for who in WHO:
            p50, cpu = found[(store, who)]
            added = (
                (f"{p50 - free_p50:+.3f}", f"{cpu - free_cpu:+.3f}") if who != "free" else ("", "")
            )
            lines.append(f"| {store} | {who} | {p50:.3f} | {added[0]} | {cpu:.3f} | {added[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = cli.with_baseline(cli.arguments("holds", "What holding a budget costs a request."))
    args = parser.parse_args()
    count, rounds = (10, 1) if args.quick else (600, 3)
    with tempfile.TemporaryDirectory(prefix="bench-holds-") as work:
        found = run(count, rounds, Path(work), args.baseline)
    cli.publish(args, "holds", table(found, count, rounds, args.quick))


if __name__ == "__main__":
    main()
