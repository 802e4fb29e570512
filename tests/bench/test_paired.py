"""Two ways that took turns, compared round by round (``bench.dialects.paired``)."""

from __future__ import annotations

import pytest

from bench.dialects import Gap, paired

DRIFTING = [10.0, 30.0, 12.0, 50.0, 11.0]  # a machine whose speed moves between rounds


@pytest.mark.parametrize(
    ("ours", "theirs", "gap"),
    [
        pytest.param([t + 0.25 for t in DRIFTING], DRIFTING, Gap(0.25, 0.25, 0.25), id="drift"),
        pytest.param([3.0], [1.0], Gap(2.0, 2.0, 2.0), id="one-round"),
        pytest.param([1.0, 4.0], [0.0, 0.0], Gap(2.5, 1.0, 4.0), id="two-rounds-span-both"),
        # n = 9: ranks 2 and 8, which hold the median 96% of the time
        pytest.param(list(range(10, 19)), [9.0] * 9, Gap(5.0, 2.0, 8.0), id="nine-rounds"),
        pytest.param([9.0] * 9, list(range(10, 19)), Gap(-5.0, -8.0, -2.0), id="faster"),
    ],
)  # fmt: skip
def test_the_gap_round_by_round(ours, theirs, gap):
    assert paired(ours, theirs) == gap


def test_a_hundred_rounds_interval_is_about_the_middle_fifth():
    gap = paired([float(i) for i in range(100)], [0.0] * 100)
    assert (gap.median, gap.low, gap.high) == (49.5, 39.0, 60.0)  # ranks 40 and 61


def test_ways_of_unequal_rounds_are_refused():
    with pytest.raises(ValueError):
        paired([1.0, 2.0], [1.0])
