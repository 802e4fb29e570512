"""Run a plan: each upstream straight, then through the proxy under each server."""
from __future__ import annotations

import logging
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
        body = {"prompt": scenario.prompt, "stream": scenario.stream,
                "n_predict": scenario.tokens, **PROXY_FIELDS}
    else:
        url += "/v1/completions"
        body = {"model": "bench", "prompt": scenario.prompt, "stream": scenario.stream,
                "max_tokens": scenario.tokens}
    return {"url": url, "body": body, "stream": scenario.stream, "stamped": scenario.stamped,
            "concurrency": scenario.concurrency, "once": scenario.once,
            "duration": plan.duration, "warmup": plan.warmup}


def run(plan: Plan, work_dir: Path, litellm: Optional[str] = None) -> dict:
    """Measure everything; the result is ``{upstream: {path: {scenario key: figures}}}``.

    ``litellm`` is the LiteLLM proxy's executable, when it is installed.
    """
    results = {}
    loadgen = LoadGenerator()
    try:
        for upstream in plan.upstreams:
            missing = processes.missing(upstream)
            if missing:
                logger.warning("skipping %s: %s", upstream, missing)
                continue
            results[upstream] = {}
            for path in paths(plan, upstream, litellm):
                # each path meets a fresh upstream: llama-server's prompt cache in host memory
                # grows with every request and slows each one, so a path measured after the
                # others would pay for theirs
                with start_upstream(upstream, plan, work_dir) as server:
                    results[upstream][path] = run_path(plan, upstream, path, server.url,
                                                       loadgen, work_dir, litellm)
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


def run_path(plan: Plan, upstream: str, path: str, base_url: str, loadgen: LoadGenerator,
             work_dir: Path, litellm: Optional[str]) -> dict:
    if path in ("direct", "llama.cpp /v1"):
        return {s.key: measure(loadgen, job(s, base_url, path == "direct", plan), None)
                for s in plan.scenarios(upstream)}
    if path == "litellm":
        service = processes.litellm(litellm, base_url, work_dir)
    else:
        service = processes.proxy(path, base_url, work_dir, threads=plan.threads,
                                  workers=plan.workers)
    with processes.running(service):
        tree = ProcessTree(service.pid)
        return {s.key: measure(loadgen, job(s, service.url, False, plan), tree)
                for s in plan.scenarios(upstream)}


def measure(loadgen: LoadGenerator, job: dict, tree: Optional[ProcessTree]) -> dict:
    """Run one job; with a proxy, add the CPU time it used, its highest RSS and what it
    held before the job began."""
    logger.info("%s c=%d%s", job["url"], job["concurrency"], " stream" if job["stream"] else "")
    if tree is None:
        return loadgen.run(job)
    rss_before = tree.rss_bytes()
    with Usage(tree) as usage:
        result = loadgen.run(job)
    return {**result, "cpu_s": usage.cpu_seconds, "rss_mb": usage.peak_rss / 2**20,
            "rss_before_mb": rss_before / 2**20}
