"""The live conversations every proxy shares, in a real Redis: where each lives, how many each
replica holds, expiry, and placement that carries on without Redis."""

from __future__ import annotations

import logging

import redis

from proxy.fleet.liveness import RETRY_AFTER, TIMEOUT, LiveConversations, Lookup
from proxy.redis_client import connect

A, B = "http://10.0.0.1:8080", "http://10.0.0.2:8080"


def test_a_new_conversation_is_seen_nowhere(redis_client):
    live = LiveConversations(redis_client, "qwen")
    assert live.look("k1", [A, B]) == Lookup(None, {A: 0, B: 0})


def test_two_proxies_see_each_others_placements(redis_client, redis_url):
    first = LiveConversations(redis_client, "qwen")
    second = LiveConversations(redis.Redis.from_url(redis_url), "qwen")
    first.placed("k1", A, None)
    first.placed("k2", A, None)
    second.placed("k3", B, None)
    assert second.look("k1", [A, B]) == Lookup(A, {A: 2, B: 1})
    assert first.look("k3", [A, B]).placed == B


def test_a_turn_counts_once_however_many_turns(redis_client):
    live = LiveConversations(redis_client, "qwen")
    for _ in range(3):
        live.placed("k1", A, A)
    assert live.look("k1", [A, B]) == Lookup(A, {A: 1, B: 0})


def test_a_moved_conversation_leaves_its_old_replica(redis_client):
    live = LiveConversations(redis_client, "qwen")
    live.placed("k1", A, None)
    live.placed("k1", B, A)
    assert live.look("k1", [A, B]) == Lookup(B, {A: 0, B: 1})


def test_models_are_counted_apart(redis_client):
    LiveConversations(redis_client, "qwen").placed("k1", A, None)
    assert LiveConversations(redis_client, "llama").look("k1", [A]) == Lookup(None, {A: 0})


def test_a_conversation_idle_past_the_window_is_no_longer_live(redis_client):
    live = LiveConversations(redis_client, "qwen", window=1)
    live.placed("k1", A, None)
    seconds, micros = redis_client.time()
    # every figure is Redis's own clock: age the turn by rewriting its time
    key = "oai-proxy:live:{qwen}:replica:" + A
    redis_client.zadd(key, {"k1": seconds - 5})
    redis_client.delete("oai-proxy:live:{qwen}:conversation:k1")
    assert live.look("k1", [A]) == Lookup(None, {A: 0})
    live.placed("k2", A, None)  # a turn prunes what expired
    assert redis_client.zrange(key, 0, -1) == [b"k2"]
    assert 0 < redis_client.ttl(key) <= 1


def test_without_redis_placement_goes_on_and_says_so_once(caplog):
    now = [100.0]
    gone = connect("redis://127.0.0.1:1/0", timeout=TIMEOUT, retry=False)
    live = LiveConversations(gone, "qwen", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="proxy.fleet.liveness"):
        assert live.look("k1", [A]) is None
        live.placed("k1", A, None)  # within the pause: Redis is not asked again
        assert live.look("k1", [A]) is None
    assert len(caplog.records) == 1
    assert "hashing alone" in caplog.text and "Traceback" not in caplog.text
    now[0] += RETRY_AFTER
    with caplog.at_level(logging.WARNING, logger="proxy.fleet.liveness"):
        assert live.look("k1", [A]) is None  # asked again, still gone
    assert len(caplog.records) == 2
