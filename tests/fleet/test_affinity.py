"""The memory of which replica and slot hold each conversation."""

from __future__ import annotations

from proxy.fleet.seats import Affinity

A, B = "http://a", "http://b"


def test_nothing_is_known_at_first():
    memory = Affinity()
    assert memory.replica("x") is None
    assert memory.pin("x", A) is None


def test_a_served_conversation_is_pinned_to_its_slot_once_at_a_time():
    memory = Affinity()
    memory.served("x", A, 2)
    assert memory.replica("x") == A
    assert memory.pin("x", A) == 2
    assert memory.pin("x", A) is None  # its slot is taken by the first turn still running
    memory.release(A, 2)
    assert memory.pin("x", A) == 2


def test_no_pin_on_another_replica():
    memory = Affinity()
    memory.served("x", A, 1)
    assert memory.pin("x", B) is None


def test_a_slot_holds_one_conversation():
    memory = Affinity()
    memory.served("x", A, 0)
    memory.served("y", A, 0)  # y's prompt now fills slot 0: x's cache is gone
    assert memory.replica("x") is None
    assert memory.pin("y", A) == 0


def test_moving_frees_the_old_slot():
    memory = Affinity()
    memory.served("x", A, 0)
    memory.served("x", B, 3)
    memory.served("y", B, 1)
    memory.served("y", A, 0)
    assert memory.replica("x") == B and memory.pin("x", B) == 3


def test_a_slot_unknown_keeps_the_replica_only():
    memory = Affinity()
    memory.served("x", A, None)
    assert memory.replica("x") == A
    assert memory.pin("x", A) is None


def test_forgetting_a_replica():
    memory = Affinity()
    memory.served("x", A, 0)
    memory.served("y", B, 0)
    memory.forget_replica(A)
    assert memory.replica("x") is None and memory.replica("y") == B


def test_the_oldest_conversations_are_forgotten_past_capacity():
    memory = Affinity(capacity=2)
    for index, key in enumerate("xyz"):
        memory.served(key, A, index)
    assert memory.replica("x") is None
    assert memory.replica("y") == A and memory.replica("z") == A
