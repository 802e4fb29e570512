"""The order of turns: by key, by weight, by priority, with ageing and caps."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from proxy.core.party import Party
from proxy.queue.fair import AGE_EVERY, FairQueue


@dataclass(eq=False)
class Asking:
    party: Party
    joined: float = 0.0
    stamp: float = 0.0
    order: int = 0


def party(spec: str) -> Party:
    """``"a"``, ``"a*3"`` (weight 3) or ``"a!0"`` (priority 0)."""
    name, _, weight = spec.partition("*")
    name, _, priority = name.partition("!")
    return Party(name, weight=float(weight or 1), priority=int(priority or 128))


def line_of(arrivals: list, now: float = 0.0) -> FairQueue:
    queue = FairQueue()
    for who in arrivals:
        queue.join(Asking(who), now)
    return queue


def served(queue: FairQueue, now: float = 0.0, capped=lambda party: False) -> str:
    """Serve the queue one slot at a time while anyone may go: the key of each turn."""
    order = ""
    while (first := queue.first(now, capped)) is not None:
        queue.served(first)
        order += first.party.name
    return order


@pytest.mark.parametrize(
    "arrivals, expected",
    [
        ("a a a a b", "abaaa"),
        ("a a a a b b", "ababaa"),
        ("a a a a a", "aaaaa"),
        ("a a a a b*3 b*3 b*3 b*3", "abbbabaa"),
        ("a a a b b b c c c", "abcabcabc"),
        ("b b b b a!0", "abbbb"),
    ],
    ids=["one-turn-each", "alternating", "alone-gets-all", "weighted", "three-keys", "priority"],
)
def test_turns_go_round_the_keys_by_weight_and_priority(arrivals, expected):
    who = {spec: party(spec) for spec in arrivals.split()}
    assert served(line_of([who[spec] for spec in arrivals.split()])) == expected


def test_a_key_that_had_its_turns_waits_behind_one_that_had_none():
    a, b = party("a"), party("b")
    queue = line_of([a] * 6)
    assert served(queue, capped=lambda p: len(queue) <= 3) == "aaa"  # three slots to a
    queue.join(Asking(b), now=0.0)
    assert served(queue) == "baaa"


def test_ageing_lifts_a_low_priority_past_a_higher_one_never_past_its_equals():
    batch, interactive, other = party("b!255"), party("i!0"), party("o!255")
    queue = FairQueue()
    queue.join(Asking(batch), now=0.0)
    waited = (255 + 1) * AGE_EVERY
    queue.join(Asking(interactive), now=waited)
    assert served(queue, now=waited) == "bi"  # waited long enough: its turn comes first
    queue = FairQueue()
    for _ in range(3):
        queue.join(Asking(batch), now=0.0)
    queue.join(Asking(other), now=waited)
    assert served(queue, now=waited) == "bobb"  # as long a wait: still turns among equals


def test_a_clock_read_before_a_request_joined_counts_as_no_wait():
    low, high = party("l!255"), party("h!0")
    queue = FairQueue()
    queue.join(Asking(high), now=5.0)
    queue.join(Asking(low), now=10.0)
    assert served(queue, now=4.0) == "hl"


def test_a_capped_key_is_passed_over_and_a_refused_request_keeps_its_place():
    a, b = party("a"), party("b")
    queue = line_of([a, a, b])
    first = queue.first(0.0)
    queue.served(first)
    queue.rejoin(first)  # the server refused it: back first of its key's
    assert queue.first(0.0) is first
    assert served(queue, capped=lambda p: p is a) == "b"
    assert queue.waiting() == {"a": 2} and len(queue) == 2
    assert served(queue) == "aa" and len(queue) == 0 and queue.waiting() == {}
