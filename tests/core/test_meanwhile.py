"""The one keep-alive: work run in a helper thread, a waiting item yielded while it runs (once
it has taken its patience), its result returned or its error raised, and whoever must close
what it opened told once it ends after its client has left; the helper threads used again
while they idle, as many as the work at once, each ending once idle a while."""

from __future__ import annotations

import contextvars
import gc
import threading
import weakref

import pytest

from proxy.core.meanwhile import Helpers, meanwhile
from tests.polling import wait_for

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
    assert finished(meanwhile(lambda: "done", WAITING, Helpers(), patience=30)) == ([], "done")


def test_slow_work_is_kept_company_until_it_is_done():
    release = threading.Event()

    def slow():
        release.wait(30)
        return "done"

    waits = meanwhile(slow, WAITING, Helpers(), every=0.01)
    assert next(waits) is WAITING
    release.set()
    told, result = finished(waits)
    assert set(told) <= {WAITING} and result == "done"


def test_the_works_error_is_raised_where_it_is_read():
    with pytest.raises(ZeroDivisionError):
        finished(meanwhile(lambda: 1 / 0, WAITING, Helpers(), patience=30))


def test_work_its_client_left_is_abandoned_once_it_ends():
    release, abandoned = threading.Event(), threading.Event()
    waits = meanwhile(
        lambda: release.wait(30), WAITING, Helpers(), every=0.01, abandoned=abandoned.set
    )
    assert next(waits) is WAITING
    waits.close()
    assert not abandoned.is_set()
    release.set()
    assert abandoned.wait(30)


def test_an_idle_helper_runs_the_next_work_and_ends_once_idle_a_while():
    helpers = Helpers(idle=30)
    first = helpers.run(threading.get_ident).result(30)
    wait_for(lambda: helpers._idle == 1, "the helper idle")
    assert helpers.run(threading.get_ident).result(30) == first  # no thread started
    ending = Helpers(idle=0.01)
    ran = ending.run(threading.current_thread).result(30)
    wait_for(lambda: not ran.is_alive(), "the idle helper ended")
    assert ending._idle == 0 and ending.run(lambda: "again").result(30) == "again"


def test_work_at_once_runs_in_as_many_helpers_in_the_callers_context():
    helpers = Helpers(idle=30)
    asked = contextvars.ContextVar("asked")
    asked.set("the caller's")
    release = threading.Event()
    held = [helpers.run(lambda: (release.wait(30), threading.get_ident())[1]) for _ in range(3)]
    told = helpers.run(asked.get).result(30)
    release.set()
    assert len({future.result(30) for future in held}) == 3 and told == "the caller's"


def test_an_idle_helper_keeps_nothing_of_the_work_it_ran():
    helpers = Helpers(idle=30)

    class Work:
        def __call__(self) -> str:
            return "done"

    work = Work()
    gone = weakref.ref(work)
    assert helpers.run(work).result(30) == "done"
    wait_for(lambda: helpers._idle == 1, "the helper idle")
    del work
    gc.collect()
    assert gone() is None
