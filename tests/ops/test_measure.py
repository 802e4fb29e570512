"""A request's measure: its waits, and of them those in an upstream's queue for a slot."""

import itertools

import pytest

from proxy.ops import measure as measured
from proxy.ops.measure import Measure, queueing, waiting


@pytest.mark.parametrize(
    "waits, waited, queued",
    [
        ([], 0.0, 0.0),
        ([waiting], 1.0, 0.0),
        ([queueing], 1.0, 1.0),
        ([waiting, queueing, queueing], 3.0, 2.0),
    ],
    ids=["none", "a-wait", "a-queue", "both"],
)
def test_a_wait_in_a_queue_counts_as_a_wait_and_as_queued(monkeypatch, waits, waited, queued):
    clock = itertools.count()  # each reading one second after the last
    monkeypatch.setattr(measured, "perf_counter", lambda: float(next(clock)))
    measure = Measure()
    for wait in waits:
        with wait(measure):
            pass
    assert (measure.waited, measure.queued) == (waited, queued)
