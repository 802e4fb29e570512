"""Which worker runs which module, and when: the longest first, never more processor work at
once than the machine has cores for.

Each module runs whole on one worker, so the servers its module fixtures start are started
once. Modules are handed out by what the last full run measured of each (``tests/costs.json``:
its seconds, and the cores it kept busy, its processor time and its servers' over its
seconds): the longest first, so that they start early and the short ones fill the end; and a
module starts only while the modules the other workers run leave it the cores it kept busy
(out of the machine's), so CPU-bound servers are not slowed by four at once on two cores.
The cores are measured beside the other workers, so they are less than a module would take
alone: a budget of the machine's own cores still lets light modules run beside heavy ones.
A module the file does not know is taken to cost :data:`UNKNOWN`.

``--record-costs FILE`` measures every module of the run and writes the figures there (CI
passes ``tests/costs.json``: commit it after a run that changed the suite's shape).
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import pytest

COSTS = pathlib.Path(__file__).with_name("costs.json")
UNKNOWN_SECONDS_PER_TEST = 0.5


@dataclass(frozen=True)
class Cost:
    """What one module took: seconds from its first test's set-up to its last's tear-down,
    and the cores it kept busy meanwhile (processor seconds over those seconds)."""

    seconds: float
    cores: float


UNKNOWN = Cost(seconds=0.0, cores=0.5)


def module_of(nodeid: str) -> str:
    """The module a test's id names (a class's tests go with their module)."""
    return nodeid.split("::", 1)[0]


def read_costs(path: pathlib.Path = COSTS) -> dict:
    """``{module: Cost}`` as recorded; none when there is no file."""
    try:
        recorded = json.loads(path.read_text())["modules"]
    except FileNotFoundError:
        return {}
    return {module: Cost(**figures) for module, figures in recorded.items()}


def pick(waiting: Sequence[Cost], running: Sequence[Cost], cores: float) -> Optional[int]:
    """The index in ``waiting`` (longest first) of the module to start now, beside the
    modules ``running`` on other workers, within ``cores``; ``None``: wait for one to end.
    A module that needs more than all the cores starts when nothing else runs."""
    busy = sum(cost.cores for cost in running)
    for index, cost in enumerate(waiting):
        if busy + cost.cores <= cores or not running:
            return index
    return None


def estimated(costs: dict, module: str, tests: int) -> Cost:
    """``module``'s recorded cost, or :data:`UNKNOWN`'s for ``tests`` tests."""
    found = costs.get(module)
    if found is not None:
        return found
    return Cost(UNKNOWN_SECONDS_PER_TEST * tests, UNKNOWN.cores)


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--record-costs",
        metavar="FILE",
        help="measure each module's seconds and cores and write them to FILE (tests/costs.json)",
    )


def pytest_configure(config) -> None:
    if config.getoption("record_costs"):
        config.pluginmanager.register(ModuleClock(config), "module-clock")


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") not in ("load", "loadscope"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByCost(LoadScopeScheduling):
        """Modules whole, the longest first, within the machine's cores."""

        def __init__(self, config, log=None) -> None:
            super().__init__(config, log)
            self.costs = read_costs()
            self.cores = float(os.cpu_count() or 2)

        def _split_scope(self, nodeid: str) -> str:
            return module_of(nodeid)

        def schedule(self) -> None:
            assert self.collection_is_completed
            if self.collection is not None:
                self._hand_out()
                return
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            self.collection = list(next(iter(self.registered_collections.values())))
            units: dict = {}
            for nodeid in self.collection:
                units.setdefault(self._split_scope(nodeid), {})[nodeid] = False
            ordered = sorted(
                units.items(), key=lambda unit: -self._cost(unit[0], len(unit[1])).seconds
            )
            self.workqueue.update(ordered)
            self._hand_out()

        def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
            nodeid = self.registered_collections[node][item_index]
            self.assigned_work[node][self._split_scope(nodeid)][nodeid] = True
            self._hand_out()

        def remove_node(self, node):
            crashed = super().remove_node(node)
            self._hand_out()
            return crashed

        def _hand_out(self) -> None:
            """Give each worker about to run dry its next module, while one fits."""
            for node in self.nodes:
                if node.shutting_down:
                    continue
                if not self.workqueue:
                    if not self._pending_of(self.assigned_work[node]):
                        node.shutdown()
                    continue
                if self._pending_of(self.assigned_work[node]) > 2:
                    continue  # it has work left: decide when it is nearly done
                waiting = list(self.workqueue.items())
                running = [self._running(other) for other in self.nodes if other is not node]
                index = pick(
                    [self._cost(scope, len(tests)) for scope, tests in waiting],
                    [cost for cost in running if cost is not None],
                    self.cores,
                )
                if index is not None:
                    self._assign(node, waiting[index][0])

        def _assign(self, node, scope: str) -> None:
            unit = self.workqueue.pop(scope)
            self.assigned_work[node][scope] = unit
            collection = self.registered_collections[node]
            node.send_runtest_some(
                [collection.index(nodeid) for nodeid, done in unit.items() if not done]
            )

        def _running(self, node) -> Optional[Cost]:
            """What the modules ``node`` runs or is given cost at most; ``None`` while it
            runs nothing: a worker holds its last test back until it is given more (or
            told to stop), so one with a test left waits for this scheduler."""
            work = self.assigned_work[node]
            if self._pending_of(work) < 2:
                return None
            return max(
                (
                    self._cost(scope, len(unit))
                    for scope, unit in work.items()
                    if not all(unit.values())
                ),
                key=lambda cost: cost.cores,
            )

        def _cost(self, scope: str, tests: int) -> Cost:
            return estimated(self.costs, scope, tests)

    return ByCost(config, log)


class ModuleClock:
    """Measures each module a process runs: from its first test's start to the end of its
    last one's tear-down (where its module fixtures end), the processor time of this
    process and of the processes it waited for meanwhile (its servers, stopped by then)."""

    def __init__(self, config) -> None:
        self.config = config
        self.path = pathlib.Path(config.getoption("record_costs"))
        self.measured: dict = {}
        self._began: Optional[tuple] = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        module = module_of(item.nodeid)
        if self._began is None:
            self._began = (time.monotonic(), _processor_time())
        yield
        if nextitem is None or module_of(nextitem.nodeid) != module:
            began, spent = self._began
            seconds = time.monotonic() - began
            cores = (_processor_time() - spent) / seconds if seconds else 0.0
            self.measured[module] = {"seconds": round(seconds, 1), "cores": round(cores, 2)}
            self._began = None

    def pytest_sessionfinish(self, session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller writes the file
            workeroutput["costs"] = self.measured
        else:
            self.write()

    def pytest_testnodedown(self, node, error) -> None:
        self.measured.update(getattr(node, "workeroutput", {}).get("costs", {}))

    def write(self) -> None:
        """The figures measured now, over those recorded of modules that still exist."""
        try:
            recorded = json.loads(self.path.read_text())["modules"]
        except FileNotFoundError:
            recorded = {}
        root = self.config.rootpath
        kept = {module: cost for module, cost in recorded.items() if (root / module).exists()}
        kept.update(self.measured)
        self.path.write_text(json.dumps({"modules": dict(sorted(kept.items()))}, indent=1) + "\n")


def _processor_time() -> float:
    """Seconds of processor time of this process and of the children it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
