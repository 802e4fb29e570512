"""Requests and tokens per minute: the pure rule, this process's counters, and Redis's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from proxy.access.keyring import KeySpec
from proxy.access.limits import LocalLimiter, RedisLimiter, decide, window_of

KEY = KeySpec("alice", b"s", rpm=3, tpm=100)


@pytest.mark.parametrize(
    "requests, tokens, allowed",
    [(0, 0, True), (2, 99, True), (3, 0, False), (0, 100, False), (5, 500, False)],
)
def test_decide(requests, tokens, allowed):
    decision = decide(KEY, requests, tokens, now=120.0 + 15)
    assert decision.allowed is allowed
    assert decision.reset == 45.0 and decision.retry_after == 45


def test_headers_say_what_is_left_and_when():
    headers = decide(KEY, 1, 40, now=60.5).headers()
    assert headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "60s",
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "60",
        "x-ratelimit-reset-tokens": "60s",
    }
    refused = decide(KEY, 3, 0, now=61.0).headers()
    assert refused["Retry-After"] == "59" and refused["x-ratelimit-remaining-requests"] == "0"
    assert "x-ratelimit-limit-tokens" not in decide(KeySpec("b", b"s", rpm=1), 0, 0, 0).headers()


def test_window_of():
    assert [window_of(t) for t in (0, 59.9, 60, 121)] == [0, 0, 1, 2]


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_local_requests_per_minute_then_a_new_minute():
    clock = Clock(1200.0)
    limiter = LocalLimiter(clock)
    assert [limiter.admit(KEY).allowed for _ in range(4)] == [True, True, True, False]
    clock.now += 60
    assert limiter.admit(KEY).allowed


def test_local_tokens_charged_close_the_minute():
    limiter = LocalLimiter(Clock())
    assert limiter.admit(KEY).allowed
    limiter.charge(KEY, 100)
    decision = limiter.admit(KEY)
    assert not decision.allowed and decision.tokens == 100


def test_local_counts_hold_across_threads():
    limiter = LocalLimiter(clock=lambda: 600.0)  # one minute, however long the threads take
    key = KeySpec("busy", b"s", rpm=50)
    with ThreadPoolExecutor(16) as pool:
        allowed = list(pool.map(lambda _: limiter.admit(key).allowed, range(400)))
    assert allowed.count(True) == 50


def test_redis_one_budget_for_every_process(redis_client, redis_url):
    """Two clients stand for two proxy processes: 50 admitted in all, however they race."""
    key = KeySpec("shared", b"s", rpm=50)
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    limiters = [RedisLimiter(client) for client in clients]
    results = []
    lock = threading.Lock()

    def hammer(limiter):
        for _ in range(60):
            allowed = limiter.admit(key).allowed
            with lock:
                results.append(allowed)

    threads = [threading.Thread(target=hammer, args=(limiter,)) for limiter in limiters * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert results.count(True) == 50 and len(results) == 240


def test_redis_tokens_and_refusals(redis_client):
    limiter = RedisLimiter(redis_client, clock=Clock(600.0))
    assert limiter.admit(KEY).allowed
    limiter.charge(KEY, 150)
    refused = limiter.admit(KEY)
    assert not refused.allowed and refused.tokens == 150
    assert limiter.admit(KEY).requests == 1  # refusals do not use the budget


def test_redis_gone_is_its_own_error(redis_url):
    """What it raises is Redis's: the gate names the store (tests/access/test_outages.py)."""
    with redis.Redis(port=1, socket_connect_timeout=0.5) as nobody:
        with pytest.raises(redis.ConnectionError):
            RedisLimiter(nobody).admit(KEY)
