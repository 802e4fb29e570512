"""The proxy's Prometheus metrics, through ``prometheus_client``.

Under gunicorn every worker writes its figures to files in a folder the master made
(``prometheus_client``'s multiprocess mode, chosen before the library is first imported; see
:mod:`proxy.serving.gunicorn`), and a scrape adds them up. Under waitress the one process keeps
them in memory. What every process sees alike (upstreams up, slots, the state of the servers the
proxy runs) is read from the fleet at scrape time (:mod:`proxy.ops.collectors`).
"""

from __future__ import annotations

import os
import struct
from typing import Callable, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from proxy.ops.collectors import PREFIX, BatchesCollector, FleetCollector
from proxy.ops.measure import MEDIA, Measure

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
READS = 3  # reads of the workers' files a scrape makes while one is caught half-written


class Summed(NamedTuple):
    """Every worker's figures added up."""

    tokens: dict  # (model, kind) -> tokens so far; kinds: prompt, completion, cached
    errors: dict  # model -> answers with a status of 500 or more so far
    queues: dict  # (model, upstream) -> [running, waiting] now


class Metrics:
    """Every figure the proxy keeps; ``folder`` set means gunicorn's multiprocess mode."""

    def __init__(self, folder: str = "") -> None:
        self.folder = folder
        self.registry = None if folder else CollectorRegistry()
        self._fleet = None
        self._batches = None
        self._answers: dict = {}  # (route, model, status, key) -> their series
        registry = self.registry
        self.requests = Counter(
            PREFIX + "requests",
            "Requests answered",
            ["route", "model", "status", "key"],
            registry=registry,
        )
        self.duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Time from request to the last byte of the answer",
            ["route", "model"],
            buckets=LATENCY,
            registry=registry,
        )
        self.first_token = Histogram(
            PREFIX + "time_to_first_token_seconds",
            "Time from request to the first generated text",
            ["model"],
            buckets=LATENCY,
            registry=registry,
        )
        self.tokens = Counter(
            PREFIX + "tokens",
            "Tokens, by model and kind (prompt, "
            "completion, or cached: prompt tokens the server took from its "
            "KV cache)",
            ["model", "kind"],
            registry=registry,
        )
        self.media = Counter(
            PREFIX + "media",
            "What the media routes made, by model and kind (pictures drawn, audio_seconds "
            "transcribed, speech_characters read aloud)",
            ["model", "kind"],
            registry=registry,
        )
        self.overhead = Histogram(
            PREFIX + "overhead_seconds",
            "The proxy's own time per request, waits on upstreams left out",
            ["route"],
            buckets=OVERHEAD,
            registry=registry,
        )
        self.queued = Gauge(
            PREFIX + "queue_length",
            "Requests waiting for a slot, in the proxy or inside a server that queues",
            ["model", "upstream"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.busy = Gauge(
            PREFIX + "slots_busy",
            "Generations running on an upstream",
            ["model", "upstream"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.exchanges_dropped = Counter(
            PREFIX + "exchanges_dropped",
            "Exchanges the inspector gave up: made room for newer ones, found its queue full, "
            "or could not write",
            registry=registry,
        )
        self.key_waiting = Gauge(
            PREFIX + "key_queue_length",
            "Requests of a key waiting for a slot in the proxy's queue",
            ["model", "upstream", "key"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.key_busy = Gauge(
            PREFIX + "key_slots_busy",
            "Slots a key holds",
            ["model", "upstream", "key"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.key_served = Counter(
            PREFIX + "key_slots_served",
            "Slots given to a key's requests: each key's share of the turns",
            ["model", "upstream", "key"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            PREFIX + "queue_wait_seconds",
            "Time a request waited in the proxy's queue",
            ["model"],
            buckets=LATENCY,
            registry=registry,
        )
        self.tool_calls = Counter(
            PREFIX + "tool_calls",
            "Calls of the tools of the MCP servers the gateway runs",
            ["server", "tool"],
            registry=registry,
        )
        self.tool_errors = Counter(
            PREFIX + "tool_errors",
            "Calls of MCP tools that failed, by the error's code (tool_reported: a result the "
            "tool itself marked as an error)",
            ["server", "tool", "error"],
            registry=registry,
        )
        self.tool_seconds = Histogram(
            PREFIX + "tool_call_seconds",
            "Time an MCP tool's call took, its server's start included",
            ["server", "tool"],
            buckets=LATENCY,
            registry=registry,
        )

    def watch_stores(self, outages, capture) -> None:
        """Count the proxy's own stores' outages (``outages``), and what could not be
        written to them: the exchanges ``capture`` lost (the journal loses no charge)."""
        up = Gauge(
            PREFIX + "store_up",
            "Whether a store of the proxy's own (usage, limits, responses, exchanges) can be "
            "used: 0 during an outage",
            ["store"],
            multiprocess_mode="livemin",
            registry=self.registry,
        )
        unwritten = Counter(
            PREFIX + "store_unwritten",
            "Records a store could not take and the proxy could not keep: exchanges",
            ["store"],
            registry=self.registry,
        )
        for store in outages.stores:
            up.labels(store).set(int(outages.is_up(store)))
        outages.on_change = lambda store, is_up: up.labels(store).set(int(is_up))
        unwritten.labels("exchanges")
        capture.on_unwritten = unwritten.labels("exchanges").inc

    def watch_shared_queue(self, outages) -> None:
        """Whether the queue the processes share can be reached (``outages`` of it): while
        not, each process admits by its own."""
        up = Gauge(
            PREFIX + "queue_shared_up",
            "Whether the queue every process shares (the supervisor's, or Redis's) can be "
            "reached: 0 while each process admits by its own",
            multiprocess_mode="livemin",
            registry=self.registry,
        )
        up.set(1)
        outages.on_change = lambda store, is_up: up.set(int(is_up))

    def watch_batches(self, live: Callable[[], list]) -> None:
        """The requests of each batch under way (``live()``: their records), at every
        scrape."""
        collector = BatchesCollector(live)
        if self.registry is not None:
            self.registry.register(collector)
        self._batches = collector

    def watch(self, fleet) -> None:
        """Read the fleet's shared state at every scrape."""
        self._fleet = FleetCollector(fleet)
        if self.registry is not None:
            self.registry.register(self._fleet)

    def queue(self, model: str, upstream: str) -> "QueueMetrics":
        return QueueMetrics(self, model, upstream)

    def answered(
        self, route: str, model: str, status: int, seconds: float, measure: Measure, key: str = ""
    ) -> None:
        """One request done: its count (by key name), duration, tokens and the proxy's own
        time."""
        requests, duration, overhead, first_token, prompt, completion, cached = self._series(
            route, model, status, key
        )
        requests.inc()
        duration.observe(seconds)
        overhead.observe(measure.overhead)
        if measure.first_token is not None:
            first_token.observe(measure.first_token)
        if measure.prompt_tokens:
            prompt.inc(measure.prompt_tokens)
        if measure.completion_tokens:
            completion.inc(measure.completion_tokens)
        if measure.cached_tokens:
            cached.inc(measure.cached_tokens)
        for counts in measure.tokens.values():
            for kind, made in zip(MEDIA, counts[-len(MEDIA) :], strict=True):
                if made:
                    self.media.labels(model, kind).inc(made)

    def tool_called(self, server: str, tool: str, seconds: float, error: str = "") -> None:
        """One call of an MCP server's tool (``tool`` empty: a name its server does not
        list), and the code of its error, if it failed."""
        self.tool_calls.labels(server, tool).inc()
        self.tool_seconds.labels(server, tool).observe(seconds)
        if error:
            self.tool_errors.labels(server, tool, error).inc()

    def _series(self, route: str, model: str, status: int, key: str) -> tuple:
        """The figures of one kind of answer, looked up once: ``labels()`` takes a lock and
        builds its key at every call, and every request would pay for seven of them."""
        found = self._answers.get((route, model, status, key))
        if found is None:
            found = self._answers[route, model, status, key] = (
                self.requests.labels(route, model, str(status), key),
                self.duration.labels(route, model),
                self.overhead.labels(route),
                self.first_token.labels(model),
                self.tokens.labels(model, "prompt"),
                self.tokens.labels(model, "completion"),
                self.tokens.labels(model, "cached"),
            )
        return found

    def scrape(self) -> bytes:
        """The text exposition format of every figure, from every worker."""
        return _read(lambda: generate_latest(self._everything()))

    def summed(self) -> Summed:
        """What every worker counted, added up, for the pages and their history."""
        found = Summed({}, {}, {})
        for family in _read(lambda: list(self._everything().collect())):
            if family.name == PREFIX + "tokens":
                _add_tokens(found.tokens, family)
            elif family.name == PREFIX + "requests":
                _add_errors(found.errors, family)
            elif family.name in (PREFIX + "slots_busy", PREFIX + "queue_length"):
                _add_queues(found.queues, family)
        return found

    def _everything(self) -> CollectorRegistry:
        if self.registry is not None:
            return self.registry
        registry = CollectorRegistry()
        WorkerFiles(registry, path=self.folder)
        for collector in (self._fleet, self._batches):
            if collector is not None:
                registry.register(collector)
        return registry


class WorkerFiles(MultiProcessCollector):
    """Every worker's files but those still empty: a worker makes its file, then sizes it,
    and one killed between the two leaves it empty for good (it holds no figure)."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        self.folder = path
        super().__init__(registry, path=path)

    def collect(self):
        with os.scandir(self.folder) as entries:
            files = [
                entry.path
                for entry in entries
                if entry.name.endswith(".db") and entry.stat().st_size >= 8
            ]
        return self.merge(files, accumulate=True)


def _read(collect):
    """``collect()``, read again when a worker's file was caught as the worker was making
    or growing it: prometheus_client reads every worker's file without a lock, and one
    caught empty is a ``struct.error``, a key caught half-written a ``ValueError`` (its
    JSON, its UTF-8), a length past what is written a ``RuntimeError``. The next read finds
    it whole."""
    for _ in range(READS - 1):
        try:
            return collect()
        except (ValueError, struct.error, RuntimeError):
            continue
    return collect()


def _add_tokens(tokens: dict, family) -> None:
    for sample in family.samples:
        if sample.name.endswith("_total"):
            key = sample.labels["model"], sample.labels["kind"]
            tokens[key] = tokens.get(key, 0) + sample.value


def _add_errors(errors: dict, family) -> None:
    """Answers the proxy failed (a status of 500 or more); a 4xx is the client's doing."""
    for sample in family.samples:
        if sample.name.endswith("_total") and int(sample.labels["status"]) >= 500:
            model = sample.labels["model"]
            errors[model] = errors.get(model, 0) + sample.value


def _add_queues(queues: dict, family) -> None:
    column = 0 if family.name == PREFIX + "slots_busy" else 1
    for sample in family.samples:
        queue = queues.setdefault((sample.labels["model"], sample.labels["upstream"]), [0, 0])
        queue[column] += int(sample.value)


class QueueMetrics:
    """One upstream's admission queue, as the queue sees it (see :class:`Admission`)."""

    def __init__(self, metrics: Metrics, model: str, upstream: str) -> None:
        self.queued = metrics.queued.labels(model, upstream)
        self.busy = metrics.busy.labels(model, upstream)
        self.wait = metrics.queue_wait.labels(model)
        self.metrics, self.labels = metrics, (model, upstream)
        self._keys: dict = {}  # key name: its three figures, looked up once

    def counted(self, running: int, waiting: int) -> None:
        self.busy.set(running)
        self.queued.set(waiting)

    def admitted(self, waited: float) -> None:
        self.wait.observe(waited)

    def turns(self, key: str, running: int, waiting: int, served: bool) -> None:
        figures = self._keys.get(key)
        if figures is None:
            metrics, labels = self.metrics, (*self.labels, key or "-")
            figures = self._keys[key] = (
                metrics.key_busy.labels(*labels),
                metrics.key_waiting.labels(*labels),
                metrics.key_served.labels(*labels),
            )
        busy, queued, turns = figures
        busy.set(running)
        queued.set(waiting)
        if served:
            turns.inc()
