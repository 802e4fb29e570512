"""Placement is a pure function: the same conversation lands on the same replica everywhere."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from proxy.core.conversation import conversation_id, thread_id
from proxy.core.types import GenerationRequest, Message, SourceChunk
from proxy.fleet.placement import BALANCE, ReplicaLoad, choose, continues, overflowing, rank

REPLICAS = [f"http://10.0.0.{i}:8080" for i in range(1, 4)]
SYSTEM = Message("system", "You answer from the document.")
FILE = SourceChunk("def sub(a, b):\n    return a - b\n\n\n" * 10, "util.py")  # an editor's chunk


def chat(*contents: str, system: bool = True) -> GenerationRequest:
    roles = ["user", "assistant"] * len(contents)
    messages = [Message(role, text) for role, text in zip(roles, contents, strict=False)]
    return GenerationRequest(messages=tuple(([SYSTEM] if system else []) + messages))


def idle(*names: str, slots: int = 4) -> list:
    return [ReplicaLoad(name, slots=slots) for name in names]


@pytest.mark.parametrize(
    ("first", "later"),
    [
        pytest.param(
            chat("doc A: cats"), chat("doc A: cats", "Cats.", "and dogs?"), id="chat-turns"
        ),
        pytest.param(chat("q"), chat("q", "a", "q2", "a2", "q3"), id="chat-many-turns"),
        pytest.param(
            GenerationRequest(prompt="x" * 300),
            GenerationRequest(prompt="x" * 300 + "y"),
            id="raw-prompt-grows",
        ),
        pytest.param(
            GenerationRequest(prompt="import os\n", suffix="", nearby=(FILE,), cursor="x"),
            GenerationRequest(prompt="import os\n\n", suffix="\n", nearby=(FILE,), cursor="y"),
            id="gaps-of-one-file",
        ),
    ],
)
def test_a_conversation_keeps_its_key_from_turn_to_turn(first, later):
    assert conversation_id(first) == conversation_id(later)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param(chat("doc A"), chat("doc B"), id="same-system-other-question"),
        pytest.param(chat("doc A"), chat("doc A", system=False), id="with-and-without-system"),
        pytest.param(
            GenerationRequest(prompt="a" * 10), GenerationRequest(prompt="b" * 10), id="raw-prompts"
        ),
        pytest.param(
            GenerationRequest(prompt="x = ", suffix="", nearby=(FILE,)),
            GenerationRequest(prompt="x = ", suffix="", nearby=(SourceChunk("y = 2\n", "b.py"),)),
            id="gaps-beside-other-files",
        ),
    ],
)
def test_different_conversations_have_different_keys(one, other):
    assert conversation_id(one) != conversation_id(other)


@pytest.mark.parametrize(
    ("one", "other", "linked"),
    [
        pytest.param(chat("doc A"), chat("doc A", "answer", "more"), True, id="next-turn"),
        pytest.param(
            chat("doc A"),
            GenerationRequest(
                messages=(Message("system", "Today is Tuesday."),) + chat("doc A").messages[1:]
            ),
            True,
            id="system-changed",
        ),
        pytest.param(chat("doc A"), chat("doc B"), False, id="other-question"),
        pytest.param(
            GenerationRequest(prompt="a" * 300),
            GenerationRequest(prompt="a" * 300 + "b"),
            True,
            id="raw",
        ),
    ],
)
def test_the_inspector_links_turns_even_when_their_system_prompt_changes(one, other, linked):
    assert (thread_id(one) == thread_id(other)) == linked


def test_the_same_conversation_goes_to_the_same_replica_in_any_order():
    key = conversation_id(chat("the document"))
    picks = {
        choose(key, idle(*order)).name
        for order in (REPLICAS, REPLICAS[::-1], REPLICAS[1:] + REPLICAS[:1])
    }
    assert len(picks) == 1


def test_removing_a_replica_moves_only_its_conversations():
    keys = [conversation_id(chat(f"document {i}")) for i in range(600)]
    before = {key: choose(key, idle(*REPLICAS)).name for key in keys}
    gone = REPLICAS[1]
    after = {key: choose(key, idle(*(r for r in REPLICAS if r != gone))).name for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert moved and all(before[key] == gone for key in moved)
    assert all(after[key] == before[key] for key in keys if before[key] != gone)


def test_an_unhealthy_replica_counts_as_removed():
    keys = [conversation_id(chat(f"document {i}")) for i in range(200)]
    sick = [ReplicaLoad(name, healthy=name != REPLICAS[0], slots=4) for name in REPLICAS]
    without = idle(*REPLICAS[1:])
    assert all(choose(k, sick).name == choose(k, without).name for k in keys)


@pytest.mark.parametrize("count", [2, 3])
def test_unrelated_conversations_spread_evenly(count):
    names = REPLICAS[:count]
    shares = Counter(
        choose(conversation_id(chat(f"document {i}")), idle(*names)).name for i in range(3000)
    )
    assert set(shares) == set(names)
    assert all(abs(share / 3000 - 1 / count) < 0.05 for share in shares.values()), shares


def test_rank_orders_every_replica_once():
    assert sorted(rank("key", REPLICAS)) == sorted(REPLICAS)


@pytest.mark.parametrize(
    ("loads", "remembered", "expected"),
    [
        pytest.param({"a": 0, "b": 0}, None, "preferred", id="idle-goes-to-preferred"),
        pytest.param({"a": 3, "b": 3}, None, "preferred", id="room-left-goes-to-preferred"),
        pytest.param(
            {"preferred-full": 4, "other": 1}, None, "other", id="full-spills-to-least-busy"
        ),
        pytest.param({"preferred-full": 4, "other": 4}, None, "preferred", id="all-full-stays"),
        pytest.param({"a": 0, "b": 0}, "other", "other", id="remembered-spill-sticks"),
        pytest.param(
            {"remembered-full": 4, "a": 0}, "other", "preferred", id="full-memory-ignored"
        ),
    ],
)
def test_load_and_memory(loads, remembered, expected):
    key = conversation_id(chat("doc"))
    preferred, other = rank(key, REPLICAS[:2])
    busy = {"preferred": 0, "other": 0}
    if "preferred-full" in loads:
        busy.update(preferred=4, other=loads["other"])
    elif "remembered-full" in loads:
        busy.update(other=4)
    else:
        busy.update(preferred=loads["a"], other=loads["b"])
    replicas = [
        ReplicaLoad(preferred, busy=busy["preferred"], slots=4),
        ReplicaLoad(other, busy=busy["other"], slots=4),
    ]
    names = {"preferred": preferred, "other": other}
    chosen = choose(key, replicas, remembered=names.get(remembered))
    assert chosen.name == names[expected]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(chat("doc"), False, id="first-turn"),
        pytest.param(chat("doc", "answer", "more"), True, id="later-turn"),
        pytest.param(GenerationRequest(prompt="x"), False, id="raw-prompt"),
    ],
)
def test_which_requests_go_on_a_conversation(request_, expected):
    assert continues(request_) == expected


@pytest.mark.parametrize(
    ("busy", "continuing", "expected"),
    [(4, False, "other"), (4, True, "preferred"), (5, True, "preferred"), (6, True, "other")],
)
def test_a_conversation_that_goes_on_is_slower_to_move(busy, continuing, expected):
    key = conversation_id(chat("doc"))
    preferred, other = rank(key, REPLICAS[:2])
    replicas = [ReplicaLoad(preferred, busy=busy, slots=4), ReplicaLoad(other, busy=0, slots=4)]
    names = {"preferred": preferred, "other": other}
    assert choose(key, replicas, continuing=continuing).name == names[expected]


def test_without_a_key_the_least_busy_wins():
    replicas = [
        ReplicaLoad("a", busy=3, slots=4),
        ReplicaLoad("b", busy=1, slots=4),
        ReplicaLoad("c", busy=2, slots=2),
    ]
    assert choose(None, replicas).name == "b"


def test_unknown_slot_counts_weigh_as_one_slot():
    replicas = [ReplicaLoad("a", busy=1), ReplicaLoad("b", busy=1, slots=4)]
    assert choose(None, replicas).name == "b"


def test_when_no_replica_is_healthy_one_is_still_chosen():
    replicas = [ReplicaLoad(name, healthy=False, slots=1) for name in REPLICAS]
    key = conversation_id(chat("doc"))
    assert choose(key, replicas).name == rank(key, REPLICAS)[0]


# -- bounded loads: the live conversations every proxy placed ----------------------------------


def counted(key: str, live: dict, slots: dict | None = None) -> list:
    """The replicas in ``key``'s hashing order (a, b, c), with their live conversations."""
    order = rank(key, REPLICAS)
    named = dict(zip("abc", order, strict=True))
    return [
        ReplicaLoad(named[name], slots=(slots or {}).get(name, 4), live=count)
        for name, count in live.items()
    ], named


@pytest.mark.parametrize(
    ("live", "slots", "expected"),
    [
        pytest.param({"a": 0, "b": 0, "c": 0}, None, "a", id="empty-goes-to-first"),
        pytest.param({"a": 4, "b": 4, "c": 4}, None, "a", id="even-goes-to-first"),
        pytest.param({"a": 4, "b": 3, "c": 3}, None, "a", id="within-bound"),  # 4 < 1.1 * 11/3
        pytest.param(
            {"a": 5, "b": 3, "c": 3}, None, "b", id="past-bound-skipped"
        ),  # 5 > 1.1 * 12/3
        pytest.param({"a": 8, "b": 8, "c": 2}, None, "c", id="two-past-bound"),
        pytest.param(
            {"a": 6, "b": 4, "c": 4}, {"a": 8, "b": 4, "c": 4}, "a", id="weighed-by-slots"
        ),
        pytest.param({"a": 1, "b": 1, "c": 0}, None, "a", id="few-stay-with-hashing"),
        pytest.param({"a": 2, "b": 0, "c": 0}, None, "b", id="few-but-twice-the-mean"),
    ],
)
def test_a_new_conversation_skips_replicas_past_the_bound(live, slots, expected):
    assert BALANCE == 0.1  # the figures above
    key = conversation_id(chat("doc"))
    replicas, named = counted(key, live, slots)
    assert choose(key, replicas).name == named[expected]


def test_a_placed_conversation_stays_past_the_bound():
    key = conversation_id(chat("doc"))
    replicas, named = counted(key, {"a": 2, "b": 9, "c": 0})
    assert choose(key, replicas, remembered=named["b"], continuing=True).name == named["b"]


def test_a_busy_replica_within_the_bound_passes_to_the_next_within_it():
    key = conversation_id(chat("doc"))
    order = rank(key, REPLICAS)
    replicas = [
        ReplicaLoad(order[0], slots=4, busy=4, live=4),
        ReplicaLoad(order[1], slots=4, busy=0, live=9),  # past the bound
        ReplicaLoad(order[2], slots=4, busy=2, live=4),
    ]
    assert choose(key, replicas).name == order[2]


def test_without_counts_hashing_alone_decides():
    key = conversation_id(chat("doc"))
    order = rank(key, REPLICAS)
    replicas = [
        ReplicaLoad(order[0], slots=4, live=None),
        *(ReplicaLoad(name, slots=4, live=0) for name in order[1:]),
    ]
    assert choose(key, replicas).name == order[0]


@pytest.mark.parametrize(("replicas", "conversations"), [(2, 24), (8, 1000), (3, 7)])
def test_bounded_loads_hold_every_replica_near_the_mean(replicas, conversations):
    names = [f"http://10.0.1.{i}:8080" for i in range(replicas)]
    live = Counter()
    for number in range(conversations):
        key = conversation_id(chat(f"document {number}"))
        chosen = choose(key, [ReplicaLoad(name, slots=4, live=live[name]) for name in names])
        live[chosen.name] += 1
    mean = conversations / replicas
    assert max(live.values()) <= math.ceil((1 + BALANCE) * mean)


@pytest.mark.parametrize(
    ("loads", "after", "expected"),
    [
        ([ReplicaLoad("a", busy=1, slots=2)], 0, False),  # a slot free
        ([ReplicaLoad("a", busy=2, slots=2)], 0, True),  # every slot busy
        ([ReplicaLoad("a", busy=3, slots=2)], 2, False),  # one waits, two may
        ([ReplicaLoad("a", busy=4, slots=2)], 2, True),
        ([ReplicaLoad("a", busy=2, slots=2), ReplicaLoad("b", busy=0, slots=2)], 0, False),
        ([ReplicaLoad("a", busy=2, slots=2), ReplicaLoad("b", healthy=False)], 0, True),
        ([ReplicaLoad("a", busy=9, slots=None)], 0, False),  # slots unknown: never full
        ([ReplicaLoad("a", healthy=False)], 0, False),  # none serving: fallbacks decide
        ([], 0, False),
    ],
)
def test_a_model_overflows_when_every_replica_is_full(loads, after, expected):
    assert overflowing(loads, after) is expected
