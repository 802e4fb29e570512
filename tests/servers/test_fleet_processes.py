"""Several proxy processes route a conversation alike: placement needs no shared state.

Two fake servers are the replicas; a waitress proxy and a gunicorn proxy with two workers
each carry turns of the same conversations, and every turn of a conversation must reach the
one replica that served its first.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.fakes.servercpp import FakeServerCpp
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

CONVERSATIONS = 12
TURNS = 4


def prompts_seen(fake: FakeServerCpp) -> list:
    return [body["prompt"] for path, body, _ in fake.requests if path == "/completion"]


def test_every_process_sends_a_conversation_to_the_same_replica(tmp_path):
    with ExitStack() as stack:
        fakes = [stack.enter_context(FakeServerCpp("llamacpp", n_slots=4)) for _ in range(2)]
        replicas = ["--llama-api", *(fake.url for fake in fakes)]
        proxies = [
            stack.enter_context(
                ProxyProcess(fakes[0].url, tmp_path / f"{how}.log", how=how, args=replicas)
            )
            for how in ("waitress", "gunicorn")
        ]
        clients = [proxy.sdk() for proxy in proxies]
        for conversation in range(CONVERSATIONS):
            messages = [{"role": "user", "content": f"document number {conversation}"}]
            for turn in range(TURNS):
                client = clients[turn % 2]  # turns alternate between the two processes
                reply = client.chat.completions.create(
                    model="tiny", messages=messages, max_tokens=4
                )
                messages += [
                    {"role": "assistant", "content": reply.choices[0].message.content},
                    {"role": "user", "content": f"and then {turn}?"},
                ]
    homes = {}
    for index, fake in enumerate(fakes):
        for prompt in prompts_seen(fake):
            number = prompt.split("document number ")[1].split("\n")[0]
            homes.setdefault(number, set()).add(index)
    assert len(homes) == CONVERSATIONS
    assert all(len(replicas) == 1 for replicas in homes.values()), homes
    assert {next(iter(r)) for r in homes.values()} == {0, 1}  # and they spread over both
    assert sum(len(prompts_seen(fake)) for fake in fakes) == CONVERSATIONS * TURNS
