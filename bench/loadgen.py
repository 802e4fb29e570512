"""The load generator: an aiohttp client in its own process, so it shares no GIL with the proxy.

It reads one job per line on stdin (JSON) and writes one result per line on stdout. A job
is either ``requests`` (non-streaming: latency and requests/s) or ``streams`` (time to first
event, events/s, chunk delay for stamped streams, how many streams were open at once).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import aiohttp

READ_TIMEOUT = 120.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Tally:
    """What the workers of one job saw."""

    latencies: list = field(default_factory=list)
    first_events: list = field(default_factory=list)
    delays: list = field(default_factory=list)
    spans: list = field(default_factory=list)
    events: int = 0
    all_events: int = 0  # warm-up included: what the proxy's CPU time is divided by
    all_requests: int = 0
    errors: int = 0
    error_sample: str = ""

    def fail(self, message: str) -> None:
        self.errors += 1
        self.error_sample = self.error_sample or message[:300]


@dataclass(frozen=True)
class Window:
    """Requests that start inside the window are measured, and events that arrive in it.

    No request starts after the window; those still running are waited for.
    """

    start: float
    end: float
    once: bool

    def open(self, now: float) -> bool:
        return now < self.end

    def measures(self, started: float) -> bool:
        return self.start <= started < self.end


async def one_request(
    session: aiohttp.ClientSession, job: dict, tally: Tally, window: Window
) -> None:
    started = time.perf_counter()
    try:
        async with session.post(job["url"], data=job["data"], headers=job["headers"]) as resp:
            body = await resp.read()
            if resp.status != 200:
                tally.fail(f"HTTP {resp.status}: {body[:200]!r}")
                return
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        tally.fail(f"{type(exc).__name__}: {exc}")
        return
    tally.all_requests += 1
    if window.measures(started):
        tally.latencies.append(time.perf_counter() - started)


async def one_stream(
    session: aiohttp.ClientSession, job: dict, tally: Tally, window: Window
) -> None:
    started = time.perf_counter()
    measured = window.measures(started)
    first = end = None
    events = 0
    try:
        async with session.post(job["url"], data=job["data"], headers=job["headers"]) as resp:
            if resp.status != 200:
                tally.fail(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
                return
            async for line in resp.content:
                if not line.startswith(b"data: "):
                    continue
                now = time.perf_counter()
                if first is None:
                    first = now
                if line.startswith(b'data: {"error"'):
                    tally.fail(line[:300].decode(errors="replace"))
                    return
                if line.startswith(b"data: [DONE]"):
                    end = now
                    break
                events += 1
                in_window = window.measures(now)
                tally.events += in_window
                if job["stamped"] and in_window:
                    delay = stamp_delay(line)
                    if delay is not None:
                        tally.delays.append((now, delay))
                if b'"stop":true' in line:
                    end = now
                    break
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        tally.fail(f"{type(exc).__name__}: {exc}")
        return
    if end is None:
        tally.fail("the stream ended without its last event")
        return
    tally.all_requests += 1
    tally.all_events += events
    if measured:
        tally.first_events.append(first - started)
        tally.latencies.append(end - started)
        tally.spans.append((first, end))


def stamp_delay(line: bytes) -> Optional[float]:
    """Seconds since the synthetic upstream wrote this token (its text is the write time)."""
    body = json.loads(line[6:])
    choices = body.get("choices")
    text = choices[0].get("text") if choices else body.get("content")
    if not text:
        return None
    return (time.monotonic_ns() - int(text)) / 1e9


async def worker(session: aiohttp.ClientSession, job: dict, tally: Tally, window: Window) -> None:
    run = one_stream if job["stream"] else one_request
    while True:
        await run(session, job, tally, window)
        if window.once or not window.open(time.perf_counter()):
            return


async def run_job(job: dict) -> dict:
    """Run ``concurrency`` workers; each repeats its request until the window closes.

    ``once`` jobs send exactly one request per worker, all at the same time (holding streams).
    """
    job = {
        **job,
        "data": json.dumps(job["body"]).encode(),
        "headers": {"Content-Type": "application/json"},
    }
    # each stream gets its own connection: llama-server announces keep-alive, then closes
    # the connection after a stream
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, force_close=job["stream"])
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=READ_TIMEOUT)
    tally = Tally()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        begin = time.perf_counter()
        once = bool(job.get("once"))
        start = begin if once else begin + job["warmup"]
        window = Window(start, start + (1e9 if once else job["duration"]), once)
        await asyncio.gather(
            *(worker(session, job, tally, window) for _ in range(job["concurrency"]))
        )
        elapsed = time.perf_counter() - begin if once else job["duration"]
    return summarize(tally, elapsed, once)


def summarize(tally: Tally, elapsed: float, once: bool) -> dict:
    delays = [delay for _, delay in tally.delays]
    if once and tally.spans:
        # holding streams: only the chunks sent while every stream was open
        steady_from = max(first for first, _ in tally.spans)
        steady_to = min(end for _, end in tally.spans)
        delays = [delay for at, delay in tally.delays if steady_from <= at <= steady_to]
    return {
        "count": len(tally.latencies),
        "errors": tally.errors,
        "error_sample": tally.error_sample,
        "elapsed": elapsed,
        "rps": len(tally.latencies) / elapsed,
        "p50_ms": percentile(tally.latencies, 50),
        "p99_ms": percentile(tally.latencies, 99),
        "ttfb_p50_ms": percentile(tally.first_events, 50),
        "ttfb_p99_ms": percentile(tally.first_events, 99),
        "events": tally.events,
        "events_per_s": tally.events / elapsed,
        "all_events": tally.all_events,
        "all_requests": tally.all_requests,
        "delay_p50_ms": percentile(delays, 50),
        "delay_p99_ms": percentile(delays, 99),
        "peak_open": peak_open(tally.spans),
    }


def percentile(seconds: list, pct: float) -> Optional[float]:
    """The ``pct`` percentile in milliseconds (nearest rank), or None without samples."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    rank = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[rank] * 1000


def peak_open(spans: list) -> int:
    """The most streams that were delivering events at the same moment."""
    moments = sorted([(first, 1) for first, _ in spans] + [(end, -1) for _, end in spans])
    peak = current = 0
    for _, step in moments:
        current += step
        peak = max(peak, current)
    return peak


class LoadGenerator:
    """The parent's side: start ``python -m bench.loadgen`` once, then hand it jobs."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, job: dict) -> dict:
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited with {self.process.wait()}")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            result = asyncio.run(run_job(json.loads(line)))
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
