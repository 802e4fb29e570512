"""The live conversations every proxy shares, in a real Redis: where each lives, how many each
replica holds, expiry, and placement that carries on without Redis, saying so once as Redis
is lost and once as it is back."""

from __future__ import annotations

import logging
import threading

import redis

from proxy.fleet.liveness import PROBE_EVERY, TIMEOUT, LiveConversations, Lookup
from proxy.redis_client import connect

A, B = "http://10.0.0.1:8080", "http://10.0.0.2:8080"


def test_a_new_conversation_is_seen_nowhere(redis_client):
    live = LiveConversations(redis_client, "qwen")
    assert live.look("k1", [A, B]) == Lookup(None, {A: 0, B: 0})


def test_two_proxies_see_each_others_placements(redis_client, redis_url):
    first = LiveConversations(redis_client, "qwen")
    second = LiveConversations(redis.Redis.from_url(redis_url), "qwen")
    first.place("k1", A, None)
    first.place("k2", A, None)
    second.place("k3", B, None)
    assert second.look("k1", [A, B]) == Lookup(A, {A: 2, B: 1})
    assert first.look("k3", [A, B]).placed == B


def test_a_turn_counts_once_however_many_turns(redis_client):
    live = LiveConversations(redis_client, "qwen")
    for _ in range(3):
        live.place("k1", A, A)
    assert live.look("k1", [A, B]) == Lookup(A, {A: 1, B: 0})


def test_a_moved_conversation_leaves_its_old_replica(redis_client):
    live = LiveConversations(redis_client, "qwen")
    live.place("k1", A, None)
    live.place("k1", B, A)
    assert live.look("k1", [A, B]) == Lookup(B, {A: 0, B: 1})


def test_models_are_counted_apart(redis_client):
    LiveConversations(redis_client, "qwen").place("k1", A, None)
    assert LiveConversations(redis_client, "llama").look("k1", [A]) == Lookup(None, {A: 0})


def test_a_conversation_idle_past_the_window_is_no_longer_live(redis_client):
    live = LiveConversations(redis_client, "qwen", window=1)
    live.place("k1", A, None)
    seconds, micros = redis_client.time()
    # every figure is Redis's own clock: age the turn by rewriting its time
    key = "oai-proxy:live:{qwen}:replica:" + A
    redis_client.zadd(key, {"k1": seconds - 5})
    redis_client.delete("oai-proxy:live:{qwen}:conversation:k1")
    assert live.look("k1", [A]) == Lookup(None, {A: 0})
    live.place("k2", A, None)  # a turn prunes what expired
    assert redis_client.zrange(key, 0, -1) == [b"k2"]
    assert 0 < redis_client.ttl(key) <= 1


class Flaky:
    """A Redis client whose scripts fail while ``gone`` says so, as a Redis that is lost
    and comes back."""

    def __init__(self, client) -> None:
        self.client, self.gone = client, True
        self.asked = 0  # the scripts run, or tried while gone

    def register_script(self, source: str):
        script = self.client.register_script(source)

        def run(**arguments):
            self.asked += 1
            if self.gone:
                raise redis.ConnectionError("Connection refused.")
            return script(**arguments)

        return run


def warnings(caplog) -> list:
    """This test's own (other tests' apps may log from their threads meanwhile)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and record.thread == threading.get_ident()
    ]


def test_without_redis_placement_goes_on_and_says_so_once_and_once_back(caplog, redis_client):
    now = [100.0]
    flaky = Flaky(redis_client)
    live = LiveConversations(flaky, "qwen", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        assert live.look("k1", [A]) is None
        live.place("k1", A, None)  # within the pause: Redis is not asked again
        assert live.look("k1", [A]) is None
        assert flaky.asked == 1
        now[0] += PROBE_EVERY
        assert live.look("k1", [A]) is None  # asked again, still gone: not said again
        assert flaky.asked == 2
        assert len(warnings(caplog)) == 1
        flaky.gone = False
        now[0] += PROBE_EVERY
        assert live.look("k1", [A]) == Lookup(None, {A: 0})
        live.place("k1", A, None)
        assert live.look("k1", [A]) == Lookup(A, {A: 1})
    lost, back = warnings(caplog)
    assert lost.startswith("the shared placement of qwen (Redis) cannot be used: ConnectionError")
    assert lost.endswith("until it can, conversations are placed by hashing alone")
    assert back == "the shared placement of qwen (Redis) is back after 10.0s"
    assert "Traceback" not in caplog.text


def test_a_redis_that_is_not_there_leaves_placement_to_hashing():
    gone = connect("redis://127.0.0.1:1/0", timeout=TIMEOUT, retry=False)
    live = LiveConversations(gone, "qwen")
    assert live.look("k1", [A]) is None
    live.place("k1", A, None)
