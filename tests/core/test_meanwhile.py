"""The one keep-alive: work run in a thread of its own, a waiting item yielded while it runs
(once it has taken its patience), its result returned or its error raised, and whoever
must close what it opened told once it ends after its client has left."""

from __future__ import annotations

import threading

import pytest

from proxy.core.meanwhile import meanwhile

WAITING = object()


def finished(waits):
    """The waiting items ``waits`` yields, and what it returns."""
    told = []
    while True:
        try:
            told.append(next(waits))
        except StopIteration as ended:
            return told, ended.value


def test_work_done_within_its_patience_yields_nothing_and_gives_its_result():
    assert finished(meanwhile(lambda: "done", WAITING, patience=30)) == ([], "done")


def test_slow_work_is_kept_company_until_it_is_done():
    release = threading.Event()

    def slow():
        release.wait(30)
        return "done"

    waits = meanwhile(slow, WAITING, every=0.01)
    assert next(waits) is WAITING
    release.set()
    told, result = finished(waits)
    assert set(told) <= {WAITING} and result == "done"


def test_the_works_error_is_raised_where_it_is_read():
    with pytest.raises(ZeroDivisionError):
        finished(meanwhile(lambda: 1 / 0, WAITING, patience=30))


def test_work_its_client_left_is_abandoned_once_it_ends():
    release, abandoned = threading.Event(), threading.Event()
    waits = meanwhile(lambda: release.wait(30), WAITING, every=0.01, abandoned=abandoned.set)
    assert next(waits) is WAITING
    waits.close()
    assert not abandoned.is_set()
    release.set()
    assert abandoned.wait(30)
