"""What every process sees alike, read when the metrics are scraped rather than counted as
it happens: the fleet's upstreams, their slots and the servers the proxy runs, the queue every
process shares, and the batches under way."""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from prometheus_client.core import GaugeMetricFamily

PREFIX = "oai_proxy_"
MANAGED_STATES = ("stopped", "starting", "ready", "failed")


class BatchesCollector:
    """Each batch under way: its requests answered, failed, running and waiting, by the
    models they name."""

    def __init__(self, live: Callable[[], list]) -> None:
        self.live = live

    def collect(self) -> Iterator[GaugeMetricFamily]:
        requests = GaugeMetricFamily(
            PREFIX + "batch_requests",
            "Requests of each batch under way: answered, failed, running and waiting to run",
            labels=["batch", "model", "state"],
        )
        for batch in self.live():
            model = ",".join(batch.models)
            waiting = batch.total - batch.completed - batch.failed - batch.running
            for state, value in (("answered", batch.completed), ("failed", batch.failed),
                                 ("running", batch.running), ("waiting", waiting)):  # fmt: skip
                requests.add_metric([batch.id, model, state], value)
        yield requests


class FleetCollector:
    """Upstreams up or down, their slots, and the state of each server the proxy runs."""

    def __init__(self, fleet) -> None:
        self.fleet = fleet

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            PREFIX + "upstream_up",
            "1 when the upstream is in rotation",
            labels=["model", "upstream"],
        )
        slots = GaugeMetricFamily(
            PREFIX + "slots_total",
            "Slots an upstream has, when known",
            labels=["model", "upstream"],
        )
        managed = GaugeMetricFamily(
            PREFIX + "managed_server_state",
            "1 for the state the server the proxy runs is in",
            labels=["model", "state"],
        )
        shared = SharedQueueFamilies()
        for model in self.fleet.status():
            for replica in model["replicas"]:
                name = model["label"]
                shared.add(name, replica)
                up.add_metric([name, replica["url"]], float(replica["in_rotation"]))
                if replica["slots"]:
                    slots.add_metric([name, replica["url"]], replica["slots"])
                state: Optional[str] = replica.get("managed", {}).get("state")
                if state:
                    for each in MANAGED_STATES:
                        managed.add_metric([name, each], float(each == state))
        yield from (up, slots, managed, *shared.families)


class SharedQueueFamilies:
    """The queue every process shares, as whichever process is scraped sees it (its metrics
    named ``line_*``): each key's slots and waiting requests, and each process's slots."""

    def __init__(self) -> None:
        self.leased = GaugeMetricFamily(
            PREFIX + "line_slots_held",
            "Slots a key holds, over every process sharing the upstream's line",
            labels=["model", "upstream", "key"],
        )
        self.waiting = GaugeMetricFamily(
            PREFIX + "line_waiting",
            "Requests of a key waiting in the upstream's line, over every process sharing it",
            labels=["model", "upstream", "key"],
        )
        self.by_process = GaugeMetricFamily(
            PREFIX + "line_process_slots_held",
            "Slots each process sharing the upstream's line holds (a pid, or host:pid)",
            labels=["model", "upstream", "process"],
        )
        self.families = (self.leased, self.waiting, self.by_process)

    def add(self, model: str, replica: dict) -> None:
        if not replica.get("shared"):
            return
        labels = [model, replica["url"]]
        for key, counts in replica.get("keys", {}).items():
            self.leased.add_metric([*labels, key], counts["running"])
            self.waiting.add_metric([*labels, key], counts["waiting"])
        for process, leased in replica.get("processes", {}).items():
            self.by_process.add_metric([*labels, str(process)], leased)
