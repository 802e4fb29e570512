"""The fleet page's history: snapshots of the summed counters, and the series made of them."""

from __future__ import annotations

import pytest

from proxy.ops.history import Figures, History, Snapshot, due, series, snapshot, trimmed
from proxy.ops.metrics import Summed


class Clock:
    """Unix seconds that move only when a test moves them."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(*times: float) -> list:
    """Snapshots at ``times`` with nothing in them: for the tests about time alone."""
    return [Snapshot(t, {}) for t in times]


@pytest.mark.parametrize(
    "last, now, expected",
    [
        (None, 1000, True),  # the first look always takes one
        (1000, 1005, False),
        (1000, 1009.99, False),
        (1000, 1010, True),
        (1000, 5000, True),  # after a quiet spell
    ],
    ids=["first", "within", "just-within", "a-bucket-on", "long-after"],
)
def test_a_snapshot_is_due_once_a_bucket(last, now, expected):
    assert due(last, now, bucket=10) is expected


@pytest.mark.parametrize(
    "times, now, expected",
    [
        ((), 1000, ()),
        ((100, 110, 120), 120, (100, 110, 120)),
        ((0, 100, 950, 960), 1000, (0, 100, 950, 960)),  # 0 starts the sample at 100
        ((0, 50, 99, 950), 1000, (99, 950)),
        ((0, 50, 2000), 2000, (50, 2000)),  # a quiet spell: one sample over all of it
        ((0, 10), 2000, (10,)),  # all of them too old: no sample left
    ],
    ids=["none", "all-inside", "one-before", "older-ones-go", "gap", "all-old"],
)
def test_the_window_keeps_the_snapshot_before_it(times, now, expected):
    kept = trimmed(at(*times), now, window=900)
    assert tuple(each.t for each in kept) == expected


QUEUES = {("tiny", "http://a"): [1, 2], ("tiny", "http://b"): [0, 1], ("idle", "http://c"): [0, 0]}


@pytest.mark.parametrize(
    "summed, expected",
    [
        (Summed({}, {}, {}), {}),
        (
            Summed(
                {("tiny", "completion"): 40, ("tiny", "prompt"): 100, ("tiny", "cached"): 60},
                {"tiny": 2},
                QUEUES,
            ),
            {"tiny": Figures(40, 100, 60, 2, 3)},
        ),
        (
            Summed({("idle", "completion"): 0, ("idle", "prompt"): 0}, {}, QUEUES),
            {"tiny": Figures(queued=3)},
        ),  # queued, not answered yet: in; nothing at all: out
        (Summed({}, {"broken": 1}, {}), {"broken": Figures(errors=1)}),
    ],
    ids=["nothing", "every-figure", "idle-left-out", "errors-only"],
)
def test_a_snapshot_holds_the_models_that_did_something(summed, expected):
    assert snapshot(1000, summed) == Snapshot(1000, expected)


def sample(t, tokens_per_s, queued=0, cache_hit_rate=None, errors=0) -> dict:
    return {
        "t": t,
        "tokens_per_s": tokens_per_s,
        "queued": queued,
        "cache_hit_rate": cache_hit_rate,
        "errors": errors,
    }


@pytest.mark.parametrize(
    "snapshots, expected",
    [
        ([], {}),
        ([Snapshot(1000, {"m": Figures(10, 10)})], {}),  # one snapshot: no interval yet
        (
            [Snapshot(1000, {}), Snapshot(1010, {"m": Figures(50, 100, 80, 1, 3)})],
            {"m": [sample(1010, 5.0, queued=3, cache_hit_rate=0.8, errors=1)]},
        ),
        (
            [
                Snapshot(1000, {"m": Figures(50, 100, 80)}),
                Snapshot(1010, {"m": Figures(70, 100, 80)}),
            ],
            {"m": [sample(1010, 2.0)]},
        ),  # no prompt in the interval: no hit rate
        (
            [Snapshot(1000, {"m": Figures(0, 10)}), Snapshot(1010, {"m": Figures(0, 20)})],
            {"m": [sample(1010, 0.0, cache_hit_rate=0.0)]},
        ),  # prompts, none from the cache
        (
            [
                Snapshot(1000, {"m": Figures(0)}),
                Snapshot(1010, {"m": Figures(100)}),
                Snapshot(1310, {"m": Figures(400)}),
            ],
            {"m": [sample(1010, 10.0), sample(1310, 1.0)]},
        ),  # across a gap: its average
        (
            [
                Snapshot(1000, {"a": Figures(10)}),
                Snapshot(1010, {"a": Figures(20), "b": Figures(5)}),
            ],
            {"a": [sample(1010, 1.0)], "b": [sample(1010, 0.5)]},
        ),
        (
            [Snapshot(1000, {"m": Figures(0)}), Snapshot(1003, {"m": Figures(10)})],
            {"m": [sample(1003, 3.333)]},
        ),
    ],
    ids=["none", "one", "every-figure", "no-prompt", "no-cache", "gap", "two-models", "rounded"],
)
def test_series_are_the_changes_between_snapshots(snapshots, expected):
    assert series(snapshots) == expected


def counters(completion: float) -> Summed:
    return Summed({("m", "completion"): completion}, {}, {})


def test_a_history_takes_at_most_one_snapshot_a_bucket():
    clock, taken = Clock(), []

    def take() -> Summed:  # a token more at each snapshot
        taken.append(clock.now)
        return counters(len(taken))

    history = History(take, clock=clock, bucket=5)
    for step in (0, 1, 3, 1, 4, 20):  # at 1000, 1001, 1004, 1005, 1009, 1029
        clock.now += step
        history.look()
    assert taken == [1000, 1005, 1029]
    assert history.series() == {"m": [sample(1005, 0.2), sample(1029, 0.042)]}


def test_a_history_forgets_what_is_older_than_its_window():
    clock = Clock()
    completion = iter(range(0, 1000, 10))
    history = History(lambda: counters(next(completion)), clock=clock, bucket=10, window=60)
    for _ in range(20):
        history.look()
        clock.now += 10
    clock.now -= 10  # the last look's time
    samples = history.series()["m"]
    assert [each["t"] for each in samples] == [1130, 1140, 1150, 1160, 1170, 1180, 1190]
    assert {each["tokens_per_s"] for each in samples} == {1.0}
    assert len(history._snapshots) <= 60 // 10 + 2


def test_a_history_is_empty_until_something_happened():
    history = History(lambda: Summed({}, {}, {}), clock=Clock())
    assert history.series() == {}
