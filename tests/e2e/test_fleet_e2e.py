"""The fleet in front of two real servers of each kind: routing, affinity, failing over.

A models file names one model on both servers (with an alias) and a second model on one of
them. Affinity is observed through the servers' own counters: the prompt tokens each reports
evaluating (``timings``, which the proxy passes on as ``cached_tokens``) and, on current
llama-server, its Prometheus ``llamacpp:prompt_tokens_total``.
"""

from __future__ import annotations

import random
import time
from contextlib import ExitStack

import openai
import pytest
import requests

from proxy.core.conversation import conversation_id
from proxy.core.types import GenerationRequest, Message
from proxy.fleet.placement import rank
from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .tinymodel import _WORDS

pytestmark = pytest.mark.e2e

READING = 0.5  # seconds between turns on old servers (see below)
MODELS_FILE = """
default = "tiny"

[models.tiny]
aliases = ["gpt-3.5-turbo"]
upstreams = ["{first}", "{second}"]
[models.tiny.defaults]
temperature = 0
max_tokens = 4
cache_prompt = true

[models.solo]
upstreams = ["{second}"]
[models.solo.defaults]
temperature = 0
max_tokens = 3
"""


def document(seed: int, words: int = 300) -> str:
    """A long first message of the tiny model's own words: one conversation's document."""
    chooser = random.Random(seed)
    return " ".join(chooser.choice(_WORDS) for _ in range(words))


def opening(seed: int) -> list:
    return [
        {"role": "system", "content": "Answer from the document."},
        {"role": "user", "content": document(seed)},
    ]


def home_of(messages: list, servers: list) -> int:
    """The replica rendezvous hashing prefers for a conversation, as every proxy computes it."""
    request = GenerationRequest(messages=tuple(Message(m["role"], m["content"]) for m in messages))
    urls = [server.url for server in servers]
    return urls.index(rank(conversation_id(request), urls)[0])


def conversation_for(home: int, servers: list, start: int = 0) -> list:
    return next(
        opening(seed)
        for seed in range(start, start + 200)
        if home_of(opening(seed), servers) == home
    )


def prompt_tokens_processed(server: LlamaServer) -> int:
    text = requests.get(server.url + "/metrics", timeout=10).text
    line = next(
        line for line in text.splitlines() if line.startswith("llamacpp:prompt_tokens_total")
    )
    return int(float(line.split()[-1]))


@pytest.fixture(scope="module")
def servers(kind, model, logs):
    with ExitStack() as stack:
        found = []
        for index in range(2):
            folder = logs / f"fleet-{kind}-{index}"
            folder.mkdir(exist_ok=True)
            metrics = ["--metrics"] if kind == "llamacpp" else []
            found.append(
                stack.enter_context(
                    LlamaServer(
                        model,
                        folder / "server.log",
                        kind=kind,
                        parallel=2,
                        ctx_size=4096,
                        extra_args=metrics,
                    )
                )
            )
        yield found


@pytest.fixture(scope="module")
def proxy(servers, logs):
    path = logs / f"models-{servers[0].kind}.toml"
    path.write_text(MODELS_FILE.format(first=servers[0].url, second=servers[1].url))
    with ProxyProcess(
        servers[0].url, logs / f"proxy-fleet-{servers[0].kind}.log", args=["--config", str(path)]
    ) as running:
        yield running


@pytest.fixture
def client(proxy):
    return proxy.sdk()


def replicas_ok(proxy: ProxyProcess) -> dict:
    health = proxy.health()
    tiny = next(model for model in health["models"] if model["id"] == "tiny")
    return {replica["url"]: replica["ok"] for replica in tiny["replicas"]}


def test_routing_by_model_and_alias(client, servers):
    for name in ("tiny", "gpt-3.5-turbo", "solo"):
        reply = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.model == name and reply.choices[0].message.content is not None
        assert reply.usage.completion_tokens <= (3 if name == "solo" else 4)  # its defaults
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["code"] == "model_not_found"
    assert "the models are solo, tiny" in missing.value.body["message"]  # sorted
    listed = {m.id: m for m in client.models.list().data}
    assert set(listed) == {"tiny", "gpt-3.5-turbo", "solo"}
    assert listed["gpt-3.5-turbo"].model_extra["alias_of"] == "tiny"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_later_turns_reuse_the_servers_cache(client, servers, stream):
    messages = opening(1000 + stream)
    home = servers[home_of(messages, servers)]
    other = servers[1 - servers.index(home)]
    counted = home.kind == "llamacpp"
    previous_prompt = 0
    for turn in range(3):
        before = [prompt_tokens_processed(s) for s in (home, other)] if counted else None
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model="tiny",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            usage = chunks[-1].usage
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            reply = client.chat.completions.create(model="tiny", messages=messages)
            usage, text = reply.usage, reply.choices[0].message.content
        cached = usage.prompt_tokens_details.cached_tokens
        if turn == 0:
            assert cached < usage.prompt_tokens / 2  # the document is new to the server
        else:
            assert cached >= previous_prompt - 8, (turn, cached, previous_prompt)
        if counted:  # only the home server evaluated anything, and only what was not cached
            after = [prompt_tokens_processed(s) for s in (home, other)]
            assert after[1] == before[1]
            assert after[0] - before[0] == usage.prompt_tokens - cached
        previous_prompt = usage.prompt_tokens
        # An old server frees a slot a moment after the last byte of its answer, and takes a
        # turn that arrives sooner to another slot: pause, as a person reading it would.
        time.sleep(READING if home.legacy else 0)
        messages = messages + [
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"and {_WORDS[turn]} then"},
        ]


def test_a_replica_fails_and_returns(client, servers, proxy):
    first, second = servers
    messages = conversation_for(0, servers, start=2000)
    served = answer(client, messages)  # by the conversation's replica, greedy
    first.kill()
    # the conversation's replica refuses connections: its next turn goes to the other one,
    # before any byte reaches the client, streamed or not, and is the same model's answer
    assert answer(client, messages) == served
    assert answer(client, messages, stream=True) == served
    assert replicas_ok(proxy) == {first.url: False, second.url: True}
    first.start()
    wait_for(lambda: all(replicas_ok(proxy).values()), "both replicas in rotation")
    newcomer = conversation_for(1, servers, start=3000)
    expected = answer(client, newcomer)  # by the second, its home
    second.stop()  # now only the returned replica can answer
    try:
        assert answer(client, newcomer) == expected
    finally:
        second.start()
        wait_for(lambda: all(replicas_ok(proxy).values()), "both replicas in rotation")


def answer(client, messages: list, stream: bool = False) -> tuple:
    """``(text, finish reason)`` of the greedy answer to ``messages``, whole or streamed: its
    prompt evaluated whole, as a replica new to it evaluates it (the random model's argmax
    can tip over the rounding a reused cache brings)."""
    options = dict(
        model="tiny",
        messages=messages,
        temperature=0,
        max_tokens=8,
        extra_body={"cache_prompt": False},
    )
    if not stream:
        choice = client.chat.completions.create(**options).choices[0]
        return choice.message.content, choice.finish_reason
    chunks = list(client.chat.completions.create(**options, stream=True))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    return text, chunks[-1].choices[0].finish_reason
