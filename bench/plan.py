"""What one bench run measures: the scenarios, their sizes, and the servers' settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

PATHS = ("direct", "waitress", "gunicorn")
UPSTREAMS = ("synthetic", "llama-server")
# other ways to the same llama-server, measured for comparison: its own OpenAI endpoint (the
# floor for a translator) and LiteLLM's proxy in front of that endpoint
PEERS = ("llama.cpp /v1", "litellm")
REQUIRED_HOLD = 1024  # held streams that must all succeed; larger levels are only reported


@dataclass(frozen=True)
class Scenario:
    """One load pattern, sent alike straight to the upstream and through the proxy."""

    key: str
    concurrency: int
    stream: bool
    tokens: int
    prompt: str = "bench"
    stamped: bool = False  # the synthetic upstream writes each token's send time as its text
    once: bool = False  # every stream starts at once and runs to its end (holding streams)

    @property
    def zero_errors_required(self) -> bool:
        return not self.once or self.concurrency <= REQUIRED_HOLD


@dataclass(frozen=True)
class Plan:
    """Sizes of a run; ``QUICK`` only proves that the bench still works."""

    name: str
    duration: float  # seconds measured per scenario, after the warm-up
    warmup: float
    levels: tuple  # concurrency of the request and stream scenarios
    tokens: int  # non-streaming answer length
    stream_tokens: int  # tokens per stream, sent as fast as the upstream can
    paced_levels: tuple
    paced_rate: float  # tokens per second per stream, like a model that takes its time
    paced_tokens: int
    holds: tuple  # concurrent streams held open at once
    hold_rate: float
    hold_seconds: float
    llama_slots: int
    threads: int = 1100  # per process; each open stream holds one: enough for the largest hold
    workers: int = 1  # gunicorn processes
    upstreams: tuple = UPSTREAMS
    peers: bool = True  # measure the peers too, where they can be

    def scenarios(self, upstream: str) -> list:
        """The scenarios for ``upstream``; pacing and stamps need the synthetic one."""
        found = [Scenario(f"requests c={c}", c, False, self.tokens) for c in self.levels]
        found += [Scenario(f"streams c={c}", c, True, self.stream_tokens) for c in self.levels]
        if upstream != "synthetic":
            return found
        paced = f"bench rate={self.paced_rate:g} stamp"
        found += [
            Scenario(f"paced c={c}", c, True, self.paced_tokens, paced, stamped=True)
            for c in self.paced_levels
        ]
        held = f"bench rate={self.hold_rate:g} stamp"
        tokens = round(self.hold_rate * self.hold_seconds)
        found += [
            Scenario(f"hold {n}", n, True, tokens, held, stamped=True, once=True)
            for n in self.holds
        ]
        return found


FULL = Plan(
    name="full",
    duration=5.0,
    warmup=1.0,
    levels=(1, 16, 64),
    tokens=16,
    stream_tokens=128,
    paced_levels=(1, 16, 64),
    paced_rate=50,
    paced_tokens=100,
    holds=(64, 256, 1024),
    hold_rate=2,
    hold_seconds=12,
    llama_slots=4,
)
QUICK = replace(
    FULL,
    name="quick",
    duration=0.2,
    warmup=0.05,
    levels=(1, 16),
    stream_tokens=32,
    paced_levels=(16,),
    paced_tokens=10,
    holds=(64,),
    hold_seconds=1.0,
    upstreams=("synthetic",),  # llama-server's ways are bench.dialects' quick run's
    peers=False,
)


def spare_cores() -> int:
    """Gunicorn workers for this machine: half the cores, the load generator and the
    upstream run on the others."""
    return max(1, (os.cpu_count() or 2) // 2)
