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


@pytest.mark.parametrize(
    "waited, queued, spent, first, seconds, header",
    [
        (
            0.0,
            0.0,
            0.0005,
            None,
            0.0005,
            "queue;dur=0.000, upstream;dur=0.000, proxy;dur=0.500, total;dur=0.500",
        ),
        (
            1.25,
            0.25,
            1.2515,
            0.75,
            1.2515,
            "queue;dur=250.000, upstream;dur=1000.000, proxy;dur=1.500, first-token;dur=750.000, "
            "total;dur=1251.500",
        ),
    ],
    ids=["a-refusal", "queued-then-answered"],
)
def test_server_timing_tells_the_waits_the_proxys_time_and_the_first_token(
    waited, queued, spent, first, seconds, header
):
    measure = Measure()
    measure.pause()
    measure.spent, measure.waited, measure.queued, measure.first_token = (
        spent,
        waited,
        queued,
        first,
    )
    assert measured.server_timing(measure, seconds) == header
