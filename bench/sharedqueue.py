"""``python -m bench.sharedqueue``: turns across processes, and what sharing the queue costs.

**Turns.** A four-slot llama-server with the tests' tiny model, key A keeping 16 long streams
in flight and key B asking short questions one at a time (as ``bench.fairness``), served by
one process (waitress), by gunicorn with two and four workers, and by two waitress proxies
sharing Redis behind the scale-out recipe's nginx. Figures: B's first byte p50 and its ratio to
the next-slot bound (B alone plus one A answer over the slots), and A's answers a second.

**Cost.** Short streamed chats one at a time to the synthetic server.cpp (which never makes
anyone wait for a slot), through gunicorn with one worker (the supervisor's queue) and
waitress with Redis (Redis's queue): first byte and whole answer p50, the proxy's CPU per
request (its processes, Redis's own left out), and Redis's script calls per request.

With ``--baseline DIR`` every figure is taken for that checkout's proxy too, in the same run:
its queue is each process's own. Writes ``bench/results/sharedqueue{,-quick}.md``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import redis
import requests

from bench import cli, processes
from bench.resources import ProcessTree

SLOTS = 4
SERVINGS = ("one process", "gunicorn, 2 workers", "gunicorn, 4 workers", "two proxies, Redis")
COSTS = ("gunicorn, 1 worker", "waitress, Redis")
QUICK = {"count": 3, "tokens": 32, "filling": 1.0, "requests": 40}
FULL = {"count": 20, "tokens": 256, "filling": 3.0, "requests": 300}


@contextmanager
def serving(how: str, upstream: str, work: Path, root: Path, redis_url: str) -> Iterator[list]:
    """The proxies ``how`` names in front of ``upstream``, from the checkout at ``root``:
    the URL clients use first, then every proxy process (for its CPU)."""
    from tests.e2e.flood import TEAM
    from tests.e2e.scaleout import PROXY_ADDRESSES, Nginx, readme_blocks, substitute, system_program

    keys = work / "keys.toml"
    keys.write_text(TEAM)
    args = ["--keys", str(keys)]
    tag = f"{root.name}-{how.replace(' ', '').replace(',', '-')}"
    with ExitStack() as stack:
        if how.startswith("gunicorn") or how == "one process":
            server = "waitress" if how == "one process" else "gunicorn"
            workers = 1 if how == "one process" else int(how.split(", ")[1].split()[0])
            proxy = processes.proxy(server, upstream, work, threads=64, workers=workers,
                                    args=args, name=tag, root=root)  # fmt: skip
            yield [stack.enter_context(processes.running(proxy)).url, proxy]
            return
        redis.Redis.from_url(redis_url).flushdb()
        proxies = [
            stack.enter_context(
                processes.running(
                    processes.proxy(
                        "waitress",
                        upstream,
                        work,
                        threads=64,
                        workers=1,
                        args=[*args, "--redis-url", redis_url],
                        name=f"{tag}{n}",
                        root=root,
                    )  # fmt: skip
                )
            )
            for n in range(2 if how.startswith("two") else 1)
        ]
        if len(proxies) == 1:
            yield [proxies[0].url, *proxies]
            return
        port = processes.free_port()
        addresses = {
            a: p.url.removeprefix("http://") for a, p in zip(PROXY_ADDRESSES, proxies, strict=True)
        }
        site = substitute(
            readme_blocks()["nginx"], {"listen 80;": f"listen 127.0.0.1:{port};", **addresses}, ""
        )
        folder = Path(tempfile.mkdtemp(dir=work))
        nginx = stack.enter_context(Nginx(system_program("nginx", "nginx"), site, folder, port))
        yield [nginx.url, *proxies]


def turns(url: str, plan: dict) -> dict:
    from tests.e2e.flood import Flood, questions

    questions(url, "sk-b", 3)  # warm up
    alone = statistics.median(q.first_ms for q in questions(url, "sk-b", plan["count"]))
    with Flood(url, "sk-a", filling=plan["filling"], tokens=plan["tokens"]) as flood:
        asked = [q.first_ms for q in questions(url, "sk-b", plan["count"])]
    bound = alone + statistics.median(a.total_ms for a in flood.answers) / SLOTS
    first = statistics.median(asked)
    return {"first": first, "ratio": first / bound, "bound": bound,
            "rate": flood.done / flood.seconds}  # fmt: skip


def cost(url: str, proxies: list, plan: dict, redis_url: str) -> dict:
    """Short streamed chats one at a time: their first byte and whole time, the proxies' CPU
    per request, and Redis's script calls per request."""
    body = {"model": "synthetic", "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 16, "stream": True}  # fmt: skip
    headers = {"Authorization": "Bearer sk-b"}
    trees = [ProcessTree(proxy.pid) for proxy in proxies]
    client = redis.Redis.from_url(redis_url)
    for _ in range(10):  # warm up
        requests.post(url + "/v1/chat/completions", json=body, headers=headers).close()
    scripts = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    cpu = sum(tree.cpu_seconds() for tree in trees)
    firsts, wholes = [], []
    for _ in range(plan["requests"]):
        sent = time.perf_counter()
        with requests.post(url + "/v1/chat/completions", json=body, headers=headers,
                           stream=True) as answer:  # fmt: skip
            pieces = answer.iter_content(chunk_size=None)
            next(pieces)
            firsts.append(time.perf_counter() - sent)
            for _ in pieces:
                pass
        wholes.append(time.perf_counter() - sent)
    count = plan["requests"]
    calls = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) - scripts
    return {
        "first": statistics.median(firsts) * 1000,
        "whole": statistics.median(wholes) * 1000,
        "cpu": (sum(tree.cpu_seconds() for tree in trees) - cpu) / count * 1000,
        "scripts": calls / count,
    }


def measure(plan: dict, work: Path, roots: dict) -> dict:
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    model = write_tiny_llama_gguf(work / "tiny.gguf")
    found: dict = {"turns": {}, "cost": {}}
    with ExitStack() as stack:
        redis_process, redis_url = processes.redis_server(work)
        stack.callback(redis_process.kill)
        server = stack.enter_context(processes.endless(model, work, SLOTS))
        synthetic = stack.enter_context(processes.running(processes.synthetic(work)))
        for how in SERVINGS:
            for label, root in roots.items():
                with serving(how, server.url, work, root, redis_url) as (url, *_):
                    found["turns"][how, label] = turns(url, plan)
        for how in COSTS:
            for label, root in roots.items():
                with serving(how, synthetic.url, work, root, redis_url) as (url, *proxies):
                    found["cost"][how, label] = cost(url, proxies, plan, redis_url)
    return found


def table(found: dict, plan: dict, args, roots: dict) -> str:
    command = f"python -m bench.sharedqueue{' --quick' if args.quick else ''}"
    if args.baseline:
        command += f" --baseline <checkout of {cli.commit_of(args.baseline)}>"
    lines = [
        "# Turns across processes, and what sharing the queue costs"
        + (" (quick run)" if args.quick else ""),
        "",
        f"`{command}`. A four-slot llama-server with the tests' tiny model; A keeps 16 streams "
        f"of {plan['tokens']} tokens in flight, B asks {plan['count']} short questions one at "
        "a time.",
        "",
        "| served by | proxy | B's first byte p50 ms | bound ms | p50 / bound "
        "| A's answers a second |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for how in SERVINGS:
        for label in roots:
            t = found["turns"][how, label]
            lines.append(f"| {how} | {label} | {t['first']:.0f} | {t['bound']:.0f} | "
                         f"{t['ratio']:.2f} | {t['rate']:.1f} |")  # fmt: skip
    lines += [
        "",
        f"Cost: {plan['requests']} streamed chats of 16 tokens one at a time to the synthetic "
        "server.cpp (no wait for a slot).",
        "",
        "| served by | proxy | first byte p50 ms | whole p50 ms | proxy CPU ms a request | "
        "Redis scripts a request |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for how in COSTS:
        for label in roots:
            c = found["cost"][how, label]
            lines.append(f"| {how} | {label} | {c['first']:.2f} | {c['whole']:.2f} | "
                         f"{c['cpu']:.2f} | {c['scripts']:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = cli.with_baseline(
        cli.arguments("sharedqueue", "Turns across processes, and what sharing them costs.")
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    roots = {"this": processes.ROOT}
    if args.baseline:
        roots[cli.commit_of(args.baseline)] = args.baseline.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-sharedqueue-") as work:
        found = measure(plan, Path(work), roots)
    cli.publish(args, "sharedqueue", table(found, plan, args, roots))


if __name__ == "__main__":
    main()
