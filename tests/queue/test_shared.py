"""The queue every process shares decides as the process's own does: the same arrivals get
their slots in the same order, in the supervisor's queue (over its real socket) and in
Redis's (a real Redis); and a shared queue that cannot be reached leaves each process its own.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from contextlib import closing, contextmanager
from multiprocessing.connection import Listener

import pytest

from proxy.core.caller import Caller
from proxy.core.errors import QueueFullError, QueueTimeoutError, SlotUnavailableError
from proxy.core.outages import Outages
from proxy.core.party import Leases, Party
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount
from proxy.queue.lease import Ticket
from proxy.queue.redisshared import RedisQueue, Renewals
from proxy.queue.remote import SupervisedQueue
from proxy.queue.shared import SHARED_QUEUE, SharedAdmission
from proxy.servers.remote import Supervised
from proxy.servers.supervisor import Supervisor
from tests.polling import wait_for

SETTINGS = {"name": "the server", "max_queue": 50, "queue_timeout": 30.0}


def parties() -> dict:
    leases = {name: Leases() for name in "abcz"}
    return {
        "a": Party("a", leases=leases["a"]),
        "b": Party("b", leases=leases["b"]),
        "c": Party("c", weight=2.0, leases=leases["c"]),
        "z": Party("z", priority=0, leases=leases["z"]),  # interactive: first
        "capped": Party("a", cap=1, leases=leases["a"]),
    }


# arrivals while the one slot is taken (by the first of each), as key names; the order in
# which the others get it
ARRIVALS = {
    "one-key-first-come": "aaaa",
    "turns-by-key": "aaaabb",
    "a-weight-of-two": "aaacccc",
    "priority-first": "aaaazz",
    "three-keys": "aabbccab",
}


def order(admission: Admission, arrivals: str, slots_taken: int = 1) -> list:
    """Who gets the slot, in turn, when ``arrivals`` queue behind the request that has it."""
    people = parties()
    first = admission.wait(Caller(party=people[arrivals[0]]), None)
    served, waiters = [], []

    def wait(name: str) -> None:
        ticket = admission.wait(Caller(party=people[name]), None)
        served.append(name)
        admission.release(ticket)

    for n, name in enumerate(arrivals[1:], 1):
        waiter = threading.Thread(target=wait, args=(name,))
        waiter.start()
        waiters.append(waiter)
        wait_for(lambda n=n: admission.snapshot()["queued"] == n, timeout=10)
    admission.release(first)
    for waiter in waiters:
        waiter.join(30)
    return served


@contextmanager
def own():
    yield lambda: Admission(slots=SlotCount(configured=1), **SETTINGS)


@contextmanager
def supervised():
    folder = tempfile.mkdtemp()
    address = os.path.join(folder, "sock")
    with closing(Listener(address, "AF_UNIX", authkey=b"k")) as listener:
        supervisor = Supervisor({})
        threading.Thread(target=supervisor.serve, args=(listener,), daemon=True).start()
        made = iter(range(1000))

        def make():
            queue = SupervisedQueue(
                Supervised(address, b"k"), f"up{next(made)}", ("the server", 1, 50, 30.0, "")
            )
            return shared(queue)

        yield make


@contextmanager
def redis_shared(client):
    made = iter(range(1000))

    def make():
        queue = RedisQueue(client, f"up{next(made)}", Renewals(), configured=1, **SETTINGS)
        return shared(queue)

    yield make


def shared(queue) -> SharedAdmission:
    outages = Outages("a shared queue", remote=True, stores={SHARED_QUEUE: "the shared queue"})
    return SharedAdmission(queue, outages, slots=SlotCount(configured=1), **SETTINGS)


@pytest.fixture(params=["supervisor", "redis"])
def sharing(request):
    if request.param == "supervisor":
        with supervised() as make:
            yield make
    else:
        with redis_shared(request.getfixturevalue("redis_client")) as make:
            yield make


@pytest.mark.parametrize("arrivals", ARRIVALS.values(), ids=ARRIVALS)
def test_the_shared_queue_gives_the_slots_in_the_process_queues_order(sharing, arrivals):
    with own() as make:
        expected = order(make(), arrivals)
    found = order(sharing(), arrivals)
    assert found == expected and sorted(found) == sorted(arrivals[1:])


def test_a_cap_counts_the_slots_a_key_leases_on_every_upstream(sharing):
    """Key a, capped at one slot, leases it on one upstream: its request on another with a free
    slot waits until the first is handed back; another key's does not."""
    first, second = sharing(), sharing()
    people = parties()
    leased = first.wait(Caller(party=people["capped"]), None)
    waited = []
    waiter = threading.Thread(
        target=lambda: waited.append(second.wait(Caller(party=people["capped"]), None))
    )
    waiter.start()
    wait_for(lambda: second.snapshot()["queued"] == 1, timeout=10)
    other = second.wait(Caller(party=people["b"]), None)  # a slot free for another key
    second.release(other)
    assert not waited
    first.release(leased)
    waiter.join(10)
    assert len(waited) == 1
    second.release(waited[0])


def test_the_picture_is_the_same_from_every_process(sharing):
    one = sharing()
    people = parties()
    leased = one.wait(Caller(party=people["a"]), None)
    waiter = threading.Thread(target=lambda: one.release(one.wait(Caller(party=people["b"]), None)))
    waiter.start()
    wait_for(lambda: one.snapshot()["queued"] == 1, timeout=10)
    shown = one.snapshot()
    assert shown["shared"] and shown["in_flight"] == 1 and shown["slots"] == 1
    assert shown["keys"] == {"a": {"running": 1, "waiting": 0}, "b": {"running": 0, "waiting": 1}}
    assert sum(shown["processes"].values()) == 1
    one.release(leased)
    waiter.join(10)


def test_a_full_queue_and_its_timeout_are_refused_as_in_one_process(sharing):
    admission = sharing()
    admission.max_queue, admission.queue_timeout = 1, 0.3
    if isinstance(admission.shared_queue, RedisQueue):
        admission.shared_queue.max_queue, admission.shared_queue.queue_timeout = 1, 0.3
    else:
        admission.shared_queue.settings = ("the server", 1, 1, 0.3, "")
        admission.shared_queue.upstream += "-bounded"
    people = parties()
    leased, b = admission.wait(Caller(party=people["a"]), None), people["b"]
    with pytest.raises(QueueTimeoutError, match="waited 0.3s for one of the 1 slot of the server"):
        admission.wait(Caller(party=people["b"]), None)
    waiter = threading.Thread(
        target=lambda: pytest.raises(QueueTimeoutError, admission.wait, Caller(party=b), None)
    )
    waiter.start()
    wait_for(lambda: admission.snapshot()["queued"] == 1, timeout=10)
    with pytest.raises(QueueFullError, match="1 requests already wait"):
        admission.wait(Caller(party=people["c"]), None)
    waiter.join(10)
    admission.release(leased)


def test_a_line_that_cannot_be_reached_leaves_the_process_its_own_queue():
    folder = tempfile.mkdtemp()
    queue = SupervisedQueue(
        Supervised(os.path.join(folder, "none"), b"k"), "up", ("x", 1, 5, 1, "")
    )
    admission = shared(queue)
    ticket = admission.wait(Caller(party=Party("a")), None)
    assert ticket.shared is None and not admission.outages.is_up(SHARED_QUEUE)
    assert admission.snapshot()["shared"] is False and admission.snapshot()["in_flight"] == 1
    admission.release(ticket)
    assert admission.snapshot()["in_flight"] == 0


def test_a_lease_lasts_while_renewed_and_ends_when_its_process_stops(redis_client):
    """Renewed, a slot stays leased past its lease; once its process stops renewing (it died),
    the slot goes to the next waiter within the lease."""
    renewals = Renewals(every=0.2)
    queue = RedisQueue(redis_client, "up", renewals, configured=1, lease=0.6, **SETTINGS)
    admission = shared(queue)
    people = parties()
    leased = admission.wait(Caller(party=people["a"]), None)
    time.sleep(1.5)  # more than two leases
    assert admission.snapshot()["keys"]["a"]["running"] == 1
    renewals.drop(queue, leased.shared)  # as if its process had died
    waited = admission.wait(Caller(party=people["b"]), None)
    assert admission.snapshot()["keys"] == {"b": {"running": 1, "waiting": 0}}
    admission.release(waited)


def test_a_request_the_server_refuses_goes_back_first_in_the_shared_queue(sharing):
    admission = sharing()
    people = parties()
    tries = []

    def attempt():
        tries.append(admission.snapshot()["in_flight"])
        if len(tries) == 1:
            raise SlotUnavailableError("no free slot", retry_after=1)
        return "answered"

    assert admission.run(attempt, Caller(party=people["a"])) == "answered"
    assert tries == [1, 1] and admission.snapshot()["in_flight"] == 0


class Recording:
    """A shared queue that grants every wait at once and records what it is told."""

    def __init__(self) -> None:
        self.calls: list = []

    def __getattr__(self, name: str):
        def call(*args):
            self.calls.append(name)
            if name == "wait":
                return Ticket(0.0, args[0].party, shared="id")
            return {"busy": (0, None)}.get(name)

        return call


@pytest.mark.parametrize(
    "slots, told",
    [
        (SlotCount(configured=4), ["wait", "release"]),
        (SlotCount(reported=4), ["wait", "release"]),
        (SlotCount(), ["wait", "accepted", "finished", "release"]),
    ],
    ids=["configured", "reported", "to-be-learned"],
)
def test_the_shared_queue_hears_what_the_server_answers_only_while_its_size_is_learned(slots, told):
    queue, outages = Recording(), Outages("a queue", remote=True, stores={SHARED_QUEUE: "q"})
    admission = SharedAdmission(queue, outages,
                                name="s", slots=slots, max_queue=5, queue_timeout=1.0)  # fmt: skip
    with closing(admission.attempts(Caller(party=Party("a")))) as attempts:
        attempt = next(attempts)
        attempt.began(0)
        attempt.ended()
    assert queue.calls == told
