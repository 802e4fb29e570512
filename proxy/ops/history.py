"""The last minutes of the proxy's counters, per model, for the fleet page's charts.

No thread keeps time: a snapshot of the cumulative counters (every worker's, added up) is
taken when a request ends or the page asks, at most once a bucket. A sample is the change
between two consecutive snapshots over the seconds between them, so a stretch nobody
looked at and no request ended in has no snapshot of its own: the sample that spans it is
its average. Everything is in memory; a restart forgets it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from itertools import pairwise
from typing import Callable, NamedTuple, Optional, Sequence

from proxy.ops.metrics import Summed

BUCKET = 10.0  # seconds: at most one snapshot in each
WINDOW = 900.0  # seconds of samples kept


class Figures(NamedTuple):
    """One model's counters so far, and its queue now."""

    completion: float = 0
    prompt: float = 0
    cached: float = 0
    errors: float = 0
    queued: int = 0


class Snapshot(NamedTuple):
    t: float  # unix seconds
    models: dict  # model label -> Figures


class History:
    """Snapshots of ``take()`` (a :class:`Summed`) over the last ``window`` seconds, one a
    ``bucket`` at most; ``clock`` gives unix seconds."""

    def __init__(
        self,
        take: Callable[[], Summed],
        *,
        clock: Callable[[], float] = time.time,
        bucket: float = BUCKET,
        window: float = WINDOW,
    ) -> None:
        self.take = take
        self.clock = clock
        self.bucket = bucket
        self.window = window
        self._snapshots: deque = deque(maxlen=int(window // bucket) + 2)
        self._lock = threading.Lock()

    def look(self) -> None:
        """Take a snapshot if one is due. Most requests end with none due: they return at
        once, without taking the lock."""
        now = self.clock()
        if not due(self._last(), now, self.bucket):
            return
        with self._lock:
            if due(self._last(), now, self.bucket):  # not taken by another thread meanwhile
                self._snapshots.append(snapshot(now, self.take()))

    def series(self) -> dict:
        """Each model's samples over the window, a snapshot taken first if one is due."""
        self.look()
        with self._lock:
            kept = list(self._snapshots)
        return series(trimmed(kept, self.clock(), self.window))

    def _last(self) -> Optional[float]:
        snapshots = self._snapshots
        return snapshots[-1].t if snapshots else None


def due(last: Optional[float], now: float, bucket: float) -> bool:
    """Whether to take a snapshot: there is none yet, or the last is a bucket old."""
    return last is None or now - last >= bucket


def snapshot(t: float, summed: Summed) -> Snapshot:
    """The figures of every model that has generated, failed or queued so far."""
    queued: dict = {}
    for (model, _upstream), (_running, waiting) in summed.queues.items():
        queued[model] = queued.get(model, 0) + waiting
    labels = {model for model, _kind in summed.tokens} | set(summed.errors) | set(queued)
    models = {
        label: Figures(
            summed.tokens.get((label, "completion"), 0),
            summed.tokens.get((label, "prompt"), 0),
            summed.tokens.get((label, "cached"), 0),
            summed.errors.get(label, 0),
            queued.get(label, 0),
        )
        for label in labels
    }
    return Snapshot(t, {label: figures for label, figures in models.items() if any(figures)})


def trimmed(snapshots: Sequence[Snapshot], now: float, window: float) -> list:
    """The snapshots of the last ``window`` seconds, and the one before them: the first
    sample starts there."""
    inside = [each for each in snapshots if each.t >= now - window]
    before = len(snapshots) - len(inside)
    return [snapshots[before - 1], *inside] if before else inside


def series(snapshots: Sequence[Snapshot]) -> dict:
    """Per model label, a sample for each pair of consecutive snapshots, at the later one's
    time; a model missing from the earlier snapshot had counted nothing yet."""
    found: dict = {}
    for before, after in pairwise(snapshots):
        for label, now in after.models.items():
            then = before.models.get(label, Figures())
            found.setdefault(label, []).append(sample(after.t - before.t, then, now, after.t))
    return found


def sample(seconds: float, then: Figures, now: Figures, t: float) -> dict:
    """What happened between two snapshots ``seconds`` apart: completion tokens per second,
    the queue at the end, the share of prompt tokens served from the KV cache (None without
    prompts) and answers failed."""
    prompt = now.prompt - then.prompt
    return {
        "t": t,
        "tokens_per_s": round((now.completion - then.completion) / seconds, 3),
        "queued": now.queued,
        "cache_hit_rate": round((now.cached - then.cached) / prompt, 4) if prompt else None,
        "errors": int(now.errors - then.errors),
    }
