"""The scale-out recipe of docs/models-and-fleet.md, run for real: three llama-servers of one
model, Redis, two proxies (waitress, and gunicorn with two workers) and nginx in front, each
configured by the recipe's own blocks (:mod:`tests.e2e.scaleout`).

The replica that served a turn run alone is the one whose counters took its prompt; turns
run together are checked by what each replica took in all. The proxy that served a request
is named by a header the tests' nginx.conf adds.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest
import requests

from tests.polling import wait_for

from .scaleout import UPSTREAM_HEADER, Outcome, Traffic, attempt, chat, scaleout

pytestmark = pytest.mark.e2e

# What a turn reuses on a replica that never saw its conversation: the opening every
# conversation shares, BOS and "<|im_start|>user\n" (19 tokens: the tiny vocabulary spells
# the markers out letter by letter), a word more when two documents happen to open alike.
FRESH = 32
LONG = 1900  # tokens of a stream still running when its proxy dies (slots hold 2048)


@pytest.fixture(scope="module")
def recipe(model, redis_url, tmp_path_factory):
    with scaleout(model, redis_url, tmp_path_factory.mktemp("scaleout")) as running:
        yield running


def test_conversations_keep_their_replica_and_cache_through_nginx(recipe):
    placed = recipe.spread(first_seed=0, per_replica=2)
    homes = [home for home, _ in placed]
    conversations = [conversation for _, conversation in placed]
    # Two rounds one turn at a time, the second in reverse order: nginx alternates the
    # proxies, so each conversation's two turns go through different ones.
    for stream, ordered in ((True, placed), (False, placed[::-1])):
        for home, conversation in ordered:
            assert recipe.turn(conversation, stream=stream) == home
    # Then every conversation at once: nginx opens more connections to the proxies, which
    # reach both gunicorn workers (one at a time, nginx keeps reusing one connection).
    for turn in range(2):
        streams = [(turn + index) % 2 == 1 for index in range(len(placed))]
        assert recipe.round(conversations, streams) == sum_by_home(conversations, homes)

    proxies = {recipe.address(recipe.waitress), recipe.address(recipe.gunicorn)}
    for conversation in conversations:
        first = conversation.answers[0]
        assert first.cached_tokens < FRESH
        # No tolerance: a turn's prompt ends with "<|im_start|>assistant\n" and the next
        # one's goes on from there with the answer, so the whole previous prompt is a token
        # prefix of the next and stays in the replica (with the answer, but its last token).
        for previous, answer in pairwise(conversation.answers):
            assert answer.cached_tokens >= previous.prompt_tokens, conversation.answers
        assert {answer.proxy for answer in conversation.answers[1:3]} == proxies


def sum_by_home(conversations: list, homes: list) -> dict:
    """The prompt tokens of the conversations' last turns, added up by their replica."""
    sums: dict = {}
    for conversation, home in zip(conversations, homes, strict=True):
        sums[home] = sums.get(home, 0) + conversation.answers[-1].prompt_tokens
    return sums


def test_a_keys_requests_per_minute_hold_across_both_proxies(recipe):
    key = recipe.key(limited=True)
    over = 10
    body = {"model": recipe.model, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
    # Limits count fixed minutes of the clock: send every request inside one.
    wait_for(lambda: time.time() % 60 < 45, "a minute with 15 s left", timeout=61)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: chat(recipe.url, key, body), range(key.rpm + over)))

    served = [answer for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert (len(served), len(refused)) == (key.rpm, over)
    # One counter over every process: each admitted request took its own place in it.
    remaining = sorted(int(answer.headers["x-ratelimit-remaining-requests"]) for answer in served)
    assert remaining == list(range(key.rpm))
    for answer in refused:
        error = answer.json()["error"]
        assert set(answer.json()) == {"error"} and error["message"]
        assert (error["type"], error["param"], error["code"]) == (
            "requests",
            None,
            "rate_limit_exceeded",
        )
        assert answer.headers["x-ratelimit-limit-requests"] == str(key.rpm)
        assert answer.headers["x-ratelimit-remaining-requests"] == "0"
        assert int(answer.headers["Retry-After"]) >= 1
    proxies = {recipe.address(recipe.waitress), recipe.address(recipe.gunicorn)}
    assert {(answer.headers[UPSTREAM_HEADER], answer.status_code) for answer in answers} == {
        (proxy, status) for proxy in proxies for status in (200, 429)
    }


def test_a_proxy_killed_mid_run(recipe):
    key = recipe.key(limited=False)
    waitress, gunicorn = recipe.address(recipe.waitress), recipe.address(recipe.gunicorn)
    streams = [Outcome(stream=True) for _ in recipe.replicas]
    readers = [
        threading.Thread(
            target=attempt,
            args=(
                recipe.url,
                key,
                {"model": recipe.model, "max_tokens": LONG, "messages": messages},
                stream,
            ),
        )
        for messages, stream in zip(recipe.one_per_replica("tell long story"), streams, strict=True)
    ]
    for reader in readers:  # before any other request: round-robin sends them to both proxies
        reader.start()
    wait_for(lambda: all(stream.events for stream in streams), "the long streams to flow")
    wholes = [Outcome(stream=False) for _ in range(2)]  # one after the other: one per proxy
    readers += [
        threading.Thread(
            target=attempt,
            args=(
                recipe.url,
                key,
                {"model": recipe.model, "max_tokens": LONG, "messages": messages},
                whole,
            ),
        )
        for messages, whole in zip(
            recipe.one_per_replica("write a long tale"), wholes, strict=False
        )
    ]
    for started, reader in enumerate(readers[len(streams) :], 1):
        reader.start()
        wait_for(
            lambda started=started: generating(recipe.replicas) == len(streams) + started,
            "the long answer to be generated",
        )
    with Traffic(recipe.url, key, recipe.model) as traffic:
        killed = time.monotonic()
        recipe.waitress.kill()
        # Until nginx has read the end of each connection it kept to the proxy, it may still
        # send a request down one; after that, every request it sends there is refused.
        wait_for(
            lambda: recipe.nginx.connections_to(recipe.waitress.port) == 0,
            "nginx to let go of the dead proxy's connections",
        )
        noticed = time.monotonic()
        # A refused request goes to the other proxy: at once, or once the fail_timeout (10 s)
        # of a failure in flight has passed.
        wait_for(
            lambda: any(
                outcome.proxy == f"{waitress}, {gunicorn}"
                for outcome in traffic.sent_after(noticed)
            ),
            "nginx to retry a refused request on the other proxy",
            timeout=30,
        )
        seen = len(recipe.waitress.log())
        recipe.waitress.start()
        wait_for(
            lambda: "POST /v1/chat/completions 200" in recipe.waitress.log()[seen:],
            "nginx to send the restarted proxy requests again",
            timeout=30,
        )
    for reader in readers:
        reader.join(60)

    cut = [stream for stream in streams if stream.proxy == waitress]
    assert 0 < len(cut) < len(streams), [stream.proxy for stream in streams]
    for stream in streams:
        if stream in cut:
            # No proxy is left to end the stream with an error event and [DONE]: nginx
            # closes the connection without the last chunk (urllib3's "ended prematurely"),
            # which the client sees at once.
            assert (stream.status, stream.complete) == (200, False) and stream.events > 0
            assert stream.error == "ChunkedEncodingError: Response ended prematurely"
            assert stream.ended - killed < 5
        else:
            assert stream.ok, stream
    (lost,) = [whole for whole in wholes if whole.proxy == waitress]
    assert (lost.status, lost.error_type, lost.error) == (502, "server_error", "")
    assert all(whole.ok for whole in wholes if whole is not lost)
    after = traffic.sent_after(noticed)
    assert after and all(outcome.ok for outcome in after), [o for o in after if not o.ok]
    for outcome in traffic.outcomes:  # the only failures: requests nginx had sent the dead
        assert outcome.ok or (
            outcome.sent < noticed and outcome.ended > killed and outcome.proxy == waitress
        ), outcome
        if outcome.status == 502:  # nginx's own, in OpenAI's shape (the recipe's error_page)
            assert outcome.error_type == "server_error" and not outcome.error, outcome


def test_a_replica_killed_moves_only_its_conversations(recipe):
    placed = recipe.spread(first_seed=1000, per_replica=2)
    victim = 0
    recipe.replicas[victim].kill()
    served: list = [[] for _ in placed]
    # The second round in reverse order, for each conversation's turns to go through both
    # proxies.
    rounds = (list(enumerate(placed)), list(enumerate(placed))[::-1])
    try:
        for turn, ordered in enumerate(rounds):
            for index, (_, conversation) in ordered:
                stream = (turn + index) % 2 == 1
                served[index].append(recipe.turn(conversation, stream=stream))
    finally:
        recipe.replicas[victim].start()

    proxies = {recipe.address(recipe.waitress), recipe.address(recipe.gunicorn)}
    for (home, conversation), replicas in zip(placed, served, strict=True):
        before, moved, stayed = conversation.answers
        assert {moved.proxy, stayed.proxy} == proxies
        if home == victim:  # its cache died with the replica: evaluated afresh, once
            assert replicas[0] == replicas[1] != victim
            assert moved.cached_tokens < FRESH
        else:
            assert replicas == [home, home]
            assert moved.cached_tokens >= before.prompt_tokens
        assert stayed.cached_tokens >= moved.prompt_tokens


def generating(replicas: list) -> int:
    """Generations running on the replicas now."""
    return sum(
        slot["is_processing"]
        for replica in replicas
        for slot in requests.get(replica.url + "/slots", timeout=5).json()
    )
