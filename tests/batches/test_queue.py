"""The batch queue, this process's and Redis's, bound by the same rule: a request is left from
its putting until it is concluded once, whoever has claimed it meanwhile."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from proxy.batches import redisqueue as redisbatchqueue
from proxy.batches.queue import LocalBatchQueue, Tally
from proxy.batches.redisqueue import RedisBatchQueue


@dataclass(frozen=True)
class Asked:
    number: int
    custom_id: str
    model: str
    offset: int


ASKED = [Asked(1, "a", "m", 0), Asked(2, "b", "n", 10), Asked(3, "c", "m", 20)]
MODELS = ["m", "n"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "redis"])
def made(request):
    """Two processes' views of one queue (the same object for this process's), and a clock."""
    clock = Clock()
    if request.param == "local":
        queue = LocalBatchQueue()
        return queue, queue, clock
    client = request.getfixturevalue("redis_client")
    return RedisBatchQueue(client, "one", clock), RedisBatchQueue(client, "two", clock), clock


def taken(queue, model: str) -> list:
    found = []
    while (claim := queue.take("batch_1", model)) is not None:
        found.append(claim)
    return found


def test_each_request_taken_once_in_order_and_concluded_once(made):
    one, two, _ = made
    one.put("batch_1", ASKED, 5, 1)
    one.put("batch_1", ASKED[:1], 0, 0)  # queued already: nothing more
    assert one.tally("batch_1", MODELS) == Tally(3, 5, 1)
    m = taken(one, "m")
    assert [(c.number, c.custom_id, c.offset, c.again) for c in m] == [
        (1, "a", 0, False),
        (3, "c", 20, False),
    ]
    assert [c.custom_id for c in taken(two, "n")] == ["b"]
    assert one.tally("batch_1", MODELS).running == 3
    one.conclude(m[0], True)
    one.conclude(m[0], True)  # concluded twice: counted once
    one.conclude(m[1], False)
    assert one.tally("batch_1", MODELS) == Tally(1, 6, 2, "", 1)


def test_a_request_put_back_waits_again_and_the_batch_says_why(made):
    one, two, _ = made
    one.put("batch_1", ASKED, 0, 0)
    first = one.take("batch_1", "m")
    one.back(first, "the key's tokens of the day are spent")
    assert two.tally("batch_1", MODELS).paused == "the key's tokens of the day are spent"
    again = taken(two, "m")
    assert sorted(c.custom_id for c in again) == ["a", "c"]
    two.conclude(again[0], True)
    assert two.tally("batch_1", MODELS) == Tally(2, 1, 0, "", 1)  # an answer: waits no more


def test_a_request_dropped_as_its_batch_ends_counts_neither_way(made):
    one, _, _ = made
    one.put("batch_1", ASKED, 0, 0)
    for claim in taken(one, "m") + taken(one, "n"):
        one.conclude(claim, None)
    assert one.tally("batch_1", MODELS) == Tally(0, 0, 0)
    one.forget("batch_1", ["m", "n"])
    assert one.tally("batch_1", MODELS) is None and one.take("batch_1", "m") is None


def two_claiming_one(redis_client) -> tuple:
    """Two processes of one Redis queue, the first claiming a request; and their clock."""
    clock = Clock()
    one = RedisBatchQueue(redis_client, "one", clock)
    two = RedisBatchQueue(redis_client, "two", clock)
    one.put("batch_1", ASKED[:1], 0, 0)
    return one, two, one.take("batch_1", "m"), clock


def unrenewed_for_a_minute(redis_client, claimed, clock) -> None:
    redis_client.xclaim("oai-proxy:batch:batch_1:m", "runners", "one", 0, [claimed.handle],
                        idle=60_000)  # fmt: skip
    clock.now += redisbatchqueue.RENEW_EVERY


def test_a_request_whose_process_stopped_renewing_is_taken_over_as_again(redis_client):
    one, two, claimed, clock = two_claiming_one(redis_client)
    clock.now += redisbatchqueue.RENEW_EVERY
    one.renew()  # renewed: still its own
    assert two.take("batch_1", "m") is None
    unrenewed_for_a_minute(redis_client, claimed, clock)
    over = two.take("batch_1", "m")
    assert (over.custom_id, over.handle, over.again) == ("a", claimed.handle, True)
    two.conclude(over, True)
    one.conclude(claimed, True)  # the slow one's concluding, after: not counted again
    assert two.tally("batch_1", MODELS) == Tally(0, 1, 0)


def test_a_claim_abandoned_while_redis_was_out_of_reach_is_taken_over_after_its_lease(redis_client):
    one, two, claimed, clock = two_claiming_one(redis_client)
    one.abandon(claimed)
    unrenewed_for_a_minute(redis_client, claimed, clock)
    one.renew()  # no longer its to renew: not renewed
    over = two.take("batch_1", "m")
    assert (over.custom_id, over.again) == ("a", True)


def test_a_claim_abandoned_here_waits_again():
    queue = LocalBatchQueue()
    queue.put("batch_1", ASKED[:1], 0, 0)
    queue.abandon(queue.take("batch_1", "m"))
    assert queue.take("batch_1", "m").custom_id == "a"
