"""Which module a worker runs next (tests/schedule.py): the longest that fits the cores."""

from __future__ import annotations

import pytest

from tests.schedule import UNKNOWN_SECONDS_PER_TEST, Cost, estimated, module_of, pick

HEAVY, LIGHT = Cost(100, 1.2), Cost(10, 0.3)


@pytest.mark.parametrize(
    "waiting, running, cores, chosen",
    [
        ([HEAVY, LIGHT], [], 3.0, 0),  # the longest first
        ([HEAVY, LIGHT], [HEAVY], 3.0, 0),  # two heavy ones fit three cores
        ([HEAVY, LIGHT], [HEAVY, HEAVY], 3.0, 1),  # a third does not: a light one goes
        ([HEAVY], [HEAVY, HEAVY], 3.0, None),  # nothing fits: wait for one to end
        ([Cost(5, 4.0)], [], 3.0, 0),  # more than every core, alone
        ([Cost(5, 4.0), LIGHT], [LIGHT], 3.0, 1),
        ([], [], 3.0, None),
    ],
)
def test_the_longest_module_that_fits_goes_next(waiting, running, cores, chosen):
    assert pick(waiting, running, cores) == chosen


def test_a_module_is_its_file_and_an_unknown_one_costs_by_its_tests():
    assert module_of("tests/x/test_y.py::Class::test[a-b]") == "tests/x/test_y.py"
    assert estimated({"a.py": HEAVY}, "a.py", 3) == HEAVY
    assert estimated({}, "b.py", 4).seconds == 4 * UNKNOWN_SECONDS_PER_TEST
