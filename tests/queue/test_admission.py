"""Admission to an upstream's slots: how many, who goes next, and every way a lease ends."""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import pytest

from proxy.core.caller import Caller
from proxy.core.errors import (
    ClientGoneError,
    QueueFullError,
    QueueTimeoutError,
    SlotUnavailableError,
    UpstreamError,
)
from proxy.core.party import ANYONE, Party
from proxy.queue.admission import FIRST_BACKOFF, Admission
from proxy.queue.fair import SlotCount
from proxy.queue.lease import Ticket
from tests.polling import wait_for

URL = "http://upstream.test"


# -- how many slots --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "count,limit,source",
    [
        (SlotCount(), None, "unknown"),
        (SlotCount(configured=3, reported=8), 3, "configured"),
        (SlotCount(reported=8, seen=2, ceiling=1), 8, "reported"),
        (SlotCount(seen=2), None, "learned"),
        (SlotCount(seen=2, ceiling=1), 2, "learned"),
        (SlotCount(seen=2, ceiling=5), 5, "learned"),
        (SlotCount(seen=0, ceiling=1), 1, "learned"),
    ],
    ids=[
        "nothing-known",
        "operator-first",
        "server-next",
        "seen-alone-sends-on",
        "seen-beats-a-low-refusal",
        "refusal-above-seen",
        "one-at-least",
    ],
)
def test_limit_and_where_it_comes_from(count, limit, source):
    assert (count.limit, count.source) == (limit, source)


@pytest.mark.parametrize(
    "events,limit",
    [
        ([("refused", 3)], 3),
        ([("refused", 3), ("refused", 5)], 3),
        ([("refused", 0)], 1),
        ([("refused", 2), ("slot", 3)], 4),
        ([("slot", 1), ("refused", 1)], 2),
        ([("slot", True), ("slot", -1), ("slot", "2"), ("slot", 10_000), ("refused", 1)], 1),
    ],
    ids=[
        "a-refusal-shows-a-ceiling",
        "the-lowest-ceiling-holds",
        "never-below-one",
        "slot-ids-raise-it",
        "a-seen-slot-exists",
        "odd-slot-ids-are-ignored",
    ],
)
def test_learning_from_answers(events, limit):
    count = SlotCount()
    for kind, value in events:
        count.saw_slot(value) if kind == "slot" else count.refused(value)
    assert count.limit == limit


# -- waiting in the queue ----------------------------------------------------------------------


def admission(slots: int | None = 1, **options) -> Admission:
    options = {"max_queue": 8, "queue_timeout": 5, **options}
    return Admission(URL, SlotCount(configured=slots), **options)


def lease(
    gate: Admission, release: threading.Event, party: Party = ANYONE, **kwargs
) -> threading.Thread:
    """A thread with a lease for ``party`` until ``release`` is set; it has it when this
    returns."""
    taken = threading.Event()

    def run() -> None:
        with gate.lease(Caller(party), **kwargs):
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    assert taken.wait(5)
    return thread


def test_requests_beyond_the_slots_wait_their_turn_in_order():
    gate, release, order = admission(1), threading.Event(), []
    lessee = lease(gate, release)

    def wait(name: str) -> None:
        with gate.lease():
            order.append(name)

    waiters = []
    for name in "abc":
        waiters.append(threading.Thread(target=wait, args=(name,)))
        waiters[-1].start()
        wait_for(lambda: gate.snapshot()["queued"] == len(waiters))
    assert gate.snapshot() == {
        "slots": 1,
        "slots_source": "configured",
        "in_flight": 1,
        "queued": 3,
    }
    release.set()
    for thread in [lessee, *waiters]:
        thread.join(5)
    assert order == ["a", "b", "c"]
    assert gate.snapshot()["in_flight"] == gate.snapshot()["queued"] == 0


@pytest.mark.parametrize(
    "queues, at_once", [(False, 2), (True, 4)], ids=["refusing-server", "queueing-server"]
)
def test_a_server_that_queues_holds_one_waiting_request_per_slot(queues, at_once):
    gate, release = Admission(URL, SlotCount(), max_queue=8, queue_timeout=5), threading.Event()
    gate.report(2, queues=queues)
    lessees = [lease(gate, release) for _ in range(at_once)]

    def wait() -> None:
        with gate.lease():
            pass

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_for(lambda: gate.busy()[0] == at_once + 1, "the next request in the queue")
    # what operators see: two generations, and the rest waiting wherever they wait
    assert gate.snapshot() == {
        "slots": 2,
        "slots_source": "reported",
        "in_flight": 2,
        "queued": at_once - 1,
    }
    release.set()
    for thread in [*lessees, waiter]:
        thread.join(5)


def test_a_full_line_is_a_503_saying_what_to_raise():
    gate, release = admission(1, max_queue=1), threading.Event()
    lessee = lease(gate, release)

    def wait() -> None:
        with gate.lease():
            pass

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_for(lambda: gate.snapshot()["queued"] == 1)
    with pytest.raises(QueueFullError) as info:
        with gate.lease():
            pass
    assert info.value.status == 503 and info.value.retry_after
    assert "--max-queue" in info.value.message and URL in info.value.message
    release.set()
    lessee.join(5)
    waiter.join(5)


def test_waiting_too_long_is_a_503_saying_what_to_raise():
    gate, release = admission(1, queue_timeout=0.2), threading.Event()
    lessee = lease(gate, release)
    with pytest.raises(QueueTimeoutError) as info:
        with gate.lease():
            pass
    assert info.value.status == 503 and info.value.retry_after
    assert "--queue-timeout" in info.value.message
    assert gate.snapshot()["queued"] == 0
    release.set()
    lessee.join(5)


def test_a_client_gone_while_waiting_leaves_the_queue_at_once():
    gate, release, gone = admission(1), threading.Event(), threading.Event()
    lessee = lease(gate, release)
    errors = []

    def wait() -> None:
        try:
            with gate.lease(Caller(gone=gone.is_set)):
                errors.append("admitted")
        except ClientGoneError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_for(lambda: gate.snapshot()["queued"] == 1)
    gone.set()
    waiter.join(30)  # a hang only: one that missed its client would end at its queue timeout
    assert isinstance(errors[0], ClientGoneError)
    assert gate.snapshot()["queued"] == 0
    release.set()
    lessee.join(5)


def test_with_nothing_known_every_request_goes_through():
    gate, release = admission(None), threading.Event()
    lessees = [lease(gate, release) for _ in range(5)]
    assert gate.snapshot()["in_flight"] == 5
    release.set()
    for thread in lessees:
        thread.join(5)


# -- leases end on every path ------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure", [UpstreamError("boom"), KeyboardInterrupt()], ids=["upstream-error", "anything"]
)
def test_a_failure_inside_hands_the_lease_back(failure):
    gate = admission(1)
    with pytest.raises(type(failure)):
        gate.run(lambda: (_ for _ in ()).throw(failure))
    assert gate.snapshot()["in_flight"] == 0


def test_a_stream_closed_early_hands_the_lease_back():
    gate = admission(1)
    stream = gate.stream(lambda: (i for i in range(10)))
    assert next(stream) == 0 and gate.snapshot()["in_flight"] == 1
    stream.close()
    assert gate.snapshot()["in_flight"] == 0


def test_a_stream_read_to_its_end_hands_the_lease_back():
    gate = admission(1)
    assert list(gate.stream(lambda: (c for c in "abc"))) == ["a", "b", "c"]
    assert gate.snapshot()["in_flight"] == 0


# -- refusals --------------------------------------------------------------------------------


class Ticking:
    """A clock that moves on a little each time it is read: what the gate waits for passes
    in its readings, however fast the machine."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_a_refused_request_goes_back_to_the_head_of_the_queue():
    clock = Ticking(FIRST_BACKOFF / 5)
    gate, attempts = admission(None, clock=clock), []

    def attempt() -> str:
        attempts.append(clock.now)
        if len(attempts) < 3:
            raise SlotUnavailableError("no free slot")
        return "answered"

    assert gate.run(attempt) == "answered"
    assert len(attempts) == 3
    first, second = (later - earlier for earlier, later in pairwise(attempts))
    assert second >= first >= FIRST_BACKOFF and second >= 2 * FIRST_BACKOFF  # backing off
    assert gate.snapshot() == {"slots": 1, "slots_source": "learned", "in_flight": 0, "queued": 0}


def test_a_refused_stream_is_tried_again_before_any_item():
    gate, tries = admission(None), []

    def start():
        tries.append(1)
        if len(tries) == 1:
            raise SlotUnavailableError("no free slot")
        yield from "ok"

    assert "".join(gate.stream(start)) == "ok"
    assert len(tries) == 2


def test_a_refusal_shows_how_many_the_server_was_serving():
    gate, release = admission(None), threading.Event()
    started = []

    def serving() -> None:
        for _ in gate.stream(lambda: (i for i in [1])):
            started.append(1)
            release.wait(10)

    lessees = [threading.Thread(target=serving) for _ in range(2)]
    for thread in lessees:
        thread.start()
    wait_for(lambda: len(started) == 2)
    refusals = iter([SlotUnavailableError("no free slot")])

    def third():
        error = next(refusals, None)
        if error:
            raise error
        return "third"

    result = []
    runner = threading.Thread(target=lambda: result.append(gate.run(third)))
    runner.start()
    wait_for(lambda: gate.slots.limit == 2 and gate.snapshot()["queued"] == 1)
    release.set()
    runner.join(5)
    assert result == ["third"]
    for thread in lessees:
        thread.join(5)


@pytest.mark.parametrize("ended", [False, True], ids=["generating", "last-item-unread"])
def test_a_refusal_counts_only_the_generations_the_server_still_holds(ended):
    """A stream whose last item has come holds its lease until the client has read it, but
    the server freed its slot before sending that item: a refusal meanwhile counts it out."""
    gate = admission(None)
    items = [1, "last"] if ended else [1, 2]
    lessees = [gate.stream(lambda: (i for i in items), ends=lambda i: i == "last") for _ in "ab"]
    for stream in lessees:
        assert next(stream) == 1
    if ended:
        assert next(lessees[0]) == "last"  # read, its lease not handed back yet
    assert gate.snapshot()["in_flight"] == 2
    gate.refused(Ticket(deadline=time.monotonic() + 5))
    assert gate.slots.limit == (1 if ended else 2)
    for stream in lessees:
        stream.close()


@pytest.mark.parametrize(
    "slots, limit", [((0, 1), 2), ((0, 0), 1), ((0, None), 2)], ids=["two", "one-reused", "unnamed"]
)
def test_a_refusal_counts_two_answers_from_one_slot_once(slots, limit):
    """The first answer ended on the server and its slot went to the second before the last
    item of the first was read here: the server holds one generation, not two."""
    gate = admission(None)
    lessees = [
        gate.stream(lambda n=n: (i for i in [n, "more"]), slot=lambda item, n=n: n) for n in slots
    ]
    for stream in lessees:
        next(stream)
    gate.refused(Ticket(deadline=time.monotonic() + 5))
    assert gate.slots.limit == limit
    for stream in lessees:
        stream.close()


def test_a_server_that_reappears_is_learned_afresh():
    gate = admission(None)
    gate.saw_slot(5)
    gate.slots.refused(2)
    gate.report(None)
    assert gate.slots.limit is None
    gate.report(4)
    assert gate.snapshot()["slots"] == 4


def test_a_stream_closed_from_another_thread_hands_the_lease_back():
    gate = admission(1)
    stream = gate.stream(lambda: (i for i in range(3)))
    assert next(stream) == 0
    closer = threading.Thread(target=stream.close)
    closer.start()
    closer.join(5)
    assert gate.snapshot()["in_flight"] == 0
    with gate.lease():  # and the next one gets it
        pass


# -- turns by key ------------------------------------------------------------------------------


def queue(gate: Admission, party: Party, order: list, release: threading.Event) -> threading.Thread:
    """A thread waiting in the queue as ``party``; once in, it notes its name and leases its
    slot until ``release``."""

    def run() -> None:
        with gate.lease(Caller(party)):
            order.append(party.name)
            release.wait(10)

    thread = threading.Thread(target=run)
    before = len(gate._queue)
    thread.start()
    wait_for(lambda: len(gate._queue) == before + 1, "the request in the queue")
    return thread


def test_a_freed_slot_goes_to_the_key_whose_turn_it_is_not_the_oldest_request():
    """a's first request took the free slot at once: that was a's turn, so b's goes next,
    ahead of a's three that waited longer."""
    gate, order = admission(1), []
    a, b = Party("a"), Party("b")
    first, go = threading.Event(), threading.Event()
    lessee = lease(gate, first, a)
    waiters = [queue(gate, a, order, go) for _ in range(3)] + [queue(gate, b, order, go)]
    assert gate.snapshot()["keys"] == {
        "a": {"running": 1, "waiting": 3},
        "b": {"running": 0, "waiting": 1},
    }
    first.set()
    go.set()
    for thread in [lessee, *waiters]:
        thread.join(5)
    assert order == ["b", "a", "a", "a"]


def test_a_key_at_its_cap_waits_while_another_key_takes_the_free_slot():
    gate, order, release = admission(3), [], threading.Event()
    capped, other = Party("a", cap=1), Party("b")
    lessee = lease(gate, release, capped)
    waiter = queue(gate, capped, order, release)
    other_lessee = lease(gate, release, other)  # a slot free for b: no line
    assert gate.snapshot()["in_flight"] == 2 and order == []
    release.set()
    for thread in [lessee, waiter, other_lessee]:
        thread.join(5)
    assert order == ["a"] and capped.leases.count == 0


def test_a_cap_holds_across_upstreams_and_a_slot_given_back_on_one_wakes_the_other():
    here, there, order = admission(2), admission(2), []
    capped = Party("a", cap=1)
    done_there, go = threading.Event(), threading.Event()
    lessee = lease(there, done_there, capped)
    waiter = queue(here, capped, order, go)
    assert order == []  # here has both slots free, but the key holds its one over there
    done_there.set()
    wait_for(lambda: order == ["a"], "the capped request to go once its key gave a slot back")
    go.set()
    for thread in [lessee, waiter]:
        thread.join(5)


@pytest.mark.parametrize("second, inside", [("a", True), ("b", False)], ids=["alone", "shared"])
def test_a_request_waits_inside_a_queueing_server_only_while_its_key_asks_alone(second, inside):
    gate, release = admission(None), threading.Event()
    gate.report(1, queues=True)
    lessees = [lease(gate, release, Party("a"))]
    if inside:
        lessees.append(lease(gate, release, Party(second)))  # into the server's own queue
        assert len(gate._queue) == 0
    else:
        lessees.append(queue(gate, Party(second), [], release))  # the proxy's queue: its turn
    assert gate.busy()[0] == 2
    release.set()
    for thread in lessees:
        thread.join(5)
