"""Run a plan: each upstream straight, through the proxy under each server, and through the
peers, scenario by scenario."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from bench import processes
from bench.loadgen import LoadGenerator
from bench.plan import PATHS, PEERS, Plan, Scenario
from bench.resources import ProcessTree, Usage

logger = logging.getLogger("bench")

# what the proxy adds to every /completion it sends, so the direct request is the same one
PROXY_FIELDS = {"stop": [], "n_keep": -1, "cache_prompt": True, "id_slot": -1}


def job(scenario: Scenario, url: str, native: bool, plan: Plan) -> dict:
    """The load generator's job: server.cpp's own ``/completion``, or ``/v1/completions``."""
    if native:
        url += "/completion"
        body = {
            "prompt": scenario.prompt,
            "stream": scenario.stream,
            "n_predict": scenario.tokens,
            **PROXY_FIELDS,
        }
    else:
        url += "/v1/completions"
        body = {
            "model": "bench",
            "prompt": scenario.prompt,
            "stream": scenario.stream,
            "max_tokens": scenario.tokens,
        }
    return {
        "url": url,
        "body": body,
        "stream": scenario.stream,
        "stamped": scenario.stamped,
        "concurrency": scenario.concurrency,
        "once": scenario.once,
        "duration": plan.duration,
        "warmup": plan.warmup,
    }


def run(plan: Plan, work_dir: Path, litellm: Optional[str] = None) -> dict:
    """Measure everything; the result is ``{upstream: {path: {scenario key: figures}}}``.

    Each scenario is run on every path before the next one begins, so the figures a ratio
    compares are seconds apart, not minutes: a shared machine that slows down for a while
    slows every path alike. ``litellm`` is the LiteLLM proxy's executable, when installed.
    """
    results = {}
    loadgen = LoadGenerator()
    try:
        for upstream in plan.upstreams:
            missing = processes.missing(upstream)
            if missing:
                logger.warning("skipping %s: %s", upstream, missing)
                continue
            ways = paths(plan, upstream, litellm)
            with start_upstream(upstream, plan, work_dir) as server, ExitStack() as stack:
                targets = {
                    way: target(way, server.url, plan, work_dir, litellm, stack) for way in ways
                }
                results[upstream] = {way: {} for way in ways}
                for scenario in plan.scenarios(upstream):
                    for way, (url, native, tree) in targets.items():
                        results[upstream][way][scenario.key] = measure(
                            loadgen, job(scenario, url, native, plan), tree
                        )
    finally:
        loadgen.close()
    return results


def paths(plan: Plan, upstream: str, litellm: Optional[str]) -> list:
    """The ways to ``upstream`` measured: straight, through the proxy, through the peers
    (which need llama-server's own OpenAI endpoint)."""
    found = list(PATHS)
    if plan.peers and upstream == "llama-server":
        found += [peer for peer in PEERS if peer != "litellm" or litellm]
    return found


def start_upstream(name: str, plan: Plan, work_dir: Path):
    if name == "synthetic":
        return processes.running(processes.synthetic(work_dir))
    return processes.llama_server(work_dir, parallel=plan.llama_slots)


def target(
    way: str,
    upstream_url: str,
    plan: Plan,
    work_dir: Path,
    litellm: Optional[str],
    stack: ExitStack,
) -> tuple:
    """``(url, speaks server.cpp's own API, processes to measure)`` of one way to the
    upstream; a proxy or a peer is started for the whole run."""
    if way in ("direct", "llama.cpp /v1"):
        return upstream_url, way == "direct", None
    if way == "litellm":
        service = processes.litellm([litellm], upstream_url, work_dir)
    else:
        service = processes.proxy(
            way, upstream_url, work_dir, threads=plan.threads, workers=plan.workers
        )
    stack.enter_context(processes.running(service))
    return service.url, False, ProcessTree(service.pid)


def measure(loadgen: LoadGenerator, job: dict, tree: Optional[ProcessTree]) -> dict:
    """Run one job; with a proxy, add the CPU time it used, its highest RSS and what it
    held before the job began."""
    logger.info("%s c=%d%s", job["url"], job["concurrency"], " stream" if job["stream"] else "")
    if tree is None:
        return loadgen.run(job)
    rss_before = tree.rss_bytes()
    with Usage(tree) as usage:
        result = loadgen.run(job)
    return {
        **result,
        "cpu_s": usage.cpu_seconds,
        "rss_mb": usage.peak_rss / 2**20,
        "rss_before_mb": rss_before / 2**20,
    }
